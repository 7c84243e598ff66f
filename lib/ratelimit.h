/* ratelimit.h: limits that hold across every worker process on every host.
 *
 * Two kinds, both kept in Redis and changed only by Lua scripts, so that
 * any number of processes share them atomically, and both timed by the
 * Redis server's clock (TIME), so that hosts with skewed clocks agree:
 *
 *   - a token bucket (`queues.NAME.rate: 10/s`, `deploy.targets.NAME.rate`):
 *     holds at most one period's count of tokens, refilled continuously at
 *     count per period; a job may start only with a token.  A bucket that
 *     is empty says how long until its next token, so a waiting worker
 *     sleeps that long instead of polling.  Key: a HASH (`t` tokens, `ts`
 *     last refill in µs), expiring after two idle periods (a full bucket
 *     is the same as none).
 *   - concurrency slots (`queues.NAME.concurrency: N`): a ZSET of at most N
 *     holders, each with a lease (score = expiry, server ms); a holder that
 *     crashed loses its slot when its lease runs out.
 *
 * Keys are the caller's (for a queue, sluice:{Q}:rate and sluice:{Q}:running,
 * on the queue's own Redis Cluster slot). */
#ifndef SL_RATELIMIT_H
#define SL_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "rate.h"
#include "redis.h"

/* Takes up to want (>= 1) tokens from the bucket at key.  *granted gets
 * how many (0..want); when 0, *wait_ms gets how long until the next token
 * (at least 1).  0, or -1 with err if Redis failed. */
int sl_rate_take(sl_redis *r, const char *key, const sl_rate *rate, int want, int *granted,
                 int *wait_ms, sl_err *err);

/* Puts back n tokens taken but not used (the bucket never exceeds its
 * capacity).  0, or -1 with err. */
int sl_rate_give_back(sl_redis *r, const char *key, const sl_rate *rate, int n, sl_err *err);

/* Takes (or renews) a slot for holder in the set at key, which admits at
 * most cap holders; the slot lapses lease_ms after this call unless
 * renewed.  *got says whether holder has a slot now.  0, or -1 with err. */
int sl_slots_take(sl_redis *r, const char *key, int cap, const char *holder, int64_t lease_ms, bool *got,
                  sl_err *err);

/* Gives holder's slot up (nothing if it has none).  0, or -1 with err. */
int sl_slots_release(sl_redis *r, const char *key, const char *holder, sl_err *err);

#endif
