/* store.c: see store.h.
 *
 * Batches are written with libpq's pipeline mode: all INSERTs of a batch
 * are sent back to back and followed by one Sync, so the server runs them
 * in one implicit transaction and the worker pays one round trip per batch
 * instead of one per statement. */
#include "store.h"
#include "log.h"
#include "mem.h"
#include "migrations.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_notice(void *arg, const char *message);

struct sl_store {
    PGconn *conn;  /* owned */
};

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
    /* Defaults come first so that settings in the URL override them. */
    const char *keys[] = { "connect_timeout", "keepalives_idle", "keepalives_interval",
                           "keepalives_count", "application_name", "dbname", NULL };
    const char *vals[] = { "10", "30", "10", "3", "sluice", url, NULL };
    sl_store *s = sl_xcalloc(1, sizeof *s);
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (s->conn == NULL || PQstatus(s->conn) != CONNECTION_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", s->conn ? PQerrorMessage(s->conn) : "out of memory");
        msg[strcspn(msg, "\n")] = '\0';
        sl_err_set(err, SL_EPG, "postgres: connect: %s", msg);
        sl_store_free(s);
        return NULL;
    }
    PQsetNoticeProcessor(s->conn, on_notice, NULL);
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

bool sl_store_broken(const sl_store *s) { return PQstatus(s->conn) != CONNECTION_OK; }

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

static const char SQL_INSERT_JOB[] =
    "INSERT INTO sluice_jobs (id, queue, kind, args, status, attempts, max_attempts,"
    " timeout_ms, run_id, step_id, unique_key, enqueued_at, started_at, finished_at,"
    " worker, outputs, error)"
    " VALUES ($1, $2, $3, $4::jsonb, $5, $6::integer, $7::integer, $8::bigint, $9, $10, $11,"
    " to_timestamp($12::bigint / 1000.0), to_timestamp($13::bigint / 1000.0),"
    " to_timestamp($14::bigint / 1000.0), $15, $16::jsonb, $17)"
    " ON CONFLICT (id) DO UPDATE SET"
    " status = EXCLUDED.status, attempts = EXCLUDED.attempts,"
    " max_attempts = EXCLUDED.max_attempts, timeout_ms = EXCLUDED.timeout_ms,"
    " started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,"
    " worker = EXCLUDED.worker, outputs = EXCLUDED.outputs, error = EXCLUDED.error"
    /* Forward only: final rows stay, older attempts change nothing. */
    " WHERE sluice_jobs.status IN ('queued', 'retrying')"
    " AND sluice_jobs.attempts < EXCLUDED.attempts";

static const char SQL_INSERT_ATTEMPT[] =
    "INSERT INTO sluice_job_attempts (job_id, attempt, status, error, worker, started_at,"
    " finished_at)"
    " VALUES ($1, $2::integer, $3, $4, $5, to_timestamp($6::bigint / 1000.0),"
    " to_timestamp($7::bigint / 1000.0))"
    " ON CONFLICT (job_id, attempt) DO NOTHING";

/* Reads every result of a synced pipeline of `queries` statements; returns
 * the first error.  Leaves the connection out of pipeline mode. */
static int pipeline_finish(sl_store *s, size_t queries, sl_err *err)
{
    int rc = 0;
    for (size_t q = 0; q < queries; q++) {
        PGresult *res;
        while ((res = PQgetResult(s->conn)) != NULL) {
            ExecStatusType st = PQresultStatus(res);
            if (rc == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
                rc = pg_fail(s, err, st == PGRES_PIPELINE_ABORTED ? "batch aborted" : "record batch", res);
            PQclear(res);
        }
        if (PQstatus(s->conn) != CONNECTION_OK) {
            if (rc == 0)
                rc = pg_fail(s, err, "record batch", NULL);
            return rc;
        }
    }
    PGresult *sync = PQgetResult(s->conn);
    if (sync == NULL || PQresultStatus(sync) != PGRES_PIPELINE_SYNC) {
        if (rc == 0)
            rc = pg_fail(s, err, "record batch: pipeline sync", sync);
    }
    PQclear(sync);
    if (PQexitPipelineMode(s->conn) != 1 && rc == 0)
        rc = pg_fail(s, err, "exit pipeline mode", NULL);
    return rc;
}

int sl_store_record(sl_store *s, const char *worker, const sl_outcome *o, size_t n, sl_err *err)
{
    if (n == 0)
        return 0;
    if (PQenterPipelineMode(s->conn) != 1)
        return pg_fail(s, err, "enter pipeline mode", NULL);
    size_t sent = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const sl_job *j = o[i].job;
        char attempts[24], max_attempts[24], timeout[24], enq[24], started[24], finished[24];
        snprintf(attempts, sizeof attempts, "%lld", (long long)j->attempt);
        snprintf(max_attempts, sizeof max_attempts, "%lld", (long long)j->max_attempts);
        snprintf(timeout, sizeof timeout, "%lld", (long long)j->timeout_ms);
        snprintf(enq, sizeof enq, "%lld", (long long)j->enqueued_at);
        snprintf(started, sizeof started, "%lld", (long long)o[i].started_ms);
        snprintf(finished, sizeof finished, "%lld", (long long)o[i].finished_ms);
        const char *job_params[17] = {
            j->id, j->queue, j->kind, o[i].args_json ? o[i].args_json : "{}", o[i].status,
            attempts, j->max_attempts ? max_attempts : NULL, j->timeout_ms ? timeout : NULL,
            j->run, j->step, j->unique_key, enq, o[i].started_ms ? started : NULL, finished,
            worker, o[i].outputs, o[i].error,
        };
        const char *attempt_params[7] = {
            j->id, attempts, o[i].attempt_status ? o[i].attempt_status : o[i].status,
            o[i].error, worker,
            o[i].started_ms ? started : NULL, finished,
        };
        if (PQsendQueryParams(s->conn, SQL_INSERT_JOB, 17, NULL, job_params, NULL, NULL, 0) != 1 ||
            PQsendQueryParams(s->conn, SQL_INSERT_ATTEMPT, 7, NULL, attempt_params, NULL, NULL, 0) != 1)
            rc = pg_fail(s, err, "send batch", NULL);
        else
            sent += 2;
    }
    if (PQpipelineSync(s->conn) != 1) {
        rc = pg_fail(s, err, "pipeline sync", NULL);
        return rc;  /* the connection is unusable; the caller reconnects */
    }
    int frc = pipeline_finish(s, sent, rc == 0 ? err : NULL);
    if (PQtransactionStatus(s->conn) == PQTRANS_INERROR)
        exec_simple(s, "rollback", "ROLLBACK", NULL);
    return rc < 0 || frc < 0 ? -1 : 0;
}

/* Builds a PostgreSQL text[] literal: {"a","b"} with " and \ escaped. */
static void text_array(sl_buf *b, const char *const *items, size_t n)
{
    sl_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            sl_buf_putc(b, ',');
        sl_buf_putc(b, '"');
        for (const char *p = items[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                sl_buf_putc(b, '\\');
            sl_buf_putc(b, *p);
        }
        sl_buf_putc(b, '"');
    }
    sl_buf_putc(b, '}');
}

int sl_store_prior(sl_store *s, const sl_job *const *jobs, size_t n, sl_prior *prior, sl_err *err)
{
    memset(prior, 0, n * sizeof *prior);
    if (n == 0)
        return 0;
    const char **ids = sl_xcalloc(n, sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = jobs[i]->id;
    sl_buf arr = SL_BUF_INIT;
    text_array(&arr, ids, n);
    free(ids);
    const char *params[] = { sl_buf_str(&arr) };
    PGresult *res = exec_ok(s, "look up jobs",
        "SELECT q.id, j.status, j.attempts, j.error, c.job_id IS NOT NULL"
        " FROM unnest($1::text[]) AS q(id)"
        " LEFT JOIN sluice_jobs j ON j.id = q.id"
        " LEFT JOIN sluice_cancellations c ON c.job_id = q.id"
        " WHERE j.id IS NOT NULL OR c.job_id IS NOT NULL", 1, params, err);
    sl_buf_free(&arr);
    if (res == NULL)
        return -1;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *id = PQgetvalue(res, r, 0);
        bool has_row = !PQgetisnull(res, r, 1);
        const char *status = PQgetvalue(res, r, 1);
        long attempts = atol(PQgetvalue(res, r, 2));
        bool cancelled = PQgetvalue(res, r, 4)[0] == 't';
        for (size_t i = 0; i < n; i++) {
            if (strcmp(jobs[i]->id, id) != 0)
                continue;
            sl_prior *p = &prior[i];
            snprintf(p->error, sizeof p->error, "%s", PQgetvalue(res, r, 3));
            if (has_row && strcmp(status, "dead") == 0)
                p->kind = SL_PRIOR_DEAD;
            else if (has_row && strcmp(status, "retrying") != 0 && strcmp(status, "queued") != 0)
                p->kind = SL_PRIOR_FINAL;
            else if (cancelled)
                p->kind = SL_PRIOR_CANCELLED;
            else if (has_row && strcmp(status, "retrying") == 0 && attempts >= jobs[i]->attempt)
                p->kind = SL_PRIOR_RETRYING;
        }
    }
    PQclear(res);
    return 0;
}

int sl_store_job_reset(sl_store *s, const char *id, int64_t *attempts, sl_err *err)
{
    const char *params[] = { id };
    *attempts = 0;
    PGresult *res = exec_ok(s, "reset job",
                            "UPDATE sluice_jobs SET status = 'queued', error = NULL"
                            " WHERE id = $1 AND status IN ('dead', 'failed', 'queued')"
                            " RETURNING attempts", 1, params, err);
    if (res == NULL)
        return -1;
    int rc = 0;
    if (PQntuples(res) == 1)
        *attempts = atoll(PQgetvalue(res, 0, 0));
    else
        rc = sl_err_set(err, SL_ENOTFOUND, "job %s: no dead job with that id in PostgreSQL", id);
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
        " 'wait_ms', round(extract(epoch FROM j.started_at - j.enqueued_at) * 1000),"
        " 'run_ms', round(extract(epoch FROM j.finished_at - j.started_at) * 1000),"
        " 'worker', j.worker, 'args', j.args, 'outputs', j.outputs, 'error', j.error,"
        " 'history', (SELECT coalesce(json_agg(json_build_object("
        "   'attempt', a.attempt, 'status', a.status, 'error', a.error, 'worker', a.worker,"
        "   'started_at', a.started_at, 'finished_at', a.finished_at) ORDER BY a.attempt), '[]')"
        "   FROM sluice_job_attempts a WHERE a.job_id = j.id))::text"
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
        " 'run', g.run_id, 'gate', g.gate_id,"
        " 'since_ms', round(extract(epoch FROM g.opened_at) * 1000),"
        " 'approvals', g.approvals, 'required', g.required) ORDER BY g.opened_at), '[]')::text"
        " FROM (SELECT * FROM sluice_gates WHERE state = 'open' ORDER BY opened_at LIMIT 200) g",
        0, NULL, err);
    if (res == NULL)
        return -1;
    *present = true;
    sl_buf_puts(out, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "[]");
    PQclear(res);
    return 0;
}
