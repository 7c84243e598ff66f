/* store.h: sluice's PostgreSQL store.
 *
 * PostgreSQL is the source of truth for what happened to a job: one row per
 * job id in sluice_jobs (its final status, outputs or error) and one row
 * per attempt in sluice_job_attempts.  Schema changes are versioned SQL
 * files (migrations/NNN_name.sql, compiled in), applied by sl_store_migrate
 * under an advisory lock, so concurrent `sluice migrate` runs are safe.
 *
 * Every statement is parameterised; no value is ever spliced into SQL.
 * A connection must never cross fork(). */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "envelope.h"
#include "err.h"

typedef struct sl_store sl_store;

/* Connects (connect_timeout 10 s and TCP keepalives unless the URL says
 * otherwise).  The session's plans are pinned: every statement sent
 * through a store finds rows by key, so each prepared statement is planned
 * once per connection (a generic plan) with index lookups in nested loops
 * (sequential scans where an index serves, hash and merge joins are
 * disabled), whatever the tables' size when it was prepared.  Returns NULL
 * with err (SL_EPG, libpq's message) on failure. */
sl_store *sl_store_connect(const char *url, sl_err *err);
void sl_store_free(sl_store *s);

/* True if the connection is gone (the caller frees and reconnects). */
bool sl_store_broken(const sl_store *s);

/* Applies every migration newer than the database's version, each in its
 * own transaction, holding an advisory lock so concurrent runs serialise.
 * *applied (may be NULL) receives how many were applied. */
int sl_store_migrate(sl_store *s, int *applied, sl_err *err);

/* Fails with a message telling the operator to run `sluice migrate` if the
 * schema is older than this build (or newer: an older binary must not
 * write to a schema it does not know). */
int sl_store_check_schema(sl_store *s, sl_err *err);

/* The outcome of one job attempt, as the worker records it. */
typedef struct sl_outcome {
    const sl_job *job;
    const char *status;     /* the job's status after this attempt: "succeeded",
                               "retrying", "dead" or "cancelled" */
    const char *attempt_status; /* this attempt: "succeeded", "failed", "timed_out",
                               "dead" or "cancelled"; NULL: same as status */
    const char *args_json;  /* the job's args as JSON text */
    const char *outputs;    /* JSON object text, NULL for none */
    const char *error;      /* NULL on success */
    int64_t started_ms;     /* Unix ms; 0 if it never started */
    int64_t finished_ms;    /* Unix ms */
    int64_t started_us;     /* Unix µs, more precise; 0: started_ms is all there is */
} sl_outcome;

/* Records n outcomes (distinct job ids) in one statement, one transaction
 * and one round trip: the job row, and an attempt row unless the attempt
 * succeeded (the job row is then its record; view sluice_job_history).
 * The job row only moves forward: a final status (succeeded, failed, dead,
 * cancelled) is never overwritten, and an attempt not newer than the
 * recorded one changes nothing, its attempt row included — so a result is
 * recorded exactly once per job id however often it is delivered.  Either
 * all are committed or none; on failure err says why. */
int sl_store_record(sl_store *s, const char *worker, const sl_outcome *o, size_t n, sl_err *err);

/* What PostgreSQL already knows about a job that is about to run. */
typedef enum sl_prior_kind {
    SL_PRIOR_NONE = 0,    /* nothing: run it (sl_store_claim: this entry holds the claim) */
    SL_PRIOR_FINAL,       /* final result committed: acknowledge, do not run */
    SL_PRIOR_DEAD,        /* recorded dead: make sure it is in the dead letter */
    SL_PRIOR_RETRYING,    /* this attempt already failed and was recorded: schedule the retry */
    SL_PRIOR_CANCELLED,   /* cancellation requested: record it, do not run */
    SL_PRIOR_OTHER_JOB,   /* the id's row was recorded by a different job (kind, queue or
                             args differ): neither run nor skip as done; error says what */
    SL_PRIOR_DUPLICATE,   /* (claim) another entry carries this job, or carried this attempt
                             to its end (`error` says which): acknowledge, run nothing */
    SL_PRIOR_HELD,        /* (claim) another entry, `holder_*`, claimed this job and has no
                             result yet: run nothing while that entry exists */
} sl_prior_kind;

typedef struct sl_prior {
    sl_prior_kind kind;
    char error[256];      /* the recorded error (DEAD, RETRYING); what it duplicates (DUPLICATE);
                             OTHER_JOB: what was recorded under the id */
    bool has_row;         /* sluice_jobs has a row of this same job */
    int64_t attempts;     /* its recorded attempts (0 without a row) */
    char holder_queue[SL_NAME_MAX + 1]; /* HELD: the claim's queue and entry */
    char holder_entry[48];
    char holder_consumer[128]; /* NONE, HELD: the consumer that claimed it before ("" if none) */
    bool redelivery;      /* NONE: this very entry had claimed it before (a redelivery) */
} sl_prior;

/* The job's args as JSON text, as the job row stores them; NULL if they
 * cannot be represented.  Caller frees. */
char *sl_store_args_json(const sl_job *job);

/* One job of a batch, with the stream entry that carries it. */
typedef struct sl_claim_req {
    const sl_job *job;    /* id, attempt, queue, kind, args (borrowed) */
    const char *entry;    /* its stream entry id (borrowed) */
} sl_claim_req;

/* Claims reqs[0..n) (distinct job ids) for consumer and fills prior[i]
 * with what PostgreSQL knows of each, in one statement (one round trip):
 * SL_PRIOR_NONE means this entry now holds the job's claim and may run
 * it.  A claim is won when the job has no final result, no cancellation
 * request and no recorded attempt at or after this one, and its claim is
 * absent, already this entry's, or for an earlier attempt that has a
 * recorded result.  steal_queue/steal_entry (both NULL normally) also
 * lets the claim be taken from that entry (the caller has seen that it
 * no longer exists in Redis).  A claim lost to a concurrent claimer not
 * yet visible comes back as SL_PRIOR_HELD with an empty holder only if a
 * second look (made here) still cannot name the holder. */
int sl_store_claim(sl_store *s, const char *consumer, const sl_claim_req *reqs, size_t n,
                   const char *steal_queue, const char *steal_entry, sl_prior *prior, sl_err *err);

/* Overlapped commits (libpq pipeline mode): the worker queues the claim
 * of its next batch and the record of the batch it has run, in that
 * order, without waiting; the claim's answer comes back while PostgreSQL
 * is still flushing the record's commit, and the next batch runs during
 * that flush.
 *
 * sl_store_claim_send queues a claim of reqs[0..n) (n > 0) and
 * sl_store_record_send the record of o[0..n) (n > 0; what sl_store_record
 * does), each in a transaction of its own: at most one of each in flight,
 * in either order.  Their answers are then read in the order sent, with
 * sl_store_claim_wait and sl_store_record_wait; until every one is read
 * (sl_store_in_flight returns 0) no other sl_store call may come
 * (sl_store_broken excepted).  A _send that fails sent nothing the caller
 * waits for, and leaves the connection broken.  The buffers passed to the
 * _send functions may be freed once they return; reqs must stay valid
 * until sl_store_claim_wait.
 *
 * sl_store_record_wait returns 0 once the record is committed (durable:
 * the answer of its commit has arrived).  On -1 nothing may be assumed
 * committed: err says why, sl_store_broken tells an outage from a
 * refusal, and the caller records again with sl_store_record once nothing
 * is in flight, which the forward-only upsert makes safe.
 *
 * sl_store_claim_wait fills prior like sl_store_claim.  Its second look
 * is made only if nothing is in flight behind it: otherwise a claim lost to
 * a claimer it could not see comes back SL_PRIOR_HELD with an empty
 * holder, and the caller makes the second look with sl_store_claim_recheck
 * once nothing is in flight.  On -1 the caller claims again with
 * sl_store_claim (a claim this entry already holds is renewed, so a claim
 * that did commit changes nothing). */
int sl_store_claim_send(sl_store *s, const char *consumer, const sl_claim_req *reqs, size_t n, sl_err *err);
int sl_store_record_send(sl_store *s, const char *worker, const sl_outcome *o, size_t n, sl_err *err);
int sl_store_in_flight(const sl_store *s);
int sl_store_claim_wait(sl_store *s, const char *consumer, const sl_claim_req *reqs, size_t n, sl_prior *prior,
                        sl_err *err);
int sl_store_record_wait(sl_store *s, sl_err *err);
int sl_store_claim_recheck(sl_store *s, const char *consumer, const sl_claim_req *reqs, size_t n, sl_prior *prior,
                           sl_err *err);

/* Drops the claims that reqs[0..n)'s entries hold (a graceful stop hands
 * those entries back unrun: their copies must be able to claim). */
int sl_store_unclaim(sl_store *s, const sl_claim_req *reqs, size_t n, sl_err *err);

/* Marks a dead job as queued again (for `sluice dead retry`), so that
 * workers run its next attempt, and sets *attempts to the attempts it has
 * recorded: the retry must be a later attempt, or the forward-only record
 * would ignore it.  A job already reset (a retry that did not finish) is
 * reset again.  dead_attempt is the attempt of the dead-letter entry being
 * retried: a job already past it (the entry is a stale copy, or another
 * operator's retry has run meanwhile) is not reset.  Returns -1 with
 * SL_ENOTFOUND when there is no such job to reset; a dead entry whose job
 * never got a row (it was undecodable) needs no reset and is not an error
 * for the caller to fix. */
int sl_store_job_reset(sl_store *s, const char *id, int64_t dead_attempt, int64_t *attempts, sl_err *err);

/* Records a cancellation request for job id (idempotent). */
int sl_store_cancel(sl_store *s, const char *id, const char *by, sl_err *err);

/* Appends the job's row and attempt history as a JSON object to out.
 * Returns -1 with SL_ENOTFOUND when there is no row for id. */
int sl_store_job_json(sl_store *s, const char *id, sl_buf *out, sl_err *err);

/* Appends the open approval gates (at most 200, oldest first) to out as a
 * JSON array of {run, gate, since_ms, approvals, required}, for `sluice
 * stats`/`top`/metrics.  The gates live in the scheduler's table
 * sluice_gates (columns run_id, gate_id, state, opened_at, approvals,
 * required); when that table does not exist (a schema without the
 * scheduler) nothing is queried, *present is false and out is unchanged. */
int sl_store_open_gates_json(sl_store *s, sl_buf *out, bool *present, sl_err *err);

#endif
