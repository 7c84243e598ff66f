/* test_ratelimit.c: limits shared by every worker process (lib/ratelimit.c)
 * against a real Redis: rates parsed strictly, a bucket that grants its
 * capacity and says how long to wait, processes that together never exceed
 * the rate (counted by the Redis server's own clock), and concurrency slots
 * that admit at most their capacity, with leases that lapse. */
#include "harness.h"
#include "kindtest.h"

#include "config.h"
#include "config_worker.h"
#include "mem.h"

#include "clock.h"
#include "jobid.h"
#include "queue.h"
#include "ratelimit.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TH_REGISTER_CONFIG_SECTIONS

TestSuite(ratelimit, .timeout = 60);

Test(ratelimit, rates_are_parsed_strictly)
{
    sl_rate r;
    sl_err err;
    cr_assert_eq(sl_rate_parse("10/s", &r, &err), 0, "%s", err.msg);
    cr_expect_eq(r.count, 10);
    cr_expect_eq(r.period_ms, 1000);
    cr_assert_eq(sl_rate_parse("500/m", &r, &err), 0, "%s", err.msg);
    cr_expect_eq(r.period_ms, 60000);
    cr_assert_eq(sl_rate_parse("1/h", &r, &err), 0, "%s", err.msg);
    cr_expect_eq(r.period_ms, 3600000);
    const char *bad[] = { "", "10", "/s", "10/", "0/s", "-1/s", "+1/s", " 1/s", "1 /s", "1/ s", "1/sec",
                          "1/d", "1e3/s", "1.5/s", "99999999999/s", "1000000001/s", "10/s\n", "ten/s" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect_eq(sl_rate_parse(bad[i], &r, &err), -1, "'%s' was accepted", bad[i]);
        cr_expect(strstr(err.msg, "rate"), "'%s': %s", bad[i], err.msg);
    }
}

static long long server_ms(sl_redis *r)
{
    const char *time[] = { "TIME" };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 1, time, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    long long ms = atoll(rep->element[0]->str) * 1000 + atoll(rep->element[1]->str) / 1000;
    freeReplyObject(rep);
    return ms;
}

Test(ratelimit, a_bucket_grants_its_capacity_then_says_how_long_to_wait)
{
    sl_redis *r = th_redis();
    char key[96], name[64];
    th_name(name, sizeof name, "bucket");
    snprintf(key, sizeof key, "sluice:{%s}:rate", name);
    sl_rate rate;
    sl_err err;
    cr_assert_eq(sl_rate_parse("5/h", &rate, &err), 0);
    int got = -1, wait = -1;
    cr_assert_eq(sl_rate_take(r, key, &rate, 10, &got, &wait, &err), 0, "%s", err.msg);
    cr_assert_eq(got, 5, "a new bucket is full: one period's count");
    cr_assert_eq(sl_rate_take(r, key, &rate, 1, &got, &wait, &err), 0, "%s", err.msg);
    cr_assert_eq(got, 0);
    cr_assert(wait > 600000 && wait <= 720000, "5/h: the next token is ~12 min away, said %d ms", wait);
    cr_assert_eq(sl_rate_give_back(r, key, &rate, 2, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_rate_take(r, key, &rate, 5, &got, &wait, &err), 0, "%s", err.msg);
    cr_assert_eq(got, 2, "the two tokens given back, no more");
    cr_assert_eq(sl_rate_give_back(r, key, &rate, 100, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_rate_take(r, key, &rate, 100, &got, &wait, &err), 0, "%s", err.msg);
    cr_assert_eq(got, 5, "giving back never fills a bucket past its capacity");
    sl_redis_free(r);
}

/* Child of the fleet test: takes tokens until the server's clock passes
 * until_ms, sleeping as long as the bucket says; exits with nothing, and
 * writes how many it got into fd. */
static void take_until(const char *key, const sl_rate *rate, long long until_ms, int fd)
{
    sl_err err;
    sl_redis *r = sl_redis_connect(th_env("REDIS_URL"), 5000, &err);
    long long total = 0;
    if (r == NULL)
        _exit(2);
    for (;;) {
        int got, wait;
        if (sl_rate_take(r, key, rate, 7, &got, &wait, &err) < 0)
            _exit(3);
        total += got;
        if (server_ms(r) >= until_ms)
            break;
        if (got == 0) {
            struct timespec ts = { wait / 1000, (long)(wait % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
    sl_redis_free(r);
    _exit(write(fd, &total, sizeof total) == (ssize_t)sizeof total ? 0 : 4);
}

/* Two processes on one bucket of 100/s for 1.5 s of the server's time:
 * together they get what the bucket held plus what it refilled, within
 * 5 %, and never more (the limit holds however the processes interleave). */
Test(ratelimit, processes_sharing_a_bucket_never_exceed_the_rate)
{
    sl_redis *r = th_redis();
    char key[96], name[64];
    th_name(name, sizeof name, "fleet");
    snprintf(key, sizeof key, "sluice:{%s}:rate", name);
    sl_rate rate = { 100, 1000 };
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    long long start = server_ms(r), until = start + 1500;
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        cr_assert_neq(kids[i], -1);
        if (kids[i] == 0) {
            close(fds[0]);
            take_until(key, &rate, until, fds[1]);
        }
    }
    close(fds[1]);
    long long total = 0;
    for (int i = 0; i < 2; i++) {
        int status;
        cr_assert_eq(waitpid(kids[i], &status, 0), kids[i]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: status %d", i, status);
        long long got;
        cr_assert_eq(read(fds[0], &got, sizeof got), (ssize_t)sizeof got);
        total += got;
    }
    close(fds[0]);
    long long elapsed = server_ms(r) - start;
    double allowed = 100 + 100.0 * (double)elapsed / 1000;     /* capacity + refill */
    double earned = 100 + 100.0 * 1500 / 1000;                 /* at least until `until` */
    cr_assert_leq(total, allowed + 1, "%lld tokens in %lld ms at 100/s (capacity 100)", total, elapsed);
    cr_assert_geq(total, earned * 0.95, "%lld tokens: the bucket held back more than 5 %% of %.0f",
                  total, earned);
    sl_redis_free(r);
}

Test(ratelimit, slots_admit_at_most_their_capacity_and_lapse_with_their_lease)
{
    sl_redis *r = th_redis();
    char key[96], name[64];
    th_name(name, sizeof name, "slots");
    snprintf(key, sizeof key, "sluice:{%s}:running", name);
    sl_err err;
    const char *holders[] = { "a", "b", "c", "d" };
    bool got;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(sl_slots_take(r, key, 3, holders[i], 60000, &got, &err), 0, "%s", err.msg);
        cr_assert(got, "holder %s of 3", holders[i]);
    }
    cr_assert_eq(sl_slots_take(r, key, 3, "d", 60000, &got, &err), 0, "%s", err.msg);
    cr_assert(!got, "a fourth holder with capacity 3");
    cr_assert_eq(sl_slots_take(r, key, 3, "a", 60000, &got, &err), 0, "%s", err.msg);
    cr_assert(got, "a holder renews its own slot even when full");
    cr_assert_eq(sl_slots_release(r, key, "b", &err), 0, "%s", err.msg);
    cr_assert_eq(sl_slots_take(r, key, 3, "d", 60000, &got, &err), 0, "%s", err.msg);
    cr_assert(got, "a released slot is free again");
    /* a holder that crashed (never released) loses its slot with its lease */
    char key2[96];
    snprintf(key2, sizeof key2, "sluice:{%s}:running2", name);
    cr_assert_eq(sl_slots_take(r, key2, 1, "crashed", 100, &got, &err), 0, "%s", err.msg);
    cr_assert(got);
    cr_assert_eq(sl_slots_take(r, key2, 1, "next", 60000, &got, &err), 0, "%s", err.msg);
    cr_assert(!got, "the crashed holder's lease has not run out yet");
    long long deadline = server_ms(r) + 10000;
    while (!got && server_ms(r) < deadline) {
        usleep(20000);
        cr_assert_eq(sl_slots_take(r, key2, 1, "next", 60000, &got, &err), 0, "%s", err.msg);
    }
    cr_assert(got, "the lapsed lease never freed its slot");
    sl_redis_free(r);
}

/* Four processes contend for 2 slots; inside, each counts itself in a
 * counter and checks it never sees more than 2 inside at once. */
Test(ratelimit, slots_hold_across_processes)
{
    char key[96], inside[96], name[64];
    th_name(name, sizeof name, "mutex");
    snprintf(key, sizeof key, "sluice:{%s}:running", name);
    snprintf(inside, sizeof inside, "sluice:{%s}:inside", name);
    pid_t kids[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        cr_assert_neq(kids[i], -1);
        if (kids[i] != 0)
            continue;
        sl_err err;
        sl_redis *r = sl_redis_connect(th_env("REDIS_URL"), 5000, &err);
        if (r == NULL)
            _exit(2);
        char holder[16];
        snprintf(holder, sizeof holder, "h%d", i);
        int entered = 0;
        for (int round = 0; round < 300 && entered < 20; round++) {
            bool got;
            if (sl_slots_take(r, key, 2, holder, 30000, &got, &err) < 0)
                _exit(3);
            if (!got)
                continue;
            entered++;
            const char *incr[] = { "INCR", inside }, *decr[] = { "DECR", inside };
            redisReply *rep = sl_redis_command(r, 2, incr, NULL, &err);
            if (rep == NULL || rep->integer > 2)
                _exit(5);   /* more than the capacity inside at once */
            freeReplyObject(rep);
            if ((rep = sl_redis_command(r, 2, decr, NULL, &err)) == NULL)
                _exit(3);
            freeReplyObject(rep);
            if (sl_slots_release(r, key, holder, &err) < 0)
                _exit(3);
        }
        sl_redis_free(r);
        _exit(entered > 0 ? 0 : 6);
    }
    for (int i = 0; i < 4; i++) {
        int status;
        cr_assert_eq(waitpid(kids[i], &status, 0), kids[i]);
        cr_assert(WIFEXITED(status), "child %d: %d", i, status);
        cr_assert_neq(WEXITSTATUS(status), 5, "more holders than slots were inside at once");
        cr_assert_eq(WEXITSTATUS(status), 0, "child %d exited %d", i, WEXITSTATUS(status));
    }
}

Test(ratelimit, scripts_run_by_their_sha)
{
    sl_redis *r = th_redis(), *observer = th_redis();
    const char *id[] = { "CLIENT", "ID" };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 2, id, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    char client[32];
    snprintf(client, sizeof client, "%lld", rep->integer);
    freeReplyObject(rep);
    char key[96], name[64];
    th_name(name, sizeof name, "sha");
    snprintf(key, sizeof key, "sluice:{%s}:rate", name);
    sl_rate rate = { 10, 1000 };
    const char *list[] = { "CLIENT", "LIST", "ID", client };
    for (int script = 0; script < 4; script++) {
        int got, wait;
        bool slot;
        for (int twice = 0; twice < 2; twice++) {   /* the first may load it with EVAL */
            if (script == 0)
                cr_assert_eq(sl_rate_take(r, key, &rate, 1, &got, &wait, &err), 0, "%s", err.msg);
            else if (script == 1)
                cr_assert_eq(sl_rate_give_back(r, key, &rate, 1, &err), 0, "%s", err.msg);
            else if (script == 2)
                cr_assert_eq(sl_slots_take(r, key, 1, "x", 1000, &slot, &err), -1, "a bucket is no ZSET");
            else
                cr_assert_eq(sl_slots_release(r, key, "x", &err), -1, "a bucket is no ZSET");
        }
        if (script >= 2) {   /* WRONGTYPE: the script ran, by SHA, and failed inside */
            cr_assert(strstr(err.msg, "WRONGTYPE"), "%s", err.msg);
        }
        rep = sl_redis_command(observer, 4, list, NULL, &err);
        cr_assert_not_null(rep, "%s", err.msg);
        cr_assert(strstr(rep->str, " cmd=evalsha "), "script %d was not run by its SHA (stale SHA in "
                  "ratelimit.c?): %s", script, rep->str);
        freeReplyObject(rep);
    }
    sl_redis_free(observer);
    sl_redis_free(r);
}

/* ---- the limits in a real worker pool ---------------------------------------- */

static void enqueue_n(sl_redis *r, const char *queue, const char *kind, const char *args, size_t args_len, int n)
{
    for (int i = 0; i < n; i++) {
        char id[SL_JOBID_MAX + 1];
        sl_jobid_new(id);
        sl_job job = { .id = id, .kind = (char *)kind, .queue = (char *)queue, .args = (char *)args,
                       .args_len = args_len, .attempt = 1, .enqueued_at = sl_now_ms() };
        sl_err err;
        cr_assert_eq(sl_queue_enqueue(r, &job, &err), 0, "%s", err.msg);
    }
}

typedef struct want_rows {
    const char *queue;
    long long n;
} want_rows;

static bool rows_done(void *arg)
{
    want_rows *w = arg;
    const char *p[] = { w->queue };
    return th_pg_number("SELECT count(*) FROM sluice_jobs WHERE queue = $1 AND status = 'succeeded'", 1, p) >= w->n;
}

static pid_t pool_with(const char *queue, const char *yaml, const char *log)
{
    char *config = th_write_temp("sluice.yaml", yaml);
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "2", NULL };
    pid_t pid = th_worker_start(args, log);
    free(config);
    return pid;
}

/* Two pools of two processes each drain one queue limited to 20/s: the
 * jobs start no faster than the bucket allows (its 20 at once, then 20 a
 * second), and no slower than 5 % under it; the throttled time shows in the
 * queue's stats. */
Test(ratelimit, two_pools_on_one_queue_keep_its_rate, .init = th_migrate, .timeout = 120)
{
    char queue[64];
    th_name(queue, sizeof queue, "rated");
    char *yaml = sl_xasprintf("worker:\n  block: 100ms\nqueues:\n  %s:\n    rate: 20/s\n", queue);
    sl_redis *r = th_redis();
    const int n = 120;
    enqueue_n(r, queue, "noop", "\x80", 1, n);
    pid_t a = pool_with(queue, yaml, "/dev/null"), b = pool_with(queue, yaml, "/dev/null");
    want_rows w = { queue, n };
    bool done = th_wait(rows_done, &w, 90000);
    th_stop(a, SIGTERM, 30000);
    th_stop(b, SIGTERM, 30000);
    cr_assert(done, "the %d jobs did not all run", n);
    const char *p[] = { queue };
    long long span = th_pg_number("SELECT (extract(epoch FROM max(started_at) - min(started_at)) * 1000)::bigint"
                                  " FROM sluice_jobs WHERE queue = $1", 1, p);
    cr_assert_eq(th_pg_number("SELECT count(DISTINCT worker) FROM sluice_jobs WHERE queue = $1", 1, p) >= 2, 1,
                 "one process ran every job: the test would not show a limit shared by several");
    double allowed = 20 + 20.0 * (double)span / 1000;   /* the full bucket, then its refill */
    cr_assert_leq((double)n, allowed * 1.05 + 1, "%d jobs started within %lld ms at 20/s", n, span);
    cr_assert_geq((double)n, allowed * 0.95 - 1, "%d jobs took %lld ms: more than 5 %% under 20/s", n, span);
    char stats[SL_KEY_MAX];
    sl_queue_key(stats, queue, "stats");
    const char *hget[] = { "HGET", stats, "throttled_ms" };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 3, hget, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    cr_assert(rep->type == REDIS_REPLY_STRING && atoll(rep->str) > 0, "no throttled time counted");
    freeReplyObject(rep);
    /* and operators see it */
    const char *argv[] = { SLUICE_BIN, "stats", "--json", NULL };
    th_result st = th_run(argv, NULL);
    cr_assert_eq(st.status, 0, "%s", st.err);
    char *mine = sl_xasprintf("\"queue\":\"%s\"", queue);
    const char *at = strstr(st.out, mine), *field = at ? strstr(at, "\"throttled_ms\":") : NULL;
    cr_assert(field && atoll(field + strlen("\"throttled_ms\":")) > 0, "sluice stats --json: %s", st.out);
    free(mine);
    th_result_free(&st);
    sl_redis_free(r);
    free(yaml);
}

/* deploy.targets.NAME.rate holds across pools and queues: two pools, each
 * reading its own queue, deploy to one target limited to 5/s.  Deploys
 * start no faster than the target's bucket allows and no slower than 5 %
 * under it; every job succeeds in its first attempt (waiting is not a
 * failure); the waits are counted as deferrals. */
Test(ratelimit, a_deploy_targets_rate_holds_across_pools_and_queues, .init = th_migrate, .timeout = 120)
{
    char qa[64], qb[64];
    th_name(qa, sizeof qa, "deploy-a");
    th_name(qb, sizeof qb, "deploy-b");
    char *dir = th_tempdir("rated-deploy");
    char *yaml = sl_xasprintf("worker:\n  block: 100ms\ndeploy:\n  targets:\n    t:\n      type: command\n"
                              "      cwd: %s\n      command: [/bin/true]\n      rate: 5/s\n", dir);
    sl_redis *r = th_redis();
    static const char args[] = "\x81\xa6target\xa1t";   /* {"target": "t"} */
    const int n = 30;
    enqueue_n(r, qa, "deploy", args, sizeof args - 1, n / 2);
    enqueue_n(r, qb, "deploy", args, sizeof args - 1, n / 2);
    pid_t a = pool_with(qa, yaml, "/dev/null"), b = pool_with(qb, yaml, "/dev/null");
    want_rows wa = { qa, n / 2 }, wb = { qb, n / 2 };
    bool done = th_wait(rows_done, &wa, 90000) && th_wait(rows_done, &wb, 90000);
    th_stop(a, SIGTERM, 30000);
    th_stop(b, SIGTERM, 30000);
    cr_assert(done, "the %d deploys did not all run", n);
    const char *p[] = { qa, qb };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE queue IN ($1, $2) AND status = 'succeeded'"
                              " AND attempts = 1", 2, p), n, "a deploy that waited for its target counted as a failure");
    long long span = th_pg_number("SELECT (extract(epoch FROM max(started_at) - min(started_at)) * 1000)::bigint"
                                  " FROM sluice_jobs WHERE queue IN ($1, $2)", 2, p);
    double allowed = 5 + 5.0 * (double)span / 1000;   /* the full bucket, then its refill */
    cr_assert_leq((double)n, allowed * 1.05 + 1, "%d deploys started within %lld ms at 5/s", n, span);
    /* A deferred job comes back when its delayed set is next promoted
     * (every 200 ms): the last one may start that much after its token. */
    double earned = 5 + 5.0 * (double)(span - 200) / 1000;
    cr_assert_geq((double)n, earned * 0.95 - 1, "%d deploys took %lld ms: more than 5 %% under 5/s", n, span);
    long long deferred = 0;
    for (int i = 0; i < 2; i++) {
        char stats[SL_KEY_MAX];
        sl_queue_key(stats, p[i], "stats");
        const char *hget[] = { "HGET", stats, "deferred:deploy" };
        sl_err err;
        redisReply *rep = sl_redis_command(r, 3, hget, NULL, &err);
        cr_assert_not_null(rep, "%s", err.msg);
        if (rep->type == REDIS_REPLY_STRING)
            deferred += atoll(rep->str);
        freeReplyObject(rep);
    }
    cr_assert_gt(deferred, 0, "no deploy was deferred: the limit was not what held them back");
    sl_redis_free(r);
    th_rmtree(dir);
    free(dir);
    free(yaml);
}

/* concurrency: 1 across two pools: no two of the queue's jobs overlap. */
Test(ratelimit, a_concurrency_cap_holds_across_pools, .init = th_migrate, .timeout = 120)
{
    char queue[64];
    th_name(queue, sizeof queue, "capped");
    char *yaml = sl_xasprintf("worker:\n  block: 100ms\nqueues:\n  %s:\n    concurrency: 1\n", queue);
    sl_redis *r = th_redis();
    static const char sleep_args[] = "\x81\xa2ms\xcd\x01\x2c";   /* {"ms": 300} */
    const int n = 6;
    enqueue_n(r, queue, "sleep", sleep_args, sizeof sleep_args - 1, n);
    pid_t a = pool_with(queue, yaml, "/dev/null"), b = pool_with(queue, yaml, "/dev/null");
    want_rows w = { queue, n };
    bool done = th_wait(rows_done, &w, 90000);
    th_stop(a, SIGTERM, 30000);
    th_stop(b, SIGTERM, 30000);
    cr_assert(done, "the %d jobs did not all run", n);
    const char *p[] = { queue };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs x JOIN sluice_jobs y ON x.id < y.id"
                              " WHERE x.queue = $1 AND y.queue = $1 AND x.started_at < y.finished_at"
                              " AND y.started_at < x.finished_at", 1, p), 0,
                 "two jobs of a queue capped at 1 ran at the same time");
    sl_redis_free(r);
    free(yaml);
}

Test(ratelimit, queue_limits_are_configured_strictly)
{
    sl_err err;
    const char *bad[][2] = {
        { "queues:\n  q:\n    rate: fast\n", "'queues.q.rate': a rate is COUNT/s" },
        { "queues:\n  q:\n    rate: 0/s\n", "'queues.q.rate': a rate's count is 1 to" },
        { "queues:\n  q:\n    concurrency: 0\n", "queues.q.concurrency" },
        { "queues:\n  q:\n    burst: 5\n", "expected timeout, rate, concurrency" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *path = th_write_temp("sluice.yaml", bad[i][0]);
        cr_assert_null(sl_config_load(path, &err), "%s was accepted", bad[i][0]);
        cr_expect(strstr(err.msg, bad[i][1]) && strstr(err.msg, ":3:"), "%s", err.msg);
        free(path);
    }
    char *path = th_write_temp("sluice.yaml", "queues:\n  q:\n    rate: 500/m\n    concurrency: 3\n");
    sl_config *cfg = sl_config_load(path, &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    const sl_queue_limits *l = sl_worker_queue_limits(sl_worker_config_of(cfg), "q");
    cr_assert_not_null(l);
    cr_expect_eq(l->rate.count, 500);
    cr_expect_eq(l->rate.period_ms, 60000);
    cr_expect_eq(l->concurrency, 3);
    cr_expect_null(sl_worker_queue_limits(sl_worker_config_of(cfg), "other"));
    sl_config_free(cfg);
    free(path);
}
