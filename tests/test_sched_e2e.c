/* test_sched_e2e.c: pipelines run end to end by real processes — a real
 * sluice-scheduler (or two) and a real sluice-worker pool against the test
 * servers — driven through the real `sluice` CLI: DAG order, fan-out and
 * fan-in, `if`, templating with outputs, a failing step failing the run,
 * approval gates (N of M, every refusal, reject, timeouts both ways,
 * inputs reaching a later step, concurrent approvals), the audit chain and
 * its tamper detection, cron with an injected clock, SIGKILL of the
 * scheduler at random instants, and leader takeover.  Runs are started and
 * gates decided through a real API server (`sluice serve`) with one API
 * token per user: nobody's identity is a name typed on the command line.
 *
 * All scheduler tests live in this one binary so that they never run in
 * parallel with each other: there is one leader lock per database.  Each
 * test uses its own pipeline names and queues. */
#include "apiserver.h"
#include "harness.h"

#include "clock.h"
#include "config.h"
#include "db.h"
#include "engine.h"
#include "envelope.h"
#include "gate.h"
#include "mem.h"
#include "pipeline.h"
#include "queue.h"
#include "workerreg.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

TH_REGISTER_CONFIG_SECTIONS

static char dir[64];          /* this test's pipelines */
static char queue[96];        /* this test's queue */
static char *config;          /* scheduler + worker configuration */
static pid_t pool, sched[2];
static char *pool_log, *sched_log[2];
static th_server api;         /* the API server of this test */
static char api_env[96];      /* SLUICE_API_URL=... */

/* One token per user of the tests, scopes trigger, approve, read. */
static const char *const users[] = { "alice", "bob", "carol", "dave", "erin", "mallory" };
#define NUSERS (sizeof users / sizeof users[0])
static char *tokens[NUSERS];

static void setup(void)
{
    th_migrate();
    snprintf(dir, sizeof dir, "/tmp/sluice-sched-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    th_name(queue, sizeof queue, "sq");
    config = sl_xasprintf("%s/sluice.config", dir);   /* not *.yaml: not a pipeline */
    char *text = sl_xasprintf("worker:\n  block: 100ms\n  batch: 8\n"
                              "scheduler:\n  reconcile: 1s\n  standby_poll: 100ms\n  pipelines: %s\n"
                              "groups:\n  leads: [bob, carol]\n"
                              "api:\n  rate_limit: 10000\n  rate_burst: 10000\n", dir);
    th_write_file(config, text);
    free(text);
    th_serve_start(&api, config, false, NULL);
    snprintf(api_env, sizeof api_env, "SLUICE_API_URL=%s", api.url);
    for (size_t i = 0; i < NUSERS; i++)
        tokens[i] = th_token(config, users[i], "trigger,approve,read", NULL);
}

static const char *token_of(const char *user)
{
    for (size_t i = 0; i < NUSERS; i++) {
        if (strcmp(users[i], user) == 0)
            return tokens[i];
    }
    cr_assert_fail("no token for %s", user);
    return NULL;
}

static void stop_all(void)
{
    if (api.pid > 0) {
        th_serve_stop(&api);
        api.pid = 0;
    }
    for (size_t i = 0; i < NUSERS; i++) {
        free(tokens[i]);
        tokens[i] = NULL;
    }
    for (int i = 0; i < 2; i++) {
        if (sched[i] > 0) {
            int st = th_stop(sched[i], SIGTERM, 20000);
            cr_expect_eq(st, 0, "scheduler %d did not stop cleanly (%d)", i, st);
            th_check_log(sched_log[i], "the scheduler");
            sched[i] = 0;
        }
    }
    if (pool > 0) {
        int st = th_stop(pool, SIGTERM, 20000);
        cr_expect_eq(st, 0, "worker did not stop cleanly (%d)", st);
        th_check_log(pool_log, "the worker pool");
        pool = 0;
    }
}

TestSuite(sched, .init = setup, .fini = stop_all, .timeout = 110);

static pid_t start_scheduler(int i)
{
    if (sched_log[i] == NULL)
        sched_log[i] = sl_xasprintf("%s/scheduler%d.log", dir, i);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(sched_log[i], O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        execl(SLUICE_SCHEDULER_BIN, SLUICE_SCHEDULER_BIN, "--config", config, "--pipelines", dir,
              (char *)NULL);
        _exit(127);
    }
    sched[i] = pid;
    return pid;
}

static void start_pool(void)
{
    pool_log = sl_xasprintf("%s/worker.log", dir);
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "2", NULL };
    pool = th_worker_start(args, pool_log);
}

/* Writes pipeline NAME from a printf template in which every %1$s is the
 * pipeline's name and %2$s the test's queue. */
static void pipeline(const char *name, const char *fmt)
{
    char *text = sl_xasprintf(fmt, name, queue);
    char *path = sl_xasprintf("%s/%s.yaml", dir, name);
    th_write_file(path, text);
    free(text);
    free(path);
}

/* Runs `sluice ARGS...` with the test's configuration, as user (NULL: no
 * token), through the test's API server. */
static th_result vcli(const char *user, const char *first, va_list ap)
{
    const char *argv[32] = { SLUICE_BIN, first };
    int n = 2;
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 28)
        argv[n++] = a;
    argv[n++] = "--config";
    argv[n++] = config;
    argv[n] = NULL;
    char *tok = sl_xasprintf("SLUICE_TOKEN=%s", user ? token_of(user) : "");
    const char *env[] = { api_env, tok, NULL };
    th_result r = th_run(argv, env);
    free(tok);
    return r;
}

static th_result cli(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    th_result r = vcli(NULL, first, ap);
    va_end(ap);
    return r;
}

/* `sluice ARGS...` with user's API token. */
static th_result as(const char *user, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    th_result r = vcli(user, first, ap);
    va_end(ap);
    return r;
}

static char *start_run(const char *name, const char *user, const char *var)
{
    th_result r = as(user, "run", name, var ? "--var" : NULL, var, NULL);
    cr_assert_eq(r.status, 0, "sluice run %s: %s", name, r.err);
    char *id = sl_xstrdup(r.out);
    id[strcspn(id, "\n")] = '\0';
    th_result_free(&r);
    return id;
}

static char *query_text(const char *sql, int n, const char *const *params)
{
    PGconn *c = th_pg();
    PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    char *v = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? sl_xstrdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    PQfinish(c);
    return v;
}

typedef struct want {
    const char *run;
    const char *status;
} want;

static bool run_has_status(void *arg)
{
    want *w = arg;
    const char *p[] = { w->run, w->status };
    return th_pg_number("SELECT count(*) FROM sluice_runs WHERE id = $1 AND status = $2", 2, p) == 1;
}

static void wait_run(const char *run, const char *status, int timeout_ms)
{
    want w = { run, status };
    if (!th_wait(run_has_status, &w, timeout_ms)) {
        const char *p[] = { run };
        char *st = query_text("SELECT status || ' ' || coalesce(error, '') FROM sluice_runs WHERE id = $1", 1, p);
        char *steps = query_text("SELECT string_agg(step_id || '=' || status, ' ' ORDER BY position)"
                                 " FROM sluice_run_steps WHERE run_id = $1", 1, p);
        char *log = th_read_file(sched_log[0]);
        cr_assert_fail("run %s is '%s' (steps %s), want %s; scheduler log:\n%s", run, st, steps, status,
                       log ? log : "");
    }
}

static char *step_field(const char *run, const char *step, const char *col)
{
    char *sql = sl_xasprintf("SELECT %s FROM sluice_run_steps WHERE run_id = $1 AND step_id = $2", col);
    const char *p[] = { run, step };
    char *v = query_text(sql, 2, p);
    free(sql);
    return v;
}

static void expect_step(const char *run, const char *step, const char *status)
{
    char *st = step_field(run, step, "status");
    cr_assert(st && strcmp(st, status) == 0, "step %s is %s, want %s", step, st ? st : "(none)", status);
    free(st);
}

static bool gate_open(void *arg)
{
    const char **p = arg;
    return th_pg_number("SELECT count(*) FROM sluice_gates WHERE run_id = $1 AND gate_id = $2"
                        " AND status = 'open'", 2, p) == 1;
}

static void wait_gate(const char *run, const char *gate)
{
    const char *p[] = { run, gate };
    cr_assert(th_wait(gate_open, p, 20000), "gate %s of run %s did not open", gate, run);
}

static bool pg_count_is_one(void *arg)
{
    const char **sql = arg;
    return th_pg_number(sql[0], 0, NULL) == 1;
}

static bool log_has(void *arg)
{
    const char **a = arg;
    char *text = th_read_file(a[0]);
    bool yes = text && strstr(text, a[1]);
    free(text);
    return yes;
}

/* ---- runs ------------------------------------------------------------------ */

Test(sched, dag_fan_out_fan_in_if_and_templates)
{
    char name[64];
    th_name(name, sizeof name, "dag");
    pipeline(name,
        "name: %1$s\n"
        "vars: {ms: 20, label: shop}\n"
        "steps:\n"
        "  - {id: a, kind: noop, queue: %2$s}\n"
        "  - {id: b, kind: sleep, queue: %2$s, needs: [a], args: {ms: \"${{ vars.ms }}\"},"
        " retry: {max_attempts: 3, backoff: fixed, initial: 1s}, timeout: 10s}\n"
        "  - {id: c, kind: sleep, queue: %2$s, needs: [a], args: {ms: 1}}\n"
        "  - id: d\n"
        "    kind: noop\n"
        "    queue: %2$s\n"
        "    needs: [b, c]\n"
        "    if: steps.b.outputs.slept_ms == 20 && steps.c.status == 'succeeded'\n"
        "    args: {slept: \"${{ steps.b.outputs.slept_ms }}\", text: \"${{ vars.label }}-${{ run.triggered_by }}\"}\n"
        "  - {id: e, kind: noop, queue: %2$s, needs: [a], if: \"vars.ms == 999\"}\n"
        "  - {id: f, kind: noop, queue: %2$s, needs: [e]}\n");
    /* a broken pipeline beside it is reported at start-up and left out */
    pipeline("broken", "name: broken\nsteps:\n  - {id: a, kind: noop}\n  - {id: b, kind: nope}\n");
    start_pool();
    start_scheduler(0);
    char *run = start_run(name, "alice", NULL);
    wait_run(run, "succeeded", 30000);
    char *want_err = sl_xasprintf("event=pipeline.invalid error=\"%s/broken.yaml:4:19: unknown kind 'nope'", dir);
    const char *lp[] = { sched_log[0], want_err };
    cr_assert(log_has(lp), "the scheduler did not report %s", want_err);
    free(want_err);
    expect_step(run, "a", "succeeded");
    expect_step(run, "d", "succeeded");
    expect_step(run, "e", "skipped");
    expect_step(run, "f", "skipped");
    /* fan-in: d was queued only after both b and c had finished */
    const char *p[] = { run };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_run_steps d, sluice_run_steps x"
                              " WHERE d.run_id = $1 AND x.run_id = $1 AND d.step_id = 'd'"
                              " AND x.step_id IN ('b', 'c') AND d.queued_at >= x.finished_at", 1, p), 2);
    /* retry and timeout travel in the envelope */
    char *bid = step_field(run, "b", "job_id");
    const char *bp[] = { bid };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND max_attempts = 3"
                              " AND timeout_ms = 10000 AND run_id IS NOT NULL AND step_id = 'b'", 1, bp), 1);
    free(bid);
    /* templating: a lone reference keeps its type, text is interpolated */
    char *jid = step_field(run, "d", "job_id");
    const char *jp[] = { jid };
    char *args = query_text("SELECT args::text FROM sluice_jobs WHERE id = $1", 1, jp);
    cr_assert_str_eq(args, "{\"text\": \"shop-alice\", \"slept\": 20}");
    char *want_id = sl_xasprintf("%s.d.1.", run);
    cr_assert(strncmp(jid, want_id, strlen(want_id)) == 0 && strlen(jid) == strlen(want_id) + 24,
              "job ids are RUN.STEP.1.RANDOM: %s", jid);
    /* sluice status shows the steps */
    th_result r = cli("status", run, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "slept_ms") && strstr(r.out, want_id), "%s", r.out);
    th_result_free(&r);
    free(want_id);
    free(args);
    free(jid);
    free(run);
}

Test(sched, failing_step_fails_the_run)
{
    char name[64];
    th_name(name, sizeof name, "fail");
    pipeline(name,
        "name: %1$s\n"
        "steps:\n"
        "  - {id: a, kind: noop, queue: %2$s}\n"
        "  - {id: bad, kind: fail, queue: %2$s, needs: [a], args: {message: boom}, retry: {max_attempts: 1}}\n"
        "  - {id: slow, kind: sleep, queue: %2$s, needs: [a], args: {ms: 300}}\n"
        "  - {id: after, kind: noop, queue: %2$s, needs: [bad, slow]}\n"
        "  - {id: unresolved, kind: noop, queue: %2$s, needs: [a], args: {x: \"${{ steps.a.outputs.nope }}\"}}\n");
    start_pool();
    start_scheduler(0);
    char *run = start_run(name, "alice", NULL);
    wait_run(run, "failed", 30000);
    expect_step(run, "after", "cancelled");
    const char *p[] = { run };
    char *err = query_text("SELECT error FROM sluice_runs WHERE id = $1", 1, p);
    cr_assert(err && (strstr(err, "boom") || strstr(err, "has no output 'nope'")), "%s", err);
    char *uerr = step_field(run, "unresolved", "coalesce(error, status)");
    cr_assert(strstr(uerr, "${{ steps.a.outputs.nope }}: step 'a' has no output 'nope'") ||
              strcmp(uerr, "cancelled") == 0, "%s", uerr);
    /* --wait reports the outcome in the exit code */
    char *run2 = NULL;
    th_result r = as("alice", "run", name, "--wait", NULL);
    cr_assert_eq(r.status, 1, "run --wait of a failing pipeline: %d\n%s%s", r.status, r.out, r.err);
    cr_assert(strstr(r.out, "failed"), "%s", r.out);
    th_result_free(&r);
    free(run2);
    free(uerr);
    free(err);
    free(run);
}

/* A step's retry settings travel in its envelope: the worker retries it
 * with the step's fixed delay, then the step (and the run) fail. */
Test(sched, a_step_is_retried_as_its_retry_says)
{
    char name[64];
    th_name(name, sizeof name, "retry");
    pipeline(name,
        "name: %1$s\n"
        "steps:\n"
        "  - {id: flaky, kind: fail, queue: %2$s, args: {message: still broken},"
        " retry: {max_attempts: 3, backoff: fixed, initial: 50ms}}\n");
    start_pool();
    start_scheduler(0);
    char *run = start_run(name, "alice", NULL);
    wait_run(run, "failed", 30000);
    char *jid = step_field(run, "flaky", "job_id");
    const char *p[] = { jid };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'dead'"
                              " AND attempts = 3 AND max_attempts = 3", 1, p), 1);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_job_history WHERE job_id = $1"
                              " AND status = 'failed' AND error = 'still broken'", 1, p), 3);
    free(jid);
    free(run);
}

/* ---- gates ------------------------------------------------------------------ */

static const char *GATED =
    "name: %1$s\n"
    "vars: {ms: 5}\n"
    "steps:\n"
    "  - {id: build, kind: sleep, queue: %2$s, args: {ms: \"${{ vars.ms }}\"}}\n"
    "  - id: go\n"
    "    needs: [build]\n"
    "    approval:\n"
    "      approvers: [alice, group:leads]\n"
    "      required: 2\n"
    "      instructions: Check the build output.\n"
    "      inputs: [{name: percent, type: int, default: 10}, {name: note, type: string}]\n"
    "  - {id: ship, kind: sleep, queue: %2$s, needs: [go], args: {ms: \"${{ gate.go.inputs.percent }}\","
    " note: \"${{ gate.go.inputs.note }}\"}}\n";

static void expect_refused(th_result r, const char *what)
{
    cr_assert_eq(r.status, 1, "expected a refusal (%s), got %d:\n%s%s", what, r.status, r.out, r.err);
    cr_assert(strstr(r.err, what), "refusal should say '%s':\n%s", what, r.err);
    th_result_free(&r);
}

Test(sched, gate_n_of_m_refusals_inputs_and_audit)
{
    char name[64];
    th_name(name, sizeof name, "gate");
    pipeline(name, GATED);
    start_pool();
    start_scheduler(0);
    char *run = start_run(name, "alice", "ms=1000");
    /* not reached yet: the build takes a second */
    expect_refused(as("bob", "approve", run, "go", NULL), "is not open");
    wait_gate(run, "go");
    th_result r = cli("gates", NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, run) && strstr(r.out, "0 of 2") && strstr(r.out, "may approve:  bob, carol") &&
              strstr(r.out, "Check the build output.") && strstr(r.out, "evidence:     build (succeeded)"
              " outputs {\"slept_ms\": 1000}"), "sluice gates:\n%s", r.out);
    th_result_free(&r);
    expect_refused(as("alice", "approve", run, "go", NULL), "does not allow self-approval");
    expect_refused(as("mallory", "approve", run, "go", NULL), "mallory is not an approver");
    r = as("bob", "reject", run, "go", NULL);
    cr_assert_eq(r.status, 2, "a rejection without a comment is a usage error");
    th_result_free(&r);
    expect_refused(as("bob", "approve", run, "go", "--input", "percent=lots", NULL), "must be an int");
    expect_refused(as("bob", "approve", run, "go", "--input", "colour=red", NULL), "no input 'colour'");
    r = as("bob", "approve", run, "go", "--input", "percent=25", "--comment", "looks good", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "(1 of 2)"), "%s", r.out);
    th_result_free(&r);
    expect_refused(as("bob", "approve", run, "go", NULL), "already decided");
    /* `note` has no default: the releasing approval must supply it */
    expect_refused(as("carol", "approve", run, "go", NULL), "note have no value");
    r = as("carol", "approve", run, "go", "--input", "note=ship it", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "released"), "%s", r.out);
    th_result_free(&r);
    expect_refused(as("carol", "approve", run, "go", NULL), "is not open");
    wait_run(run, "succeeded", 30000);
    char *out = step_field(run, "ship", "outputs::text");
    cr_assert_str_eq(out, "{\"slept_ms\": 25}", "the gate's input reached the later step");
    free(out);
    const char *p[] = { run };
    char *latency = query_text("SELECT round(extract(epoch FROM (s.queued_at - g.decided_at)) * 1000, 1)"
                               " FROM sluice_run_steps s, sluice_gates g WHERE s.run_id = $1"
                               " AND g.run_id = $1 AND s.step_id = 'ship' AND g.gate_id = 'go'", 1, p);
    fprintf(stderr, "approval-to-next-step latency: %s ms\n", latency);
    free(latency);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1 AND decision = 'approve'",
                              1, p), 2);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1 AND decision = 'refused'",
                              1, p), 8);
    r = cli("audit", "verify", NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    th_result_free(&r);
    free(run);
}

Test(sched, reject_fails_the_run)
{
    char name[64];
    th_name(name, sizeof name, "reject");
    pipeline(name, GATED);
    start_pool();
    start_scheduler(0);
    /* run --wait follows the run to its gate and says so with exit status 3 */
    th_result w = as("dave", "run", name, "--wait", NULL);
    cr_assert_eq(w.status, 3, "run --wait: %d\n%s%s", w.status, w.out, w.err);
    cr_assert(strstr(w.out, "waiting at an approval gate") && strstr(w.out, "build                succeeded"),
              "%s", w.out);
    char *run = sl_xstrndup(w.out, strcspn(w.out, "\n"));
    th_result_free(&w);
    wait_gate(run, "go");
    th_result r = as("carol", "reject", run, "go", "--comment", "not today", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    wait_run(run, "failed", 20000);
    expect_step(run, "go", "failed");
    expect_step(run, "ship", "cancelled");
    char *e = step_field(run, "go", "error");
    cr_assert_str_eq(e, "rejected by carol: not today");
    free(e);
    expect_refused(as("bob", "approve", run, "go", NULL), "it was rejected");
    free(run);
}

/* Bypass: identity was a claim (--as, $SLUICE_USER).  Now one person
 * holding one token is one approver whatever they type: mallory (not an
 * approver) cannot pass as bob, alice cannot approve twice under two
 * names, and a run alice triggers is hers whatever name she gives, so she
 * cannot approve it.  The 2-of-3 gate stays closed and nothing after it
 * runs. */
Test(sched, identity_is_proven_not_claimed)
{
    char name[64];
    th_name(name, sizeof name, "ident");
    pipeline(name,
        "name: %1$s\n"
        "steps:\n"
        "  - id: g\n"
        "    approval: {approvers: [alice, bob, carol], required: 2}\n"
        "  - {id: deploy, kind: noop, queue: %2$s, needs: [g]}\n");
    start_pool();
    start_scheduler(0);
    const char *claim_bob[] = { api_env, NULL, "SLUICE_USER=bob", NULL };
    /* The old way to claim a name is gone. */
    th_result r = as("mallory", "approve", "x", "g", "--as", "bob", NULL);
    cr_assert_eq(r.status, 2, "--as must be unknown: %s", r.err);
    th_result_free(&r);
    /* alice triggers the run "as bob": it is recorded as alice's. */
    char *tok = sl_xasprintf("SLUICE_TOKEN=%s", token_of("alice"));
    claim_bob[1] = tok;
    const char *run_argv[] = { SLUICE_BIN, "run", name, "--config", config, NULL };
    r = th_run(run_argv, claim_bob);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *run = sl_xstrndup(r.out, strcspn(r.out, "\n"));
    th_result_free(&r);
    const char *p[] = { run };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_runs WHERE id = $1 AND triggered_by = 'alice'", 1, p), 1);
    wait_gate(run, "g");
    /* alice approving her own run, under any name: refused */
    const char *approve_argv[] = { SLUICE_BIN, "approve", run, "g", "--config", config, NULL };
    r = th_run(approve_argv, claim_bob);
    cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_assert(strstr(r.err, "self-approval"), "%s", r.err);
    th_result_free(&r);
    /* mallory claiming to be bob: she is mallory, not an approver */
    free(tok);
    tok = sl_xasprintf("SLUICE_TOKEN=%s", token_of("mallory"));
    claim_bob[1] = tok;
    r = th_run(approve_argv, claim_bob);
    cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_assert(strstr(r.err, "mallory is not an approver"), "%s", r.err);
    th_result_free(&r);
    /* bob approves once; bob's second approval "as carol" is still bob's */
    r = as("bob", "approve", run, "g", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    free(tok);
    tok = sl_xasprintf("SLUICE_TOKEN=%s", token_of("bob"));
    claim_bob[1] = tok;
    claim_bob[2] = "SLUICE_USER=carol";
    r = th_run(approve_argv, claim_bob);
    cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_assert(strstr(r.err, "already decided"), "%s", r.err);
    th_result_free(&r);
    /* The gate holds: one approval of two, nothing deployed, and the audit
     * trail names who really decided. */
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_gates WHERE run_id = $1 AND status = 'open'", 1, p), 1);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1 AND decision = 'approve'", 1, p), 1);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1 AND decision = 'approve'"
                              " AND actor = 'bob'", 1, p), 1);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1 AND actor = 'carol'", 1, p), 0);
    expect_step(run, "deploy", "pending");
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE run_id = $1", 1, p), 0);
    free(tok);
    free(run);
}

Test(sched, gate_timeouts_both_ways)
{
    char yes[64], no[64];
    th_name(yes, sizeof yes, "tyes");
    th_name(no, sizeof no, "tno");
    const char *fmt =
        "name: %%1$s\n"
        "steps:\n"
        "  - id: wait\n"
        "    approval: {approvers: [bob], timeout: 300ms, on_timeout: %s,"
        " inputs: [{name: n, type: int, default: 7}]}\n"
        "  - {id: next, kind: sleep, queue: %%2$s, needs: [wait], args: {ms: \"${{ gate.wait.inputs.n }}\"}}\n";
    char *fy = sl_xasprintf(fmt, "approve"), *fn = sl_xasprintf(fmt, "reject");
    pipeline(yes, fy);
    pipeline(no, fn);
    free(fy);
    free(fn);
    start_pool();
    start_scheduler(0);
    char *ry = start_run(yes, "dave", NULL), *rn = start_run(no, "dave", NULL);
    wait_run(ry, "succeeded", 20000);
    wait_run(rn, "failed", 20000);
    char *out = step_field(ry, "next", "outputs::text");
    cr_assert_str_eq(out, "{\"slept_ms\": 7}", "the default input applies on a timeout approval");
    free(out);
    const char *p[] = { ry, rn };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_audit WHERE (run_id = $1 AND decision = "
                              "'timeout-approve') OR (run_id = $2 AND decision = 'timeout-reject')", 2, p), 2);
    expect_refused(as("bob", "approve", ry, "wait", NULL), "timed_out");
    free(ry);
    free(rn);
}

typedef struct approver {
    const char *run, *user;
    int status;
} approver;

Test(sched, concurrent_approvals_release_once)
{
    char name[64];
    th_name(name, sizeof name, "race");
    pipeline(name,
        "name: %1$s\n"
        "steps:\n"
        "  - id: g\n"
        "    approval: {approvers: [alice, bob, carol, erin], required: 2}\n"
        "  - {id: after, kind: noop, queue: %2$s, needs: [g]}\n");
    start_pool();
    start_scheduler(0);
    for (int round = 0; round < 3; round++) {
        char *run = start_run(name, "dave", NULL);
        wait_gate(run, "g");
        static const char *approvers[] = { "alice", "bob", "carol", "erin" };
        pid_t kids[4];
        for (int i = 0; i < 4; i++) {
            kids[i] = fork();
            cr_assert(kids[i] >= 0);
            if (kids[i] == 0) {
                sl_err err;
                sl_db *db = sl_db_connect(th_env("DATABASE_URL"), &err);
                sl_gate_result res;
                int rc = db ? sl_gate_decide(db, run, "g", &(sl_principal){ .name = approvers[i], .method = "test" }, true, NULL, NULL, 0, &res, &err) : -1;
                sl_db_free(db);
                _exit(rc < 0 ? 2 : res.refused ? 1 : 0);
            }
        }
        int accepted = 0, refused = 0;
        for (int i = 0; i < 4; i++) {
            int st;
            cr_assert_eq(waitpid(kids[i], &st, 0), kids[i]);
            accepted += WEXITSTATUS(st) == 0;
            refused += WEXITSTATUS(st) == 1;
        }
        cr_assert_eq(accepted, 2, "exactly `required` approvals count (round %d)", round);
        cr_assert_eq(refused, 2, "the others find the gate closed (round %d)", round);
        const char *p[] = { run };
        cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1 AND decision = 'approve'",
                                  1, p), 2);
        wait_run(run, "succeeded", 20000);
        free(run);
    }
}

Test(sched, audit_tampering_is_detected)
{
    char name[64];
    th_name(name, sizeof name, "audit");
    pipeline(name, "name: %1$s\nsteps:\n  - id: g\n    approval: {approvers: [bob]}\n");
    start_scheduler(0);
    char *run = start_run(name, "dave", NULL);
    wait_gate(run, "g");
    th_result r = as("bob", "approve", run, "g", "--comment", "fine", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    r = cli("audit", "verify", NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    th_result_free(&r);
    /* the table refuses edits... */
    PGconn *c = th_pg();
    const char *p[] = { run };
    PGresult *res = PQexecParams(c, "UPDATE sluice_audit SET comment = 'forged' WHERE run_id = $1", 1, NULL,
                                 p, NULL, NULL, 0);
    cr_assert_neq(PQresultStatus(res), PGRES_COMMAND_OK, "the audit table accepted an UPDATE");
    PQclear(res);
    /* ...and one done behind its back is found */
    res = PQexecParams(c, "BEGIN; ", 0, NULL, NULL, NULL, NULL, 0);
    PQclear(res);
    res = PQexec(c, "ALTER TABLE sluice_audit DISABLE TRIGGER sluice_audit_append_only");
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(res);
    res = PQexecParams(c, "UPDATE sluice_audit SET comment = 'forged' WHERE run_id = $1 RETURNING seq", 1, NULL,
                       p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    char *seq = sl_xasprintf("row %s does not match its hash", PQgetvalue(res, 0, 0));
    PQclear(res);
    res = PQexec(c, "COMMIT");
    PQclear(res);
    r = cli("audit", "verify", NULL);
    cr_assert_eq(r.status, 1, "verify passed a forged row:\n%s", r.out);
    cr_assert(strstr(r.err, seq), "verify should name the row ('%s'):\n%s", seq, r.err);
    th_result_free(&r);
    /* put it back for later tests */
    res = PQexecParams(c, "UPDATE sluice_audit SET comment = 'fine' WHERE run_id = $1", 1, NULL, p, NULL, NULL, 0);
    PQclear(res);
    res = PQexec(c, "ALTER TABLE sluice_audit ENABLE TRIGGER sluice_audit_append_only");
    PQclear(res);
    PQfinish(c);
    r = cli("audit", "verify", NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    th_result_free(&r);
    free(seq);
    free(run);
}

/* ---- cron with an injected clock -------------------------------------------- */

Test(sched, cron_fires_once_per_fire_time)
{
    char name[64];
    th_name(name, sizeof name, "cron");
    pipeline(name, "name: %1$s\nschedule: \"* * * * *\"\nsteps:\n  - {id: a, kind: noop, queue: %2$s}\n");
    char *path = sl_xasprintf("%s/%s.yaml", dir, name);
    sl_yerrors errors = SL_YERRORS_INIT;
    sl_pipeline *p = sl_pipeline_load(path, NULL, &errors);
    cr_assert_not_null(p, "%s", errors.n ? errors.msgs[0] : "");
    sl_err err;
    sl_config *cfg = sl_config_defaults();
    sl_db *db1 = sl_db_connect(th_env("DATABASE_URL"), &err), *db2 = sl_db_connect(th_env("DATABASE_URL"), &err);
    cr_assert(db1 && db2, "%s", err.msg);
    sl_engine *e1 = sl_engine_new(cfg, db1, NULL), *e2 = sl_engine_new(cfg, db2, NULL);
    int64_t t0 = 1800000000000LL;   /* 2027-01-15T08:00:00Z, a whole minute */
    int n = -1;
    const char *pp[] = { name };
    const char *count = "SELECT count(*) FROM sluice_runs WHERE pipeline = $1";
    cr_assert_eq(sl_engine_fire_cron(e1, &p, 1, t0 + 10000, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 0, "a new schedule starts counting from now");
    cr_assert_eq(sl_engine_fire_cron(e1, &p, 1, t0 + 59999, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 0);
    cr_assert_eq(sl_engine_fire_cron(e1, &p, 1, t0 + 60000, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1, "08:01 fires");
    /* a second scheduler, or a restart, at the same instant: nothing more */
    cr_assert_eq(sl_engine_fire_cron(e2, &p, 1, t0 + 60500, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 0);
    cr_assert_eq(th_pg_number(count, 1, pp), 1);
    /* ten minutes without a scheduler: the missed fire times start one run */
    cr_assert_eq(sl_engine_fire_cron(e2, &p, 1, t0 + 11 * 60000 + 5, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(th_pg_number(count, 1, pp), 2);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_runs WHERE pipeline = $1 AND scheduled_for ="
                              " to_timestamp(1800000660)", 1, pp), 1, "the latest missed fire time (08:11)");
    /* two schedulers racing on the next minute: one run */
    pid_t kid = fork();
    cr_assert(kid >= 0);
    if (kid == 0) {
        sl_db *db3 = sl_db_connect(th_env("DATABASE_URL"), &err);
        sl_engine *e3 = sl_engine_new(cfg, db3, NULL);
        int rc = sl_engine_fire_cron(e3, &p, 1, t0 + 12 * 60000, NULL, &err);
        _exit(rc == 0 ? 0 : 1);
    }
    cr_assert_eq(sl_engine_fire_cron(e1, &p, 1, t0 + 12 * 60000, NULL, &err), 0, "%s", err.msg);
    int st;
    waitpid(kid, &st, 0);
    cr_assert_eq(WEXITSTATUS(st), 0);
    cr_assert_eq(th_pg_number(count, 1, pp), 3);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_runs WHERE pipeline = $1 AND triggered_by = 'schedule'",
                              1, pp), 3);
    /* no worker serves this queue: cancel the runs so no scheduler waits on them */
    PGconn *c = th_pg();
    PGresult *res = PQexecParams(c, "SELECT id FROM sluice_runs WHERE pipeline = $1", 1, NULL, pp, NULL, NULL, 0);
    for (int i = 0; i < PQntuples(res); i++)
        cr_assert_eq(sl_run_cancel(db1, PQgetvalue(res, i, 0), "test", &err), 0, "%s", err.msg);
    PQclear(res);
    PQfinish(c);
    sl_engine_free(e1);
    sl_engine_free(e2);
    sl_db_free(db1);
    sl_db_free(db2);
    sl_config_free(cfg);
    sl_pipeline_free(p);
    sl_yerrors_free(&errors);
    free(path);
}

/* ---- crashes and takeover ----------------------------------------------------- */

static bool all_runs_done(void *arg)
{
    const char **p = arg;
    return th_pg_number("SELECT count(*) FROM sluice_runs WHERE pipeline = $1 AND status IN ('queued', 'running')",
                        1, p) == 0;
}

Test(sched, sigkill_the_scheduler_at_random)
{
    char name[64];
    th_name(name, sizeof name, "crash");
    pipeline(name,
        "name: %1$s\n"
        "steps:\n"
        "  - {id: s1, kind: noop, queue: %2$s}\n"
        "  - {id: s2, kind: sleep, queue: %2$s, needs: [s1], args: {ms: 100}}\n"
        "  - {id: s3, kind: noop, queue: %2$s, needs: [s1]}\n"
        "  - {id: gate, needs: [s2, s3], approval: {approvers: [bob]}}\n"
        "  - {id: s5, kind: sleep, queue: %2$s, needs: [gate], args: {ms: 50}}\n"
        "  - {id: s6, kind: noop, queue: %2$s, needs: [s5]}\n");
    start_pool();
    start_scheduler(0);
    enum { RUNS = 50 };
    char *runs[RUNS];
    int started = 0;
    sl_err err;
    sl_db *db = sl_db_connect(th_env("DATABASE_URL"), &err);
    cr_assert_not_null(db, "%s", err.msg);
    const char *pp[] = { name };
    int kills = 0;
    int64_t deadline = sl_monotonic_ms() + 60000, next_kill = sl_monotonic_ms() + 200;
    while ((started < RUNS || !all_runs_done(pp)) && sl_monotonic_ms() < deadline) {
        /* runs keep arriving while the scheduler is being killed */
        for (int k = 0; k < 2 && started < RUNS; k++)
            runs[started++] = start_run(name, "dave", NULL);
        /* approve whatever gate is open, as a person would */
        PGresult *g = sl_db_exec(db, "open gates", "SELECT g.run_id FROM sluice_gates g JOIN sluice_runs r"
                                 " ON r.id = g.run_id WHERE r.pipeline = $1 AND g.status = 'open'", 1, pp, &err);
        cr_assert_not_null(g, "%s", err.msg);
        for (int i = 0; i < PQntuples(g); i++) {
            sl_gate_result res;
            cr_assert_eq(sl_gate_decide(db, PQgetvalue(g, i, 0), "gate", &(sl_principal){ .name = "bob", .method = "test" }, true, NULL, NULL, 0, &res,
                                        &err), 0, "%s", err.msg);
        }
        PQclear(g);
        if (sl_monotonic_ms() >= next_kill) {
            unsigned r = 0;
            if (getrandom(&r, sizeof r, 0) != sizeof r)
                r = 7;
            sl_sleep_ms(r % 200);   /* a random instant within the period */
            kill(sched[0], SIGKILL);
            waitpid(sched[0], NULL, 0);
            kills++;
            start_scheduler(0);
            next_kill = sl_monotonic_ms() + 200;
        }
        sl_sleep_ms(20);
    }
    sl_db_free(db);
    if (!all_runs_done(pp)) {
        char *active = query_text("SELECT string_agg(r.id || ' ' || r.status || ' [' || coalesce((SELECT"
                                  " string_agg(step_id || '=' || status, ' ' ORDER BY position) FROM sluice_run_steps"
                                  " WHERE run_id = r.id), '') || ']', E'\n') FROM sluice_runs r WHERE r.pipeline = $1"
                                  " AND r.status IN ('queued', 'running')", 1, pp);
        cr_assert_fail("runs still active after 60 s and %d kills:\n%s", kills, active ? active : "");
    }
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_runs WHERE pipeline = $1 AND status = 'succeeded'",
                              1, pp), RUNS, "every run ends correctly");
    /* one job per (run, step, attempt), each run once, none lost */
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs j JOIN sluice_runs r ON r.id = j.run_id"
                              " WHERE r.pipeline = $1", 1, pp), RUNS * 5);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_job_history a JOIN sluice_jobs j ON j.id = a.job_id"
                              " JOIN sluice_runs r ON r.id = j.run_id WHERE r.pipeline = $1", 1, pp), RUNS * 5,
                 "a job ran more than once");
    cr_assert_eq(th_pg_number("SELECT count(*) FROM (SELECT run_id, step_id FROM sluice_jobs j JOIN sluice_runs r"
                              " ON r.id = j.run_id WHERE r.pipeline = $1 GROUP BY 1, 2 HAVING count(*) > 1) d",
                              1, pp), 0);
    /* and no job was XADDed twice: every scheduler life logged its XADDs
     * (step.enqueued) to the same file; a job found already enqueued after
     * a crash is logged as step.enqueue_verified instead */
    char *log = th_read_file(sched_log[0]);
    cr_assert_not_null(log);
    int xadds = 0, verified = 0;
    char **ids = sl_xcalloc(RUNS * 5 * 2 + 1, sizeof *ids);
    char *save = NULL;
    for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        verified += strstr(line, "event=step.enqueue_verified") != NULL;
        const char *j = strstr(line, "event=step.enqueued ") ? strstr(line, " job=") : NULL;
        if (j == NULL)
            continue;
        char *id = sl_xstrndup(j + 5, strcspn(j + 5, " "));
        for (int k = 0; k < xadds; k++)
            cr_assert_str_neq(ids[k], id, "job %s was XADDed twice", id);
        cr_assert_lt(xadds, RUNS * 5 * 2);
        ids[xadds++] = id;
    }
    for (int k = 0; k < xadds; k++)
        free(ids[k]);
    free(ids);
    free(log);
    fprintf(stderr, "crash test: %d runs, scheduler SIGKILLed %d times, %d XADDs, %d verified after a crash\n",
            RUNS, kills, xadds, verified);
    cr_assert_leq(xadds, RUNS * 5);
    for (int i = 0; i < RUNS; i++)
        free(runs[i]);
}

Test(sched, two_schedulers_one_leads_and_takes_over)
{
    char name[64];
    th_name(name, sizeof name, "lead");
    pipeline(name, "name: %1$s\nsteps:\n  - {id: a, kind: noop, queue: %2$s}\n"
                   "  - {id: b, kind: noop, queue: %2$s, needs: [a]}\n");
    start_pool();
    start_scheduler(0);
    const char *l0[] = { NULL, "event=leader.acquired" };
    sched_log[0] = sched_log[0];
    l0[0] = sched_log[0];
    cr_assert(th_wait(log_has, l0, 20000), "the first scheduler did not lead");
    start_scheduler(1);
    const char *s1[] = { sched_log[1], "event=leader.standby" };
    cr_assert(th_wait(log_has, s1, 20000), "the second scheduler did not stand by");
    /* HUP reloads the pipeline directory */
    char late[64];
    th_name(late, sizeof late, "late");
    pipeline(late, "name: %1$s\nsteps:\n  - {id: a, kind: noop, queue: %2$s}\n");
    kill(sched[0], SIGHUP);
    char *loaded = sl_xasprintf("event=pipeline.loaded pipeline=%s ", late);
    const char *ll[] = { sched_log[0], loaded };
    cr_assert(th_wait(log_has, ll, 10000), "HUP did not reload the pipelines");
    free(loaded);
    char *run = start_run(name, "dave", NULL);
    wait_run(run, "succeeded", 20000);
    const char *a1[] = { sched_log[1], "event=step.enqueued" };
    cr_assert(!log_has(a1), "the standby acted");
    kill(sched[0], SIGKILL);
    waitpid(sched[0], NULL, 0);
    sched[0] = 0;
    int64_t t = sl_monotonic_ms();
    const char *l1[] = { sched_log[1], "event=leader.acquired" };
    cr_assert(th_wait(log_has, l1, 20000), "the standby did not take over");
    fprintf(stderr, "takeover after SIGKILL of the leader: %lld ms\n", (long long)(sl_monotonic_ms() - t));
    char *run2 = start_run(name, "dave", NULL);
    wait_run(run2, "succeeded", 20000);
    free(run);
    free(run2);
}

/* ---- concurrency groups and cancellation ---------------------------------------- */

Test(sched, concurrency_group_and_cancel)
{
    char name[64], rel[64];
    th_name(name, sizeof name, "conc");
    th_name(rel, sizeof rel, "crel");
    const char *fmt =
        "name: %%1$s\n"
        "vars: {app: shop}\n"
        "concurrency: %s-${{ vars.app }}\n"
        "concurrency_release_at_gates: %s\n"
        "steps:\n"
        "  - {id: a, kind: noop, queue: %%2$s}\n"
        "  - {id: g, needs: [a], approval: {approvers: [bob]}}\n"
        "  - {id: b, kind: noop, queue: %%2$s, needs: [g]}\n";
    char *f1 = sl_xasprintf(fmt, name, "false"), *f2 = sl_xasprintf(fmt, rel, "true");
    pipeline(name, f1);
    pipeline(rel, f2);
    free(f1);
    free(f2);
    start_pool();
    start_scheduler(0);
    /* a run waiting at a gate holds its group: the next one stays queued */
    char *r1 = start_run(name, "dave", NULL);
    wait_gate(r1, "g");
    char *r2 = start_run(name, "dave", NULL);
    char *r3 = start_run(name, "dave", "app=other");   /* another group: runs at once */
    wait_gate(r3, "g");
    sl_sleep_ms(300);
    const char *p2[] = { r2 };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_runs WHERE id = $1 AND status = 'queued'", 1, p2), 1,
                 "the second run of the group did not wait");
    /* cancelling the first frees the group */
    th_result r = cli("cancel", r1, NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    th_result_free(&r);
    wait_run(r1, "cancelled", 10000);
    expect_step(r1, "g", "cancelled");
    expect_refused(as("bob", "approve", r1, "g", NULL), "is not open");
    wait_gate(r2, "g");
    r = as("bob", "approve", r2, "g", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    wait_run(r2, "succeeded", 10000);
    r = cli("runs", "--pipeline", name, "--status", "cancelled", NULL);
    cr_assert(r.status == 0 && strstr(r.out, r1) && !strstr(r.out, r2), "%s", r.out);
    th_result_free(&r);
    /* with concurrency_release_at_gates, a run at its gate lets the next one start */
    char *q1 = start_run(rel, "dave", NULL);
    wait_gate(q1, "g");
    char *q2 = start_run(rel, "dave", NULL);
    wait_gate(q2, "g");
    r = cli("cancel", q1, NULL);
    th_result_free(&r);
    r = cli("cancel", q2, NULL);
    th_result_free(&r);
    r = cli("cancel", r3, NULL);
    th_result_free(&r);
    wait_run(r3, "cancelled", 10000);
    free(r1);
    free(r2);
    free(r3);
    free(q1);
    free(q2);
}

/* The window the random kills rarely hit: a step committed as queued whose
 * XADD may or may not have happened before the scheduler died. */
Test(sched, restart_between_commit_and_xadd)
{
    char name[64];
    th_name(name, sizeof name, "window");
    pipeline(name, "name: %1$s\nsteps:\n  - {id: a, kind: noop, queue: %2$s}\n"
                   "  - {id: b, kind: noop, queue: %2$s, needs: [a]}\n");
    /* two runs, accepted and step a enqueued by a scheduler (no pool
     * runs), then put in the state a scheduler leaves when killed right
     * after committing step a: not known to be enqueued, and for `lost`
     * the XADD did not happen */
    char *done = start_run(name, "dave", NULL);   /* its XADD happened */
    char *lost = start_run(name, "dave", NULL);   /* its XADD did not */
    start_scheduler(0);
    const char *runs[] = { done, lost };
    for (int i = 0; i < 2; i++) {
        char *sql = sl_xasprintf("SELECT count(*) FROM sluice_run_steps WHERE run_id = '%s' AND step_id = 'a'"
                                 " AND enqueued", runs[i]);
        const char *lq[] = { sql };
        cr_assert(th_wait(pg_count_is_one, lq, 20000), "step a of %s was not enqueued", runs[i]);
        free(sql);
    }
    cr_assert_neq(th_stop(sched[0], SIGKILL, 20000), -1);
    sched[0] = 0;
    free(sched_log[0]);   /* the restarted scheduler logs afresh */
    sched_log[0] = sl_xasprintf("%s/scheduler-restarted.log", dir);
    char *jid = step_field(done, "a", "job_id"), *lost_jid = step_field(lost, "a", "job_id");
    for (int i = 0; i < 2; i++) {
        const char *p[] = { runs[i] };
        PGconn *c = th_pg();
        PGresult *res = PQexecParams(c, "UPDATE sluice_run_steps SET enqueued = false WHERE run_id = $1"
                                     " AND step_id = 'a'", 1, NULL, p, NULL, NULL, 0);
        cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
        PQclear(res);
        PQfinish(c);
    }
    sl_redis *r = th_redis();
    sl_err err;
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    const char *xr[] = { "XRANGE", key, "-", "+" };
    redisReply *rep = sl_redis_command(r, 4, xr, NULL, &err);
    cr_assert(rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2, "two entries: %s", err.msg);
    int dropped = 0;
    for (size_t i = 0; i < rep->elements; i++) {
        redisReply *f = rep->element[i]->element[1];
        sl_job job;
        cr_assert_eq(sl_envelope_decode(f->element[1]->str, f->element[1]->len, &job, &err), 0, "%s", err.msg);
        if (strcmp(job.id, lost_jid) == 0) {
            const char *xd[] = { "XDEL", key, rep->element[i]->element[0]->str };
            redisReply *d = sl_redis_command(r, 3, xd, NULL, &err);
            cr_assert_not_null(d, "%s", err.msg);
            freeReplyObject(d);
            dropped++;
        }
        sl_job_clear(&job);
    }
    freeReplyObject(rep);
    sl_redis_free(r);
    cr_assert_eq(dropped, 1);
    free(lost_jid);
    start_scheduler(0);
    /* the pool starts once the scheduler has looked (else the job may
     * already have a result, which settles it without a look) */
    char *verified = sl_xasprintf("event=step.enqueue_verified run=%s step=a job=%s", done, jid);
    const char *lv[] = { sched_log[0], verified };
    cr_assert(th_wait(log_has, lv, 20000), "the enqueued job was not recognised");
    start_pool();
    wait_run(done, "succeeded", 20000);
    wait_run(lost, "succeeded", 20000);
    char *text = th_read_file(sched_log[0]);
    char *again = sl_xasprintf("job=%s queue", jid);
    char *redone = sl_xasprintf("event=step.enqueued run=%s step=a", lost);
    cr_assert(strstr(text, verified), "the enqueued job was not recognised:\n%s", text);
    cr_assert(!strstr(text, again), "the enqueued job was enqueued again:\n%s", text);
    cr_assert(strstr(text, redone), "the lost XADD was not redone:\n%s", text);
    const char *p[] = { done, lost };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_job_history a JOIN sluice_jobs j ON j.id = a.job_id"
                              " WHERE j.run_id IN ($1, $2)", 2, p), 4, "each of the 4 jobs ran once");
    free(text);
    free(verified);
    free(again);
    free(redone);
    free(jid);
    free(done);
    free(lost);
}

/* ---- a job the envelope refuses --------------------------------------------- */

static void pg_exec(const char *sql, int n, const char *const *params)
{
    PGconn *c = th_pg();
    PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
}

/* A step whose args validate but render deeper than an envelope carries (a
 * lone reference to a deep output) used to stay queued forever, its XADD
 * refused on every pass.  Now the step fails with the encoder's reason,
 * nothing reaches the stream, and no pass tries again: both when the step
 * is decided and when a scheduler finds it queued but not enqueued. */
Test(sched, a_job_the_envelope_refuses_fails_its_step)
{
    char name[64];
    th_name(name, sizeof name, "refused");
    pipeline(name, "name: %1$s\nsteps:\n  - {id: a, kind: noop, queue: %2$s}\n"
                   "  - {id: b, kind: noop, queue: %2$s, needs: [a], args: {v: {w: {x: \"${{ steps.a.outputs.deep }}\"}}}}\n");
    sl_buf deep = SL_BUF_INIT;
    sl_buf_puts(&deep, "{\"deep\": ");
    /* 29 levels: readable as an output (msgpack-c unpacks 32), but args
     * {v: {w: {x: <29 levels>}}} are 32 deep, one more than an envelope holds */
    for (int i = 0; i < 29; i++)
        sl_buf_puts(&deep, "{\"a\": ");
    sl_buf_puts(&deep, "1");
    for (int i = 0; i < 30; i++)
        sl_buf_putc(&deep, '}');
    /* runs are requested by name: a scheduler (no pool runs) accepts both
     * and enqueues their step a; it is then stopped, the stream emptied,
     * and the runs put in the states below for the next scheduler */
    start_scheduler(0);
    char *decided = start_run(name, "dave", NULL);   /* b is decided by the scheduler */
    char *stuck = start_run(name, "dave", NULL);     /* b was queued, its XADD not done */
    const char *both[] = { decided, stuck };
    for (int i = 0; i < 2; i++) {
        char *sql = sl_xasprintf("SELECT count(*) FROM sluice_run_steps WHERE run_id = '%s' AND step_id = 'a'"
                                 " AND enqueued", both[i]);
        const char *lq[] = { sql };
        cr_assert(th_wait(pg_count_is_one, lq, 20000), "step a of %s was not enqueued", both[i]);
        free(sql);
    }
    int st = th_stop(sched[0], SIGTERM, 20000);
    cr_assert_eq(st, 0, "the first scheduler did not stop cleanly (%d)", st);
    th_check_log(sched_log[0], "the scheduler");
    sched[0] = 0;
    {
        sl_redis *r = th_redis();
        char key[SL_KEY_MAX];
        sl_queue_key(key, queue, "jobs");
        const char *del[] = { "DEL", key };
        sl_err err;
        redisReply *rep = sl_redis_command(r, 2, del, NULL, &err);
        cr_assert_not_null(rep, "%s", err.msg);
        freeReplyObject(rep);
        sl_redis_free(r);
    }
    const char *dp[] = { decided, deep.data, queue };
    pg_exec("UPDATE sluice_run_steps SET status = 'queued', job_id = run_id || '.a.1', enqueued = true,"
            " queued_at = now() WHERE run_id = $1 AND step_id = 'a'", 1, dp);
    pg_exec("INSERT INTO sluice_jobs (id, queue, kind, status, attempts, run_id, step_id, outputs)"
            " VALUES ($1 || '.a.1', $3, 'noop', 'succeeded', 1, $1, 'a', $2::jsonb)", 3, dp);
    const char *sp[] = { stuck, deep.data };
    pg_exec("UPDATE sluice_run_steps SET status = 'succeeded', outputs = $2::jsonb, finished_at = now()"
            " WHERE run_id = $1 AND step_id = 'a'", 2, sp);
    pg_exec("UPDATE sluice_run_steps SET status = 'queued', job_id = run_id || '.b.1', queued_at = now()"
            " WHERE run_id = $1 AND step_id = 'b'", 1, sp);
    start_scheduler(0);
    wait_run(decided, "failed", 20000);
    wait_run(stuck, "failed", 20000);
    const char *runs[] = { decided, stuck };
    for (int i = 0; i < 2; i++) {
        expect_step(runs[i], "a", "succeeded");
        expect_step(runs[i], "b", "failed");
        char *why = step_field(runs[i], "b", "error");
        cr_assert(why && strstr(why, "the job cannot be enqueued") && strstr(why, "nest"),
                  "step b's error does not say why: %s", why ? why : "(none)");
        free(why);
    }
    /* a reconcile pass later (every 1 s here): still nothing enqueued, no retry */
    usleep(2500 * 1000);
    sl_redis *r = th_redis();
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    const char *xlen[] = { "XLEN", key };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 2, xlen, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    cr_assert_eq(rep->integer, 0, "a refused job reached the stream");
    freeReplyObject(rep);
    sl_redis_free(r);
    char *log = th_read_file(sched_log[0]);
    cr_assert(log && !strstr(log, "step.enqueue_failed"), "the scheduler retried the XADD:\n%s", log);
    free(log);
    sl_buf_free(&deep);
    free(decided);
    free(stuck);
}

/* ---- a queue no worker reads ----------------------------------------------------- */

static bool workers_serve_queue(void *arg)
{
    (void)arg;
    sl_redis *r = th_redis();
    bool served = false;
    sl_err err;
    int rc = sl_workerreg_serves(r, queue, &served, &err);
    sl_redis_free(r);
    return rc == 0 && served;
}

/* A step enqueued to a queue that no live sluice-worker reads waits: the
 * scheduler warns in its log and `sluice status` says so beside the step;
 * once a pool serves the queue the step runs and the warning is not
 * repeated for the next run. */
Test(sched, unserved_queue_is_reported)
{
    char name[64];
    th_name(name, sizeof name, "unserved");
    pipeline(name, "name: %1$s\nsteps:\n  - {id: a, kind: noop, queue: %2$s}\n");
    start_scheduler(0);
    char *first = start_run(name, "dave", NULL);
    /* step job ids are RUN.STEP.1.RANDOM */
    char *warn = sl_xasprintf("event=step.queue_unserved run=%s step=a job=%s.a.1.", first, first);
    const char *lw[] = { sched_log[0], warn };
    cr_assert(th_wait(log_has, lw, 20000), "no warning that queue %s is not served", queue);
    {
        char *text = th_read_file(sched_log[0]);
        const char *line = strstr(text, warn);
        char *wq = sl_xasprintf(" queue=%s ", queue);
        size_t len = strcspn(line, "\n");
        char *l = sl_xstrndup(line, len);
        cr_assert(strstr(l, wq), "the warning does not name queue %s: %s", queue, l);
        free(l);
        free(wq);
        free(text);
    }
    th_result r = cli("status", first, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *note = sl_xasprintf("waiting: no live sluice-worker reads queue '%s'", queue);
    cr_assert(strstr(r.out, note), "sluice status does not say the queue is unserved:\n%s", r.out);
    th_result_free(&r);
    expect_step(first, "a", "queued");

    start_pool();
    cr_assert(th_wait(workers_serve_queue, NULL, 20000), "the pool never registered queue %s", queue);
    wait_run(first, "succeeded", 20000);
    char *second = start_run(name, "dave", NULL);
    wait_run(second, "succeeded", 20000);
    r = cli("status", second, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(!strstr(r.out, "no live sluice-worker"), "%s", r.out);
    th_result_free(&r);
    char *log = th_read_file(sched_log[0]);
    char *again = sl_xasprintf("event=step.queue_unserved run=%s", second);
    cr_assert(log && !strstr(log, again), "warned although a pool serves the queue:\n%s", log);
    free(again);
    free(log);
    free(note);
    free(warn);
    free(first);
    free(second);
}
