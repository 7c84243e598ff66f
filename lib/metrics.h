/* metrics.h: the job counters and latency histograms that sluice keeps in
 * Redis, how the worker batches their updates, and how readers decode them.
 *
 * Storage: one hash per queue, sluice:{Q}:stats (same {Q} slot as the
 * queue's other keys), whose fields are plain integers:
 *   enqueued:<kind>    jobs enqueued through sluice (sl_queue_enqueue)
 *   processed:<kind>   attempts that ran and succeeded
 *   failed:<kind>      attempts that ran and failed, or timed out
 *   retried:<kind>     failed attempts whose next attempt was scheduled
 *   dead:<kind>        entries moved to the dead letter (any reason)
 *   timed_out:<kind>   attempts whose worker was killed at the deadline
 *   wait:<i>, run:<i>  histogram bucket i (NOT cumulative), see below
 *   wait:sum_ms, wait:count, run:sum_ms, run:count
 * <kind> is empty for entries that could not be decoded, and
 * SL_METRICS_UNKNOWN_KIND for kinds the worker does not have (when it
 * told the accumulator which it has: sl_metrics_known_kinds), so that
 * producers cannot grow the label set without limit.  Counters only
 * grow (HINCRBY), so they survive worker restarts and several pools add
 * into the same hash.
 *
 * Histograms: wait = enqueue (the envelope's enqueued_at) to the start of
 * the attempt, for every attempt that starts (a retry's wait includes its
 * backoff); run = the handler's run time.  Bucket upper bounds, in
 * seconds: 0.001 0.005 0.01 0.05 0.1 0.5 1 5 10 30 60 300 600 1800 3600
 * +Inf (SL_METRICS_BUCKETS of them, the last one +Inf).
 *
 * Write path (worker): the consumer notes each event of a batch in an
 * sl_metrics accumulator (memory only); settling the batch appends the
 * summed increments (one HINCRBY per distinct field) to the pipeline of
 * the round trip that acknowledges the batch (sl_queue_ack_after).  A
 * batch settled twice (a Redis outage after the increments were applied
 * but before their replies were read) may count twice: the counters are
 * at-least-once, like delivery. */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "redis.h"

#define SL_METRICS_BUCKETS 16   /* 15 finite bounds + +Inf */
/* The one label under which kinds the worker does not have are counted;
 * not a valid kind name, so it cannot be confused with one. */
#define SL_METRICS_UNKNOWN_KIND "(unknown)"

/* Upper bound of bucket i in ms; -1 for the last (+Inf). */
int64_t sl_metrics_bucket_ms(int i);

/* The bucket a duration in ms falls in (le semantics: d <= bound). */
int sl_metrics_bucket_of(int64_t ms);

/* Counter names, in the order of sl_metrics_counter. */
typedef enum sl_metrics_counter {
    SL_M_ENQUEUED = 0,
    SL_M_PROCESSED,
    SL_M_FAILED,
    SL_M_RETRIED,
    SL_M_DEAD,
    SL_M_TIMED_OUT,
    SL_M_DEFERRED,       /* put back to wait for a deploy target's or endpoint's rate */
    SL_M_NCOUNTERS,
} sl_metrics_counter;

/* "enqueued", "processed", … (the hash field prefix). */
const char *sl_metrics_counter_name(sl_metrics_counter c);

/* ---- write side --------------------------------------------------------- */

typedef struct sl_metrics sl_metrics;

/* An empty accumulator; never NULL.  Free with sl_metrics_free.  Every
 * function below accepts m == NULL and then does nothing (metrics off). */
sl_metrics *sl_metrics_new(void);
void sl_metrics_free(sl_metrics *m);

/* Tells m which kinds get series of their own: known(kind) true.  Other
 * kinds are counted under SL_METRICS_UNKNOWN_KIND.  Without it every kind
 * counts under its own name. */
void sl_metrics_known_kinds(sl_metrics *m, bool (*known)(const char *kind));

/* Adds 1 to counter c of queue/kind (kind NULL: undecodable, ""). */
void sl_metrics_count(sl_metrics *m, const char *queue, const char *kind, sl_metrics_counter c);

/* Records one attempt that ran: its wait (started_us - enqueued_us, Unix
 * µs, so that a sub-millisecond wait falls in the right bucket; skipped if
 * enqueued_us <= 0) and its run time in ms. */
void sl_metrics_ran(sl_metrics *m, const char *queue, int64_t enqueued_us, int64_t started_us,
                    double run_ms);

/* True if there is nothing to send. */
bool sl_metrics_empty(const sl_metrics *m);

/* Appends one HINCRBY per noted field to r's pipeline (sl_redis_append);
 * returns the number of commands appended (whose replies the caller must
 * read: sl_queue_ack_after does), or -1 with err. */
int sl_metrics_append(const sl_metrics *m, sl_redis *r, sl_err *err);

/* Forgets what was noted (after it was sent). */
void sl_metrics_reset(sl_metrics *m);

/* The command that counts one enqueued job (for sl_queue_enqueue's
 * pipeline): writes the key and field into the buffers. */
void sl_metrics_enqueue_field(const char *queue, const char *kind, char *key, size_t keylen,
                              char *field, size_t fieldlen);

/* ---- read side ------------------------------------------------------------ */

/* One kind's counters in a queue. */
typedef struct sl_metrics_kind {
    char kind[72];                        /* "" for undecodable entries */
    long long counts[SL_M_NCOUNTERS];
} sl_metrics_kind;

typedef struct sl_histogram {
    long long buckets[SL_METRICS_BUCKETS]; /* per bucket, NOT cumulative */
    long long count;
    long long sum_ms;
} sl_histogram;

/* A queue's decoded stats hash. */
typedef struct sl_metrics_queue {
    sl_metrics_kind *kinds;   /* owned, sorted by kind */
    size_t nkinds;
    long long totals[SL_M_NCOUNTERS]; /* summed over kinds */
    sl_histogram wait, run;
    long long throttled_ms;   /* time workers held back by the queue's limits (worker/throttle.h) */
} sl_metrics_queue;

/* Decodes an HGETALL reply of sluice:{Q}:stats into *out (zeroed first;
 * unknown fields are ignored).  Free with sl_metrics_queue_clear. */
void sl_metrics_queue_decode(const redisReply *hgetall, sl_metrics_queue *out);
void sl_metrics_queue_clear(sl_metrics_queue *q);

/* Estimates quantile q (0..1) of h in ms by linear interpolation inside
 * the bucket where it falls (as Prometheus' histogram_quantile does); a
 * quantile in the +Inf bucket reports the largest finite bound.  -1 when
 * the histogram is empty. */
double sl_histogram_quantile_ms(const sl_histogram *h, double q);

#endif
