/* notify.c: see notify.h.
 *
 * A pass reads the gates that record channels and lists the (run, gate,
 * event, channel) tuples that should have been emitted and are not in
 * sluice_notifications (one query; the anti-join is on its primary key).
 * Each is emitted in a transaction of its own: the args are built by
 * PostgreSQL from the gate, its run and its audit rows (so every string
 * in them is escaped by jsonb), the row inserted, committed; then the
 * signed job is XADDed and the row marked enqueued.  Rows left unmarked
 * are sent again, first thing, by every pass. */
#include "notify.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config_api.h"
#include "config_jobs.h"
#include "envelope.h"
#include "json.h"
#include "jobsig.h"
#include "log.h"
#include "mem.h"
#include "queue.h"
#include "registry.h"
#include "sha256.h"


/* What the pass looks for, one row per tuple due.  $1: every gate (full),
 * else open ones and those decided in the last hour; $2: the reminder's
 * lead time in ms (0: none).  A reminder is due once the deadline is that
 * close, unless the gate opened already inside that window. */
static const char due_sql[] =
    "SELECT g.run_id, g.gate_id, e.event, c.channel FROM sluice_gates g"
    " CROSS JOIN LATERAL (VALUES (1, 'opened'), (2, 'reminder'), (3, 'decided'), (4, 'timed_out'))"
    "  AS e(ord, event)"
    " CROSS JOIN LATERAL unnest(g.notify) AS c(channel)"
    " WHERE cardinality(g.notify) > 0"
    " AND (g.status = 'open' OR $1::boolean OR g.decided_at > now() - interval '1 hour')"
    " AND CASE e.event"
    "  WHEN 'opened' THEN g.status <> 'cancelled'"
    "  WHEN 'reminder' THEN g.status = 'open' AND $2::bigint > 0 AND g.deadline IS NOT NULL"
    "   AND now() >= g.deadline - make_interval(secs => $2::bigint / 1000.0)"
    "   AND g.opened_at < g.deadline - make_interval(secs => $2::bigint / 1000.0)"
    "  WHEN 'decided' THEN g.status IN ('approved', 'rejected')"
    "  ELSE g.status = 'timed_out' END"
    " AND NOT EXISTS (SELECT 1 FROM sluice_notifications n WHERE n.run_id = g.run_id"
    "  AND n.gate_id = g.gate_id AND n.event = e.event AND n.channel = c.channel)"
    " ORDER BY g.opened_at, g.run_id, g.gate_id, e.ord, c.channel LIMIT 500";

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The job's args (the body's fields, docs/notifications.md) for $1 run,
 * $2 gate, $3 event, $4 channel, $5 the public URL's base.  The closing
 * audit row gives the decision, who made it and the comment. */
static const char args_sql[] =
    "SELECT jsonb_strip_nulls(jsonb_build_object("
    " 'event', $3::text, 'channel', $4::text, 'run', g.run_id, 'gate', g.gate_id,"
    " 'pipeline', r.pipeline, 'triggered_by', g.triggered_by,"
    " 'approvers', to_jsonb(g.approvers), 'required', g.required,"
    " 'approvals', coalesce((SELECT jsonb_agg(a.actor ORDER BY a.seq) FROM sluice_audit a"
    "  WHERE a.run_id = g.run_id AND a.gate_id = g.gate_id AND a.decision = 'approve'), '[]'::jsonb),"
    " 'opened_at', " TS("g.opened_at") ", 'instructions', g.instructions,"
    " 'decision', CASE WHEN $3 IN ('decided', 'timed_out') THEN CASE WHEN g.status = 'approved'"
    "  OR l.decision = 'timeout-approve' THEN 'approved' ELSE 'rejected' END END,"
    " 'decided_by', CASE WHEN $3 IN ('decided', 'timed_out') THEN l.actor END,"
    " 'decided_at', CASE WHEN $3 IN ('decided', 'timed_out') THEN " TS("g.decided_at") " END,"
    " 'comment', CASE WHEN $3 IN ('decided', 'timed_out') THEN l.comment END,"
    " 'link', $5 || '/runs/' || g.run_id || '/gates/' || g.gate_id,"
    " 'run_link', $5 || '/runs/' || g.run_id))"
    " || jsonb_build_object('deadline', " TS("g.deadline") ")"
    " FROM sluice_gates g JOIN sluice_runs r ON r.id = g.run_id"
    " LEFT JOIN LATERAL (SELECT a.actor, a.decision, a.comment FROM sluice_audit a"
    "  WHERE a.run_id = g.run_id AND a.gate_id = g.gate_id"
    "  AND a.decision IN ('approve', 'reject', 'timeout-approve', 'timeout-reject')"
    "  ORDER BY a.seq DESC LIMIT 1) l ON true"
    " WHERE g.run_id = $1 AND g.gate_id = $2";

int sl_notify_job_id(const sl_sign_key *key, const char *run, const char *gate, const char *event,
                     const char *channel, char out[SL_NOTIFY_ID_LEN], sl_err *err)
{
    const char *f[] = { "sluice-notify-id-v1", run, gate, event, channel };
    sl_buf m = SL_BUF_INIT;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        size_t n = strlen(f[i]);
        unsigned char len[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                                 (unsigned char)(n >> 8), (unsigned char)n };
        sl_buf_append(&m, len, sizeof len);
        sl_buf_append(&m, f[i], n);
    }
    unsigned char sig[SL_SIGN_LEN], d[SL_SHA256_LEN];
    int rc = sl_sign(key, m.data, m.len, sig, err);   /* Ed25519: deterministic */
    sl_buf_free(&m);
    if (rc < 0)
        return -1;
    sl_sha256_digest(sig, sizeof sig, d);
    char hex[SL_SHA256_HEX];
    sl_sha256_hex(d, hex);
    snprintf(out, SL_NOTIFY_ID_LEN, "notify.%.40s", hex);
    return 0;
}

/* Test builds: dies here when SL_NOTIFY_CRASH_ENV names this point. */
static void crash_point(const char *where)
{
    const char *v = getenv(SL_NOTIFY_CRASH_ENV);
    if (v == NULL || strcmp(v, where) != 0 || !sl_registry_test_kinds())
        return;
    SL_WARN("notify.test_crash", "at=%s", where);
    raise(SIGKILL);
}

/* Builds the signed job (id, run, queue, args JSON) and XADDs it, then
 * marks its row enqueued. */
static int send_job(sl_db *db, sl_redis *redis, const sl_config *cfg, const sl_sign_key *signer,
                    const char *id, const char *run, const char *queue, const char *args_json,
                    sl_err *err)
{
    sl_job job;
    memset(&job, 0, sizeof job);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = -1;
    if (sl_json_to_msgpack(args_json, strlen(args_json), &pk, err) < 0)
        goto cleanup;
    job.id = sl_xstrdup(id);
    job.kind = sl_xstrdup("notify");
    job.queue = sl_xstrdup(queue);
    job.args = sl_xmalloc(sb.size);
    memcpy(job.args, sb.data, sb.size);
    job.args_len = sb.size;
    job.attempt = 1;
    job.max_attempts = sl_config_jobs_of(cfg)->notify.max_attempts;
    job.run = sl_xstrdup(run);
    job.enqueued_at = sl_now_ms();
    if (sl_jobsig_sign(signer, &job, err) < 0)
        goto cleanup;
    crash_point("before_xadd");
    if (sl_queue_enqueue(redis, &job, err) < 0)
        goto cleanup;
    crash_point("after_xadd");
    const char *p[] = { id };
    if (sl_db_run(db, "mark notification enqueued", "UPDATE sluice_notifications SET enqueued = true"
                  " WHERE job_id = $1", 1, p, err) < 0)
        goto cleanup;
    SL_INFO("notify.enqueued", "job=%s run=%s queue=%s", id, run, queue);
    rc = 0;
cleanup:
    msgpack_sbuffer_destroy(&sb);
    sl_job_clear(&job);
    return rc;
}

/* Sends again every recorded notification not known to be enqueued. */
static int resend(sl_db *db, sl_redis *redis, const sl_config *cfg, const sl_sign_key *signer, sl_err *err)
{
    PGresult *res = sl_db_exec(db, "unsent notifications", "SELECT job_id, run_id, queue, args::text"
                               " FROM sluice_notifications WHERE NOT enqueued ORDER BY emitted_at LIMIT 500",
                               0, NULL, err);
    if (res == NULL)
        return -1;
    int ret = 0;
    for (int r = 0; r < PQntuples(res) && ret == 0; r++) {
        SL_INFO("notify.resend", "job=%s run=%s", PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
        ret = send_job(db, redis, cfg, signer, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                       PQgetvalue(res, r, 2), PQgetvalue(res, r, 3), err);
    }
    PQclear(res);
    return ret;
}

/* Records the event (run, gate, event, channel) in its own transaction and,
 * when this call recorded it, sends its job. */
static int emit_one(sl_db *db, sl_redis *redis, const sl_config *cfg, const sl_sign_key *signer,
                    const char *run, const char *gate, const char *event, const char *channel, sl_err *err)
{
    char id[SL_NOTIFY_ID_LEN];
    if (sl_notify_job_id(signer, run, gate, event, channel, id, err) < 0)
        return -1;
    const char *ap[] = { run, gate, event, channel, sl_api_public_url(sl_api_config_of(cfg)) };
    if (sl_db_begin(db, err) < 0)
        return -1;
    PGresult *res = sl_db_exec(db, "notification args", args_sql, 5, ap, err);
    if (res == NULL)
        goto rollback;
    if (PQntuples(res) == 0) {   /* the run went (retention) meanwhile */
        PQclear(res);
        sl_db_rollback(db);
        return 0;
    }
    char *args = sl_xstrdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    const char *ip[] = { run, gate, event, channel, id, sl_config_jobs_of(cfg)->notify.queue, args };
    res = sl_db_exec(db, "record notification", "INSERT INTO sluice_notifications (run_id, gate_id,"
                     " event, channel, job_id, queue, args) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)"
                     " ON CONFLICT DO NOTHING", 7, ip, err);
    bool inserted = res != NULL, recorded = inserted && atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!inserted || sl_db_commit(db, err) < 0) {
        free(args);
        goto rollback;
    }
    int rc = 0;
    if (recorded) {
        SL_INFO("notify.emitted", "run=%s gate=%s event=%s channel=%s job=%s", run, gate, event, channel, id);
        rc = send_job(db, redis, cfg, signer, id, run, sl_config_jobs_of(cfg)->notify.queue, args, err);
    }
    free(args);
    return rc;
rollback:
    sl_db_rollback(db);
    return -1;
}

int sl_notify_pass(sl_db *db, sl_redis *redis, const sl_config *cfg, const sl_sign_key *signer,
                   bool full, sl_err *err)
{
    if (signer == NULL)
        return 0;
    if (resend(db, redis, cfg, signer, err) < 0)
        return -1;
    char remind[32];
    snprintf(remind, sizeof remind, "%lld", (long long)sl_config_jobs_of(cfg)->notify.remind_before_ms);
    const char *p[] = { full ? "true" : "false", remind };
    PGresult *res = sl_db_exec(db, "due notifications", due_sql, 2, p, err);
    if (res == NULL)
        return -1;
    int ret = 0;
    for (int r = 0; r < PQntuples(res) && ret == 0; r++)
        ret = emit_one(db, redis, cfg, signer, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                       PQgetvalue(res, r, 2), PQgetvalue(res, r, 3), err);
    PQclear(res);
    return ret;
}
