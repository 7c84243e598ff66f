/* test_exactly_once.c: one job id runs at most once, whatever producers
 * do (docs/architecture.md, "One run per job id").  Every test runs the
 * real sluice-worker against the real servers with a deploy target whose
 * command appends "JOB_ID PID" to runs.txt: the file, not the log, is
 * what proves how often a job ran.  Copies of one id are enqueued in one
 * pipelined round trip ("in quick succession"), to pools of several
 * processes reading one entry at a time, so that different processes (and
 * different pools: two "hosts") take the copies at the same moment.
 *
 * Covered: duplicates across processes and across pools, a dead id
 * enqueued again (not run, not dead-lettered twice), `sluice dead retry
 * --all` by two operators at once over two dead entries of one id (one
 * run), a crash in a batch after batch-mates ran (they ran once, their
 * results are recorded), an uncapped timeout_ms (capped; a negative one is
 * refused), and oversized entries (dead-lettered, the child's memory
 * bounded). */
#include "harness.h"
#include "kindtest.h"

#include "clock.h"
#include "envelope.h"
#include "json.h"
#include "mem.h"
#include "queue.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* AddressSanitizer keeps freed memory in quarantine: a peak RSS says
 * nothing about what a process held at once, so that bound is checked in
 * the normal build only. */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif
#ifndef ASAN_BUILD
#define ASAN_BUILD 0
#endif

static char *dir;

static void setup(void)
{
    th_migrate();
    dir = th_tempdir("once");
}

static void teardown(void)
{
    th_rmtree(dir);
    free(dir);
}

TestSuite(once, .init = setup, .fini = teardown, .timeout = 180);

/* A configuration: quick reads, `extra` worker lines, and deploy target
 * `t` that records its run, takes a moment, and fails while a file
 * named `fail` exists in dir. */
static char *config(const char *extra)
{
    char *text = sl_xasprintf(
        "worker:\n  block: 100ms\n  shutdown_timeout: 20s\n  retry_initial: 100ms\n%s"
        "deploy:\n  targets:\n    t:\n      type: command\n      cwd: %s\n"
        "      command: [/bin/sh, -c, \"echo \\\"$SLUICE_JOB_ID $$\\\" >> runs.txt; sleep 0.3; "
        "test ! -e fail\", deploy-script]\n", extra ? extra : "", dir);
    char *path = sl_xasprintf("%s/sluice.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    free(text);
    return path;
}

static pid_t pool(const char *cfg, const char *queue, int processes, const char *log)
{
    char n[16];
    snprintf(n, sizeof n, "%d", processes);
    const char *args[] = { "--config", cfg, "--queues", queue, "--processes", n, "--log-level", "debug",
                           NULL };
    return th_worker_start(args, log);
}

static void stop(pid_t master, const char *log)
{
    int status = th_stop(master, SIGTERM, 60000);
    char *text = th_read_file(log);
    cr_assert_eq(status, 0, "sluice-worker did not stop cleanly (%d):\n%s", status, text ? text : "");
    cr_assert(text && !strstr(text, "Sanitizer") && !strstr(text, "runtime error"), "%s", text);
    free(text);
}

/* The envelope of job id of kind in queue with args_json. */
static void encode(const char *queue, const char *id, const char *kind, const char *args_json,
                   int64_t max_attempts, int64_t timeout_ms, msgpack_sbuffer *out)
{
    msgpack_sbuffer args;
    msgpack_sbuffer_init(&args);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
    sl_err err;
    cr_assert_eq(sl_json_to_msgpack(args_json, strlen(args_json), &pk, &err), 0, "%s", err.msg);
    sl_job job = { .id = (char *)id, .kind = (char *)kind, .queue = (char *)queue, .args = args.data,
                   .args_len = args.size, .attempt = 1, .max_attempts = max_attempts,
                   .timeout_ms = timeout_ms, .enqueued_at = sl_now_ms() };
    msgpack_sbuffer_init(out);
    cr_assert_eq(sl_envelope_encode(&job, out, &err), 0, "%s", err.msg);
    msgpack_sbuffer_destroy(&args);
}

/* XADDs copies of one job in one pipelined round trip. */
static void enqueue(const char *queue, const char *id, const char *kind, const char *args_json,
                    int copies)
{
    msgpack_sbuffer env;
    encode(queue, id, kind, args_json, 0, 0, &env);
    sl_redis *r = th_redis();
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    sl_err err;
    for (int i = 0; i < copies; i++) {
        const char *argv[] = { "XADD", key, "*", "job", env.data };
        size_t lens[] = { 4, strlen(key), 1, 3, env.size };
        cr_assert_eq(sl_redis_append(r, 5, argv, lens, &err), 0, "%s", err.msg);
    }
    for (int i = 0; i < copies; i++) {
        redisReply *rep = sl_redis_reply(r, &err);
        cr_assert(rep && rep->type == REDIS_REPLY_STRING, "XADD failed");
        freeReplyObject(rep);
    }
    msgpack_sbuffer_destroy(&env);
    sl_redis_free(r);
}

static long long sql1(const char *sql, const char *arg)
{
    const char *p[] = { arg };
    return th_pg_number(sql, 1, p);
}

/* Lines of runs.txt that start with "id ": how often the command ran. */
static int runs_of(const char *id)
{
    char *path = sl_xasprintf("%s/runs.txt", dir);
    char *text = th_read_file(path);
    free(path);
    int n = 0;
    size_t len = strlen(id);
    for (char *line = text; line && *line;) {
        if (strncmp(line, id, len) == 0 && line[len] == ' ')
            n++;
        char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return n;
}

static int count_in(const char *path, const char *needle)
{
    char *all = th_read_file(path);
    int n = 0;
    for (const char *p = all; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(all);
    return n;
}

typedef struct settled {
    const char *queue;
    const char *id;
    const char *status;  /* the job row's status to wait for */
} settled;

static long long redis_int(sl_redis *r, int argc, const char **argv)
{
    sl_err err;
    redisReply *rep = sl_redis_command(r, argc, argv, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);
    return v;
}

/* The job row has the status, and nothing of the queue is left in its
 * stream, pending or delayed. */
static bool is_settled(void *arg)
{
    settled *s = arg;
    const char *p[] = { s->id, s->status };
    if (th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = $2", 2, p) != 1)
        return false;
    sl_redis *r = th_redis();
    long long len, pending;
    sl_err err;
    cr_assert_eq(sl_queue_depth(r, s->queue, &len, &pending, &err), 0, "%s", err.msg);
    char delayed[SL_KEY_MAX];
    sl_queue_key(delayed, s->queue, "delayed");
    const char *zcard[] = { "ZCARD", delayed };
    long long z = redis_int(r, 2, zcard);
    sl_redis_free(r);
    return len == 0 && pending == 0 && z == 0;
}

static void wait_settled(const char *queue, const char *id, const char *status, const char *log)
{
    settled s = { queue, id, status };
    if (!th_wait(is_settled, &s, 60000)) {
        char *text = th_read_file(log);
        size_t len = text ? strlen(text) : 0;
        cr_assert_fail("job %s did not end %s with its queue drained; end of log:\n%s", id, status,
                       text ? text + (len > 6000 ? len - 6000 : 0) : "");
    }
}

static long long dead_letters(const char *queue)
{
    sl_redis *r = th_redis();
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "dead");
    const char *xlen[] = { "XLEN", key };
    long long n = redis_int(r, 2, xlen);
    sl_redis_free(r);
    return n;
}

static char *log_path(const char *what)
{
    return sl_xasprintf("%s/%s.log", dir, what);
}

/* ---- duplicates ---------------------------------------------------------------- */

Test(once, same_id_three_times_at_once_to_three_processes_runs_once)
{
    char queue[64], id[96];
    th_name(queue, sizeof queue, "dup");
    snprintf(id, sizeof id, "%s-job", queue);
    char *cfg = config("  batch: 1\n");
    char *log = log_path("dup");
    pid_t master = pool(cfg, queue, 3, log);
    enqueue(queue, id, "deploy", "{\"target\": \"t\"}", 3);
    wait_settled(queue, id, "succeeded", log);
    stop(master, log);
    cr_assert_eq(runs_of(id), 1, "the deploy command ran %d times for one job id", runs_of(id));
    cr_assert_eq(sql1("SELECT attempts FROM sluice_jobs WHERE id = $1", id), 1);
    cr_assert_eq(sql1("SELECT count(*) FROM sluice_job_history WHERE job_id = $1", id), 1);
    /* The others are acknowledged: as duplicates while it runs, or as
     * already done if a process took one after it finished. */
    cr_assert_eq(count_in(log, "event=job.duplicate") + count_in(log, "event=job.already_done"), 2,
                 "two copies should be acknowledged without running");
    cr_assert_eq(dead_letters(queue), 0);
    free(cfg);
    free(log);
}

Test(once, same_id_to_two_pools_at_once_runs_once)
{
    char queue[64];
    th_name(queue, sizeof queue, "hosts");
    char *cfg = config("  batch: 1\n");
    char *log_a = log_path("hosts-a"), *log_b = log_path("hosts-b");
    pid_t a = pool(cfg, queue, 2, log_a), b = pool(cfg, queue, 2, log_b);
    char ids[5][96];
    for (int k = 0; k < 5; k++) {
        snprintf(ids[k], sizeof ids[k], "%s-%d", queue, k);
        enqueue(queue, ids[k], "deploy", "{\"target\": \"t\"}", 4);
    }
    for (int k = 0; k < 5; k++)
        wait_settled(queue, ids[k], "succeeded", log_a);
    stop(a, log_a);
    stop(b, log_b);
    for (int k = 0; k < 5; k++) {
        cr_assert_eq(runs_of(ids[k]), 1, "%s ran %d times", ids[k], runs_of(ids[k]));
        cr_assert_eq(sql1("SELECT count(*) FROM sluice_job_history WHERE job_id = $1", ids[k]), 1);
    }
    int acked = count_in(log_a, "event=job.duplicate") + count_in(log_b, "event=job.duplicate") +
                count_in(log_a, "event=job.already_done") + count_in(log_b, "event=job.already_done");
    cr_assert_eq(acked, 15, "%d copies acknowledged without running, expected 15", acked);
    free(cfg);
    free(log_a);
    free(log_b);
}

/* ---- dead ids ------------------------------------------------------------------ */

static void touch(const char *name, bool present)
{
    char *path = sl_xasprintf("%s/%s", dir, name);
    if (present) {
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        fclose(f);
    } else {
        unlink(path);
    }
    free(path);
}

Test(once, dead_id_enqueued_again_is_acknowledged_not_run_not_dead_lettered_twice)
{
    char queue[64], id[96];
    th_name(queue, sizeof queue, "redead");
    snprintf(id, sizeof id, "%s-job", queue);
    touch("fail", true);
    char *cfg = config(NULL);
    char *log = log_path("redead");
    pid_t master = pool(cfg, queue, 2, log);
    enqueue(queue, id, "deploy", "{\"target\": \"t\"}", 1);
    wait_settled(queue, id, "dead", log);
    cr_assert_eq(dead_letters(queue), 1);
    enqueue(queue, id, "deploy", "{\"target\": \"t\"}", 2);
    wait_settled(queue, id, "dead", log);
    stop(master, log);
    cr_assert_eq(runs_of(id), 1, "a dead job ran again (%d runs)", runs_of(id));
    cr_assert_eq(dead_letters(queue), 1, "a dead job was dead-lettered again");
    cr_assert_eq(sql1("SELECT count(*) FROM sluice_job_history WHERE job_id = $1", id), 1);
    char *text = th_read_file(log);
    cr_assert(strstr(text, "event=job.duplicate") && strstr(text, "job is already dead"),
              "the log does not say why the copies were acknowledged:\n%s", text);
    free(text);
    free(cfg);
    free(log);
}

/* The dead letter of an older worker could hold two entries for one id
 * (it dead-lettered copies again); two operators retry everything at the
 * same moment: the job's next attempt runs once. */
Test(once, dead_retry_all_twice_at_once_over_two_entries_of_one_id_runs_once)
{
    char queue[64], id[96];
    th_name(queue, sizeof queue, "retry");
    snprintf(id, sizeof id, "%s-job", queue);
    touch("fail", true);
    char *cfg = config(NULL);
    char *log = log_path("retry");
    pid_t master = pool(cfg, queue, 2, log);
    enqueue(queue, id, "deploy", "{\"target\": \"t\"}", 1);
    wait_settled(queue, id, "dead", log);
    /* The second dead entry, as an older worker wrote it. */
    msgpack_sbuffer env;
    encode(queue, id, "deploy", "{\"target\": \"t\"}", 0, 0, &env);
    sl_redis *r = th_redis();
    char dead[SL_KEY_MAX];
    sl_queue_key(dead, queue, "dead");
    const char *xadd[] = { "XADD", dead, "*", "job", env.data, "error", "failed", "failed_at", "1" };
    size_t lens[] = { 4, strlen(dead), 1, 3, env.size, 5, 6, 9, 1 };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 9, xadd, lens, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    freeReplyObject(rep);
    sl_redis_free(r);
    msgpack_sbuffer_destroy(&env);
    cr_assert_eq(dead_letters(queue), 2);
    touch("fail", false);
    const char *argv[] = { SLUICE_BIN, "dead", "retry", "--all", "--queue", queue, NULL };
    pid_t ops[2];
    for (int k = 0; k < 2; k++) {
        ops[k] = fork();
        cr_assert(ops[k] >= 0);
        if (ops[k] == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, 1);
            dup2(devnull, 2);
            execv(argv[0], (char *const *)argv);
            _exit(127);
        }
    }
    /* One of them may find an entry the other has just sent back: it says
     * so and exits 1.  Neither may fail otherwise. */
    for (int k = 0; k < 2; k++) {
        int status = th_stop(ops[k], 0, 30000);
        cr_assert(status == 0 || status == 1, "sluice dead retry --all exited %d", status);
    }
    wait_settled(queue, id, "succeeded", log);
    stop(master, log);
    cr_assert_eq(runs_of(id), 2, "attempt 1 and its retry, once each: %d runs", runs_of(id));
    cr_assert_eq(dead_letters(queue), 0, "both dead entries leave the dead letter");
    cr_assert_eq(sql1("SELECT attempts FROM sluice_jobs WHERE id = $1", id), 2);
    cr_assert_eq(sql1("SELECT count(*) FROM sluice_job_history WHERE job_id = $1", id), 2);
    /* The other copy of attempt 2 is acknowledged: as a duplicate, or as
     * already done if it was requeued after attempt 2 had finished. */
    cr_assert_eq(count_in(log, "event=job.duplicate") + count_in(log, "event=job.already_done"), 1,
                 "the second copy of attempt 2 must be acknowledged");
    free(cfg);
    free(log);
}

/* ---- a crash among batch-mates ---------------------------------------------------- */

Test(once, crash_after_batch_mates_ran_keeps_their_results_and_runs_them_once)
{
    char queue[64];
    th_name(queue, sizeof queue, "mates");
    char ids[4][96];
    for (int k = 0; k < 4; k++)
        snprintf(ids[k], sizeof ids[k], "%s-%d", queue, k);
    /* One batch: two deploys, the crash, one deploy; one process. */
    enqueue(queue, ids[0], "deploy", "{\"target\": \"t\"}", 1);
    enqueue(queue, ids[1], "deploy", "{\"target\": \"t\"}", 1);
    enqueue(queue, ids[2], "crash", "{}", 1);
    enqueue(queue, ids[3], "deploy", "{\"target\": \"t\"}", 1);
    char *cfg = config("  visibility_timeout: 10m\n");
    char *log = log_path("mates");
    pid_t master = pool(cfg, queue, 1, log);
    wait_settled(queue, ids[3], "succeeded", log);
    wait_settled(queue, ids[2], "dead", log);
    stop(master, log);
    cr_assert_eq(count_in(log, "signal=6"), 1, "the crash job did not crash its worker once");
    for (int k = 0; k < 4; k++) {
        if (k == 2)
            continue;
        cr_assert_eq(runs_of(ids[k]), 1, "%s ran %d times", ids[k], runs_of(ids[k]));
        cr_assert_eq(sql1("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'succeeded'"
                          " AND attempts = 1", ids[k]), 1, "%s has no result of its one run", ids[k]);
    }
    cr_assert_eq(sql1("SELECT count(*) FROM sluice_job_history WHERE job_id = $1 AND attempt = 1"
                      " AND error LIKE 'worker crashed%'", ids[2]), 1);
    cr_assert_gt(count_in(log, "event=job.journal_recovered"), 0,
                 "the batch-mates' results did not come from the dead child's journal");
    free(cfg);
    free(log);
}

/* ---- hostile timeouts -------------------------------------------------------------- */

Test(once, timeout_of_2_63_minus_1_is_capped_and_a_negative_one_refused)
{
    char queue[64], big[96], neg[96];
    th_name(queue, sizeof queue, "tmo");
    snprintf(big, sizeof big, "%s-big", queue);
    snprintf(neg, sizeof neg, "%s-neg", queue);
    /* The cap is far below the job's sleep: only a capped deadline kills it. */
    char *cfg = config("  max_job_timeout: 300ms\n  timeout_grace: 100ms\n");
    char *log = log_path("tmo");
    pid_t master = pool(cfg, queue, 2, log);
    msgpack_sbuffer env;
    encode(queue, big, "sleep", "{\"ms\": 60000}", 1, INT64_MAX, &env);
    sl_redis *r = th_redis();
    sl_err err;
    cr_assert_eq(sl_queue_enqueue_raw(r, queue, env.data, env.size, &err), 0, "%s", err.msg);
    msgpack_sbuffer_destroy(&env);
    /* A negative timeout_ms cannot be encoded by sluice: build the map. */
    char *json = sl_xasprintf("{\"v\": 1, \"id\": \"%s\", \"kind\": \"noop\", \"queue\": \"%s\", \"args\": {},"
                              " \"attempt\": 1, \"enqueued_at\": 1, \"timeout_ms\": -5}", neg, queue);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cr_assert_eq(sl_json_to_msgpack(json, strlen(json), &pk, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_queue_enqueue_raw(r, queue, sb.data, sb.size, &err), 0, "%s", err.msg);
    msgpack_sbuffer_destroy(&sb);
    free(json);
    sl_redis_free(r);
    wait_settled(queue, big, "dead", log);
    stop(master, log);
    cr_assert_eq(sql1("SELECT count(*) FROM sluice_job_history WHERE job_id = $1 AND status = 'timed_out'"
                      " AND error LIKE '%timeout of 300 ms%'", big), 1);
    cr_assert_eq(count_in(log, "event=job.timed_out"), 1);
    cr_assert_eq(dead_letters(queue), 2, "the capped job and the negative one are dead-lettered");
    char *text = th_read_file(log);
    cr_assert(strstr(text, "field 'timeout_ms'") && strstr(text, neg), "no clear error for -5:\n%s", text);
    free(text);
    free(cfg);
    free(log);
}

/* ---- the test kinds ----------------------------------------------------------------- */

Test(once, test_kinds_exist_only_when_enabled)
{
    const char *argv[] = { SLUICE_BIN, "kinds", NULL };
    const char *off[] = { "SLUICE_TEST_KINDS=", NULL }, *on[] = { "SLUICE_TEST_KINDS=1", NULL };
    th_result r = th_run(argv, off);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "deploy") && !strstr(r.out, "crash") && !strstr(r.out, "sleep") &&
              !strstr(r.out, "fail"), "a production `sluice kinds` lists test kinds:\n%s", r.out);
    th_result_free(&r);
    r = th_run(argv, on);
    cr_assert(strstr(r.out, "crash") && strstr(r.out, "sleep"), "%s", r.out);
    th_result_free(&r);
    const char *enq[] = { SLUICE_BIN, "enqueue", "crash", "--queue", "nowhere", NULL };
    r = th_run(enq, off);
    cr_assert_neq(r.status, 0, "a production sluice enqueued a crash job");
    cr_assert(strstr(r.err, "crash"), "%s", r.err);
    th_result_free(&r);
}

/* ---- oversized entries ---------------------------------------------------------------- */

/* VmHWM (peak resident set) of pid, in kB; -1 if unreadable. */
static long long peak_rss_kb(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    char *text = th_read_file(path);
    const char *p = text ? strstr(text, "VmHWM:") : NULL;
    long long kb = p ? atoll(p + 6) : -1;
    free(text);
    return kb;
}

static long only_child(pid_t master)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", (long)master, (long)master);
    char *text = th_read_file(path);
    long pid = text ? atol(text) : 0;
    free(text);
    return pid;
}

typedef struct want_text {
    const char *path;
    const char *text;
} want_text;

static bool has_text(void *arg)
{
    want_text *w = arg;
    return count_in(w->path, w->text) > 0;
}

typedef struct dead_count {
    const char *queue;
    long long n;
} dead_count;

static bool has_dead(void *arg)
{
    dead_count *d = arg;
    return dead_letters(d->queue) >= d->n;
}

Test(once, oversized_entries_are_dead_lettered_unread_and_memory_stays_bounded)
{
    char queue[64], id[96];
    th_name(queue, sizeof queue, "big");
    snprintf(id, sizeof id, "%s-warm", queue);
    char *cfg = config("  max_payload: 1024\n  batch: 16\n  visibility_timeout: 2s\n");
    char *log = log_path("big");
    pid_t master = pool(cfg, queue, 1, log);
    enqueue(queue, id, "noop", "{}", 1);
    wait_settled(queue, id, "succeeded", log);
    long child = only_child(master);
    cr_assert_gt(child, 0);
    long long before = peak_rss_kb(child);
    cr_assert_gt(before, 0);
    /* Twelve valid envelopes of 1 MB each, above max_payload (1 KB here;
     * small enough not to stall the Redis other tests share), then a small
     * job, all enqueued while the queue is paused: the child finds them
     * all waiting when it reads next. */
    sl_redis *r = th_redis();
    sl_err err;
    cr_assert_eq(sl_queue_set_paused(r, queue, true, &err), 0, "%s", err.msg);
    want_text w = { log, "event=queue.paused" };
    cr_assert(th_wait(has_text, &w, 30000), "the worker did not see the pause");
    const size_t size = 1u << 20;
    const int n = 12;
    char *pad = sl_xmalloc(size + 32);
    memcpy(pad, "{\"pad\": \"", 9);
    memset(pad + 9, 'x', size);
    memcpy(pad + 9 + size, "\"}", 3);
    for (int k = 0; k < n; k++) {
        char big[96];
        snprintf(big, sizeof big, "%s-%d", queue, k);
        enqueue(queue, big, "noop", pad, 1);
    }
    free(pad);
    snprintf(id, sizeof id, "%s-after", queue);
    enqueue(queue, id, "noop", "{}", 1);
    cr_assert_eq(sl_queue_set_paused(r, queue, false, &err), 0, "%s", err.msg);
    wait_settled(queue, id, "succeeded", log);
    dead_count d = { queue, n };
    cr_assert(th_wait(has_dead, &d, 60000), "only %lld of %d oversized entries were dead-lettered",
              dead_letters(queue), n);
    cr_assert_eq(only_child(master), child, "the child was replaced: it died");
    long long after = peak_rss_kb(child);
    stop(master, log);
    fprintf(stderr, "once: oversized: child peak RSS %lld kB before, %lld kB after %d entries of %zu MB\n",
            before, after, n, size >> 20);
    /* Unbounded, one batch would hold all twelve (several copies of each
     * in flight: over 30 MB).  Now none is fetched, or one at a time
     * (with its copies in hiredis) if a read was cut short and the
     * entries were reclaimed one by one. */
    if (!ASAN_BUILD)
        cr_assert_lt(after - before, 5 * (long long)(size >> 10),
                     "the child's peak RSS grew by %lld kB reading %d entries of %zu kB", after - before,
                     n, size >> 10);
    cr_assert_eq(dead_letters(queue), n, "nothing lost, nothing extra");
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "dead");
    const char *xr[] = { "XRANGE", key, "-", "+" };
    redisReply *rep = sl_redis_command(r, 4, xr, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    for (size_t i = 0; i < rep->elements; i++) {
        redisReply *f = rep->element[i]->element[1];
        cr_assert_str_eq(f->element[0]->str, "job");
        cr_assert_gt(f->element[1]->len, size, "the dead letter must keep the bytes as received");
        cr_assert(strstr(f->element[3]->str, "over worker.max_payload"), "%s", f->element[3]->str);
    }
    freeReplyObject(rep);
    sl_redis_free(r);
    free(cfg);
    free(log);
}
