/* throttle.h: a child's view of the fleet-wide limits of the queues it
 * reads (queues.NAME.rate, queues.NAME.concurrency; lib/ratelimit.h).
 *
 * Before reading entries of a limited queue the child asks how many it may
 * take (sl_throttle_admit): tokens from the queue's bucket, and for a
 * capped queue one of its slots (a child runs one job at a time, so a slot
 * per child is a running job).  A queue that may take none is skipped
 * until the bucket says its next token is due; the child never polls it
 * meanwhile, and its blocking read leaves it out and wakes in time for it.
 * Tokens taken but not used (fewer entries waiting) are given back.  The
 * slot is renewed when each job of the queue starts (its lease covers the
 * job's time limit) and given up when the batch is settled.  Over-limit
 * jobs are not failures: they simply stay in their stream.
 *
 * Time a queue spends throttled is added to `throttled_ms` of its stats
 * hash (sluice:{Q}:stats) when the throttle ends, so `sluice stats`, `top`
 * and /metrics can show it.  Every Redis failure here lets the read go on
 * as if unlimited for that call: it is logged, and the next call asks
 * again (a limit is protection for a backend, not a correctness boundary
 * of sluice itself). */
#ifndef SL_THROTTLE_H
#define SL_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "redis.h"

typedef struct sl_throttle sl_throttle;

/* The limits of queues[0..n) for the consumer named holder; NULL when none
 * of them is limited (then every other call is a no-op on NULL). */
sl_throttle *sl_throttle_new(const sl_config *cfg, char *const *queues, size_t n, const char *holder);
void sl_throttle_free(sl_throttle *t);

/* True while queue may take nothing (until the time the bucket gave). */
bool sl_throttle_waiting(const sl_throttle *t, const char *queue, int64_t now_ms);

/* How many entries of queue may be read now, at most want: returns that
 * number (0: throttled, skip it).  Unlimited queues get want. */
int sl_throttle_admit(sl_throttle *t, sl_redis *r, const char *queue, int want, int64_t now_ms);

/* After reading: `read` of the `admitted` entries came; the rest of the
 * tokens go back.  A capped queue that read nothing gives its slot up. */
void sl_throttle_used(sl_throttle *t, sl_redis *r, const char *queue, int admitted, int read);

/* A job of queue starts and may run for timeout_ms: renews its slot. */
void sl_throttle_job_start(sl_throttle *t, sl_redis *r, const char *queue, int64_t timeout_ms);

/* The batch is settled: gives up every slot held. */
void sl_throttle_release(sl_throttle *t, sl_redis *r);

/* A job limited by a deploy target's or provisioning endpoint's rate
 * (sl_kind.limit; name as the kind gave it) asks for a token from the
 * fleet-wide bucket sluice:{limit:NAME}:rate before it starts.  Returns 0
 * when it may start now, else the milliseconds until the next token: the
 * worker puts the job back that long, unrun and not failed.  A Redis
 * failure lets the job start (logged), as for a queue's limits. */
int64_t sl_throttle_limit_wait(sl_redis *r, const char *name, const sl_rate *rate);

/* Milliseconds until the first waiting queue may be asked again (at most
 * cap_ms), or cap_ms when none waits. */
int sl_throttle_next_ms(const sl_throttle *t, int64_t now_ms, int cap_ms);

#endif
