/* workerreg.h: the worker registry, read by those who are not workers.
 *
 * Each sluice-worker master rewrites a JSON document at
 * sluice:worker:<host>:<masterpid> every 2 s with a 10 s expiry
 * (worker/supervise.h describes it and writes it), so the documents that
 * exist are the pools that are alive.  The scheduler asks whether a queue
 * it enqueues into is served by any of them, and `sluice status` says so
 * beside a step that waits.  Keys are found with SCAN, never KEYS. */
#ifndef SL_WORKERREG_H
#define SL_WORKERREG_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "redis.h"

/* The keys of the documents (worker/supervise.h: SL_WORKER_KEY_PREFIX). */
#define SL_WORKERREG_PATTERN "sluice:worker:*"

/* Sets *served to whether a live pool reads queue: a registry document
 * that lists it under "queues" and whose "state" is not "stopping".
 * Returns -1 with err if Redis fails. */
int sl_workerreg_serves(sl_redis *r, const char *queue, bool *served, sl_err *err);

#endif
