/* queue.h: the job queues in Redis Streams (wire format v1).
 *
 * Keys of queue Q (all in one Redis Cluster slot thanks to the {Q} tag):
 *   sluice:{Q}:jobs     stream of pending jobs, field `job` = envelope
 *   sluice:{Q}:dead     dead letter stream: fields job, error, failed_at and,
 *                       when the envelope's id could be read, id
 *   sluice:{Q}:delayed  ZSET of delayed/retrying envelopes, score = due ms
 *   sluice:{Q}:stats    HASH of job counters and histograms (metrics.h), and
 *                       `readded`: entries sluice itself added to the stream
 *                       again (promoted retries, dead-letter retries, jobs
 *                       handed back), counted atomically with each XADD, so
 *                       that the stream's entries-added (XINFO STREAM) minus
 *                       readded is the number of jobs enqueued by any producer
 * and sluice:queues, a SET of every queue name ever enqueued to (discovery).
 *
 * Life of an entry: XADD by a producer; XREADGROUP by one consumer of group
 * `sluice` (it is then pending, owned by that consumer); after its result is
 * committed to PostgreSQL, XACK + XDEL in one pipelined round trip.  Streams
 * are never trimmed with MAXLEN: that would drop pending entries. */
#ifndef SL_QUEUE_H
#define SL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "envelope.h"
#include "err.h"
#include "keys.h"
#include "redis.h"

#define SL_GROUP "sluice"              /* consumer group of every job stream */
#define SL_READDED_FIELD "readded"     /* field of sluice:{Q}:stats, see above */

/* Creates the consumer group of the queue's stream (and the stream:
 * MKSTREAM), reading from the beginning so that entries added before any
 * worker existed are delivered.  An existing group is fine. */
int sl_queue_ensure_group(sl_redis *r, const char *queue, sl_err *err);
/* The same for n queues, pipelined: one round trip per thousand queues. */
int sl_queue_ensure_groups(sl_redis *r, char *const *queues, size_t n, sl_err *err);

/* Encodes job and appends it to its queue (job->queue), registering the
 * queue in sluice:queues and counting it (enqueued:<kind> in
 * sluice:{Q}:stats), in one round trip.  When the Redis URL asks for
 * wait_replicas (redis.h), the same round trip WAITs for them, and fewer
 * acknowledgements within wait_timeout are an error (the job is on the
 * master; enqueuing the same id again is safe).  So does sl_queue_schedule. */
int sl_queue_enqueue(sl_redis *r, const sl_job *job, sl_err *err);

/* Appends already-encoded bytes as the `job` field of a new entry of the
 * queue, without looking at them (tests use it to inject garbage). */
int sl_queue_enqueue_raw(sl_redis *r, const char *queue, const char *data, size_t len,
                         sl_err *err);

/* One stream entry as read. */
typedef struct sl_entry {
    char queue[SL_NAME_MAX + 1]; /* queue it came from */
    char stream_id[48];          /* Redis stream entry id, "ms-seq" */
    char *data;                  /* owned: the `job` field's bytes; NULL if absent */
    size_t len;                  /* bytes in data */
    int64_t deliveries;          /* times delivered (reclaimed entries), 0 = first */
    bool lapsed;                 /* taken by sl_queue_reclaim: its owner's lease lapsed */
    size_t oversize;             /* sl_queue_read_bounded: data not fetched (NULL), the
                                    `job` field is this many bytes; 0 otherwise */
} sl_entry;

typedef struct sl_batch {
    sl_entry *items; /* owned array */
    size_t n;        /* entries in use */
    size_t cap;      /* entries allocated */
} sl_batch;

/* Reads up to count new entries per queue for consumer, blocking up to
 * block_ms when there are none (0: do not block).  Entries are appended to
 * *out (which the caller empties with sl_batch_clear).  Returns the number
 * of entries read, or -1 with err. */
int sl_queue_read(sl_redis *r, const char *consumer, char *const *queues, size_t nqueues,
                  int count, int block_ms, sl_batch *out, sl_err *err);

/* Like sl_queue_read for one queue, without blocking, but a `job` field
 * longer than max_bytes is not fetched: its entry comes back with data
 * NULL and oversize set (its bytes stay in Redis; sl_queue_dead_letter
 * moves them there).  One Lua script (XREADGROUP inside), so a reader
 * never holds an oversized entry it did not ask for. */
int sl_queue_read_bounded(sl_redis *r, const char *consumer, const char *queue, int count,
                          size_t max_bytes, sl_batch *out, sl_err *err);

/* sl_queue_read_bounded over queues[0..n) in priority order, in one round
 * trip whatever n: up to count entries in all, from the first queue, then
 * the next while fewer were found.  The queues' keys must share one slot
 * on Redis Cluster (there, call it per queue).  Returns entries read, or -1. */
int sl_queue_read_many(sl_redis *r, const char *consumer, char *const *queues, size_t n, int count,
                       size_t max_bytes, sl_batch *out, sl_err *err);

void sl_batch_clear(sl_batch *b);   /* empties, keeps the allocation */
void sl_batch_free(sl_batch *b);

/* Acknowledges and deletes entries (XACK + XDEL per queue) in one pipelined
 * round trip.  entries[i] may come from different queues. */
int sl_queue_ack(sl_redis *r, sl_entry *const *entries, size_t n, sl_err *err);

/* Like sl_queue_ack, in the same round trip as `extra` commands the caller
 * has already appended to r's pipeline (sl_redis_append; e.g. the metrics
 * increments of the batch, sl_metrics_append): their replies are read
 * first, and an error reply to one of them fails the call too.  n may be 0. */
int sl_queue_ack_after(sl_redis *r, size_t extra, sl_entry *const *entries, size_t n, sl_err *err);

/* Moves one entry to its queue's dead letter: XADD to sluice:{Q}:dead with
 * the bytes as received, the error and (unless job_id is NULL: it could
 * not be read) the job id, XACK and XDEL the original, all in one
 * MULTI/EXEC transaction (atomic: it is never in both or neither).  An
 * entry whose bytes were not fetched (e->oversize) is moved by a Lua
 * script within Redis instead, without an id. */
int sl_queue_dead_letter(sl_redis *r, const sl_entry *e, const char *job_id, const char *error,
                         sl_err *err);

/* Entries of the queue's stream that are waiting / pending, for tests and
 * the CLI: XLEN and the count from XPENDING. */
int sl_queue_depth(sl_redis *r, const char *queue, long long *length, long long *pending,
                   sl_err *err);

/* How many entries each of queues[0..n) has pending (delivered, not yet
 * acknowledged), in one pipelined round trip; 0 for a queue without a
 * consumer group.  0, or -1 with err. */
int sl_queue_pending_counts(sl_redis *r, char *const *queues, size_t n, long long *pending, sl_err *err);

/* Sets exists[i] to whether entry stream_ids[i] is still in the stream
 * of queues[i] (XRANGE id id, one pipelined round trip for all). */
int sl_queue_entries_exist(sl_redis *r, const char *const *queues, const char *const *stream_ids,
                           size_t n, bool *exists, sl_err *err);

/* ---- retries and delays (sluice:{Q}:delayed) ---------------------------- */

/* Adds envelope bytes to the queue's delayed set, due at due_ms (ZADD),
 * registering the queue in sluice:queues, in one round trip. */
int sl_queue_schedule(sl_redis *r, const char *queue, const char *data, size_t len,
                      int64_t due_ms, sl_err *err);

/* Atomically (MULTI/EXEC) puts the next attempt's envelope into the delayed
 * set at due_ms and acknowledges + deletes entry e: the job is never in
 * both, nor in neither.  Re-running it with the same bytes is harmless. */
int sl_queue_retry_later(sl_redis *r, const sl_entry *e, const char *data, size_t len,
                         int64_t due_ms, sl_err *err);

/* Moves up to limit delayed envelopes whose due time is <= now_ms into the
 * queue's stream, atomically (one Lua script: XADD + ZREM per member).
 * Returns how many moved, or -1. */
int sl_queue_promote(sl_redis *r, const char *queue, int64_t now_ms, int limit, sl_err *err);

/* sl_queue_promote for queues[0..n) in one round trip (limit per queue);
 * the same Redis Cluster caveat as sl_queue_read_many. */
int sl_queue_promote_many(sl_redis *r, char *const *queues, size_t n, int64_t now_ms, int limit, sl_err *err);

/* The index of delayed jobs, sluice:due (SL_DUE_KEY): sluice's own
 * writers of delayed jobs (sl_queue_schedule, sl_queue_retry_later) note
 * there when each queue's next job is due, so that a worker promotes only
 * the queues with a job due, whatever the number of queues.  It is a hint:
 * producers that ZADD a delayed set without it are promoted by
 * sl_queue_promote_many, which workers run over all their queues less
 * often.
 *
 * sl_queue_due: the names of at most max queues the index says have a job
 * due at now_ms (*queues, n of them: the caller frees each and the array).
 * sl_queue_promote_noted: sl_queue_promote_many that also moves each
 * queue's index entry to its next job's time, or removes it, in the same
 * step (a producer's earlier note is never lost); on one Redis only (on a
 * Redis Cluster the index is on another slot: CROSSSLOT).
 * sl_queue_due_prune: removes from the index those of the n queues whose
 * delayed set is gone (returns how many), so that notes for queues no
 * worker serves do not stay due for ever; sl_queue_due itself removes
 * members that are no queue name.  All: -1 with err. */
int sl_queue_due(sl_redis *r, int64_t now_ms, int max, char ***queues, size_t *n, sl_err *err);
int sl_queue_due_prune(sl_redis *r, char *const *queues, size_t n, sl_err *err);
int sl_queue_promote_noted(sl_redis *r, char *const *queues, size_t n, int64_t now_ms, int limit, sl_err *err);

/* ---- recovery of entries left by dead consumers --------------------------- */

/* Claims for consumer up to max entries of the queue's stream that have
 * been pending (unacknowledged) for at least min_idle_ms, looping on
 * XAUTOCLAIM's cursor, and appends them to *out with their delivery count
 * (after this claim) in sl_entry.deliveries and sl_entry.lapsed set.  Ids
 * whose entry was deleted
 * while pending are acknowledged and dropped.  Returns the number claimed
 * (0 if the queue has no consumer group yet), or -1 with *out as it was. */
int sl_queue_reclaim(sl_redis *r, const char *consumer, const char *queue, int64_t min_idle_ms,
                     int max, sl_batch *out, sl_err *err);

/* Renews the lease of those of the entries that are still pending for
 * consumer (XCLAIM … 0 … JUSTID by the owner resets their idle time,
 * without counting a delivery), so that they are not reclaimed while their
 * job legitimately runs.  An entry another consumer holds now (it
 * reclaimed it, or a replacement took it over) is left alone: the owner is
 * checked and the lease renewed in one script.  Returns the entries
 * renewed, or -1 with err. */
int sl_queue_renew(sl_redis *r, const char *consumer, const char *queue,
                   const char *const *stream_ids, size_t n, sl_err *err);

/* Claims for consumer up to max entries of the queue's stream that are
 * pending for another consumer `from` (e.g. a worker the master killed),
 * whatever their idle time, and appends them to *out with their delivery
 * count.  Ids whose entry was deleted are acknowledged and dropped.
 * Returns the number claimed, or -1 with err.  (A replacement child takes
 * over what its dead predecessor held this way.) */
int sl_queue_take_over(sl_redis *r, const char *consumer, const char *queue, const char *from,
                       int max, sl_batch *out, sl_err *err);

/* Hands entry e back to its queue unrun: appends its bytes as a new entry
 * at the end of the stream and acknowledges + deletes the original, in one
 * MULTI/EXEC transaction (a worker stopping gracefully uses it for the
 * jobs of its batch it has not started). */
int sl_queue_release(sl_redis *r, const sl_entry *e, sl_err *err);

/* ---- operator controls ------------------------------------------------------ */

#define SL_PAUSED_KEY "sluice:paused"  /* SET of paused queue names */
#define SL_CANCEL_KEY_PREFIX "sluice:cancel:" /* + job id: cancel a running job */

/* Pauses (SADD) or resumes (SREM) a queue: workers do not fetch from a
 * paused queue; producers can still enqueue. */
int sl_queue_set_paused(sl_redis *r, const char *queue, bool paused, sl_err *err);

/* Sets *paused for each of queues[0..n). */
int sl_queue_paused(sl_redis *r, char *const *queues, size_t n, bool *paused, sl_err *err);

/* Reads Redis's maxmemory-policy into policy (n bytes).  "unknown" (and
 * 0) if CONFIG is not allowed; -1 only if the connection failed. */
int sl_queue_eviction_policy(sl_redis *r, char *policy, size_t n, sl_err *err);

/* Moves dead-letter entry dead_id of queue back into its stream with the
 * given (re-encoded, attempt reset) envelope bytes, atomically: XADD to
 * the stream and XDEL from the dead letter happen together, and only if
 * the dead entry still exists (SL_ENOTFOUND otherwise).  dead_id must be a
 * complete entry id, "ms-seq" (SL_EINVAL otherwise). */
int sl_queue_dead_requeue(sl_redis *r, const char *queue, const char *dead_id,
                          const char *data, size_t len, sl_err *err);

/* Deletes dead-letter entries that failed before cutoff_ms (all if
 * cutoff_ms is 0); *removed gets the count.  "Failed" is the entry id's
 * time: when it was added to the dead letter. */
int sl_queue_dead_purge(sl_redis *r, const char *queue, int64_t cutoff_ms, long long *removed,
                        sl_err *err);

#endif
