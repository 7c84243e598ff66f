/* keys.h: the names of a queue's Redis keys, below both the queue
 * (lib/queue.h, which documents what each key holds) and the metrics that
 * count into its stats hash (lib/metrics.h), so that neither includes the
 * other.  Every key of queue Q carries the hash tag {Q}: they share one
 * Redis Cluster slot, and a MULTI or a Lua script may touch several. */
#ifndef SL_KEYS_H
#define SL_KEYS_H

#include "envelope.h"

#define SL_QUEUES_KEY "sluice:queues"  /* SET of queue names */
#define SL_DUE_KEY "sluice:due"        /* ZSET: queue -> when its delayed set's first job is
                                          due, Unix ms (a hint: sl_queue_due) */
#define SL_KEY_MAX (SL_NAME_MAX + 32)

/* Writes "sluice:{queue}:suffix" into buf (suffix: "jobs", "dead",
 * "delayed", "stats").  The name keeps the queue's prefix: it is the
 * queue's key, used by everything that touches one. */
void sl_queue_key(char buf[SL_KEY_MAX], const char *queue, const char *suffix);

#endif
