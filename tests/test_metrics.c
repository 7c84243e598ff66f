/* test_metrics.c: the job counters and latency histograms (lib/metrics.h)
 * against a real sluice-worker pool, `sluice stats --json` against Redis
 * and PostgreSQL, and `sluice metrics` through `promtool check metrics`. */
#include "harness.h"

#include "args.h"
#include "clock.h"
#include "envelope.h"
#include "json.h"
#include "mem.h"
#include "metrics.h"
#include "queue.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the module alone ------------------------------------------------------- */

Test(metrics, buckets_are_le_bounds)
{
    cr_assert_eq(sl_metrics_bucket_of(0), 0);
    cr_assert_eq(sl_metrics_bucket_of(1), 0);
    cr_assert_eq(sl_metrics_bucket_of(2), 1);
    cr_assert_eq(sl_metrics_bucket_of(1000), 6);
    cr_assert_eq(sl_metrics_bucket_of(20000), 9);
    cr_assert_eq(sl_metrics_bucket_of(3600000), SL_METRICS_BUCKETS - 2);
    cr_assert_eq(sl_metrics_bucket_of(3600001), SL_METRICS_BUCKETS - 1);
    cr_assert_eq(sl_metrics_bucket_ms(SL_METRICS_BUCKETS - 1), -1);
    for (int i = 0; i + 2 < SL_METRICS_BUCKETS; i++)
        cr_assert_lt(sl_metrics_bucket_ms(i), sl_metrics_bucket_ms(i + 1));
}

Test(metrics, quantiles_interpolate_inside_the_bucket)
{
    sl_histogram h;
    memset(&h, 0, sizeof h);
    cr_assert_eq(sl_histogram_quantile_ms(&h, 0.5), -1);
    h.buckets[2] = 100;   /* all in (5 ms, 10 ms] */
    double p50 = sl_histogram_quantile_ms(&h, 0.5);
    cr_assert(p50 > 5 && p50 <= 10, "p50 %f", p50);
    h.buckets[SL_METRICS_BUCKETS - 1] = 10000; /* most beyond 1 h */
    cr_assert_eq(sl_histogram_quantile_ms(&h, 0.99), 3600000.0);
}

/* ---- against a worker pool --------------------------------------------------- */

static long long hget(sl_redis *r, const char *queue, const char *field)
{
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "stats");
    const char *argv[] = { "HGET", key, field };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 3, argv, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    long long v = rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : 0;
    freeReplyObject(rep);
    return v;
}

typedef struct settled {
    const char *queue;
    long long processed, dead;   /* wanted */
} settled;

static bool counters_reached(void *arg)
{
    settled *s = arg;
    sl_redis *r = th_redis();
    bool ok = hget(r, s->queue, "processed:noop") >= s->processed &&
              hget(r, s->queue, "dead:fail") >= s->dead;
    long long len = 0, pending = 0;
    sl_err err;
    ok = ok && sl_queue_depth(r, s->queue, &len, &pending, &err) == 0 && len == 0 && pending == 0;
    sl_redis_free(r);
    return ok;
}

/* Enqueues a noop job whose envelope says it was enqueued ago_ms ago. */
static void enqueue_noop(sl_redis *r, const char *queue, int64_t ago_ms)
{
    char id[64];
    th_name(id, sizeof id, "job");
    sl_job job = { .id = id, .kind = "noop", .queue = (char *)queue, .attempt = 1,
                   .enqueued_at = sl_now_ms() - ago_ms };
    sl_err err;
    cr_assert_eq(sl_queue_enqueue(r, &job, &err), 0, "%s", err.msg);
}

static void enqueue_cli(const char *queue, const char *kind, const char *extra)
{
    const char *argv[] = { SLUICE_BIN, "enqueue", kind, "--queue", queue, extra ? "--max-attempts" : NULL,
                           extra, NULL };
    th_result res = th_run(argv, NULL);
    cr_assert_eq(res.status, 0, "enqueue: %s", res.err);
    th_result_free(&res);
}

/* The JSON document printed by a command, parsed (the test owns both). */
typedef struct doc {
    msgpack_sbuffer sb;
    msgpack_unpacked up;
} doc;

static void parse_json(doc *d, const char *text)
{
    msgpack_sbuffer_init(&d->sb);
    msgpack_unpacked_init(&d->up);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &d->sb, msgpack_sbuffer_write);
    sl_err err;
    cr_assert_eq(sl_json_to_msgpack(text, strlen(text), &pk, &err), 0, "not JSON (%s):\n%s", err.msg, text);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&d->up, d->sb.data, d->sb.size, &off), MSGPACK_UNPACK_SUCCESS);
}

static void doc_free(doc *d)
{
    msgpack_unpacked_destroy(&d->up);
    msgpack_sbuffer_destroy(&d->sb);
}

static long long num(const msgpack_object *o, const char *key)
{
    const msgpack_object *v = sl_args_get(o, key);
    cr_assert_not_null(v, "no key '%s'", key);
    cr_assert(v->type == MSGPACK_OBJECT_POSITIVE_INTEGER || v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER,
              "'%s' is not an integer", key);
    return v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (long long)v->via.u64 : v->via.i64;
}

static long long pg_count(const char *sql, const char *queue)
{
    const char *p[] = { queue };
    return th_pg_number(sql, 1, p);
}

Test(metrics, counters_and_histograms_match_what_a_pool_did, .timeout = 90)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "mq");
    enum { N = 6, M = 2 };
    sl_redis *r = th_redis();
    for (int i = 0; i < N; i++)
        enqueue_noop(r, queue, 0);
    enqueue_noop(r, queue, 20000);   /* waited ~20 s: the (10 s, 30 s] bucket */
    for (int i = 0; i < M; i++)
        enqueue_cli(queue, "fail", "2");   /* two attempts each: a retry, then dead */

    char *config = th_write_temp("sluice.yaml", "worker:\n  block: 100ms\n  retry_initial: 50ms\n"
                                 "  retry_max: 100ms\n");
    char name[64];
    th_name(name, sizeof name, "mlog");
    char *log = sl_xasprintf("/tmp/sluice-%s.log", name);
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "2", NULL };
    pid_t pool = th_worker_start(args, log);
    settled want = { queue, N + 1, M };
    bool done = th_wait(counters_reached, &want, 60000);
    int status = th_stop(pool, SIGTERM, 30000);
    char *text = th_read_file(log);
    cr_assert(done, "counters never reached %d processed / %d dead; log:\n%s", N + 1, M, text);
    cr_assert_eq(status, 0, "pool exit %d; log:\n%s", status, text);
    cr_assert(!strstr(text, "Sanitizer") && !strstr(text, "level=error"), "%s", text);

    /* Exactly what happened, once each. */
    cr_assert_eq(hget(r, queue, "enqueued:noop"), N + 1);
    cr_assert_eq(hget(r, queue, "enqueued:fail"), M);
    cr_assert_eq(hget(r, queue, "processed:noop"), N + 1);
    cr_assert_eq(hget(r, queue, "processed:fail"), 0);
    cr_assert_eq(hget(r, queue, "failed:fail"), 2 * M);
    cr_assert_eq(hget(r, queue, "retried:fail"), M);
    cr_assert_eq(hget(r, queue, "dead:fail"), M);
    cr_assert_eq(hget(r, queue, "failed:noop"), 0);
    cr_assert_eq(hget(r, queue, "timed_out:fail"), 0);
    long long attempts = N + 1 + 2 * M;
    cr_assert_eq(hget(r, queue, "wait:count"), attempts);
    cr_assert_eq(hget(r, queue, "run:count"), attempts);
    long long wait_total = 0, run_total = 0;
    for (int i = 0; i < SL_METRICS_BUCKETS; i++) {
        char f[32];
        snprintf(f, sizeof f, "wait:%d", i);
        wait_total += hget(r, queue, f);
        snprintf(f, sizeof f, "run:%d", i);
        run_total += hget(r, queue, f);
    }
    cr_assert_eq(wait_total, attempts);
    cr_assert_eq(run_total, attempts);
    /* The job enqueued 20 s ago waited between 10 s and 30 s (bucket 9);
     * nothing else waited that long. */
    cr_assert_eq(hget(r, queue, "wait:9"), 1);
    cr_assert_geq(hget(r, queue, "wait:sum_ms"), 20000);
    /* The same in PostgreSQL. */
    cr_assert_eq(pg_count("SELECT count(*) FROM sluice_jobs WHERE queue = $1 AND status = 'succeeded'", queue), N + 1);
    cr_assert_eq(pg_count("SELECT count(*) FROM sluice_jobs WHERE queue = $1 AND status = 'dead'", queue), M);
    cr_assert_eq(pg_count("SELECT count(*) FROM sluice_job_history a JOIN sluice_jobs j ON j.id = a.job_id "
                          "WHERE j.queue = $1", queue), attempts);

    /* sluice stats --json agrees with Redis and PostgreSQL. */
    const char *argv[] = { SLUICE_BIN, "stats", "--json", "--queue", queue, NULL };
    th_result res = th_run(argv, NULL);
    cr_assert_eq(res.status, 0, "stats: %s", res.err);
    doc d;
    parse_json(&d, res.out);
    const msgpack_object *queues = sl_args_get(&d.up.data, "queues");
    cr_assert(queues && queues->type == MSGPACK_OBJECT_ARRAY && queues->via.array.size == 1, "%s", res.out);
    const msgpack_object *q = &queues->via.array.ptr[0];
    long long len = -1, pending = -1;
    sl_err err;
    cr_assert_eq(sl_queue_depth(r, queue, &len, &pending, &err), 0, "%s", err.msg);
    cr_assert_eq(num(q, "depth"), len - pending);
    cr_assert_eq(num(q, "pending"), pending);
    char dead_key[SL_KEY_MAX];
    sl_queue_key(dead_key, queue, "dead");
    const char *xlen[] = { "XLEN", dead_key };
    redisReply *rep = sl_redis_command(r, 2, xlen, NULL, &err);
    cr_assert_not_null(rep);
    cr_assert_eq(num(q, "dead"), rep->integer);
    cr_assert_eq(rep->integer, M);
    freeReplyObject(rep);
    const msgpack_object *totals = sl_args_get(q, "totals");
    cr_assert_not_null(totals);
    cr_assert_eq(num(totals, "processed"),
                 pg_count("SELECT count(*) FROM sluice_jobs WHERE queue = $1 AND status = 'succeeded'", queue));
    cr_assert_eq(num(totals, "dead"), pg_count("SELECT count(*) FROM sluice_jobs WHERE queue = $1 AND status = 'dead'", queue));
    cr_assert_eq(num(totals, "failed"),
                 pg_count("SELECT count(*) FROM sluice_job_history a JOIN sluice_jobs j ON j.id = a.job_id "
                          "WHERE j.queue = $1 AND a.status <> 'succeeded'", queue));
    cr_assert_eq(num(totals, "enqueued"), N + 1 + M);
    cr_assert_eq(num(sl_args_get(q, "wait"), "count"), attempts);
    const msgpack_object *paused = sl_args_get(q, "paused");
    cr_assert(paused && paused->type == MSGPACK_OBJECT_BOOLEAN && !paused->via.boolean);
    const msgpack_object *gates = sl_args_get(&d.up.data, "gates");
    cr_assert_not_null(gates, "no gates key");
    cr_assert(gates->type == MSGPACK_OBJECT_NIL || gates->type == MSGPACK_OBJECT_ARRAY);
    doc_free(&d);
    th_result_free(&res);

    sl_redis_free(r);
    unlink(log);
    free(log);
    free(config);
    free(text);
}

Test(metrics, metrics_disabled_counts_nothing_in_the_worker, .timeout = 60)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "moff");
    sl_redis *r = th_redis();
    for (int i = 0; i < 3; i++)
        enqueue_noop(r, queue, 0);
    char *config = th_write_temp("sluice.yaml", "worker:\n  block: 100ms\nmetrics:\n  enabled: false\n");
    char *log = sl_xasprintf("/tmp/sluice-%s.log", queue);
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "1", NULL };
    pid_t pool = th_worker_start(args, log);
    bool drained = false;
    for (int i = 0; i < 3000 && !drained; i++) {
        drained = pg_count("SELECT count(*) FROM sluice_jobs WHERE queue = $1", queue) == 3;
        if (!drained)
            usleep(20000);
    }
    cr_assert_eq(th_stop(pool, SIGTERM, 30000), 0);
    cr_assert(drained);
    cr_assert_eq(hget(r, queue, "enqueued:noop"), 3);   /* the producer still counts */
    cr_assert_eq(hget(r, queue, "processed:noop"), 0);
    cr_assert_eq(hget(r, queue, "wait:count"), 0);
    sl_redis_free(r);
    unlink(log);
    free(log);
    free(config);
}

typedef struct counter_want {
    const char *queue, *field;
    long long value;
} counter_want;

static bool counter_is(void *arg)
{
    counter_want *w = arg;
    sl_redis *r = th_redis();
    bool ok = hget(r, w->queue, w->field) >= w->value;
    sl_redis_free(r);
    return ok;
}

Test(metrics, timeouts_are_counted_by_the_replacement, .timeout = 60)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "mto");
    const char *enq[] = { SLUICE_BIN, "enqueue", "sleep", "--queue", queue, "--arg", "ms=20000",
                          "--timeout", "300ms", NULL };
    th_result res = th_run(enq, NULL);
    cr_assert_eq(res.status, 0, "%s", res.err);
    th_result_free(&res);
    char *config = th_write_temp("sluice.yaml", "worker:\n  block: 100ms\n  timeout_grace: 100ms\n");
    char *log = sl_xasprintf("/tmp/sluice-%s.log", queue);
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "1", NULL };
    pid_t pool = th_worker_start(args, log);
    counter_want want = { queue, "dead:sleep", 1 };
    bool done = th_wait(counter_is, &want, 30000);
    cr_assert_eq(th_stop(pool, SIGTERM, 30000), 0);
    char *text = th_read_file(log);
    cr_assert(done, "the timed-out job was never dead-lettered; log:\n%s", text);
    sl_redis *r = th_redis();
    cr_assert_eq(hget(r, queue, "timed_out:sleep"), 1);
    cr_assert_eq(hget(r, queue, "failed:sleep"), 1);
    cr_assert_eq(hget(r, queue, "processed:sleep"), 0);
    cr_assert_eq(hget(r, queue, "run:count"), 0);   /* it never finished running */
    sl_redis_free(r);
    unlink(log);
    free(log);
    free(text);
    free(config);
}

Test(metrics, exposition_passes_promtool, .timeout = 60)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "mprom");
    enqueue_cli(queue, "noop", NULL);
    const char *argv[] = { SLUICE_BIN, "metrics", NULL };
    th_result res = th_run(argv, NULL);
    cr_assert_eq(res.status, 0, "metrics: %s", res.err);
    char *want = sl_xasprintf("sluice_queue_depth{queue=\"%s\"} 1\n", queue);
    cr_assert(strstr(res.out, want), "no '%s' in:\n%s", want, res.out);
    cr_assert(strstr(res.out, "# TYPE sluice_job_wait_seconds histogram\n"));
    cr_assert(strstr(res.out, "# TYPE sluice_jobs_processed_total counter\n"));
    char *path = th_write_temp("metrics.txt", res.out);
    char *cmd = sl_xasprintf("promtool check metrics < '%s'", path);
    const char *sh[] = { "/bin/sh", "-c", cmd, NULL };
    th_result check = th_run(sh, NULL);
    cr_assert_eq(check.status, 0, "promtool check metrics failed (%d):\n%s%s", check.status, check.out, check.err);
    th_result_free(&check);
    th_result_free(&res);
    free(cmd);
    free(path);
    free(want);
}

Test(metrics, stats_help_and_usage)
{
    const char *help[] = { SLUICE_BIN, "stats", "--help", NULL };
    th_result res = th_run(help, NULL);
    cr_assert_eq(res.status, 0);
    cr_assert(strstr(res.out, "--json"));
    th_result_free(&res);
    const char *bad[] = { SLUICE_BIN, "stats", "--bogus", NULL };
    res = th_run(bad, NULL);
    cr_assert_eq(res.status, 2);
    th_result_free(&res);
    const char *badq[] = { SLUICE_BIN, "stats", "--queue", "a{b}", NULL };
    res = th_run(badq, NULL);
    cr_assert_eq(res.status, 2);
    th_result_free(&res);
}

/* Runs sql on a fresh connection, failing the test on error. */
static void pg_exec(const char *sql)
{
    PGconn *c = th_pg();
    PGresult *res = PQexec(c, sql);
    cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
}

Test(metrics, stats_lists_open_gates, .timeout = 60)
{
    th_migrate();
    /* A private schema, first on the search path of this test's commands
     * only: the table is the scheduler's to create in the real schema. */
    char schema[64];
    th_name(schema, sizeof schema, "gates");
    for (char *p = schema; *p; p++)
        *p = *p == '-' ? '_' : *p;
    /* Copies of the scheduler's tables in a private schema, so that the
     * rows made up here never meet the real scheduler's (or its audit
     * chain) in the shared test database. */
    char *sql = sl_xasprintf(
        "CREATE SCHEMA %1$s;"
        "CREATE TABLE %1$s.sluice_runs (LIKE public.sluice_runs INCLUDING DEFAULTS);"
        "CREATE TABLE %1$s.sluice_gates (LIKE public.sluice_gates INCLUDING DEFAULTS);"
        "CREATE TABLE %1$s.sluice_audit (LIKE public.sluice_audit INCLUDING DEFAULTS);"
        "INSERT INTO %1$s.sluice_runs (id, pipeline, source_name, source, triggered_by, status) VALUES"
        " ('run-1', 'release', 'release.yaml', '', 'dave', 'running'),"
        " ('run-2', 'onboard', 'onboard.yaml', '', 'dave', 'running'),"
        " ('run-3', 'release', 'release.yaml', '', 'dave', 'succeeded');"
        "INSERT INTO %1$s.sluice_gates (run_id, gate_id, status, approvers, required, triggered_by, opened_at)"
        " VALUES ('run-1', 'go-live', 'open', '{alice,bob}', 2, 'dave', now() - interval '2 hours'),"
        " ('run-2', 'sign-off', 'open', '{alice}', 1, 'dave', now() - interval '5 minutes'),"
        " ('run-3', 'go-live', 'approved', '{alice,bob}', 2, 'dave', now() - interval '1 day');"
        "INSERT INTO %1$s.sluice_audit (seq, run_id, gate_id, actor, decision, prev_hash, hash) VALUES"
        " (1, 'run-1', 'go-live', 'alice', 'approve', '', 'x'),"
        " (2, 'run-1', 'go-live', 'carol', 'refused', 'x', 'y'),"
        " (3, 'run-3', 'go-live', 'alice', 'approve', 'y', 'z'),"
        " (4, 'run-3', 'go-live', 'bob', 'approve', 'z', 'w')", schema);
    pg_exec(sql);
    free(sql);
    const char *base = th_env("DATABASE_URL");
    char *url = sl_xasprintf("%s%soptions=-csearch_path%%3D%s", base, strchr(base, '?') ? "&" : "?", schema);
    char *env_url = sl_xasprintf("SLUICE_DATABASE_URL=%s", url);
    const char *env[] = { env_url, NULL };
    const char *argv[] = { SLUICE_BIN, "stats", "--json", "--queue", "none", NULL };
    th_result res = th_run(argv, env);
    cr_assert_eq(res.status, 0, "%s", res.err);
    doc d;
    parse_json(&d, res.out);
    const msgpack_object *gates = sl_args_get(&d.up.data, "gates");
    cr_assert(gates && gates->type == MSGPACK_OBJECT_ARRAY && gates->via.array.size == 2, "%s", res.out);
    const msgpack_object *g0 = &gates->via.array.ptr[0];   /* oldest first */
    const msgpack_object *run = sl_args_get(g0, "run");
    cr_assert(run && run->type == MSGPACK_OBJECT_STR && run->via.str.size == 5 &&
              memcmp(run->via.str.ptr, "run-1", 5) == 0, "%s", res.out);
    cr_assert_eq(num(g0, "approvals"), 1);
    cr_assert_eq(num(g0, "required"), 2);
    cr_assert_lt(num(g0, "since_ms"), sl_now_ms() - 3600000);
    doc_free(&d);
    th_result_free(&res);

    const char *plain[] = { SLUICE_BIN, "stats", "--queue", "none", NULL };
    res = th_run(plain, env);
    cr_assert_eq(res.status, 0, "%s", res.err);
    cr_assert(strstr(res.out, "GATES: 2 open") && strstr(res.out, "sign-off") &&
              strstr(res.out, "approvals 1/2"), "%s", res.out);
    th_result_free(&res);

    sql = sl_xasprintf("SET client_min_messages = warning; DROP SCHEMA %s CASCADE", schema);
    pg_exec(sql);
    free(sql);
    free(env_url);
    free(url);
}

/* ---- enqueues by any producer; queues nobody registered or serves ---------- */

/* SADD (if register) + XADD of a noop envelope with the given attempt, as
 * a producer using the wire format does: no counter is touched. */
static void wire_add(sl_redis *r, const char *queue, bool registered, long long attempt, bool delayed)
{
    char id[64], key[SL_KEY_MAX];
    th_name(id, sizeof id, "wj");
    sl_job job = { .id = id, .kind = "noop", .queue = (char *)queue, .attempt = attempt,
                   .enqueued_at = sl_now_ms() };
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    sl_err err;
    cr_assert_eq(sl_envelope_encode(&job, &sb, &err), 0, "%s", err.msg);
    if (delayed) {
        cr_assert_eq(sl_queue_schedule(r, queue, sb.data, sb.size, 1, &err), 0, "%s", err.msg);
    } else {
        sl_queue_key(key, queue, "jobs");
        const char *sadd[] = { "SADD", SL_QUEUES_KEY, queue };
        const char *xadd[] = { "XADD", key, "*", "job", sb.data };
        size_t lens[] = { 4, strlen(key), 1, 3, sb.size };
        redisReply *rep;
        if (registered) {
            rep = sl_redis_command(r, 3, sadd, NULL, &err);
            cr_assert_not_null(rep, "%s", err.msg);
            freeReplyObject(rep);
        }
        rep = sl_redis_command(r, 5, xadd, lens, &err);
        cr_assert_not_null(rep, "%s", err.msg);
        freeReplyObject(rep);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* sluice_jobs_enqueued_total{queue="Q"} from `sluice metrics`, or -1. */
static long long exposed_enqueued(const char *queue)
{
    const char *argv[] = { SLUICE_BIN, "metrics", NULL };
    th_result res = th_run(argv, NULL);
    cr_assert_eq(res.status, 0, "metrics: %s", res.err);
    char want[128];
    snprintf(want, sizeof want, "sluice_jobs_enqueued_total{queue=\"%s\"} ", queue);
    const char *at = strstr(res.out, want);
    long long v = at ? atoll(at + strlen(want)) : -1;
    th_result_free(&res);
    return v;
}

Test(metrics, enqueued_counts_every_producer_and_no_re_adds, .timeout = 60)
{
    th_migrate();
    char queue[64], dead[SL_KEY_MAX], stats[SL_KEY_MAX];
    th_name(queue, sizeof queue, "me");
    sl_queue_key(dead, queue, "dead");
    sl_queue_key(stats, queue, "stats");
    sl_redis *r = th_redis();
    sl_err err;
    for (int i = 0; i < 3; i++)
        wire_add(r, queue, true, 1, false);
    cr_assert_eq(hget(r, queue, "enqueued:noop"), 0, "the producer counted nothing itself");
    cr_assert_eq(exposed_enqueued(queue), 3);

    /* A retry promoted from the delayed set is the same job again; a job
     * scheduled for later counts once it enters the stream. */
    wire_add(r, queue, true, 2, true);
    wire_add(r, queue, true, 1, true);
    cr_assert_eq(sl_queue_promote(r, queue, sl_now_ms(), 10, &err), 2, "%s", err.msg);
    cr_assert_eq(exposed_enqueued(queue), 4);

    /* `sluice dead retry` sends a dead job back: not a new enqueue either. */
    char id[64];
    th_name(id, sizeof id, "dj");
    sl_job job = { .id = id, .kind = "noop", .queue = queue, .attempt = 1, .enqueued_at = sl_now_ms() };
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(sl_envelope_encode(&job, &sb, &err), 0, "%s", err.msg);
    const char *xadd[] = { "XADD", dead, "*", "job", sb.data, "error", "boom", "failed_at", "1" };
    size_t lens[] = { 4, strlen(dead), 1, 3, sb.size, 5, 4, 9, 1 };
    redisReply *rep = sl_redis_command(r, 9, xadd, lens, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    freeReplyObject(rep);
    msgpack_sbuffer_destroy(&sb);
    const char *retry[] = { SLUICE_BIN, "dead", "retry", "--all", "--queue", queue, NULL };
    th_result res = th_run(retry, NULL);
    cr_assert_eq(res.status, 0, "dead retry: %s%s", res.out, res.err);
    th_result_free(&res);
    long long len = 0, pending = 0;
    cr_assert_eq(sl_queue_depth(r, queue, &len, &pending, &err), 0, "%s", err.msg);
    cr_assert_eq(len, 6, "3 + 2 promoted + 1 retried from the dead letter");
    cr_assert_eq(exposed_enqueued(queue), 4);
    const char *argv[] = { SLUICE_BIN, "stats", "--json", "--queue", queue, NULL };
    res = th_run(argv, NULL);
    cr_assert_eq(res.status, 0, "stats: %s", res.err);
    doc d;
    parse_json(&d, res.out);
    const msgpack_object *q = &sl_args_get(&d.up.data, "queues")->via.array.ptr[0];
    cr_assert_eq(num(sl_args_get(q, "totals"), "enqueued"), 4);
    doc_free(&d);
    th_result_free(&res);
    sl_redis_free(r);
}

/* `sluice stats --json` of every queue (no --queue: the queue must be
 * found without a producer having registered it) shows queue served by
 * its two worker processes. */
static bool served_in_stats(void *queue)
{
    const char *argv[] = { SLUICE_BIN, "stats", "--json", NULL };
    th_result res = th_run(argv, NULL);
    char name[128];
    snprintf(name, sizeof name, "{\"queue\":\"%s\",", (const char *)queue);
    const char *at = res.status == 0 ? strstr(res.out, name) : NULL;
    const char *end = at ? strchr(at, '}') : NULL;
    const char *flag = at ? strstr(at, "\"workers\":2,\"unserved\":false") : NULL;
    bool yes = flag && end && flag < end;
    th_result_free(&res);
    return yes;
}

Test(metrics, unregistered_and_unserved_queues_are_shown, .timeout = 90)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "mu");
    sl_redis *r = th_redis();
    /* A careless producer: XADD without the SADD.  Paused, so that the pool
     * started below serves the queue without emptying it. */
    wire_add(r, queue, false, 1, false);
    wire_add(r, queue, false, 1, false);
    const char *pause[] = { SLUICE_BIN, "pause", queue, NULL };
    th_result res = th_run(pause, NULL);
    th_result_free(&res);

    /* Nobody serves it: flagged in stats and metrics once it is known. */
    const char *stats_q[] = { SLUICE_BIN, "stats", "--queue", queue, NULL };
    res = th_run(stats_q, NULL);
    cr_assert_eq(res.status, 0, "%s", res.err);
    char want[160];
    snprintf(want, sizeof want, "! no live worker serves this queue: %s (2 waiting, 0 delayed)", queue);
    cr_assert(strstr(res.out, want), "%s", res.out);
    cr_assert(strstr(res.out, " P!\n"), "paused and unserved in the last column:\n%s", res.out);
    th_result_free(&res);
    const char *json_q[] = { SLUICE_BIN, "stats", "--json", "--queue", queue, NULL };
    res = th_run(json_q, NULL);
    cr_assert(strstr(res.out, "\"workers\":0,\"unserved\":true"), "%s", res.out);
    th_result_free(&res);

    char *config = th_write_temp("sluice.yaml", "worker:\n  block: 100ms\n");
    char name[64];
    th_name(name, sizeof name, "mulog");
    char *log = sl_xasprintf("/tmp/sluice-%s.log", name);
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "2", NULL };
    pid_t pool = th_worker_start(args, log);
    cr_assert(th_wait(served_in_stats, queue, 20000), "the served queue never showed in stats");
    res = th_run(json_q, NULL);
    cr_assert(strstr(res.out, "\"workers\":2,\"unserved\":false"), "%s", res.out);
    th_result_free(&res);
    const char *metrics[] = { SLUICE_BIN, "metrics", NULL };
    res = th_run(metrics, NULL);
    snprintf(want, sizeof want, "sluice_queue_workers{queue=\"%s\"} 2\n", queue);
    cr_assert(strstr(res.out, want), "%s", res.out);
    th_result_free(&res);
    cr_assert_eq(th_stop(pool, SIGTERM, 30000), 0);
    /* The pool registered the queue: it stays known after the pool is gone. */
    const char *ismember[] = { "SISMEMBER", SL_QUEUES_KEY, queue };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 3, ismember, NULL, &err);
    cr_assert(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1, "not in %s", SL_QUEUES_KEY);
    freeReplyObject(rep);
    const char *resume[] = { SLUICE_BIN, "resume", queue, NULL };
    res = th_run(resume, NULL);
    th_result_free(&res);
    unlink(log);
    free(log);
    free(config);
    sl_redis_free(r);
}
