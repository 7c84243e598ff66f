/* store.c: see store.h.
 *
 * A batch of outcomes is written by one prepared statement that takes an
 * array per column (see SQL_RECORD): one round trip, one transaction, and
 * one parse and plan per batch whatever its size.  It may also be sent
 * pipelined, with the next batch's claim queued behind it (the section
 * "pipelined record and claim" below). */
#include "store.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "migrations.h"
#include "pgconn.h"

#include <assert.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_notice(void *arg, const char *message);
static int exec_simple(sl_store *s, const char *what, const char *sql, sl_err *err);

struct sl_store {
    PGconn *conn;  /* owned */
    bool record_prepared; /* the record statements are prepared on conn */
    bool claim_prepared;  /* the claim statement is prepared on conn */
    int pend[2];          /* the pipelined statements in flight, in the order sent (PIPE_*) */
    int npend;            /* how many: 0 when out of pipeline mode */
    bool lost;            /* a pipelined answer came out of step: the connection is unusable */
};

/* What a pipelined statement in flight is (sl_store.pend). */
enum { PIPE_RECORD = 1, PIPE_CLAIM = 2 };

/* Key for pg_advisory_lock while migrating: "sluice" in ASCII. */
#define MIGRATE_LOCK_KEY 0x736c75696365LL

/* Formats a libpq failure: the server's primary message and its detail
 * (which often names the offending value) on one line. */
static int pg_fail(sl_store *s, sl_err *err, const char *what, const PGresult *res)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary) {
        const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
        return sl_err_set(err, SL_EPG, "postgres: %s: %s%s%s%s", what, primary,
                          detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
    }
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (msg == NULL || msg[0] == '\0')
        msg = PQerrorMessage(s->conn);
    char clean[400];
    snprintf(clean, sizeof clean, "%s", msg);
    clean[strcspn(clean, "\n")] = '\0';
    return sl_err_set(err, SL_EPG, "postgres: %s: %s", what, clean[0] ? clean : "unknown error");
}

sl_store *sl_store_connect(const char *url, sl_err *err)
{
    PGconn *conn = sl_pg_connect(url, "sluice", SL_EPG, err);
    if (conn == NULL)
        return NULL;
    sl_store *s = sl_xcalloc(1, sizeof *s);
    s->conn = conn;
    PQsetNoticeProcessor(s->conn, on_notice, NULL);
    /* The batch statements are prepared once per connection, often while
     * the tables are still small.  A generic plan made then from the
     * tables' statistics (sequential scans and hash joins) would be kept
     * while the tables grow, until an ANALYZE invalidates it, and each
     * batch would then read whole tables: quadratic in the jobs processed.
     * A custom plan per execution avoids that but costs about 0.25 ms of
     * planning per batch, a third of a lone job's start latency.  Every
     * statement sent here finds rows by key, for which index lookups in
     * nested loops are the right plan at any table size: so the plans are
     * pinned to those (no sequential scan where an index serves, no hash
     * or merge join) and made once per connection. */
    if (exec_simple(s, "pin plans",
                    "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off;"
                    " SET enable_hashjoin = off; SET enable_mergejoin = off", err) < 0) {
        sl_store_free(s);
        return NULL;
    }
    return s;
}

void sl_store_free(sl_store *s)
{
    if (s == NULL)
        return;
    if (s->conn)
        PQfinish(s->conn);
    free(s);
}

bool sl_store_broken(const sl_store *s) { return s->lost || PQstatus(s->conn) != CONNECTION_OK; }

/* Runs sql (no parameters) and expects success; returns the result (caller
 * PQclear) or NULL with err. */
static PGresult *exec_ok(sl_store *s, const char *what, const char *sql, int nparams,
                         const char *const *params, sl_err *err)
{
    PGresult *res = PQexecParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        pg_fail(s, err, what, res);
        PQclear(res);
        return NULL;
    }
    return res;
}

/* Runs sql, which may hold several statements (simple query protocol). */
static int exec_simple(sl_store *s, const char *what, const char *sql, sl_err *err)
{
    PGresult *res = PQexec(s->conn, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = pg_fail(s, err, what, res);
    PQclear(res);
    return rc;
}

/* Server notices ("relation already exists, skipping") are not errors and
 * must not clutter a command's stderr; they are logged at debug level. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    char q[600];
    SL_DEBUG("postgres.notice", "message=%s", sl_log_quote(q, sizeof q, message));
}

static int schema_version(sl_store *s, int *version, sl_err *err)
{
    PGresult *res = exec_ok(s, "read schema version",
                            "SELECT coalesce(max(version), 0) FROM sluice_schema_migrations",
                            0, NULL, err);
    if (res == NULL)
        return -1;
    *version = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

static int latest_version(void)
{
    return sl_migrations_count ? sl_migrations[sl_migrations_count - 1].version : 0;
}

int sl_store_migrate(sl_store *s, int *applied, sl_err *err)
{
    int count = 0, version = 0, rc = -1;
    char lock[64];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_lock(%lld)", MIGRATE_LOCK_KEY);
    if (exec_simple(s, "take migration lock", lock, err) < 0)
        return -1;
    if (exec_simple(s, "create sluice_schema_migrations",
                    "CREATE TABLE IF NOT EXISTS sluice_schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())", err) < 0 ||
        schema_version(s, &version, err) < 0)
        goto unlock;
    if (version > latest_version()) {
        sl_err_set(err, SL_EPG, "postgres: database schema is at version %d, newer than this "
                   "sluice knows (%d): upgrade sluice", version, latest_version());
        goto unlock;
    }
    for (size_t i = 0; i < sl_migrations_count; i++) {
        const sl_migration *m = &sl_migrations[i];
        if (m->version <= version)
            continue;
        char what[160], vtext[16];
        snprintf(what, sizeof what, "migration %s", m->name);
        snprintf(vtext, sizeof vtext, "%d", m->version);
        const char *params[] = { vtext, m->name };
        PGresult *res;
        if (exec_simple(s, what, "BEGIN", err) < 0)
            goto unlock;
        if (exec_simple(s, what, m->sql, err) < 0 ||
            (res = exec_ok(s, what, "INSERT INTO sluice_schema_migrations (version, name)"
                           " VALUES ($1::integer, $2)", 2, params, err)) == NULL) {
            exec_simple(s, "rollback", "ROLLBACK", NULL);
            goto unlock;
        }
        PQclear(res);
        if (exec_simple(s, what, "COMMIT", err) < 0)
            goto unlock;
        count++;
    }
    rc = 0;
unlock:
    snprintf(lock, sizeof lock, "SELECT pg_advisory_unlock(%lld)", MIGRATE_LOCK_KEY);
    if (exec_simple(s, "release migration lock", lock, rc == 0 ? err : NULL) < 0)
        rc = -1;
    if (applied)
        *applied = count;
    return rc;
}

int sl_store_check_schema(sl_store *s, sl_err *err)
{
    int version = 0;
    PGresult *res = exec_ok(s, "check schema",
                            "SELECT to_regclass('sluice_schema_migrations') IS NOT NULL", 0, NULL, err);
    if (res == NULL)
        return -1;
    bool exists = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (exists && schema_version(s, &version, err) < 0)
        return -1;
    if (version < latest_version())
        return sl_err_set(err, SL_EPG, "postgres: database schema is at version %d, this sluice "
                          "needs %d: run `sluice migrate`", version, latest_version());
    if (version > latest_version())
        return sl_err_set(err, SL_EPG, "postgres: database schema is at version %d, newer than "
                          "this sluice knows (%d): upgrade sluice", version, latest_version());
    return 0;
}

/* A batch is recorded with one statement whatever its size: it takes one
 * array per column and unnests them, so PostgreSQL parses it once per
 * connection (it is prepared) and plans it once per batch.  The job rows
 * are upserted forward only; an attempt row is written only for the jobs
 * whose row this statement did move forward (a late or duplicate outcome
 * changes nothing at all), and not for a successful attempt: the job row
 * is its record (the view sluice_job_history shows both, migration 002).
 * Which rows `up` moved is asked with IN inside an expression, which
 * PostgreSQL answers from a hash of `up` built once (a hashed SubPlan):
 * a join of the two CTEs would be a nested loop (hash joins are off for
 * this connection, sl_store_connect), n x n comparisons per batch. */
static const char SQL_RECORD[] =
    "WITH t AS ("
    "  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
    "   $6::integer[], $7::integer[], $8::bigint[], $9::text[], $10::text[], $11::text[],"
    "   $12::bigint[], $13::bigint[], $14::bigint[], $16::text[], $17::text[], $18::text[])"
    "  AS t(id, queue, kind, args, status, attempts, max_attempts, timeout_ms, run_id, step_id,"
    "   unique_key, enq, st, fin, outputs, error, attempt_status)),"
    " up AS ("
    "  INSERT INTO sluice_jobs AS j (id, queue, kind, args, status, attempts, max_attempts,"
    "   timeout_ms, run_id, step_id, unique_key, enqueued_at, started_at, finished_at,"
    "   worker, outputs, error)"
    "  SELECT id, queue, kind, args::jsonb, status, attempts, max_attempts, timeout_ms, run_id,"
    "   step_id, unique_key, to_timestamp(enq / 1000000.0::float8), to_timestamp(st / 1000000.0::float8),"
    "   to_timestamp(fin / 1000.0::float8), $15, outputs::jsonb, error FROM t"
    "  ON CONFLICT (id) DO UPDATE SET"
    "   status = EXCLUDED.status, attempts = EXCLUDED.attempts,"
    "   max_attempts = EXCLUDED.max_attempts, timeout_ms = EXCLUDED.timeout_ms,"
    "   started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,"
    "   worker = EXCLUDED.worker, outputs = EXCLUDED.outputs, error = EXCLUDED.error"
    /* Forward only: final rows stay, older attempts change nothing. */
    "   WHERE j.status IN ('queued', 'retrying') AND j.attempts < EXCLUDED.attempts"
    "  RETURNING j.id)"
    " INSERT INTO sluice_job_attempts (job_id, attempt, status, error, worker, started_at,"
    "  finished_at)"
    " SELECT t.id, t.attempts, t.attempt_status, t.error, $15, to_timestamp(t.st / 1000000.0::float8),"
    "  to_timestamp(t.fin / 1000.0::float8)"
    " FROM t WHERE t.attempt_status <> 'succeeded' AND (t.id IN (SELECT id FROM up)) IS TRUE"
    " ON CONFLICT (job_id, attempt) DO NOTHING";

#define RECORD_STMT "sl_record"
#define RECORD_PARAMS 18

/* Appends one element to a PostgreSQL array literal being built in b
 * ("{" already written): NULL, or the value double-quoted with " and \
 * escaped. */
static void array_add(sl_buf *b, const char *value)
{
    if (b->len > 1)
        sl_buf_putc(b, ',');
    if (value == NULL) {
        sl_buf_puts(b, "NULL");
        return;
    }
    sl_buf_putc(b, '"');
    for (const char *p = value; *p; p++) {
        if (*p == '"' || *p == '\\')
            sl_buf_putc(b, '\\');
        sl_buf_putc(b, *p);
    }
    sl_buf_putc(b, '"');
}

static void array_add_int(sl_buf *b, int64_t value, bool present)
{
    char num[24];
    snprintf(num, sizeof num, "%lld", (long long)value);
    array_add(b, present ? num : NULL);
}

/* Prepares the two statements on first use of the connection. */
static int prepare_record(sl_store *s, sl_err *err)
{
    if (s->record_prepared)
        return 0;
    PGresult *res = PQprepare(s->conn, RECORD_STMT, SQL_RECORD, RECORD_PARAMS, NULL);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_fail(s, err, "prepare record batch", res);
    PQclear(res);
    s->record_prepared = rc == 0;
    return rc;
}


/* The record statement's parameters for o[0..n): one array literal per
 * column in col (the caller frees them with cols_free), pointed to by
 * params. */
static void record_params(sl_buf *col, const char **params, const char *worker, const sl_outcome *o,
                          size_t n)
{
    for (int k = 0; k < RECORD_PARAMS; k++) {
        col[k] = (sl_buf)SL_BUF_INIT;
        sl_buf_putc(&col[k], '{');
    }
    for (size_t i = 0; i < n; i++) {
        const sl_job *j = o[i].job;
        array_add(&col[0], j->id);
        array_add(&col[1], j->queue);
        array_add(&col[2], j->kind);
        array_add(&col[3], o[i].args_json ? o[i].args_json : "{}");
        array_add(&col[4], o[i].status);
        array_add_int(&col[5], j->attempt, true);
        array_add_int(&col[6], j->max_attempts, j->max_attempts != 0);
        array_add_int(&col[7], j->timeout_ms, j->timeout_ms != 0);
        array_add(&col[8], j->run);
        array_add(&col[9], j->step);
        array_add(&col[10], j->unique_key);
        /* Enqueue and start in µs (timestamptz keeps them), the finish in ms. */
        array_add_int(&col[11], sl_job_enqueued_us(j), true);
        array_add_int(&col[12], o[i].started_us ? o[i].started_us : o[i].started_ms * 1000,
                      o[i].started_ms != 0 || o[i].started_us != 0);
        array_add_int(&col[13], o[i].finished_ms, true);
        array_add(&col[15], o[i].outputs);
        array_add(&col[16], o[i].error);
        array_add(&col[17], o[i].attempt_status ? o[i].attempt_status : o[i].status);
    }
    for (int k = 0; k < RECORD_PARAMS; k++) {
        sl_buf_putc(&col[k], '}');
        params[k] = sl_buf_str(&col[k]);
    }
    params[14] = worker;
}

static void cols_free(sl_buf *col, int n)
{
    for (int k = 0; k < n; k++)
        sl_buf_free(&col[k]);
}

int sl_store_record(sl_store *s, const char *worker, const sl_outcome *o, size_t n, sl_err *err)
{
    assert(s->npend == 0);
    if (n == 0)
        return 0;
    if (prepare_record(s, err) < 0)
        return -1;
    sl_buf col[RECORD_PARAMS];
    const char *params[RECORD_PARAMS];
    record_params(col, params, worker, o, n);
    int rc = 0;
    PGresult *res = PQexecPrepared(s->conn, RECORD_STMT, RECORD_PARAMS, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_fail(s, err, "record batch", res);
    PQclear(res);
    cols_free(col, RECORD_PARAMS);
    return rc;
}

/* Builds a PostgreSQL text[] literal: {"a","b"} with " and \ escaped. */

char *sl_store_args_json(const sl_job *job)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    sl_buf json = SL_BUF_INIT;
    char *out = NULL;
    if (job->args == NULL || job->args_len == 0)
        out = sl_xstrdup("{}");   /* no args: an empty map, as the envelope encoder writes it */
    else if (msgpack_unpack_next(&up, job->args, job->args_len, &off) == MSGPACK_UNPACK_SUCCESS &&
        sl_json_from_msgpack(&up.data, &json, NULL) == 0)
        out = sl_buf_detach(&json);
    sl_buf_free(&json);
    msgpack_unpacked_destroy(&up);
    return out;
}

/* The claim (migration 004), folded into the look-up of what is known of
 * each job: `k0` reads the job, its cancellation and its claim as they
 * were; `won` takes or renews the claim where it may (see store.h); the
 * result says, per job, what was known and whether this entry won.  All
 * CTEs share one snapshot, so k0 shows the claim before this statement
 * changed it (its holder tells a redelivery from a first delivery).  Two
 * claimers of one id serialise on the claim's primary key: the second
 * sees the first's committed claim in ON CONFLICT, whatever its snapshot.
 * Whether a job was won is asked with IN, answered from a hash of `won`
 * (see SQL_RECORD), not a nested-loop join of two CTEs.
 * Each job's kind and args travel with its id too: a row recorded under
 * the id by a different job (`other`: kind, queue or args differ) is not
 * this job's result, and such an id is never claimed.  The claim commits
 * without waiting for its WAL to be flushed (nowait: synchronous_commit
 * off for this transaction only): a job starts a flush sooner; the batch's
 * result commit, synchronous, flushes the claim with it
 * (docs/architecture.md, "One run per job id"). */
static const char SQL_CLAIM[] =
    "WITH q AS ("
    "  SELECT * FROM unnest($1::text[], $2::integer[], $3::text[], $4::text[], $8::text[], $9::text[])"
    "  AS q(id, attempt, queue, entry, kind, args)),"
    " k0 AS ("
    "  SELECT q.id, q.attempt, q.queue, q.entry, j.status, j.attempts, j.error,"
    "   (c.job_id IS NOT NULL) AS cancel, k.queue AS hq, k.entry AS he, k.consumer AS hc,"
    "   coalesce(j.id IS NOT NULL AND NOT (j.kind = q.kind AND j.queue = q.queue"
    "    AND j.args IS NOT DISTINCT FROM q.args::jsonb), false) AS other, j.kind AS jk, j.queue AS jq"
    "  FROM q LEFT JOIN sluice_jobs j ON j.id = q.id"
    "   LEFT JOIN sluice_cancellations c ON c.job_id = q.id"
    "   LEFT JOIN sluice_claims k ON k.job_id = q.id),"
    " won AS ("
    "  INSERT INTO sluice_claims AS k (job_id, attempt, queue, entry, consumer)"
    "  SELECT id, attempt, queue, entry, $5 FROM k0"
    "  WHERE NOT cancel AND NOT other"
    "   AND (status IS NULL OR (status IN ('queued', 'retrying') AND attempts < attempt))"
    "  ON CONFLICT (job_id) DO UPDATE SET attempt = EXCLUDED.attempt, queue = EXCLUDED.queue,"
    "   entry = EXCLUDED.entry, consumer = EXCLUDED.consumer, claimed_at = now()"
    "  WHERE (k.queue = EXCLUDED.queue AND k.entry = EXCLUDED.entry)"
    "   OR (k.attempt < EXCLUDED.attempt AND k.attempt <= (SELECT j.attempts FROM sluice_jobs j"
    "       WHERE j.id = k.job_id AND j.status IN ('queued', 'retrying')))"
    "   OR (k.queue = $6 AND k.entry = $7)"
    "  RETURNING k.job_id),"
    " nowait AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true) AS v)"
    " SELECT k0.id, k0.status, k0.attempts, k0.error, k0.cancel, k0.hq, k0.he, k0.hc,"
    "  k0.id IN (SELECT job_id FROM won), k0.other, k0.jk, k0.jq"
    " FROM k0 CROSS JOIN nowait";

#define CLAIM_STMT "sl_claim"
#define CLAIM_PARAMS 9

/* Decides what a claim's answer (one row of SQL_CLAIM) means for req. */
static void classify_claim(const sl_claim_req *req, PGresult *res, int r, sl_prior *p)
{
    memset(p, 0, sizeof *p);
    bool has_row = !PQgetisnull(res, r, 1);
    const char *status = PQgetvalue(res, r, 1);
    long long attempts = atoll(PQgetvalue(res, r, 2));
    bool cancelled = PQgetvalue(res, r, 4)[0] == 't';
    bool held = !PQgetisnull(res, r, 6);
    bool mine = held && strcmp(PQgetvalue(res, r, 5), req->job->queue) == 0 &&
                strcmp(PQgetvalue(res, r, 6), req->entry) == 0;
    bool won = PQgetvalue(res, r, 8)[0] == 't';
    bool other = PQgetvalue(res, r, 9)[0] == 't';
    p->has_row = has_row && !other;
    p->attempts = p->has_row ? attempts : 0;
    snprintf(p->error, sizeof p->error, "%s", PQgetvalue(res, r, 3));
    if (held) {
        snprintf(p->holder_queue, sizeof p->holder_queue, "%s", PQgetvalue(res, r, 5));
        snprintf(p->holder_entry, sizeof p->holder_entry, "%s", PQgetvalue(res, r, 6));
        snprintf(p->holder_consumer, sizeof p->holder_consumer, "%s", PQgetvalue(res, r, 7));
    }
    if (other) {
        const char *kind = PQgetvalue(res, r, 10), *queue = PQgetvalue(res, r, 11);
        p->kind = SL_PRIOR_OTHER_JOB;
        snprintf(p->error, sizeof p->error, "recorded as kind '%s', queue '%s'%s", kind, queue,
                 strcmp(kind, req->job->kind) == 0 && strcmp(queue, req->job->queue) == 0
                     ? " with other args" : "");
    } else if (won) {
        p->kind = SL_PRIOR_NONE;
        p->redelivery = mine;
    } else if (has_row && strcmp(status, "dead") == 0) {
        p->kind = mine || !held ? SL_PRIOR_DEAD : SL_PRIOR_DUPLICATE;
        if (p->kind == SL_PRIOR_DUPLICATE)
            snprintf(p->error, sizeof p->error, "job is already dead (attempt %lld)", attempts);
    } else if (has_row && strcmp(status, "retrying") != 0 && strcmp(status, "queued") != 0) {
        p->kind = SL_PRIOR_FINAL;
    } else if (cancelled) {
        p->kind = SL_PRIOR_CANCELLED;
    } else if (has_row && attempts >= req->job->attempt) {
        /* This attempt (or a later one) has a recorded result. */
        bool finish = strcmp(status, "retrying") == 0 && (mine || !held);
        p->kind = finish ? SL_PRIOR_RETRYING : SL_PRIOR_DUPLICATE;
        if (!finish)
            snprintf(p->error, sizeof p->error, "attempt %lld already has a result (the job is at "
                     "attempt %lld)", (long long)req->job->attempt, attempts);
    } else {
        p->kind = SL_PRIOR_HELD;  /* holder "" if it committed after our snapshot */
    }
}

static int prepare(sl_store *s, const char *name, const char *sql, int nparams, bool *done, sl_err *err)
{
    if (*done)
        return 0;
    PGresult *res = PQprepare(s->conn, name, sql, nparams, NULL);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_fail(s, err, "prepare claim", res);
    PQclear(res);
    *done = rc == 0;
    return rc;
}

/* The claim statement's parameters for reqs[idx[0..m)]: array literals in
 * col (the caller frees them with cols_free), pointed to by params. */
static void claim_params(sl_buf *col, const char **params, const char *consumer, const sl_claim_req *reqs,
                         const size_t *idx, size_t m, const char *steal_queue, const char *steal_entry)
{
    for (int k = 0; k < 6; k++) {
        col[k] = (sl_buf)SL_BUF_INIT;
        sl_buf_putc(&col[k], '{');
    }
    for (size_t k = 0; k < m; k++) {
        const sl_claim_req *r = &reqs[idx ? idx[k] : k];
        array_add(&col[0], r->job->id);
        array_add_int(&col[1], r->job->attempt, true);
        array_add(&col[2], r->job->queue);
        array_add(&col[3], r->entry);
        array_add(&col[4], r->job->kind);
        char *args = sl_store_args_json(r->job);
        array_add(&col[5], args ? args : "null");
        free(args);
    }
    for (int k = 0; k < 6; k++) {
        sl_buf_putc(&col[k], '}');
        params[k < 4 ? k : k + 3] = sl_buf_str(&col[k]);
    }
    params[4] = consumer;
    params[5] = steal_queue;
    params[6] = steal_entry;
}

/* Fills prior[idx[k]] (idx NULL: prior[k]) from the claim's answer res.
 * Its rows come in the order of the requests (the order unnest gave
 * them), which is tried first; any other order is searched. */
static void claim_classify(const sl_claim_req *reqs, const size_t *idx, size_t m, PGresult *res, sl_prior *prior)
{
    for (int r = 0; r < PQntuples(res); r++) {
        const char *id = PQgetvalue(res, r, 0);
        size_t at = (size_t)r, i = at < m ? (idx ? idx[at] : at) : 0;
        if (at < m && strcmp(reqs[i].job->id, id) == 0) {
            classify_claim(&reqs[i], res, r, &prior[i]);
            continue;
        }
        for (size_t k = 0; k < m; k++) {
            i = idx ? idx[k] : k;
            if (strcmp(reqs[i].job->id, id) == 0)
                classify_claim(&reqs[i], res, r, &prior[i]);
        }
    }
}

/* One run of SQL_CLAIM over reqs[idx[0..m)]; fills prior[idx[k]]. */
static int claim_once(sl_store *s, const char *consumer, const sl_claim_req *reqs, const size_t *idx,
                      size_t m, const char *steal_queue, const char *steal_entry, sl_prior *prior,
                      sl_err *err)
{
    sl_buf col[6];
    const char *params[CLAIM_PARAMS];
    claim_params(col, params, consumer, reqs, idx, m, steal_queue, steal_entry);
    int rc = 0;
    PGresult *res = PQexecPrepared(s->conn, CLAIM_STMT, CLAIM_PARAMS, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_fail(s, err, "claim jobs", res);
    else
        claim_classify(reqs, idx, m, res, prior);
    PQclear(res);
    cols_free(col, 6);
    return rc;
}

/* The second look of a claim (see store.h): the jobs of reqs[0..n) lost to
 * a claimer whose commit the first statement's snapshot did not show are
 * claimed again, in a new statement, to learn who holds them. */
static int claim_second_look(sl_store *s, const char *consumer, const sl_claim_req *reqs, size_t n,
                             const char *steal_queue, const char *steal_entry, sl_prior *prior, sl_err *err)
{
    size_t *idx = sl_xcalloc(n ? n : 1, sizeof *idx);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (prior[i].kind == SL_PRIOR_HELD && prior[i].holder_entry[0] == '\0')
            idx[m++] = i;
    }
    int rc = m > 0 ? claim_once(s, consumer, reqs, idx, m, steal_queue, steal_entry, prior, err) : 0;
    free(idx);
    return rc;
}

int sl_store_claim(sl_store *s, const char *consumer, const sl_claim_req *reqs, size_t n,
                   const char *steal_queue, const char *steal_entry, sl_prior *prior, sl_err *err)
{
    assert(s->npend == 0);
    memset(prior, 0, n * sizeof *prior);
    if (n == 0)
        return 0;
    if (prepare(s, CLAIM_STMT, SQL_CLAIM, CLAIM_PARAMS, &s->claim_prepared, err) < 0)
        return -1;
    if (claim_once(s, consumer, reqs, NULL, n, steal_queue, steal_entry, prior, err) < 0)
        return -1;
    return claim_second_look(s, consumer, reqs, n, steal_queue, steal_entry, prior, err);
}

/* ---- pipelined record and claim ------------------------------------------------
 *
 * libpq's pipeline mode: each statement is sent with its Sync (its
 * implicit transaction ends there: PostgreSQL commits it when it reaches
 * the Sync), at most one record and one claim, in either order, and the
 * answers are read later in the order sent.  The worker sends the next
 * batch's claim first and the record behind it: the claim commits without
 * waiting for its WAL to be flushed, so its answer arrives while the
 * record's commit is still being flushed.  A record counts as committed
 * only when its answer is COMMAND_OK and its Sync came back without an
 * error in between: a failure of the commit itself arrives as an error
 * before the Sync.  A statement's failure does not touch the one after it
 * (its own transaction).  Any answer out of that order marks the
 * connection lost (sl_store_broken): the caller reconnects and records
 * again, which the forward-only upsert makes harmless. */

/* Reads the answers of one pipelined statement up to its Sync.  want is
 * the status of success; *keep (if keep) receives that result (caller
 * PQclear).  Returns 0 when the statement succeeded and its Sync arrived
 * with no error; -1 with err otherwise (s->lost when out of step). */
static int pipe_take(sl_store *s, const char *what, ExecStatusType want, PGresult **keep, sl_err *err)
{
    bool synced = false, failed = false, got = false;
    int nulls = 0;
    while (!synced) {
        PGresult *r = PQgetResult(s->conn);
        if (r == NULL) {
            /* The end of one statement's answers: one, after its result. */
            if (PQstatus(s->conn) != CONNECTION_OK || ++nulls > 1)
                break;
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            synced = true;
        } else if (st == want && !got && !failed) {
            got = true;
            if (keep) {
                *keep = r;
                r = NULL;
            }
        } else if (!failed) {
            failed = true;
            pg_fail(s, err, what, r);
        }
        PQclear(r);
    }
    if (!synced) {
        s->lost = true;
        if (!failed)
            pg_fail(s, err, what, NULL);
        failed = true;
    } else if (!got && !failed) {
        failed = true;
        sl_err_set(err, SL_EPG, "postgres: %s: no answer before the end of its transaction", what);
    }
    if (failed && keep) {
        PQclear(*keep);
        *keep = NULL;
    }
    return failed ? -1 : 0;
}

/* Queues one statement (kind PIPE_*) in flight: the first enters pipeline
 * mode, after preparing both statements (PQprepare waits, which pipeline
 * mode does not allow).  send sends it with its Sync. */
static int pipe_send(sl_store *s, int kind, const char *stmt, int nparams, const char *const *params,
                     const char *what, sl_err *err)
{
    assert(s->npend < 2 && (s->npend == 0 || s->pend[0] != kind));
    if (s->npend == 0) {
        if (prepare_record(s, err) < 0 || prepare(s, CLAIM_STMT, SQL_CLAIM, CLAIM_PARAMS, &s->claim_prepared, err) < 0)
            return -1;
        if (PQenterPipelineMode(s->conn) != 1)
            return pg_fail(s, err, "enter pipeline mode", NULL);
    }
    if (PQsendQueryPrepared(s->conn, stmt, nparams, params, NULL, NULL, 0) != 1 || PQpipelineSync(s->conn) != 1) {
        s->lost = true;   /* what reached the server is unknown: no answer will be read */
        return pg_fail(s, err, what, NULL);
    }
    s->pend[s->npend++] = kind;
    return 0;
}

/* Takes the first statement in flight off the queue (it must be of kind)
 * and reads its answers (pipe_take), unless the connection is lost; the
 * last one leaves pipeline mode. */
static int pipe_wait(sl_store *s, int kind, const char *what, ExecStatusType want, PGresult **keep, sl_err *err)
{
    assert(s->npend > 0 && s->pend[0] == kind);
    (void)kind;
    s->pend[0] = s->pend[1];
    s->npend--;
    int rc = s->lost ? sl_err_set(err, SL_EPG, "postgres: %s: the connection was lost", what)
                     : pipe_take(s, what, want, keep, err);
    if (s->npend == 0 && !s->lost && PQexitPipelineMode(s->conn) != 1) {
        s->lost = true;
        if (rc == 0)
            rc = sl_err_set(err, SL_EPG, "postgres: %s: could not leave pipeline mode", what);
        if (keep) {
            PQclear(*keep);
            *keep = NULL;
        }
    }
    return rc;
}

int sl_store_record_send(sl_store *s, const char *worker, const sl_outcome *o, size_t n, sl_err *err)
{
    assert(n > 0);
    sl_buf col[RECORD_PARAMS];
    const char *params[RECORD_PARAMS];
    record_params(col, params, worker, o, n);
    int rc = pipe_send(s, PIPE_RECORD, RECORD_STMT, RECORD_PARAMS, params, "send record batch", err);
    cols_free(col, RECORD_PARAMS);
    return rc;
}

int sl_store_claim_send(sl_store *s, const char *consumer, const sl_claim_req *reqs, size_t n, sl_err *err)
{
    assert(n > 0);
    sl_buf col[6];
    const char *params[CLAIM_PARAMS];
    claim_params(col, params, consumer, reqs, NULL, n, NULL, NULL);
    int rc = pipe_send(s, PIPE_CLAIM, CLAIM_STMT, CLAIM_PARAMS, params, "send claim", err);
    cols_free(col, 6);
    return rc;
}

int sl_store_in_flight(const sl_store *s)
{
    return s->npend;
}

int sl_store_record_wait(sl_store *s, sl_err *err)
{
    return pipe_wait(s, PIPE_RECORD, "record batch", PGRES_COMMAND_OK, NULL, err);
}

int sl_store_claim_wait(sl_store *s, const char *consumer, const sl_claim_req *reqs, size_t n, sl_prior *prior,
                        sl_err *err)
{
    memset(prior, 0, n * sizeof *prior);
    PGresult *res = NULL;
    int rc = pipe_wait(s, PIPE_CLAIM, "claim jobs", PGRES_TUPLES_OK, &res, err);
    if (rc == 0) {
        claim_classify(reqs, NULL, n, res, prior);
        PQclear(res);
        if (s->npend == 0)
            rc = claim_second_look(s, consumer, reqs, n, NULL, NULL, prior, err);
    }
    return rc;
}

int sl_store_claim_recheck(sl_store *s, const char *consumer, const sl_claim_req *reqs, size_t n, sl_prior *prior,
                           sl_err *err)
{
    assert(s->npend == 0);
    return claim_second_look(s, consumer, reqs, n, NULL, NULL, prior, err);
}

int sl_store_unclaim(sl_store *s, const sl_claim_req *reqs, size_t n, sl_err *err)
{
    if (n == 0)
        return 0;
    sl_buf col[3];
    for (int k = 0; k < 3; k++) {
        col[k] = (sl_buf)SL_BUF_INIT;
        sl_buf_putc(&col[k], '{');
    }
    for (size_t i = 0; i < n; i++) {
        array_add(&col[0], reqs[i].job->id);
        array_add(&col[1], reqs[i].job->queue);
        array_add(&col[2], reqs[i].entry);
    }
    const char *params[3];
    for (int k = 0; k < 3; k++) {
        sl_buf_putc(&col[k], '}');
        params[k] = sl_buf_str(&col[k]);
    }
    PGresult *res = exec_ok(s, "drop claims",
        "DELETE FROM sluice_claims k USING unnest($1::text[], $2::text[], $3::text[]) AS q(id, queue, entry)"
        " WHERE k.job_id = q.id AND k.queue = q.queue AND k.entry = q.entry", 3, params, err);
    PQclear(res);
    for (int k = 0; k < 3; k++)
        sl_buf_free(&col[k]);
    return res ? 0 : -1;
}

int sl_store_job_reset(sl_store *s, const char *id, int64_t dead_attempt, int64_t *attempts, sl_err *err)
{
    char at[24];
    snprintf(at, sizeof at, "%lld", (long long)dead_attempt);
    const char *params[] = { id, at };
    *attempts = 0;
    PGresult *res = exec_ok(s, "reset job",
                            "UPDATE sluice_jobs SET status = 'queued', error = NULL"
                            " WHERE id = $1 AND status IN ('dead', 'failed', 'queued')"
                            " AND attempts <= $2::integer RETURNING attempts", 2, params, err);
    if (res == NULL)
        return -1;
    int rc = 0;
    if (PQntuples(res) == 1)
        *attempts = atoll(PQgetvalue(res, 0, 0));
    else
        rc = sl_err_set(err, SL_ENOTFOUND, "job %s: no dead job with that id at attempt %lld or "
                        "earlier in PostgreSQL", id, (long long)dead_attempt);
    PQclear(res);
    return rc;
}

int sl_store_cancel(sl_store *s, const char *id, const char *by, sl_err *err)
{
    const char *params[] = { id, by };
    PGresult *res = exec_ok(s, "record cancellation",
                            "INSERT INTO sluice_cancellations (job_id, requested_by) VALUES ($1, $2)"
                            " ON CONFLICT (job_id) DO NOTHING", 2, params, err);
    PQclear(res);
    return res ? 0 : -1;
}

int sl_store_job_json(sl_store *s, const char *id, sl_buf *out, sl_err *err)
{
    const char *params[] = { id };
    PGresult *res = exec_ok(s, "read job",
        "SELECT json_build_object("
        " 'id', j.id, 'queue', j.queue, 'kind', j.kind, 'status', j.status,"
        " 'attempts', j.attempts, 'max_attempts', j.max_attempts, 'timeout_ms', j.timeout_ms,"
        " 'run', j.run_id, 'step', j.step_id, 'unique_key', j.unique_key,"
        " 'enqueued_at', j.enqueued_at, 'started_at', j.started_at, 'finished_at', j.finished_at,"
        " 'wait_ms', round(extract(epoch FROM j.started_at - j.enqueued_at) * 1000, 3),"
        " 'run_ms', round(extract(epoch FROM j.finished_at - j.started_at) * 1000),"
        " 'worker', j.worker, 'args', j.args, 'outputs', j.outputs, 'error', j.error,"
        " 'history', (SELECT coalesce(json_agg(json_build_object("
        "   'attempt', a.attempt, 'status', a.status, 'error', a.error, 'worker', a.worker,"
        "   'started_at', a.started_at, 'finished_at', a.finished_at) ORDER BY a.attempt), '[]')"
        "   FROM sluice_job_history a WHERE a.job_id = j.id))::text"
        " FROM sluice_jobs j WHERE j.id = $1", 1, params, err);
    if (res == NULL)
        return -1;
    int rc = 0;
    if (PQntuples(res) == 0)
        rc = sl_err_set(err, SL_ENOTFOUND, "job %s: no result recorded (unknown id, or not finished yet)", id);
    else
        sl_buf_puts(out, PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

int sl_store_open_gates_json(sl_store *s, sl_buf *out, bool *present, sl_err *err)
{
    *present = false;
    PGresult *res = exec_ok(s, "look for sluice_gates",
                            "SELECT to_regclass('sluice_gates') IS NOT NULL", 0, NULL, err);
    if (res == NULL)
        return -1;
    bool exists = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!exists)
        return 0;
    res = exec_ok(s, "read open gates",
        "SELECT coalesce(json_agg(json_build_object("
        " 'run', g.run_id, 'gate', g.gate_id, 'pipeline', r.pipeline,"
        " 'since_ms', round(extract(epoch FROM g.opened_at) * 1000),"
        " 'deadline_ms', round(extract(epoch FROM g.deadline) * 1000),"
        " 'approvals', (SELECT count(*) FROM sluice_audit a WHERE a.run_id = g.run_id"
        "               AND a.gate_id = g.gate_id AND a.decision = 'approve'),"
        " 'required', g.required) ORDER BY g.opened_at), '[]')::text"
        " FROM (SELECT * FROM sluice_gates WHERE status = 'open' ORDER BY opened_at LIMIT 200) g"
        " JOIN sluice_runs r ON r.id = g.run_id",
        0, NULL, err);
    if (res == NULL)
        return -1;
    *present = true;
    sl_buf_puts(out, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "[]");
    PQclear(res);
    return 0;
}
