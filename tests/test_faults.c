/* test_faults.c: the fault tests of issue #3.  Each test injects a fault
 * for real against the real sluice-worker binary and the real servers —
 * SIGKILLed children and masters, a Redis restart, a PostgreSQL outage, a
 * crashing, an overrunning and a failing job, signals under load, garbage
 * in the stream — and then checks the one invariant that matters, with
 * fx_check: every job has exactly one result row with the right status
 * (and one attempt row per recorded attempt), the stream is empty, nothing
 * is pending or delayed, and the dead letter holds exactly what should be
 * there.  "Run twice" is detected from the pool's debug log: each run of a
 * job that succeeds logs one `event=job.succeeded` line.
 *
 * Jobs are enqueued in bulk through a pipelined XADD of encoded envelopes,
 * with ids "<queue>-<n>".  Every wait is bounded (th_wait); nothing
 * asserts on speed.  The ASan build runs the same numbers of jobs (the
 * whole file takes about a minute there).  FX_KEEP_LOGS=1 keeps the
 * pools' logs (/tmp/sluice-faults-*.log).  The tests stop the shared
 * servers, so ctest runs this binary alone (RUN_SERIAL). */
#include "harness.h"

#include "clock.h"
#include "envelope.h"
#include "json.h"
#include "mem.h"
#include "queue.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#define FX_MAX_MASTERS 8
#define FX_MAX_CHILDREN 64
#define FX_PIPELINE 500   /* XADDs in flight per round trip when enqueueing */

/* Masters started by the running test, killed by .fini if still there;
 * servers it stopped, started again by .fini. */
static pid_t fx_masters[FX_MAX_MASTERS];
static bool fx_pg_stopped;
static char fx_constraint[64];  /* a CHECK constraint a test added to sluice_jobs, "" none */

static void fx_server(const char *ctl_var, const char *action)
{
    const char *argv[] = { th_env(ctl_var), action, NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0, "%s %s: %s%s", ctl_var, action, r.out, r.err);
    th_result_free(&r);
}

static void fx_cleanup(void)
{
    for (int i = 0; i < FX_MAX_MASTERS; i++) {
        if (fx_masters[i] > 0 && kill(fx_masters[i], 0) == 0)
            th_stop(fx_masters[i], SIGKILL, 5000);
        fx_masters[i] = 0;
    }
    if (fx_pg_stopped) {
        const char *argv[] = { getenv("SLUICE_PG_CTL"), "start", NULL };
        if (argv[0]) {
            th_result r = th_run(argv, NULL);
            th_result_free(&r);
        }
        fx_pg_stopped = false;
    }
    if (fx_constraint[0]) {
        PGconn *pg = th_pg();
        char sql[160];
        snprintf(sql, sizeof sql, "ALTER TABLE sluice_jobs DROP CONSTRAINT IF EXISTS \"%s\"", fx_constraint);
        PQclear(PQexec(pg, sql));
        PQfinish(pg);
        fx_constraint[0] = '\0';
    }
}

TestSuite(faults, .fini = fx_cleanup, .timeout = 240);

/* ---- the pool --------------------------------------------------------------- */

static char *fx_log(const char *what)
{
    char name[64];
    th_name(name, sizeof name, what);
    return sl_xasprintf("/tmp/sluice-faults-%s.log", name);
}

/* A configuration file: quick reads (prompt stops), plus `extra`, lines
 * of the worker section indented by two spaces. */
static char *fx_config(const char *extra)
{
    char *text = sl_xasprintf("worker:\n  block: 100ms\n  shutdown_timeout: 20s\n%s", extra ? extra : "");
    char *path = th_write_temp("sluice.yaml", text);
    free(text);
    return path;
}

/* Starts a pool of `processes` children on queue, logging at debug level
 * (each successful run is one line) to log. */
static pid_t fx_start(const char *config, const char *queue, int processes, const char *log)
{
    char n[16];
    snprintf(n, sizeof n, "%d", processes);
    const char *args[] = { "--config", config, "--queues", queue, "--processes", n,
                           "--log-level", "debug", NULL };
    pid_t pid = th_worker_start(args, log);
    for (int i = 0; i < FX_MAX_MASTERS; i++) {
        if (fx_masters[i] <= 0 || kill(fx_masters[i], 0) != 0) {
            fx_masters[i] = pid;
            break;
        }
    }
    return pid;
}

static void fx_forget(pid_t pid)
{
    for (int i = 0; i < FX_MAX_MASTERS; i++) {
        if (fx_masters[i] == pid)
            fx_masters[i] = 0;
    }
}

/* Stops the pool with TERM and asserts it exits 0 and no sanitizer spoke. */
static void fx_stop(pid_t master, const char *log)
{
    int status = th_stop(master, SIGTERM, 60000);
    fx_forget(master);
    char *text = th_read_file(log);
    cr_assert_eq(status, 0, "sluice-worker did not stop cleanly (status %d); log:\n%s", status,
                 text ? text : "");
    cr_assert(text && !strstr(text, "Sanitizer") && !strstr(text, "runtime error"),
              "a sanitizer reported an error:\n%s", text ? text : "");
    free(text);
}

/* The master's children, from /proc; returns how many. */
static int fx_children(pid_t master, long *pids, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", (long)master, (long)master);
    char *text = th_read_file(path);
    int n = 0;
    for (char *p = text; p && *p && n < max;) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        pids[n++] = pid;
        p = end;
    }
    free(text);
    return n;
}

static bool fx_alive(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    char *text = th_read_file(path);
    char *close = text ? strrchr(text, ')') : NULL;
    bool alive = close && close[1] == ' ' && close[2] != 'Z' && close[2] != 'X';
    free(text);
    return alive;
}

static int fx_count_in(const char *path, const char *needle)
{
    char *all = th_read_file(path);
    int n = 0;
    for (const char *p = all; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(all);
    return n;
}

typedef struct fx_want_text {
    const char *path;
    const char *text;
    int count;  /* at least this many occurrences */
} fx_want_text;

static bool fx_has_text(void *arg)
{
    fx_want_text *w = arg;
    return fx_count_in(w->path, w->text) >= w->count;
}

/* ---- jobs ------------------------------------------------------------------- */

typedef struct fx_jobs {
    const char *kind;
    const char *args_json;  /* NULL: {} */
    int64_t max_attempts;   /* 0: the worker's default */
    int64_t timeout_ms;     /* 0: the worker's default */
} fx_jobs;

static void fx_reply(sl_redis *r)
{
    sl_err err;
    redisReply *rep = sl_redis_reply(r, &err);
    cr_assert_not_null(rep, "XADD: %s", err.msg);
    cr_assert_eq(rep->type, REDIS_REPLY_STRING, "XADD: %s", rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
    freeReplyObject(rep);
}

/* Enqueues n jobs with ids "<queue>-<first..first+n-1>", pipelined. */
static void fx_enqueue(const char *queue, const fx_jobs *spec, int first, int n)
{
    sl_redis *r = th_redis();
    sl_err err;
    msgpack_sbuffer args;
    msgpack_sbuffer_init(&args);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
    const char *json = spec->args_json ? spec->args_json : "{}";
    cr_assert_eq(sl_json_to_msgpack(json, strlen(json), &pk, &err), 0, "%s", err.msg);
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    int inflight = 0;
    for (int i = first; i < first + n; i++) {
        char id[128];
        snprintf(id, sizeof id, "%s-%d", queue, i);
        sl_job job = { .id = id, .kind = (char *)spec->kind, .queue = (char *)queue,
                       .args = args.data, .args_len = args.size, .attempt = 1,
                       .max_attempts = spec->max_attempts, .timeout_ms = spec->timeout_ms,
                       .enqueued_at = sl_now_ms() };
        msgpack_sbuffer env;
        msgpack_sbuffer_init(&env);
        cr_assert_eq(sl_envelope_encode(&job, &env, &err), 0, "%s", err.msg);
        const char *argv[] = { "XADD", key, "*", "job", env.data };
        size_t lens[] = { 4, strlen(key), 1, 3, env.size };
        cr_assert_eq(sl_redis_append(r, 5, argv, lens, &err), 0, "%s", err.msg);
        msgpack_sbuffer_destroy(&env);
        if (++inflight == FX_PIPELINE) {
            for (; inflight > 0; inflight--)
                fx_reply(r);
        }
    }
    for (; inflight > 0; inflight--)
        fx_reply(r);
    msgpack_sbuffer_destroy(&args);
    sl_redis_free(r);
}

static long long fx_sql(const char *sql, const char *arg)
{
    const char *p[] = { arg };
    return th_pg_number(sql, 1, p);
}

/* Rows of the queue's jobs with a final status. */
static long long fx_final_rows(const char *queue)
{
    return fx_sql("SELECT count(*) FROM sluice_jobs WHERE queue = $1"
                  " AND status IN ('succeeded', 'failed', 'dead', 'cancelled')", queue);
}

typedef struct fx_want {
    const char *queue;
    long long n;
} fx_want;

static bool fx_has_rows(void *arg)
{
    fx_want *w = arg;
    return fx_final_rows(w->queue) >= w->n;
}

/* Waits (bounded) until the queue has at least n final rows. */
static void fx_wait_rows(const char *queue, long long n, int timeout_ms, const char *log)
{
    fx_want w = { queue, n };
    if (!th_wait(fx_has_rows, &w, timeout_ms)) {
        char *text = th_read_file(log);
        size_t len = text ? strlen(text) : 0;
        cr_assert_fail("only %lld of %lld jobs of %s have a final row after %d ms; end of log:\n%s",
                       fx_final_rows(queue), n, queue, timeout_ms,
                       text ? text + (len > 6000 ? len - 6000 : 0) : "");
    }
}

/* ---- the invariant ---------------------------------------------------------- */

typedef struct fx_redis_state {
    long long len, pending, delayed, dead;
} fx_redis_state;

static void fx_redis(const char *queue, fx_redis_state *st)
{
    sl_redis *r = th_redis();
    sl_err err;
    cr_assert_eq(sl_queue_depth(r, queue, &st->len, &st->pending, &err), 0, "%s", err.msg);
    char delayed[SL_KEY_MAX], dead[SL_KEY_MAX];
    sl_queue_key(delayed, queue, "delayed");
    sl_queue_key(dead, queue, "dead");
    const char *zcard[] = { "ZCARD", delayed };
    const char *xlen[] = { "XLEN", dead };
    redisReply *a = sl_redis_command(r, 2, zcard, NULL, &err);
    cr_assert_not_null(a, "%s", err.msg);
    redisReply *b = sl_redis_command(r, 2, xlen, NULL, &err);
    cr_assert_not_null(b, "%s", err.msg);
    st->delayed = a->integer;
    st->dead = b->integer;
    freeReplyObject(a);
    freeReplyObject(b);
    sl_redis_free(r);
}

static bool fx_is_drained(void *arg)
{
    fx_redis_state st;
    fx_redis(arg, &st);
    return st.len == 0 && st.pending == 0 && st.delayed == 0;
}

/* Waits (bounded) until the queue's stream is empty with nothing pending
 * or delayed: the pool has settled everything. */
static void fx_wait_drained(const char *queue, int timeout_ms)
{
    if (!th_wait(fx_is_drained, (void *)queue, timeout_ms)) {
        fx_redis_state st;
        fx_redis(queue, &st);
        cr_assert_fail("%s not drained after %d ms: %lld in the stream, %lld pending, %lld delayed",
                       queue, timeout_ms, st.len, st.pending, st.delayed);
    }
}

typedef struct fx_expect {
    long long jobs;        /* job rows (all final) */
    long long succeeded;   /* of which succeeded; the others are dead */
    long long attempts;    /* attempt rows in all, -1: do not check */
    long long dead_letter; /* entries in the dead letter */
} fx_expect;

/* The shared check: one final row per job with the expected statuses, one
 * attempt row per attempt each row counts, nothing left in the stream, its
 * pending list or the delayed set, and exactly the expected dead letters. */
static void fx_check(const char *queue, const fx_expect *e)
{
    long long rows = fx_sql("SELECT count(*) FROM sluice_jobs WHERE queue = $1", queue);
    cr_assert_eq(rows, e->jobs, "%s: %lld job rows, expected %lld", queue, rows, e->jobs);
    long long ok = fx_sql("SELECT count(*) FROM sluice_jobs WHERE queue = $1 AND status = 'succeeded'", queue);
    long long dead = fx_sql("SELECT count(*) FROM sluice_jobs WHERE queue = $1 AND status = 'dead'", queue);
    cr_assert_eq(ok, e->succeeded, "%s: %lld succeeded, expected %lld", queue, ok, e->succeeded);
    cr_assert_eq(dead, e->jobs - e->succeeded, "%s: %lld dead, expected %lld", queue, dead,
                 e->jobs - e->succeeded);
    long long odd = fx_sql("SELECT count(*) FROM sluice_jobs j WHERE j.queue = $1 AND j.attempts <>"
                           " (SELECT count(*) FROM sluice_job_history a WHERE a.job_id = j.id)", queue);
    cr_assert_eq(odd, 0, "%s: %lld jobs whose attempt rows do not match their attempt count", queue, odd);
    if (e->attempts >= 0) {
        long long att = fx_sql("SELECT count(*) FROM sluice_job_history a JOIN sluice_jobs j"
                               " ON j.id = a.job_id WHERE j.queue = $1", queue);
        cr_assert_eq(att, e->attempts, "%s: %lld attempt rows, expected %lld", queue, att, e->attempts);
    }
    fx_redis_state st;
    fx_redis(queue, &st);
    cr_assert_eq(st.len, 0, "%s: %lld entries left in the stream", queue, st.len);
    cr_assert_eq(st.pending, 0, "%s: %lld entries still pending", queue, st.pending);
    cr_assert_eq(st.delayed, 0, "%s: %lld jobs left in the delayed set", queue, st.delayed);
    cr_assert_eq(st.dead, e->dead_letter, "%s: %lld dead letters, expected %lld", queue, st.dead,
                 e->dead_letter);
}

/* Dead-letter entries of queue: ids into ids[] (may be NULL), errors
 * joined by newlines into errors; returns the count. */
static long long fx_dead_letters(const char *queue, char (*ids)[48], int max_ids, char *errors, size_t n)
{
    sl_redis *r = th_redis();
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "dead");
    const char *argv[] = { "XRANGE", key, "-", "+" };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 4, argv, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    errors[0] = '\0';
    for (size_t i = 0; i < rep->elements; i++) {
        if (ids && (int)i < max_ids)
            snprintf(ids[i], sizeof ids[i], "%s", rep->element[i]->element[0]->str);
        redisReply *fields = rep->element[i]->element[1];
        for (size_t k = 0; k + 1 < fields->elements; k += 2) {
            if (strcmp(fields->element[k]->str, "error") == 0 && strlen(errors) + 2 < n) {
                strncat(errors, fields->element[k + 1]->str, n - strlen(errors) - 2);
                strcat(errors, "\n");
            }
        }
    }
    long long count = (long long)rep->elements;
    freeReplyObject(rep);
    sl_redis_free(r);
    return count;
}

/* Asserts that each of n successful jobs ran exactly once. */
static void fx_assert_ran_once(const char *log, long long n)
{
    int runs = fx_count_in(log, "event=job.succeeded");
    cr_assert_eq(runs, n, "%d successful runs logged for %lld jobs: a job ran twice or a run was lost",
                 runs, n);
}

/* Drops a test's log (kept with FX_KEEP_LOGS=1) and configuration path. */
static void fx_free(char *log, char *config)
{
    if (!getenv("FX_KEEP_LOGS"))
        unlink(log);
    free(log);
    free(config);
}

/* The common ending: waits for all n jobs of queue to succeed and settle,
 * stops the pool, and checks the invariant; once: and that none ran twice. */
static void fx_finish(const char *queue, pid_t master, const char *log, long long n, bool once)
{
    fx_wait_rows(queue, n, 120000, log);
    fx_wait_drained(queue, 30000);
    fx_stop(master, log);
    fx_expect e = { .jobs = n, .succeeded = n, .attempts = n, .dead_letter = 0 };
    fx_check(queue, &e);
    if (once)
        fx_assert_ran_once(log, n);
}

/* A test's start: a fresh queue named after what with n jobs of spec, a
 * configuration with extra, and a pool of processes children on it. */
static pid_t fx_begin(char queue[64], const char *what, const fx_jobs *spec, int n, const char *extra,
                      int processes, char **config, char **log)
{
    th_migrate();
    th_name(queue, 64, what);
    fx_enqueue(queue, spec, 0, n);
    *config = fx_config(extra);
    *log = fx_log(what);
    return fx_start(*config, queue, processes, *log);
}

/* ---- 1. SIGKILL storm ------------------------------------------------------- */

/* A child killed while a job runs: that attempt is recorded as failed
 * ("worker crashed") by its replacement and retried (max_attempts 5 here);
 * what the child had finished is recorded from its journal, never run
 * again.  So every job succeeds, each run is an attempt of its own, and
 * every failed attempt is a crash the storm caused. */
Test(faults, random_children_sigkilled_every_100ms)
{
    char queue[64], *config, *log;
    const int n = 30000;
    fx_jobs spec = { .kind = "noop", .max_attempts = 5 };
    /* A 1 s visibility timeout: what a killed child held must stay
     * renewed, under its name, until its replacement has taken it over
     * (a slow start under ASan takes longer than that), or other children
     * reclaim it without the journal and record its jobs as lost. */
    pid_t master = fx_begin(queue, "storm", &spec, n, "  visibility_timeout: 1s\n  retry_initial: 50ms\n", 4,
                            &config, &log);
    unsigned seed = (unsigned)getpid() ^ (unsigned)sl_now_ms();
    int kills = 0;
    int64_t deadline = sl_monotonic_ms() + 150000;
    while (fx_final_rows(queue) < n && sl_monotonic_ms() < deadline) {
        long pids[FX_MAX_CHILDREN];
        int k = fx_children(master, pids, FX_MAX_CHILDREN);
        if (k > 0 && kill((pid_t)pids[rand_r(&seed) % (unsigned)k], SIGKILL) == 0)
            kills++;
        sl_sleep_ms(100);
    }
    fprintf(stderr, "faults: storm: %d children SIGKILLed while %d jobs ran\n", kills, n);
    cr_assert_gt(kills, 0, "no child was killed: the test injected nothing");
    fx_wait_rows(queue, n, 120000, log);
    fx_wait_drained(queue, 30000);
    fx_stop(master, log);
    fx_expect e = { .jobs = n, .succeeded = n, .attempts = -1, .dead_letter = 0 };
    fx_check(queue, &e);
    long long failed = fx_sql("SELECT count(*) FROM sluice_job_history a JOIN sluice_jobs j ON j.id = a.job_id"
                              " WHERE j.queue = $1 AND a.status <> 'succeeded'", queue);
    long long crashed = fx_sql("SELECT count(*) FROM sluice_job_history a JOIN sluice_jobs j ON j.id = a.job_id"
                               " WHERE j.queue = $1 AND a.status = 'failed' AND a.error LIKE 'worker crashed%'",
                               queue);
    fprintf(stderr, "faults: storm: %lld attempts recorded as crashed\n", crashed);
    cr_assert_eq(failed, crashed, "%lld failed attempts, of which only %lld are crashes", failed, crashed);
    cr_assert_leq(crashed, kills, "more crashed attempts (%lld) than kills (%d)", crashed, kills);
    /* No run unseen: a job ran again only after a recorded crash of an
     * attempt (which may have finished just before the kill). */
    int runs = fx_count_in(log, "event=job.succeeded");
    cr_assert(runs >= n && runs <= n + crashed, "%d successful runs logged for %d jobs and %lld crashed "
              "attempts", runs, n, crashed);
    fx_free(log, config);
}

/* ---- 2. SIGKILL of the master --------------------------------------------- */

static bool fx_all_gone(void *arg)
{
    const long *pids = arg;
    for (int i = 1; i <= pids[0]; i++) {
        if (fx_alive(pids[i]))
            return false;
    }
    return true;
}

Test(faults, master_sigkilled_children_exit_new_master_finishes)
{
    char queue[64], *config, *log;
    const int n = 3000;
    fx_jobs spec = { .kind = "sleep", .args_json = "{\"ms\": 2}" };
    pid_t master = fx_begin(queue, "master", &spec, n, "  visibility_timeout: 2s\n", 2, &config, &log);
    fx_wait_rows(queue, n / 5, 60000, log);
    long pids[FX_MAX_CHILDREN + 1];
    pids[0] = fx_children(master, pids + 1, FX_MAX_CHILDREN);
    cr_assert_eq(pids[0], 2, "expected 2 children, /proc shows %ld", pids[0]);
    cr_assert_eq(th_stop(master, SIGKILL, 5000), 128 + SIGKILL);
    fx_forget(master);
    cr_assert(th_wait(fx_all_gone, pids, 30000), "the children outlived their master by 30 s");
    long long done = fx_final_rows(queue);
    cr_assert_lt(done, n, "all jobs finished before the master was killed: nothing was injected");
    fprintf(stderr, "faults: master: killed with %lld of %d jobs done\n", done, n);
    master = fx_start(config, queue, 2, log);
    fx_finish(queue, master, log, n, true);
    fx_free(log, config);
}

/* ---- 3. Redis restart ------------------------------------------------------- */

Test(faults, redis_restarted_mid_run_loses_nothing)
{
    char queue[64], *config, *log;
    const int n = 3000;
    fx_jobs spec = { .kind = "sleep", .args_json = "{\"ms\": 2}" };
    pid_t master = fx_begin(queue, "redis", &spec, n, NULL, 2, &config, &log);
    fx_wait_rows(queue, n / 5, 60000, log);
    fx_server("SLUICE_REDIS_CTL", "restart");
    long long done = fx_final_rows(queue);
    fprintf(stderr, "faults: redis: restarted with %lld of %d jobs done\n", done, n);
    cr_assert_lt(done, n, "all jobs finished before Redis came back: the restart was not mid-run");
    fx_finish(queue, master, log, n, true);
    cr_assert_gt(fx_count_in(log, "event=redis.recovered"), 0, "no worker noticed the restart");
    fx_free(log, config);
}

/* ---- 4. PostgreSQL outage ----------------------------------------------------- */

Test(faults, postgres_down_10s_batches_held_then_committed)
{
    char queue[64], *config, *log;
    const int n = 2000;
    fx_jobs spec = { .kind = "sleep", .args_json = "{\"ms\": 2}" };
    /* A short visibility timeout: held batches outlive it many times over,
     * so their leases must be renewed or they would be run twice. */
    pid_t master = fx_begin(queue, "pg", &spec, n, "  visibility_timeout: 1s\n", 2, &config, &log);
    fx_wait_rows(queue, n / 5, 60000, log);
    fx_pg_stopped = true;
    fx_server("SLUICE_PG_CTL", "stop");
    sl_sleep_ms(10000);
    fx_server("SLUICE_PG_CTL", "start");
    fx_pg_stopped = false;
    long long done = fx_final_rows(queue);
    fprintf(stderr, "faults: pg: back with %lld of %d jobs done\n", done, n);
    cr_assert_lt(done, n, "all jobs finished before PostgreSQL came back: the outage was not mid-run");
    fx_finish(queue, master, log, n, true);
    cr_assert_gt(fx_count_in(log, "event=postgres.unavailable"), 0, "no worker noticed the outage");
    cr_assert_eq(fx_count_in(log, "event=job.dead_lettered"), 0, "the outage dead-lettered jobs");
    fx_free(log, config);
}

/* ---- 5. a job that crashes its worker ----------------------------------------- */

/* The crash job sits in the middle of the stream, so that batch-mates ran
 * before it in the same batch: their outcomes are in the dead child's
 * journal, and its replacement records them without running them again
 * (each ran once), records the crash as a failed attempt ("worker
 * crashed"), retries it per its max_attempts, and after the last one the
 * job is dead. */
Test(faults, crash_job_recorded_as_crashed_attempts_batch_mates_run_once)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "crash");
    const int before = 100, after = 100;
    fx_jobs noop = { .kind = "noop" }, crash = { .kind = "crash", .max_attempts = 3 };
    fx_enqueue(queue, &noop, 0, before);
    fx_enqueue(queue, &crash, before, 1);
    fx_enqueue(queue, &noop, before + 1, after);
    char *config = fx_config("  visibility_timeout: 1s\n  max_deliveries: 3\n  retry_initial: 100ms\n");
    char *log = fx_log("crash");
    pid_t master = fx_start(config, queue, 2, log);
    fx_wait_rows(queue, before + after + 1, 90000, log);
    /* The pool goes on: a job enqueued now runs. */
    fx_enqueue(queue, &noop, before + after + 1, 1);
    fx_wait_rows(queue, before + after + 2, 30000, log);
    fx_wait_drained(queue, 30000);
    cr_assert_eq(fx_count_in(log, "signal=6"), 3, "the crash job should have killed its worker once per attempt");
    fx_stop(master, log);
    fx_expect e = { .jobs = before + after + 2, .succeeded = before + after + 1,
                    .attempts = before + after + 1 + 3, .dead_letter = 1 };
    fx_check(queue, &e);
    fx_assert_ran_once(log, before + after + 1);
    char id[128];
    snprintf(id, sizeof id, "%s-%d", queue, before);
    cr_assert_eq(fx_sql("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'dead'"
                        " AND attempts = 3 AND error LIKE 'worker crashed%'", id), 1,
                 "the crash job is not recorded dead after 3 crashed attempts");
    cr_assert_eq(fx_sql("SELECT count(*) FROM sluice_job_history WHERE job_id = $1"
                        " AND status = 'failed' AND error LIKE 'worker crashed%'", id), 3);
    char errors[4096];
    cr_assert_eq(fx_dead_letters(queue, NULL, 0, errors, sizeof errors), 1);
    cr_assert(strstr(errors, "worker crashed"), "%s", errors);
    fx_free(log, config);
}

/* ---- 6. a job past its timeout ---------------------------------------------- */

Test(faults, overrunning_job_is_killed_recorded_timed_out_retried_then_dead)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "timeout");
    fx_jobs slow = { .kind = "sleep", .args_json = "{\"ms\": 60000}", .max_attempts = 2, .timeout_ms = 300 };
    fx_jobs noop = { .kind = "noop" };
    fx_enqueue(queue, &slow, 0, 1);
    fx_enqueue(queue, &noop, 1, 20);
    /* A visibility timeout far beyond the waits below: the noops that
     * shared the killed child's batch must be taken over by its
     * replacement, not reclaimed after the timeout. */
    char *config = fx_config("  timeout_grace: 200ms\n  retry_initial: 200ms\n  visibility_timeout: 10m\n");
    char *log = fx_log("timeout");
    pid_t master = fx_start(config, queue, 2, log);
    fx_wait_rows(queue, 21, 60000, log);
    fx_wait_drained(queue, 30000);
    cr_assert_eq(fx_count_in(log, "event=job.timed_out"), 2, "the master should have killed 2 attempts");
    fx_stop(master, log);
    fx_expect e = { .jobs = 21, .succeeded = 20, .attempts = 22, .dead_letter = 1 };
    fx_check(queue, &e);
    char id[128];
    snprintf(id, sizeof id, "%s-0", queue);
    cr_assert_eq(fx_sql("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'dead'"
                        " AND attempts = 2 AND error LIKE 'timed out%'", id), 1);
    cr_assert_eq(fx_sql("SELECT count(*) FROM sluice_job_history WHERE job_id = $1"
                        " AND status = 'timed_out' AND error LIKE '%timeout of 300 ms%'", id), 2);
    fx_free(log, config);
}

/* ---- 7. retries with backoff, then `sluice dead retry` ----------------------- */

Test(faults, failing_job_retries_with_backoff_then_dead_then_dead_retry)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "retry");
    const int n = 3;
    fx_jobs fail = { .kind = "fail", .max_attempts = 3 };
    fx_enqueue(queue, &fail, 0, n);
    char *config = fx_config("  retry_initial: 200ms\n  retry_max: 10s\n");
    char *log = fx_log("retry");
    pid_t master = fx_start(config, queue, 2, log);
    fx_wait_rows(queue, n, 60000, log);
    fx_wait_drained(queue, 30000);
    fx_expect e = { .jobs = n, .succeeded = 0, .attempts = 3 * n, .dead_letter = n };
    fx_check(queue, &e);
    /* Attempt k+1 starts at least base/2 after attempt k finished, base
     * being retry_initial doubled per attempt (equal jitter): 100, 200 ms.
     * The timestamps carry milliseconds; allow 2 ms for rounding. */
    for (int k = 1; k <= 2; k++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM sluice_job_history a JOIN sluice_job_history b"
                 " ON b.job_id = a.job_id AND b.attempt = a.attempt + 1"
                 " JOIN sluice_jobs j ON j.id = a.job_id"
                 " WHERE j.queue = $1 AND a.attempt = %d AND a.status = 'failed'"
                 " AND b.started_at - a.finished_at >= interval '%d milliseconds'", k, 100 * k - 2);
        cr_assert_eq(fx_sql(sql, queue), n, "attempt %d: a retry came sooner than its backoff", k + 1);
    }
    char ids[4][48], errors[4096];
    cr_assert_eq(fx_dead_letters(queue, ids, 4, errors, sizeof errors), n);
    cr_assert(strstr(errors, "failed on purpose"), "%s", errors);
    /* Bring the first back: it runs again as attempt 4, fails, is dead again. */
    const char *argv[] = { SLUICE_BIN, "dead", "retry", ids[0], "--queue", queue, NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0, "sluice dead retry: %s%s", r.out, r.err);
    th_result_free(&r);
    long long job_attempts = 0;
    for (int i = 0; i < 1500 && job_attempts < 3 * n + 1; i++) {
        job_attempts = fx_sql("SELECT count(*) FROM sluice_job_history a JOIN sluice_jobs j"
                              " ON j.id = a.job_id WHERE j.queue = $1", queue);
        if (job_attempts < 3 * n + 1)
            sl_sleep_ms(20);
    }
    cr_assert_eq(job_attempts, 3 * n + 1, "the retried job did not run again");
    fx_wait_rows(queue, n, 30000, log);
    fx_wait_drained(queue, 30000);
    cr_assert_eq(fx_dead_letters(queue, NULL, 0, errors, sizeof errors), n);
    fx_stop(master, log);
    e.attempts = 3 * n + 1;
    fx_check(queue, &e);
    cr_assert_eq(fx_sql("SELECT count(*) FROM sluice_jobs j JOIN sluice_job_history a ON a.job_id = j.id"
                        " WHERE j.queue = $1 AND j.attempts = 4 AND j.status = 'dead'"
                        " AND a.attempt = 4 AND a.status = 'failed'", queue), 1);
    fx_free(log, config);
}

/* ---- 8. graceful stop with jobs in flight ------------------------------------ */

Test(faults, sigterm_with_500_jobs_in_flight_finishes_and_hands_back)
{
    char queue[64], *config, *log;
    const int n = 500;
    fx_jobs spec = { .kind = "sleep", .args_json = "{\"ms\": 50}" };
    /* Batches big enough that all 500 are taken at once. */
    pid_t master = fx_begin(queue, "term", &spec, n, "  batch: 125\n", 4, &config, &log);
    /* Rows appear only when a batch is committed: watch the runs instead. */
    fx_want_text w = { log, "event=job.succeeded", 8 };
    cr_assert(th_wait(fx_has_text, &w, 60000), "no job ran within 60 s");
    fx_stop(master, log);
    long long done = fx_final_rows(queue);
    fx_redis_state st;
    fx_redis(queue, &st);
    fprintf(stderr, "faults: term: stopped with %lld of %d done, %lld handed back\n", done, n, st.len);
    cr_assert_lt(done, n, "all jobs finished before the stop: nothing was in flight");
    cr_assert_eq(st.pending, 0, "%lld entries left pending by a graceful stop", st.pending);
    cr_assert_eq(done + st.len, n, "%lld done + %lld handed back != %d", done, st.len, n);
    fx_assert_ran_once(log, done);
    master = fx_start(config, queue, 4, log);
    fx_finish(queue, master, log, n, true);
    fx_free(log, config);
}

/* ---- 9. reload and resize under load ------------------------------------------ */

Test(faults, sighup_ttin_ttou_under_load_lose_and_repeat_nothing)
{
    char queue[64], *config, *log;
    const int n = 3000;
    fx_jobs spec = { .kind = "sleep", .args_json = "{\"ms\": 5}" };
    pid_t master = fx_begin(queue, "hup", &spec, n, NULL, 2, &config, &log);
    fx_wait_rows(queue, n / 10, 60000, log);
    const int sigs[] = { SIGHUP, SIGTTIN, SIGTTIN, SIGTTOU, SIGHUP, SIGTTOU };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        cr_assert_eq(kill(master, sigs[i]), 0);
        sl_sleep_ms(400);  /* the kernel merges signals of one kind sent together */
    }
    long long done = fx_final_rows(queue);
    fprintf(stderr, "faults: hup: signals done with %lld of %d jobs done\n", done, n);
    cr_assert_lt(done, n, "all jobs finished before the signals: nothing was under load");
    fx_finish(queue, master, log, n, true);
    cr_assert_eq(fx_count_in(log, "event=config.reloaded"), 2);
    char *text = th_read_file(log);
    cr_assert(text && !strstr(text, "level=error"), "the pool logged an error:\n%s", text ? text : "");
    free(text);
    fx_free(log, config);
}

/* ---- 10. garbage in the stream ------------------------------------------------ */

Test(faults, garbage_in_stream_dead_lettered_pool_never_stops)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "garbage");
    sl_redis *r = th_redis();
    sl_err err;
    /* 1: random bytes, led by 0xc1 (a byte MessagePack never uses). */
    char noise[512];
    cr_assert_eq(getrandom(noise, sizeof noise, 0), (ssize_t)sizeof noise, "getrandom: %s", strerror(errno));
    noise[0] = (char)0xc1;
    cr_assert_eq(sl_queue_enqueue_raw(r, queue, noise, sizeof noise, &err), 0, "%s", err.msg);
    /* 2: an envelope without `kind` (else complete). */
    char *json = sl_xasprintf("{\"v\": 1, \"id\": \"no-kind\", \"queue\": \"%s\", \"args\": {},"
                              " \"attempt\": 1, \"enqueued_at\": %lld}", queue, (long long)sl_now_ms());
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cr_assert_eq(sl_json_to_msgpack(json, strlen(json), &pk, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_queue_enqueue_raw(r, queue, sb.data, sb.size, &err), 0, "%s", err.msg);
    msgpack_sbuffer_destroy(&sb);
    free(json);
    /* 3: a valid envelope of 5 MB, above worker.max_payload. */
    size_t big_len = 5u << 20;
    char *big_json = sl_xmalloc(big_len + 16);
    memcpy(big_json, "{\"pad\": \"", 9);
    memset(big_json + 9, 'x', big_len);
    memcpy(big_json + 9 + big_len, "\"}", 3);
    fx_jobs big = { .kind = "noop", .args_json = big_json };
    fx_enqueue(queue, &big, 0, 1);
    free(big_json);
    /* Then good jobs, in the same batches as the garbage. */
    fx_jobs noop = { .kind = "noop" };
    fx_enqueue(queue, &noop, 1, 50);
    char *config = fx_config("  max_payload: 1048576\n");
    char *log = fx_log("garbage");
    pid_t master = fx_start(config, queue, 2, log);
    fx_wait_rows(queue, 50, 60000, log);
    /* Never stops: later jobs succeed too, and no child died. */
    fx_enqueue(queue, &noop, 51, 50);
    fx_wait_rows(queue, 100, 60000, log);
    fx_wait_drained(queue, 30000);
    cr_assert_eq(kill(master, 0), 0, "the pool died");
    cr_assert_eq(fx_count_in(log, "event=worker.exited"), 0, "a child exited");
    cr_assert_eq(fx_count_in(log, "event=worker.killed"), 0, "a child was killed");
    fx_stop(master, log);
    fx_expect e = { .jobs = 100, .succeeded = 100, .attempts = 100, .dead_letter = 3 };
    fx_check(queue, &e);
    char errors[8192];
    cr_assert_eq(fx_dead_letters(queue, NULL, 0, errors, sizeof errors), 3);
    cr_assert(strstr(errors, "undecodable envelope"), "%s", errors);
    cr_assert(strstr(errors, "field 'kind': missing"), "%s", errors);
    cr_assert(strstr(errors, "over worker.max_payload (1048576 bytes)"), "%s", errors);
    sl_redis_free(r);
    fx_free(log, config);
}

/* ---- 10. A long job among short ones (head of line) --------------------------- */

/* One long `sleep` job, then short no-ops, all waiting before a pool of 2
 * starts: the process that takes the sleep job reads more entries with it
 * (its first read is a batch).  Once the sleep has run past the overrun
 * mark, its batch-mates are handed back to the stream, and the other
 * process runs every no-op: none runs after the sleep job started in the
 * sleep job's process, the handing-back is logged, and each job still has
 * exactly one result row and ran once. */
Test(faults, long_job_hands_back_its_batch_mates)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "hol");
    fx_jobs sleep = { .kind = "sleep", .args_json = "{\"ms\": 5000}" };
    fx_jobs noop = { .kind = "noop" };
    fx_enqueue(queue, &sleep, 0, 1);
    fx_enqueue(queue, &noop, 1, 100);
    char *config = fx_config(NULL);
    char *log = fx_log("hol");
    pid_t master = fx_start(config, queue, 2, log);
    fx_finish(queue, master, log, 101, true);
    fx_want_text released = { log, "event=batch.released", 1 };
    cr_assert(fx_has_text(&released), "the sleep job's batch-mates were not handed back");
    char id[128];
    snprintf(id, sizeof id, "%s-0", queue);
    const char *p[] = { queue, id };
    long long hostage = th_pg_number("SELECT count(*) FROM sluice_jobs n JOIN sluice_jobs s ON s.id = $2"
                                     " WHERE n.queue = $1 AND n.id <> s.id AND n.worker = s.worker"
                                     " AND n.started_at >= s.started_at", 2, p);
    cr_assert_eq(hostage, 0, "%lld no-ops ran after the sleep job in its process", hostage);
    long long elsewhere = th_pg_number("SELECT count(*) FROM sluice_jobs n JOIN sluice_jobs s ON s.id = $2"
                                       " WHERE n.queue = $1 AND n.id <> s.id AND n.worker <> s.worker", 2, p);
    cr_assert_gt(elsewhere, 0, "no no-op ran in the other process");
    fx_free(log, config);
}

/* ---- 12. a child killed with a commit in flight ------------------------------- */

/* The backend of a sluice worker whose record statement waits for a lock
 * that the test's transaction (backend pid `holder`) holds; 0 if none. */
static long long fx_record_waiter(int holder)
{
    char pid[16];
    snprintf(pid, sizeof pid, "%d", holder);
    return fx_sql("SELECT coalesce(min(pid), 0) FROM pg_stat_activity WHERE application_name = 'sluice'"
                  " AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO sluice_jobs%'"
                  " AND $1::integer = ANY(pg_blocking_pids(pid))", pid);
}

/* A transaction on a connection of its own that inserts the row of job
 * id (so holds its lock until fx_release_row): a record of that job waits
 * in PostgreSQL meanwhile. */
static PGconn *fx_hold_job_row(const char *id, const char *queue)
{
    PGconn *holder = th_pg();
    const char *p[] = { id, queue };
    PGresult *r = PQexec(holder, "BEGIN");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(holder));
    PQclear(r);
    r = PQexecParams(holder, "INSERT INTO sluice_jobs (id, queue, kind, args, status, attempts)"
                     " VALUES ($1, $2, 'noop', '{}', 'queued', 1)", 2, NULL, p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(holder));
    PQclear(r);
    return holder;
}

/* Rolls the holder's transaction back (the row never existed) and closes it. */
static void fx_release_row(PGconn *holder)
{
    PGresult *r = PQexec(holder, "ROLLBACK");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(holder));
    PQclear(r);
    PQfinish(holder);
}

/* The sizes of the last batch the pool's child `pid` read while the
 * record of the one before it was in flight (its last debug line
 * batch.read_ahead with record=in_flight): *ahead and *behind, 0 if none. */
static void fx_last_read_ahead(const char *log, long pid, int *ahead, int *behind)
{
    char *all = th_read_file(log);
    char needle[64];
    snprintf(needle, sizeof needle, "pid=%ld event=batch.read_ahead ", pid);
    *ahead = *behind = 0;
    for (const char *p = all; p && (p = strstr(p, needle)) != NULL; p += strlen(needle)) {
        int a, b;
        const char *end = strchr(p, '\n');
        const char *flight = strstr(p, "record=in_flight");
        if (sscanf(p + strlen(needle), "entries=%d behind=%d", &a, &b) == 2 && flight && (!end || flight < end)) {
            *ahead = a;
            *behind = b;
        }
    }
    free(all);
}

/* The pid of the child whose death by a signal the master logged first
 * (master.child_exited ... child=PID signal=N), 0 if none. */
static long fx_crashed_child(const char *log)
{
    char *all = th_read_file(log);
    long pid = 0;
    for (const char *p = all; p && pid == 0 && (p = strstr(p, " child=")) != NULL; p++) {
        const char *end = strchr(p, '\n');
        const char *sig = strstr(p, " signal=");
        if (sig && (!end || sig < end) && strstr(p, "core=") && (!end || strstr(p, "core=") < end))
            pid = strtol(p + strlen(" child="), NULL, 10);
    }
    free(all);
    return pid;
}

typedef struct fx_ran {
    const char *log;
    const char *queue;
    long pid;            /* the pool's only child */
    long long n;         /* jobs enqueued */
} fx_ran;

/* True once the pool's only child has run every job delivered to it (an
 * entry is delivered when it left the undelivered part of the stream:
 * n - (stream length - pending), as acknowledged entries are deleted) and
 * that stayed so across the look at the log: it has nothing left to run
 * and waits (for a commit). */
static bool fx_ran_all_delivered(void *arg)
{
    const fx_ran *w = arg;
    fx_redis_state before, after;
    fx_redis(w->queue, &before);
    char ran[64];
    snprintf(ran, sizeof ran, "pid=%ld event=job.succeeded ", w->pid);
    int done = fx_count_in(w->log, ran);
    fx_redis(w->queue, &after);
    long long delivered = w->n - (after.len - after.pending);
    return before.len == after.len && before.pending == after.pending && done == delivered;
}

/* The entries the replacement took over (its worker.took_over line). */
static int fx_taken_over(const char *log)
{
    char *all = th_read_file(log);
    const char *p = all ? strstr(all, "event=worker.took_over ") : NULL;
    const char *e = p ? strstr(p, " entries=") : NULL;
    int n = e ? atoi(e + strlen(" entries=")) : 0;
    free(all);
    return n;
}

typedef struct fx_waiter {
    int holder;
    long long backend;
} fx_waiter;

static bool fx_has_waiter(void *arg)
{
    fx_waiter *w = arg;
    w->backend = fx_record_waiter(w->holder);
    return w->backend != 0;
}

static bool fx_backend_gone(void *arg)
{
    char pid[24];
    snprintf(pid, sizeof pid, "%lld", *(long long *)arg);
    return fx_sql("SELECT count(*) FROM pg_stat_activity WHERE pid = $1::integer", pid) == 0;
}

static bool fx_child_gone(void *arg)
{
    return !fx_alive(*(long *)arg);
}

/* Kills the only child of a pool (SIGKILL) after it has sent the commit of
 * a batch and before it has read the answer: the test's transaction holds
 * an uncommitted row with the id of a job in the middle of the stream, so
 * that the record statement of the batch carrying that job waits in
 * PostgreSQL (pg_stat_activity shows it waiting on the test's lock) while
 * the child waits for its answer, with its next batch read ahead.  Then:
 * terminate false: the lock is released at once, and the dead child's
 * backend, which has not noticed its client is gone, goes on and commits;
 * terminate true: that backend is terminated first, and nothing of the
 * record commits.  Meanwhile the child has claimed and run the next
 * batch (its claim went ahead of the record, and was answered while the
 * record waited), journaled in the other part of its journal.  Either way
 * the replacement child takes over both batches and records both from its
 * predecessor's journal without running a job again: every job has one
 * result row, one attempt, one run. */
static void fx_commit_in_flight(const char *what, bool terminate)
{
    th_migrate();
    char queue[64], id[128];
    th_name(queue, sizeof queue, what);
    const int n = 3000, middle = 1500;
    snprintf(id, sizeof id, "%s-%d", queue, middle);
    PGconn *holder = fx_hold_job_row(id, queue);
    fx_jobs noop = { .kind = "noop" };
    fx_enqueue(queue, &noop, 0, n);
    char *config = fx_config(NULL);
    char *log = fx_log(what);
    pid_t master = fx_start(config, queue, 1, log);
    fx_waiter w = { PQbackendPID(holder), 0 };
    cr_assert(th_wait(fx_has_waiter, &w, 60000), "no record statement of the pool waited on the test's lock");
    long pids[FX_MAX_CHILDREN];
    cr_assert_eq(fx_children(master, pids, FX_MAX_CHILDREN), 1, "a pool of 1 should have 1 child");
    long child = pids[0];
    /* Killed once it has run all it was delivered (the batch whose record
     * waits and, if it read one, the batch claimed ahead of that record)
     * and waits for that record: everything it holds is in its journal. */
    fx_ran ran = { log, queue, child, n };
    cr_assert(th_wait(fx_ran_all_delivered, &ran, 60000), "the child never ran all it was delivered");
    cr_assert_eq(kill((pid_t)child, SIGKILL), 0, "kill: %s", strerror(errno));
    cr_assert(th_wait(fx_child_gone, &child, 10000), "the SIGKILLed child is still alive");
    if (terminate) {
        char bp[24];
        snprintf(bp, sizeof bp, "%lld", w.backend);
        cr_assert_eq(fx_sql("SELECT pg_terminate_backend($1::integer)::integer", bp), 1,
                     "the waiting backend could not be terminated");
        cr_assert(th_wait(fx_backend_gone, &w.backend, 10000), "the terminated backend is still there");
    }
    fx_release_row(holder);
    fx_finish(queue, master, log, n, true);
    int recovered = fx_count_in(log, "event=job.journal_recovered");
    int taken = fx_taken_over(log), ahead = 0, behind = 0;
    fx_last_read_ahead(log, child, &ahead, &behind);
    fprintf(stderr, "faults: %s: %d entries taken over, %d outcomes of them from the dead child's journal (its "
            "last batch read during a commit: %d behind %d)\n", what, taken, recovered, ahead, behind);
    cr_assert_gt(taken, 0, "no replacement took the dead child's entries over");
    cr_assert_gt(behind, 0, "the dead child never ran a batch while the commit before it was in flight");
    /* Everything it held had run: the batch whose record waited and, when
     * the chain of reads had not ended there, the one run meanwhile. */
    cr_assert_eq(recovered, taken, "the killed child had run all %d entries it held: %d outcomes came from its "
                 "journal", taken, recovered);
    const char *pid1[] = { id };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'succeeded'"
                              " AND attempts = 1", 1, pid1), 1, "the held job has no single successful row");
    fx_free(log, config);
}

Test(faults, child_killed_with_commit_in_flight_backend_commits_after)
{
    fx_commit_in_flight("inflight", false);
}

Test(faults, child_killed_with_commit_in_flight_backend_terminated)
{
    fx_commit_in_flight("inflight-term", true);
}

/* A job crashes its worker in the batch that runs while the commit of the
 * batch before it is in flight.  The test holds a lock on the row of the
 * last job of the first batch (a read before any job has run takes
 * SL_PACE_FIRST = 16 entries), so that batch's record waits in PostgreSQL;
 * the crash job is the first of the next batch, which the child claims
 * (its claim goes ahead of the record) and runs meanwhile.  The
 * replacement finds both batches in the two parts of the dead child's
 * journal: the first batch's outcomes are recorded from it without running
 * anything again, the crash is recorded as the failed attempt it was, and
 * nothing is lost or run twice. */
Test(faults, crash_while_the_commit_before_is_in_flight_loses_nothing)
{
    th_migrate();
    char queue[64], held[128], crashed[128];
    th_name(queue, sizeof queue, "crashflight");
    const int first = 16, after = 31;
    snprintf(held, sizeof held, "%s-%d", queue, first - 1);
    snprintf(crashed, sizeof crashed, "%s-%d", queue, first);
    PGconn *holder = fx_hold_job_row(held, queue);
    fx_jobs noop = { .kind = "noop" }, crash = { .kind = "crash", .max_attempts = 1 };
    fx_enqueue(queue, &noop, 0, first);
    fx_enqueue(queue, &crash, first, 1);
    fx_enqueue(queue, &noop, first + 1, after);
    char *config = fx_config(NULL);
    char *log = fx_log("crashflight");
    pid_t master = fx_start(config, queue, 1, log);
    fx_want_text crashed_once = { log, "signal=6", 1 };
    cr_assert(th_wait(fx_has_text, &crashed_once, 60000), "the crash job never crashed its worker");
    fx_release_row(holder);
    fx_wait_rows(queue, first + after + 1, 60000, log);
    fx_wait_drained(queue, 30000);
    fx_stop(master, log);
    long dead_child = fx_crashed_child(log);
    int ahead = 0, behind = 0;
    fx_last_read_ahead(log, dead_child, &ahead, &behind);
    cr_assert_eq(behind, first, "the crashed child's last batch (%d entries) did not run behind the commit of "
                 "the first %d (%d): the crash was not during a commit in flight", ahead, first, behind);
    fx_expect e = { .jobs = first + after + 1, .succeeded = first + after, .attempts = first + after + 1,
                    .dead_letter = 1 };
    fx_check(queue, &e);
    fx_assert_ran_once(log, first + after);
    cr_assert_eq(fx_sql("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'dead'"
                        " AND attempts = 1 AND error LIKE 'worker crashed%'", crashed), 1,
                 "the crash is not recorded as its one failed attempt");
    cr_assert_geq(fx_count_in(log, "event=job.journal_recovered"), first,
                  "the first batch's outcomes must come from the dead child's journal");
    cr_assert_eq(fx_sql("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'succeeded'"
                        " AND attempts = 1", held), 1, "the held job has no single successful row");
    fx_free(log, config);
}

/* A careless producer enqueues every id twice, a block of 100 ids and
 * then the same block again, into a pool of one process: a copy lands in
 * the same batch as its original, or in the next one, whose claim goes to
 * PostgreSQL while the original's record is still in flight (the claim
 * then finds the original's entry holding the job).  Either way the copy
 * is acknowledged without running: every id has one row, one attempt and
 * one run, and nothing is dead-lettered or left behind. */
Test(faults, ids_enqueued_twice_run_once_with_commits_in_flight)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "twice");
    const int blocks = 20, block = 100, n = blocks * block;
    fx_jobs noop = { .kind = "noop" };
    for (int b = 0; b < blocks; b++) {
        fx_enqueue(queue, &noop, b * block, block);
        fx_enqueue(queue, &noop, b * block, block);
    }
    char *config = fx_config(NULL);
    char *log = fx_log("twice");
    pid_t master = fx_start(config, queue, 1, log);
    fx_finish(queue, master, log, n, true);
    int copies = fx_count_in(log, "event=job.duplicate") + fx_count_in(log, "event=job.already_done");
    int held = fx_count_in(log, "another entry carries this job");
    fprintf(stderr, "faults: twice: %d copies acknowledged unrun (%d found held by their original's entry), "
            "%d batches read during a commit\n", copies, held, fx_count_in(log, "record=in_flight"));
    cr_assert_eq(copies, n, "%d of %d copies were acknowledged without running", copies, n);
    cr_assert_gt(held, 0, "no copy was claimed while its original's record was in flight: the test injected nothing");
    fx_free(log, config);
}

/* ---- 13. a batch PostgreSQL refuses, sent pipelined ----------------------------- */

/* One job's outcome breaks a CHECK constraint the test adds to sluice_jobs
 * (its error text): the pipelined record of its batch is refused, the
 * claim queued behind it is abandoned, and the batch is recorded the
 * waiting way, outcome by outcome, as without the pipeline: the refused
 * one goes to the dead letter with PostgreSQL's reason and no row, its
 * batch-mates are committed once, and the batch read ahead is claimed
 * again and runs once. */
Test(faults, refused_pipelined_batch_falls_back_outcome_by_outcome)
{
    th_migrate();
    char queue[64], poison[96];
    th_name(queue, sizeof queue, "refused");
    snprintf(poison, sizeof poison, "refuse-%s", queue);
    snprintf(fx_constraint, sizeof fx_constraint, "fx_%s", queue);
    PGconn *pg = th_pg();
    char sql[320];
    snprintf(sql, sizeof sql, "ALTER TABLE sluice_jobs ADD CONSTRAINT \"%s\" CHECK (error IS DISTINCT FROM '%s')"
             " NOT VALID", fx_constraint, poison);
    PGresult *r = PQexec(pg, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(pg));
    PQclear(r);
    const int before = 600, after = 600;
    char args[160];
    snprintf(args, sizeof args, "{\"message\": \"%s\"}", poison);
    fx_jobs noop = { .kind = "noop" }, bad = { .kind = "fail", .args_json = args, .max_attempts = 1 };
    fx_enqueue(queue, &noop, 0, before);
    fx_enqueue(queue, &bad, before, 1);
    fx_enqueue(queue, &noop, before + 1, after);
    char *config = fx_config(NULL);
    char *log = fx_log("refused");
    pid_t master = fx_start(config, queue, 1, log);
    fx_wait_rows(queue, before + after, 90000, log);
    fx_wait_drained(queue, 30000);
    fx_stop(master, log);
    snprintf(sql, sizeof sql, "ALTER TABLE sluice_jobs DROP CONSTRAINT \"%s\"", fx_constraint);
    r = PQexec(pg, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
    fx_constraint[0] = '\0';
    fx_expect e = { .jobs = before + after, .succeeded = before + after, .attempts = before + after,
                    .dead_letter = 1 };
    fx_check(queue, &e);
    fx_assert_ran_once(log, before + after);
    cr_assert_geq(fx_count_in(log, "event=postgres.batch_refused"), 1, "the batch was not refused: nothing injected");
    cr_assert_geq(fx_count_in(log, "event=postgres.pipeline_failed step=record_wait"), 1,
                  "the refused batch was not the pipelined one");
    char errors[4096];
    cr_assert_eq(fx_dead_letters(queue, NULL, 0, errors, sizeof errors), 1);
    cr_assert(strstr(errors, "result could not be stored") && strstr(errors, "check constraint"),
              "the dead letter should say PostgreSQL refused the result: %s", errors);
    fprintf(stderr, "faults: refused: %d batches read ahead\n", fx_count_in(log, "event=batch.read_ahead"));
    fx_free(log, config);
}
