/* test_notify.c: gate notifications end to end — a real sluice-scheduler,
 * a real sluice-worker pool serving the notify queue, a real API server
 * for runs and decisions, and a local HTTP receiver (tests/support/httpd.h)
 * standing in for the webhook and Slack endpoints.
 *
 * Checked: the webhook body's fields and its signature (verified here with
 * the channel's secret, as a receiver would), the decision event, the
 * Slack body, a reminder before a timeout and the timeout event with a
 * per-gate channel list overriding the pipeline's, retries after 500s
 * ending in one delivery, one delivery per event when the scheduler is
 * SIGKILLed just before and just after its XADD, forged notify jobs (raw
 * XADD unsigned, and signed with another key) refused with nothing sent,
 * and hostile text (comment, instructions) arriving JSON-escaped and
 * intact.
 *
 * Tests that run sluice-scheduler share the database's leader lock
 * (CMakeLists.txt: RESOURCE_LOCK); tests in this binary run one at a time. */
#include "apiserver.h"
#include "harness.h"
#include "httpd.h"
#include "kindtest.h"

#include "args.h"
#include "buf.h"
#include "envelope.h"
#include "http.h"
#include "jobsig.h"
#include "json.h"
#include "mem.h"
#include "queue.h"
#include "sha256.h"
#include "sign.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SECRET "s3cret-for-the-hook"
#define PUBLIC_URL "https://sluice.example.com"

static char dir[64];
static char queue[96];        /* this test's notify queue */
static char *config;
static pid_t pool, sched;
static char *pool_log, *sched_log;
static th_server api;
static char api_env[96];
static th_httpd *rx;          /* the receiver */
static const char *const users[] = { "alice", "bob", "carol" };
#define NUSERS 3
static char *tokens[NUSERS];

static void setup(void)
{
    th_migrate();
    snprintf(dir, sizeof dir, "/tmp/sluice-notify-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    th_name(queue, sizeof queue, "nq");
    th_keypair(dir, "sched");
    th_keypair(dir, "attacker");
    char *secret = sl_xasprintf("%s/hook.secret", dir);
    th_write_file(secret, SECRET);
    free(secret);
    rx = th_httpd_start();
    th_httpd_route(rx, "/hook", &(th_route){ .status = 200 });
    th_httpd_route(rx, "/slack", &(th_route){ .status = 200, .body = "ok" });
    th_httpd_route(rx, "/flaky", &(th_route){ .status = 200, .fail_first = 2 });
    char *hook = th_httpd_url(rx, "/hook"), *slack = th_httpd_url(rx, "/slack"),
         *flaky = th_httpd_url(rx, "/flaky");
    config = sl_xasprintf("%s/sluice.config", dir);
    char *text = sl_xasprintf(
        "worker:\n  block: 100ms\n  batch: 8\n  retry_initial: 100ms\n  retry_max: 300ms\n"
        "  scheduler_public_keys: [%1$s/sched.pub]\n"
        "scheduler:\n  reconcile: 1s\n  standby_poll: 100ms\n  pipelines: %1$s\n"
        "  signing_key_file: %1$s/sched.key\n"
        "api:\n  rate_limit: 10000\n  rate_burst: 10000\n  public_url: " PUBLIC_URL "/\n"
        "notify:\n  queue: %2$s\n  remind_before: 2s\n  allow_addresses: [127.0.0.1/32]\n"
        "  channels:\n"
        "    hook: { type: webhook, url: '%3$s', secret_file: %1$s/hook.secret }\n"
        "    slack: { type: slack, url: '%4$s' }\n"
        "    flaky: { type: webhook, url: '%5$s', secret_file: %1$s/hook.secret }\n",
        dir, queue, hook, slack, flaky);
    th_write_file(config, text);
    free(text);
    free(hook);
    free(slack);
    free(flaky);
    th_serve_start(&api, config, false, NULL);
    snprintf(api_env, sizeof api_env, "SLUICE_API_URL=%s", api.url);
    for (size_t i = 0; i < NUSERS; i++)
        tokens[i] = th_token(config, users[i], "trigger,approve,read", NULL);
}

static void stop_scheduler(void)
{
    if (sched > 0) {
        int st = th_stop(sched, SIGTERM, 20000);
        cr_expect_eq(st, 0, "scheduler did not stop cleanly (%d)", st);
        th_check_log(sched_log, "the scheduler");
        sched = 0;
    }
}

static void teardown(void)
{
    if (api.pid > 0) {
        th_serve_stop(&api);
        api.pid = 0;
    }
    for (size_t i = 0; i < NUSERS; i++) {
        free(tokens[i]);
        tokens[i] = NULL;
    }
    stop_scheduler();
    if (pool > 0) {
        int st = th_stop(pool, SIGTERM, 20000);
        cr_expect_eq(st, 0, "worker did not stop cleanly (%d)", st);
        th_check_log(pool_log, "the worker pool");
        pool = 0;
    }
    th_httpd_free(rx);
    rx = NULL;
}

TestSuite(notify, .init = setup, .fini = teardown, .timeout = 110);

/* Starts the scheduler; crash_at: NULL, or where it SIGKILLs itself
 * (scheduler/notify.h: SL_NOTIFY_CRASH_ENV). */
static void start_scheduler(const char *crash_at)
{
    if (sched_log == NULL)
        sched_log = sl_xasprintf("%s/scheduler.log", dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(sched_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        if (crash_at)
            setenv("SLUICE_TEST_NOTIFY_CRASH", crash_at, 1);
        else
            unsetenv("SLUICE_TEST_NOTIFY_CRASH");
        execl(SLUICE_SCHEDULER_BIN, SLUICE_SCHEDULER_BIN, "--config", config, "--pipelines", dir,
              (char *)NULL);
        _exit(127);
    }
    sched = pid;
}

static void start_pool(void)
{
    pool_log = sl_xasprintf("%s/worker.log", dir);
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "2", NULL };
    pool = th_worker_start(args, pool_log);
}

static void pipeline(const char *name, const char *fmt)
{
    char *text = sl_xasprintf(fmt, name);
    char *path = sl_xasprintf("%s/%s.yaml", dir, name);
    th_write_file(path, text);
    free(text);
    free(path);
}

/* `sluice ARGS...` as user, through the test's API server. */
static th_result as(const char *user, const char *first, ...)
{
    const char *argv[32] = { SLUICE_BIN, first };
    int n = 2;
    va_list ap;
    va_start(ap, first);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 28)
        argv[n++] = a;
    va_end(ap);
    argv[n++] = "--config";
    argv[n++] = config;
    argv[n] = NULL;
    const char *tok = NULL;
    for (size_t i = 0; i < NUSERS; i++)
        tok = strcmp(users[i], user) == 0 ? tokens[i] : tok;
    char *t = sl_xasprintf("SLUICE_TOKEN=%s", tok ? tok : "");
    const char *env[] = { api_env, t, NULL };
    th_result r = th_run(argv, env);
    free(t);
    return r;
}

static char *start_run(const char *name)
{
    th_result r = as("carol", "run", name, NULL);
    cr_assert_eq(r.status, 0, "sluice run %s: %s", name, r.err);
    char *id = sl_xstrdup(r.out);
    id[strcspn(id, "\n")] = '\0';
    th_result_free(&r);
    return id;
}

typedef struct hits_want {
    const char *path;
    int n;
} hits_want;

static bool hits_reached(void *arg)
{
    hits_want *w = arg;
    return th_httpd_hits(rx, w->path) >= w->n;
}

static void wait_hits(const char *path, int n)
{
    hits_want w = { path, n };
    if (!th_wait(hits_reached, &w, 30000)) {
        char *s = th_read_file(sched_log), *p = th_read_file(pool_log);
        cr_assert_fail("%s got %d requests, want %d\nscheduler:\n%s\nworker:\n%s", path,
                       th_httpd_hits(rx, path), n, s ? s : "", p ? p : "");
    }
}

static bool sql_true(void *arg)
{
    const char **a = arg;
    return th_pg_number(a[0], a[1] ? 1 : 0, a[1] ? &a[1] : NULL) == 1;
}

/* Waits until sql (one optional parameter) returns 1. */
static void wait_sql(const char *sql, const char *param, const char *what)
{
    const char *a[] = { sql, param };
    cr_assert(th_wait(sql_true, a, 30000), "timed out waiting for %s", what);
}

/* Every notification of run recorded, enqueued, its job finished and its
 * queue drained (nothing more can arrive at the receiver). */
static void wait_settled(const char *run, int events)
{
    char *sql = sl_xasprintf("SELECT (count(*) = %d AND bool_and(n.enqueued)"
                             " AND bool_and(j.status IS NOT NULL AND j.status <> 'retrying'))::int"
                             " FROM sluice_notifications n LEFT JOIN sluice_jobs j ON j.id = n.job_id"
                             " WHERE n.run_id = $1", events);
    wait_sql(sql, run, "the notifications to settle");
    free(sql);
    sl_redis *r = th_redis();
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    for (int i = 0; i < 1500; i++) {
        const char *argv[] = { "XLEN", key };
        redisReply *rep = sl_redis_command(r, 2, argv, NULL, NULL);
        bool empty = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0;
        freeReplyObject(rep);
        if (empty)
            break;
        usleep(20000);
    }
    sl_redis_free(r);
}

/* The body as a msgpack map (the test fails if it is not a JSON object). */
typedef struct parsed {
    msgpack_sbuffer sb;
    msgpack_unpacked up;
} parsed;

static const msgpack_object *parse(parsed *p, const char *body)
{
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p->sb, msgpack_sbuffer_write);
    sl_err e;
    cr_assert_eq(sl_json_to_msgpack(body, strlen(body), &pk, &e), 0, "not JSON (%s): %s", e.msg, body);
    msgpack_unpacked_init(&p->up);
    cr_assert_eq(msgpack_unpack_next(&p->up, p->sb.data, p->sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(p->up.data.type, MSGPACK_OBJECT_MAP, "not an object: %s", body);
    return &p->up.data;
}

static void parsed_free(parsed *p)
{
    msgpack_unpacked_destroy(&p->up);
    msgpack_sbuffer_destroy(&p->sb);
}

static void expect_str(const msgpack_object *m, const char *key, const char *want)
{
    char *v = NULL;
    sl_err e;
    cr_assert_eq(sl_args_str(m, key, false, &v, &e), 0, "%s: %s", key, e.msg);
    cr_assert(v != NULL && strcmp(v, want) == 0, "%s is '%s', want '%s'", key, v ? v : "(absent)", want);
    free(v);
}

/* The list under key as "a,b". */
static void expect_list(const msgpack_object *m, const char *key, const char *want)
{
    const msgpack_object *o = sl_args_get(m, key);
    cr_assert(o && o->type == MSGPACK_OBJECT_ARRAY, "%s is not a list", key);
    sl_buf b = SL_BUF_INIT;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        cr_assert_eq(o->via.array.ptr[i].type, MSGPACK_OBJECT_STR);
        sl_buf_printf(&b, "%s%.*s", i ? "," : "", (int)o->via.array.ptr[i].via.str.size,
                      o->via.array.ptr[i].via.str.ptr);
    }
    cr_assert_str_eq(sl_buf_str(&b), want, "%s", key);
    sl_buf_free(&b);
}

/* Verifies the last request to path as a receiver would: the HMAC under
 * SECRET of "TIMESTAMP." + body must be the signature header's v1. */
static void expect_signed(const char *path, const char *body)
{
    char *ts = th_httpd_last_header(rx, path, "X-Sluice-Timestamp");
    char *sig = th_httpd_last_header(rx, path, "X-Sluice-Signature");
    cr_assert(ts && sig, "signature headers missing");
    cr_assert(strncmp(sig, "v1=", 3) == 0, "signature '%s'", sig);
    char *msg = sl_xasprintf("%s.%s", ts, body);
    unsigned char mac[SL_SHA256_LEN];
    char hex[SL_SHA256_HEX];
    sl_hmac_sha256(SECRET, strlen(SECRET), msg, strlen(msg), mac);
    sl_sha256_hex(mac, hex);
    cr_assert_str_eq(sig + 3, hex, "the signature does not verify");
    /* A receiver rejects a body changed in transit, or a replay under a new timestamp. */
    char *forged = sl_xasprintf("%lld.%s", atoll(ts) + 600, body);
    sl_hmac_sha256(SECRET, strlen(SECRET), forged, strlen(forged), mac);
    sl_sha256_hex(mac, hex);
    cr_assert_str_neq(sig + 3, hex);
    cr_assert(atoll(ts) > 1700000000, "timestamp '%s' is not Unix seconds", ts);
    free(forged);
    free(msg);
    free(ts);
    free(sig);
}

#define HOSTILE "\"quoted\" </script><img src=x onerror=alert(1)> \\ back\tslash & <b>"

Test(notify, webhook_body_signature_and_decision)
{
    char name[64];
    th_name(name, sizeof name, "nw");
    pipeline(name, "name: %s\nnotify: [hook]\nsteps:\n"
             "  - id: go\n    approval:\n      approvers: [alice, bob]\n      required: 2\n"
             "      timeout: 1h\n      instructions: 'check \"staging\" <b>first</b>'\n");
    start_pool();
    start_scheduler(NULL);
    char *run = start_run(name);
    wait_hits("/hook", 1);
    char *body = th_httpd_last_body(rx, "/hook");
    parsed p;
    const msgpack_object *m = parse(&p, body);
    expect_str(m, "event", "opened");
    expect_str(m, "run", run);
    expect_str(m, "gate", "go");
    expect_str(m, "pipeline", name);
    expect_str(m, "channel", "hook");
    expect_str(m, "triggered_by", "carol");
    expect_str(m, "instructions", "check \"staging\" <b>first</b>");
    expect_list(m, "approvers", "alice,bob");
    expect_list(m, "approvals", "");
    char *link = sl_xasprintf(PUBLIC_URL "/runs/%s/gates/go", run);
    expect_str(m, "link", link);
    const msgpack_object *dl = sl_args_get(m, "deadline");
    cr_assert(dl && dl->type == MSGPACK_OBJECT_STR && dl->via.str.size >= 20, "deadline missing");
    cr_assert_null(sl_args_get(m, "decision"), "an opened gate has no decision");
    char *evh = th_httpd_last_header(rx, "/hook", "X-Sluice-Event");
    cr_assert(evh && strcmp(evh, "opened") == 0);
    free(evh);
    char *id = NULL;
    sl_err e;
    cr_assert_eq(sl_args_str(m, "id", true, &id, &e), 0);
    char *dh = th_httpd_last_header(rx, "/hook", "X-Sluice-Delivery");
    cr_assert(dh && strcmp(dh, id) == 0, "delivery header %s, id %s", dh, id);
    free(dh);
    expect_signed("/hook", body);
    parsed_free(&p);
    free(body);

    th_result r = as("alice", "approve", run, "go", "--comment", "one", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    r = as("bob", "approve", run, "go", "--comment", HOSTILE, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    wait_hits("/hook", 2);
    body = th_httpd_last_body(rx, "/hook");
    m = parse(&p, body);
    expect_str(m, "event", "decided");
    expect_str(m, "decision", "approved");
    expect_str(m, "decided_by", "bob");
    expect_str(m, "comment", HOSTILE);
    expect_list(m, "approvals", "alice,bob");
    expect_str(m, "link", link);
    char *id2 = NULL;
    cr_assert_eq(sl_args_str(m, "id", true, &id2, &e), 0);
    cr_assert_str_neq(id, id2, "each event has its own delivery id");
    expect_signed("/hook", body);
    parsed_free(&p);
    free(body);
    wait_settled(run, 2);
    cr_assert_eq(th_httpd_hits(rx, "/hook"), 2, "one delivery per event");
    free(id);
    free(id2);
    free(link);
    free(run);
}

Test(notify, slack_body_and_hostile_text)
{
    char name[64];
    th_name(name, sizeof name, "ns");
    pipeline(name, "name: %s\nnotify: [slack]\nsteps:\n"
             "  - id: go\n    approval:\n      approvers: [alice]\n");
    start_pool();
    start_scheduler(NULL);
    char *run = start_run(name);
    wait_hits("/slack", 1);
    char *body = th_httpd_last_body(rx, "/slack");
    parsed p;
    const msgpack_object *m = parse(&p, body);
    cr_assert_eq(m->via.map.size, 1, "a Slack body has only text: %s", body);
    char *text = NULL;
    sl_err e;
    cr_assert_eq(sl_args_str(m, "text", true, &text, &e), 0);
    char *want = sl_xasprintf("<" PUBLIC_URL "/runs/%s/gates/go|Open the gate>", run);
    cr_assert(strstr(text, want), "no link %s in: %s", want, text);
    cr_assert(strstr(text, "Approval needed") && strstr(text, name) && strstr(text, "alice"), "%s", text);
    free(want);
    free(text);
    parsed_free(&p);
    free(body);
    th_result r = as("alice", "reject", run, "go", "--comment", HOSTILE, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    wait_hits("/slack", 2);
    body = th_httpd_last_body(rx, "/slack");
    m = parse(&p, body);
    cr_assert_eq(sl_args_str(m, "text", true, &text, &e), 0);
    /* Slack's markup characters are escaped; JSON's are escaped by the encoder
     * (the body parsed, and the quote and backslash came back as written). */
    cr_assert(strstr(text, "was rejected by alice"), "%s", text);
    cr_assert(strstr(text, "\"quoted\" &lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; \\ back\tslash "
                           "&amp; &lt;b&gt;"), "%s", text);
    cr_assert_null(strstr(text, "<script"), "%s", text);
    free(text);
    parsed_free(&p);
    free(body);
    wait_settled(run, 2);
    cr_assert_eq(th_httpd_hits(rx, "/slack"), 2);
    free(run);
}

Test(notify, reminder_and_timeout_on_the_gates_channels)
{
    char name[64];
    th_name(name, sizeof name, "nr");
    /* The gate's own list replaces the pipeline's: nothing reaches /slack. */
    pipeline(name, "name: %s\nnotify: [slack]\nsteps:\n"
             "  - id: go\n    approval:\n      approvers: [alice]\n      timeout: 4s\n"
             "      on_timeout: reject\n      notify: [hook]\n");
    start_pool();
    start_scheduler(NULL);
    char *run = start_run(name);
    wait_hits("/hook", 3);
    char *body = th_httpd_last_body(rx, "/hook");
    parsed p;
    const msgpack_object *m = parse(&p, body);
    expect_str(m, "event", "timed_out");
    expect_str(m, "decision", "rejected");
    expect_str(m, "decided_by", "sluice-scheduler");
    expect_signed("/hook", body);
    parsed_free(&p);
    free(body);
    wait_settled(run, 3);
    const char *pr[] = { run };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_notifications WHERE run_id = $1 AND"
                              " event IN ('opened', 'reminder', 'timed_out') AND channel = 'hook'", 1, pr), 3);
    cr_assert_eq(th_pg_number("SELECT (min(emitted_at) FILTER (WHERE event = 'reminder')"
                              " < min(emitted_at) FILTER (WHERE event = 'timed_out'))::int"
                              " FROM sluice_notifications WHERE run_id = $1", 1, pr), 1,
                 "the reminder came before the timeout");
    cr_assert_eq(th_httpd_hits(rx, "/hook"), 3);
    cr_assert_eq(th_httpd_hits(rx, "/slack"), 0, "the gate's notify: replaces the pipeline's");
    free(run);
}

Test(notify, retried_after_500_then_delivered_once)
{
    char name[64];
    th_name(name, sizeof name, "nf");
    pipeline(name, "name: %s\nnotify: [flaky]\nsteps:\n"
             "  - id: go\n    approval:\n      approvers: [alice]\n");
    start_pool();
    start_scheduler(NULL);
    char *run = start_run(name);
    wait_settled(run, 1);
    const char *pr[] = { run };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_notifications n JOIN sluice_jobs j"
                              " ON j.id = n.job_id WHERE n.run_id = $1 AND j.status = 'succeeded'"
                              " AND j.attempts = 3", 1, pr), 1, "two failed attempts (500), the third delivered");
    cr_assert_eq(th_httpd_hits(rx, "/flaky"), 3, "500, 500, then one delivery");
    char *body = th_httpd_last_body(rx, "/flaky");
    expect_signed("/flaky", body);
    free(body);
    free(run);
}

static void sigkill_at(const char *point)
{
    char name[64];
    th_name(name, sizeof name, "nk");
    pipeline(name, "name: %s\nnotify: [hook]\nsteps:\n"
             "  - id: go\n    approval:\n      approvers: [alice]\n");
    start_pool();
    start_scheduler(point);
    char *run = start_run(name);
    int st;
    pid_t w = -1;
    for (int i = 0; i < 1500 && (w = waitpid(sched, &st, WNOHANG)) == 0; i++)
        usleep(20000);
    cr_assert_eq(w, sched, "the scheduler did not crash at %s", point);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the scheduler ended otherwise (%d)", st);
    sched = 0;
    const char *pr[] = { run };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_notifications WHERE run_id = $1"
                              " AND NOT enqueued", 1, pr), 1, "the event was recorded, not marked sent");
    start_scheduler(NULL);
    wait_settled(run, 1);
    cr_assert_eq(th_httpd_hits(rx, "/hook"), 1, "one delivery across the crash at %s", point);
    char *log = th_read_file(sched_log);
    cr_assert(log && strstr(log, "event=notify.resend"), "the restarted scheduler sent it again");
    free(log);
    th_result r = as("alice", "approve", run, "go", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    wait_settled(run, 2);
    cr_assert_eq(th_httpd_hits(rx, "/hook"), 2);
    free(run);
}

Test(notify, sigkill_after_xadd_delivers_once)
{
    sigkill_at("after_xadd");
    /* The copy sent again reached the worker, which ran it not a second time
     * (already done, or a duplicate of the entry still in hand). */
    char *log = th_read_file(pool_log);
    cr_assert(log && (strstr(log, "event=job.already_done job=notify.") || strstr(log, "event=job.duplicate job=notify.")),
              "the worker saw the copy:\n%s", log ? log : "");
    free(log);
}

Test(notify, sigkill_before_xadd_delivers_once)
{
    sigkill_at("before_xadd");
}

/* A notify job not signed by the scheduler: raw, or signed by another key. */
static void forge(sl_redis *r, const char *id, const char *keyfile)
{
    const char *json = "{\"channel\":\"hook\",\"event\":\"decided\",\"decision\":\"approved\","
                       "\"run\":\"r\",\"gate\":\"go\"}";
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    sl_err e;
    cr_assert_eq(sl_json_to_msgpack(json, strlen(json), &pk, &e), 0);
    sl_job job = { .id = sl_xstrdup(id), .kind = sl_xstrdup("notify"), .queue = sl_xstrdup(queue),
                   .args = sl_xmalloc(sb.size), .args_len = sb.size, .attempt = 1, .enqueued_at = 1 };
    memcpy(job.args, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (keyfile) {
        sl_sign_key *k = sl_sign_load_private(keyfile, &e);
        cr_assert_not_null(k, "%s", e.msg);
        cr_assert_eq(sl_jobsig_sign(k, &job, &e), 0);
        sl_sign_key_free(k);
    }
    cr_assert_eq(sl_queue_enqueue(r, &job, &e), 0, "%s", e.msg);
    sl_job_clear(&job);
}

static bool dead_two(void *arg)
{
    sl_redis *r = arg;
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "dead");
    const char *argv[] = { "XLEN", key };
    redisReply *rep = sl_redis_command(r, 2, argv, NULL, NULL);
    bool yes = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 2;
    freeReplyObject(rep);
    return yes;
}

Test(notify, forged_xadd_refused_nothing_sent)
{
    start_pool();
    sl_redis *r = th_redis();
    char id1[96], id2[96];
    th_name(id1, sizeof id1, "forged-raw");
    th_name(id2, sizeof id2, "forged-signed");
    forge(r, id1, NULL);
    char *key = sl_xasprintf("%s/attacker.key", dir);
    forge(r, id2, key);
    free(key);
    cr_assert(th_wait(dead_two, r, 30000), "the forged jobs did not reach the dead letter");
    sl_redis_free(r);
    cr_assert_eq(th_httpd_hits(rx, "/hook"), 0, "a forged notification was sent");
    const char *p[] = { id1, id2 };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id IN ($1, $2)", 2, p), 0,
                 "a refused job took a row");
    char *log = th_read_file(pool_log);
    cr_assert(log && strstr(log, "kind 'notify' is always protected and the envelope carries no scheduler"),
              "%s", log ? log : "");
    cr_assert(strstr(log, "kind 'notify' is always protected and its signature does not verify"), "%s", log);
    free(log);
}

/* ---- the kind alone, in this process (tests/support/kindtest.h) ---------------- */

/* A configuration with channel hook at url; allow: notify.allow_addresses. */
static char *kind_config(const char *url, const char *allow, const char *secret_line)
{
    return sl_xasprintf("notify:\n%s  channels:\n"
                        "    hook: { type: webhook, url: '%s'%s }\n"
                        "    chat: { type: slack, url: '%s' }\n"
                        "    bare: { type: webhook }\n",
                        allow ? allow : "", url, secret_line ? secret_line : "", url);
}

Test(notify_kind, refusals_are_permanent_and_send_nothing)
{
    th_httpd *s = th_httpd_start();
    th_httpd_route(s, "/hook", &(th_route){ .status = 200 });
    th_httpd_route(s, "/gone", &(th_route){ .status = 410, .body = "no such hook" });
    char *url = th_httpd_url(s, "/hook"), *gone = th_httpd_url(s, "/gone");
    char *dirp = th_tempdir("sluice-notify-kind");
    char *secret = sl_xasprintf("%s/secret", dirp);
    FILE *f = fopen(secret, "w");
    cr_assert_not_null(f);
    fputs(SECRET, f);
    cr_assert_eq(fclose(f), 0);
    char *sline = sl_xasprintf(", secret_file: %s", secret);
    const char *args = "{\"channel\": \"hook\", \"event\": \"opened\", \"gate\": \"go\"}";

    /* loopback without notify.allow_addresses: refused before a byte is sent */
    char *cfg = kind_config(url, NULL, sline);
    th_call c = th_kind_call("notify", cfg, args, 0);
    th_expect_fail(&c, SL_EPERMANENT, "is loopback: refused (notify.allow_addresses does not allow it)", NULL);
    cr_assert_eq(th_httpd_hits(s, "/hook"), 0, "a request reached a refused address");
    free(cfg);

    const char *allow = "  allow_addresses: [127.0.0.1/32]\n";
    cfg = kind_config(url, allow, NULL);   /* a webhook without a secret */
    c = th_kind_call("notify", cfg, args, 0);
    th_expect_fail(&c, SL_EPERMANENT, "webhook without secret_env or secret_file", NULL);
    c = th_kind_call("notify", cfg, "{\"channel\": \"nope\"}", 0);
    th_expect_fail(&c, SL_EPERMANENT, "no channel 'nope' under notify.channels", NULL);
    c = th_kind_call("notify", cfg, "{\"channel\": \"bare\"}", 0);
    th_expect_fail(&c, SL_EPERMANENT, "notify.channels.bare has no url", NULL);
    c = th_kind_call("notify", cfg, "{\"event\": \"opened\"}", 0);
    cr_assert_eq(c.rc, -1, "a job without a channel ran");
    th_call_free(&c);
    cr_assert_eq(th_httpd_hits(s, "/hook"), 0);
    free(cfg);

    /* a 4xx is not retried */
    cfg = kind_config(gone, allow, sline);
    c = th_kind_call("notify", cfg, args, 0);
    th_expect_fail(&c, SL_EPERMANENT, "answered 410", NULL);
    free(cfg);

    /* delivered: outputs name the channel and the answer */
    cfg = kind_config(url, allow, sline);
    c = th_kind_call("notify", cfg, args, 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, "\"http_status\":200") && th_has(c.outputs, "\"channel\":\"hook\""), "%s", c.outputs);
    cr_assert_eq(th_httpd_hits(s, "/hook"), 1);
    char *body = th_httpd_last_body(s, "/hook");
    char *want = sl_xasprintf("{\"id\":\"%s\",", c.id);
    cr_assert(strncmp(body, want, strlen(want)) == 0, "%s", body);
    free(want);
    th_call_free(&c);
    free(body);
    free(cfg);
    th_rmtree(dirp);
    free(dirp);
    free(secret);
    free(sline);
    free(url);
    free(gone);
    th_httpd_free(s);
}
