/* test_trust.c: the trust boundary between producers, the scheduler and the
 * workers (issue 11: bypasses #1, #3 and #4), with real processes — a real
 * sluice-scheduler, real sluice-worker pools and the real `sluice` CLI —
 * against the test servers:
 *
 *   - a client's pipeline text is never run: `sluice run --pipelines` is
 *     refused, and a run row a client wrote with its own source is run
 *     from the installed definition (its gate included) with that
 *     definition's SHA-256 recorded;
 *   - protected deploy targets and kinds: unsigned jobs from `sluice
 *     enqueue` or a raw XADD, forged signatures, and signatures for other
 *     args, another queue or a replayed attempt are dead-lettered with a
 *     clear error and the command does not run (a marker file stays
 *     absent); a properly gated run still deploys production;
 *   - a pre-recorded step id neither skips the real job nor counts as the
 *     step's result.
 *
 * Runs are requested by name through a real API server (`sluice serve`)
 * with mallory's API token (trigger and read only); approvals are made by
 * sl_gate_decide with the approver as the principal.
 *
 * It runs a scheduler, so it shares the one leader lock of the database
 * with test_sched_e2e (CMake keeps the two apart with a RESOURCE_LOCK). */
#include "apiserver.h"
#include "harness.h"

#include "clock.h"
#include "db.h"
#include "envelope.h"
#include "gate.h"
#include "jobsig.h"
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];          /* keys, configuration, markers */
static char pipes[96];        /* the installed pipelines */
static char evil[96];         /* a client's own pipelines */
static char queue[96];        /* this test's deploy queue */
static char *config;
static const char *sched_redis_url;   /* the scheduler's SLUICE_REDIS_URL, NULL: the tests' */
static pid_t pool, sched;
static char *pool_log, *sched_log;
static th_server api;         /* the API server runs are requested through */
static char api_env[96];      /* SLUICE_API_URL=... */
static char *mallory_token;   /* mallory's API token: trigger, read */

static void setup(void)
{
    th_migrate();
    snprintf(dir, sizeof dir, "/tmp/sluice-trust-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(pipes, sizeof pipes, "%s/pipelines", dir);
    snprintf(evil, sizeof evil, "%s/evil", dir);
    cr_assert_eq(mkdir(pipes, 0755), 0);
    cr_assert_eq(mkdir(evil, 0755), 0);
    th_name(queue, sizeof queue, "tq");
    th_keypair(dir, "sched");
    th_keypair(dir, "attacker");
    config = sl_xasprintf("%s/sluice.config", dir);
    char *text = sl_xasprintf(
        "worker:\n  block: 100ms\n  batch: 8\n  protected_kinds: [sleep]\n"
        "  scheduler_public_keys: [%1$s/sched.pub]\n"
        "scheduler:\n  reconcile: 1s\n  standby_poll: 100ms\n  pipelines: %1$s/pipelines\n"
        "  signing_key_file: %1$s/sched.key\n"
        "groups:\n  leads: [bob, carol]\n"
        "deploy:\n  targets:\n"
        "    production:\n      type: command\n      protected: true\n"
        "      command: [/bin/sh, -c, 'echo \"$SLUICE_JOB_ID\" >> %1$s/production.marker']\n"
        "    staging:\n      type: command\n"
        "      command: [/bin/sh, -c, 'echo \"$SLUICE_JOB_ID\" >> %1$s/staging.marker']\n", dir);
    th_write_file(config, text);
    free(text);
}

/* True once the pool's log shows a worker ready: its master has set its
 * signal handlers by then, so TERM means a graceful stop. */
static bool pool_ready(void *arg)
{
    (void)arg;
    char *text = th_read_file(pool_log);
    bool ready = text && strstr(text, "event=worker.ready");
    free(text);
    return ready;
}

static void stop_pool(void)
{
    if (pool > 0) {
        (void)th_wait(pool_ready, NULL, 20000);
        int st = th_stop(pool, SIGTERM, 20000);
        cr_expect_eq(st, 0, "worker did not stop cleanly (%d)", st);
        th_check_log(pool_log, "the worker pool");
        pool = 0;
    }
}

static void stop_all(void)
{
    if (api.pid > 0) {
        th_serve_stop(&api);
        api.pid = 0;
    }
    free(mallory_token);
    mallory_token = NULL;
    if (sched > 0) {
        int st = th_stop(sched, SIGTERM, 20000);
        cr_expect_eq(st, 0, "scheduler did not stop cleanly (%d)", st);
        th_check_log(sched_log, "the scheduler");
        sched = 0;
    }
    stop_pool();
}

TestSuite(trust, .init = setup, .fini = stop_all, .timeout = 110);

static void start_scheduler(void)
{
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
        if (sched_redis_url)
            setenv("SLUICE_REDIS_URL", sched_redis_url, 1);
        execl(SLUICE_SCHEDULER_BIN, SLUICE_SCHEDULER_BIN, "--config", config, (char *)NULL);
        _exit(127);
    }
    sched = pid;
}

/* The API server of the test's configuration and mallory's token (an
 * ordinary user who may trigger runs but approve nothing): `sluice run`
 * goes through it. */
static void start_api(void)
{
    th_serve_start(&api, config, false, NULL);
    snprintf(api_env, sizeof api_env, "SLUICE_API_URL=%s", api.url);
    mallory_token = th_token(config, "mallory", "trigger,read", NULL);
}

/* A pool serving queues (comma-separated). */
static void start_pool(const char *queues)
{
    free(pool_log);
    pool_log = sl_xasprintf("%s/worker-%lld.log", dir, (long long)sl_now_ms());
    const char *args[] = { "--config", config, "--queues", queues, "--processes", "2", NULL };
    pool = th_worker_start(args, pool_log);
}

/* Writes pipeline NAME into d: every %1$s is the name, %2$s the queue. */
static void pipeline(const char *d, const char *name, const char *fmt)
{
    char *text = sl_xasprintf(fmt, name, queue);
    char *path = sl_xasprintf("%s/%s.yaml", d, name);
    th_write_file(path, text);
    free(text);
    free(path);
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

typedef struct cond {
    const char *sql;
    const char *p[2];
    long long want;
} cond;

static bool cond_holds(void *arg)
{
    cond *c = arg;
    return th_pg_number(c->sql, 2, c->p) == c->want;
}

static void wait_sql(const char *what, const char *sql, const char *a, const char *b)
{
    cond c = { sql, { a, b }, 1 };
    if (!th_wait(cond_holds, &c, 30000)) {
        const char *p[] = { a };
        char *st = query_text("SELECT status || ' ' || coalesce(error, '') FROM sluice_runs WHERE id = $1", 1, p);
        char *log = th_read_file(sched_log);
        char *wlog = pool_log ? th_read_file(pool_log) : NULL;
        cr_assert_fail("waiting for %s (%s): run is '%s'\nscheduler log:\n%s\nworker log:\n%s", what, a,
                       st ? st : "?", log ? log : "", wlog ? wlog : "");
    }
}

static void wait_run(const char *run, const char *status)
{
    wait_sql(status, "SELECT count(*) FROM sluice_runs WHERE id = $1 AND status = $2", run, status);
}

static void wait_gate(const char *run, const char *gate)
{
    wait_sql("gate", "SELECT count(*) FROM sluice_gates WHERE run_id = $1 AND gate_id = $2 AND status = 'open'",
             run, gate);
}

static th_result cli(const char *first, ...)
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
    /* through the API server as mallory, once the test started one */
    char *tok = sl_xasprintf("SLUICE_TOKEN=%s", mallory_token ? mallory_token : "");
    const char *env[] = { api_env, tok, NULL };
    th_result r = th_run(argv, api.pid > 0 ? env : NULL);
    free(tok);
    return r;
}

static char *marker(const char *target)
{
    char *path = sl_xasprintf("%s/%s.marker", dir, target);
    char *text = th_read_file(path);
    free(path);
    return text;
}

/* The dead letter of the test's queue holds an entry whose fields (job
 * bytes, error) contain `what`. */
static bool dead_has(void *arg)
{
    const char *what = arg;
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "dead");
    sl_redis *r = th_redis();
    sl_err err;
    const char *argv[] = { "XRANGE", key, "-", "+" };
    redisReply *rep = sl_redis_command(r, 4, argv, NULL, &err);
    bool yes = false;
    for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements && !yes; i++) {
        redisReply *f = rep->element[i]->element[1];
        for (size_t k = 0; k < f->elements && !yes; k++)
            yes = memmem(f->element[k]->str, f->element[k]->len, what, strlen(what)) != NULL;
    }
    freeReplyObject(rep);
    sl_redis_free(r);
    return yes;
}

static void approve(const char *run, const char *gate, const char *who)
{
    sl_err err;
    sl_db *db = sl_db_connect(th_env("DATABASE_URL"), &err);
    cr_assert_not_null(db, "%s", err.msg);
    sl_gate_result res;
    cr_assert_eq(sl_gate_decide(db, run, gate, &(sl_principal){ .name = who, .method = "test" }, true, NULL,
                                NULL, 0, &res, &err), 0, "%s", err.msg);
    cr_assert(!res.refused, "approval by %s refused", who);
    sl_db_free(db);
}

/* The installed release pipeline: staging, a 2-of-3 gate, production. */
static const char *RELEASE =
    "name: %1$s\n"
    "steps:\n"
    "  - {id: staging, kind: deploy, queue: %2$s, args: {target: staging}}\n"
    "  - id: go-live\n"
    "    needs: [staging]\n"
    "    approval: {approvers: [alice, group:leads], required: 2}\n"
    "  - {id: production, kind: deploy, queue: %2$s, needs: [go-live], args: {target: production}}\n";

/* The client's version: same name, no gate. */
static const char *EVIL =
    "name: %1$s\n"
    "steps:\n"
    "  - {id: production, kind: deploy, queue: %2$s, args: {target: production}}\n";

static char *sha256_file(const char *path)
{
    char *text = th_read_file(path);
    cr_assert_not_null(text);
    unsigned char d[SL_SHA256_LEN];
    char hex[SL_SHA256_HEX];
    sl_sha256_digest(text, strlen(text), d);
    sl_sha256_hex(d, hex);
    free(text);
    return sl_xstrdup(hex);
}

/* ---- bypass #1: the client's pipeline ---------------------------------------- */

Test(trust, a_clients_pipeline_text_is_never_run)
{
    char name[64];
    th_name(name, sizeof name, "release");
    pipeline(pipes, name, RELEASE);
    pipeline(evil, name, EVIL);
    start_pool(queue);
    start_scheduler();

    start_api();

    /* The CLI no longer sends pipelines: --pipelines (no option of run)
     * and files are refused. */
    th_result r = cli("run", name, "--pipelines", evil, NULL);
    cr_assert_eq(r.status, 2, "run --pipelines: %d %s", r.status, r.err);
    cr_assert(strstr(r.err, "--pipelines"), "%s", r.err);
    th_result_free(&r);
    char *evil_file = sl_xasprintf("%s/%s.yaml", evil, name);
    r = cli("run", evil_file, NULL);
    cr_assert_eq(r.status, 2, "run FILE: %d %s", r.status, r.err);
    cr_assert(strstr(r.err, "runs only the pipelines installed in its own directory"), "%s", r.err);
    th_result_free(&r);
    const char *pn[] = { name };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_runs WHERE pipeline = $1", 1, pn), 0);

    /* A client that writes the run row itself, with its own source and
     * steps: the scheduler resolves the name and runs the installed text. */
    char *evil_text = th_read_file(evil_file);
    const char *ins[] = { "01trust-forged-run-0000000000000001", name, evil_text };
    PGconn *c = th_pg();
    PGresult *res = PQexecParams(c, "INSERT INTO sluice_runs (id, pipeline, source_name, source, source_sha256,"
                                 " triggered_by, status) VALUES ($1, $2, 'evil.yaml', $3,"
                                 " encode(sha256(convert_to($3, 'UTF8')), 'hex'), 'mallory', 'queued')",
                                 3, NULL, ins, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
    /* ... and the ordinary way: by name, through the API */
    r = cli("run", name, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *run = sl_xstrdup(r.out);
    run[strcspn(run, "\n")] = '\0';
    th_result_free(&r);

    /* The request by name stops at the installed gate. */
    wait_gate(run, "go-live");
    char *installed = sl_xasprintf("%s/%s.yaml", pipes, name);
    char *want_hash = sha256_file(installed);
    const char *rp[] = { run };
    char *hash = query_text("SELECT source_sha256 FROM sluice_runs WHERE id = $1", 1, rp);
    cr_assert(hash && strcmp(hash, want_hash) == 0, "the run records the installed hash: %s vs %s",
              hash ? hash : "(null)", want_hash);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_run_steps WHERE run_id = $1", 1, rp), 3);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_runs WHERE id = $1 AND triggered_by = 'mallory'", 1,
                              rp), 1, "the run is mallory's, the owner of the token");
    char *m = marker("production");
    cr_assert_null(m, "production deployed before the gate released: %s", m);
    char *st = marker("staging");
    cr_assert_not_null(st, "staging (before the gate) deployed");
    free(st);

    /* The row the client wrote with its own text and hash was never
     * accepted (sealed) by the scheduler: it fails without running. */
    wait_run(ins[0], "failed");
    const char *fp[] = { ins[0] };
    char *ferr = query_text("SELECT error FROM sluice_runs WHERE id = $1", 1, fp);
    cr_assert(ferr && strstr(ferr, "not accepted by this scheduler (its seal does not verify"), "%s",
              ferr ? ferr : "(null)");
    free(ferr);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE run_id = $1", 1, fp), 0);

    /* The properly gated run deploys production after two approvals, with
     * a signature the worker accepts. */
    approve(run, "go-live", "alice");
    approve(run, "go-live", "bob");
    wait_run(run, "succeeded");
    m = marker("production");
    char *pj = query_text("SELECT job_id FROM sluice_run_steps WHERE run_id = $1 AND step_id = 'production'",
                          1, rp);
    cr_assert(m && pj && strstr(m, pj), "production deployed by the run's own job %s: %s", pj, m ? m : "");
    free(m);
    free(pj);

    /* An unknown name is refused with a clear error (by the API server when
     * it can read the pipeline directory, else by the scheduler's run). */
    r = cli("run", "no-such-pipeline", "--wait", NULL);
    cr_assert_eq(r.status, 1, "%d %s %s", r.status, r.out, r.err);
    cr_assert(strstr(r.out, "no pipeline named 'no-such-pipeline' is installed") ||
              strstr(r.err, "no pipeline named 'no-such-pipeline' is installed"), "%s%s", r.out, r.err);
    th_result_free(&r);

    free(hash);
    free(want_hash);
    free(installed);
    free(evil_text);
    free(evil_file);
    free(run);
}

Test(trust, a_request_carrying_client_source_is_rerun_from_the_installed_text)
{
    char name[64];
    th_name(name, sizeof name, "release");
    pipeline(pipes, name, RELEASE);
    pipeline(evil, name, EVIL);
    start_pool(queue);
    start_scheduler();
    /* A request row (no hash) with the client's text and a step row of its
     * own: both are discarded when the scheduler accepts it. */
    char *evil_file = sl_xasprintf("%s/%s.yaml", evil, name);
    char *evil_text = th_read_file(evil_file);
    const char *id = "01trust-forged-request-00000000002";
    const char *ins[] = { id, name, evil_text };
    PGconn *c = th_pg();
    PGresult *res = PQexecParams(c, "WITH r AS (INSERT INTO sluice_runs (id, pipeline, source_name, source,"
                                 " triggered_by, status) VALUES ($1, $2, 'evil.yaml', $3, 'mallory', 'queued')"
                                 " RETURNING id)"
                                 " INSERT INTO sluice_run_steps (run_id, step_id, position, status)"
                                 " SELECT id, 'production', 0, 'pending' FROM r", 3, NULL, ins, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(res);
    res = PQexecParams(c, "SELECT pg_notify('sluice_runs', $1)", 1, NULL, ins, NULL, NULL, 0);
    PQclear(res);
    PQfinish(c);
    wait_gate(id, "go-live");
    char *installed = sl_xasprintf("%s/%s.yaml", pipes, name);
    char *want_hash = sha256_file(installed);
    char *want_text = th_read_file(installed);
    const char *rp[] = { id };
    char *hash = query_text("SELECT source_sha256 FROM sluice_runs WHERE id = $1", 1, rp);
    char *src = query_text("SELECT source FROM sluice_runs WHERE id = $1", 1, rp);
    cr_assert(hash && strcmp(hash, want_hash) == 0, "%s", hash ? hash : "(null)");
    cr_assert(src && strcmp(src, want_text) == 0, "the client's source was replaced: %s", src ? src : "");
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_run_steps WHERE run_id = $1", 1, rp), 3);
    char *m = marker("production");
    cr_assert_null(m, "production deployed without approval: %s", m);
    free(hash);
    free(src);
    free(want_hash);
    free(want_text);
    free(installed);
    free(evil_text);
    free(evil_file);
}

/* ---- bypass #3: protected jobs from producers --------------------------------- */

/* A deploy envelope for the test's queue; target names a deploy target. */
static void deploy_job(sl_job *job, const char *id, const char *target)
{
    memset(job, 0, sizeof *job);
    job->id = sl_xstrdup(id);
    job->kind = sl_xstrdup("deploy");
    job->queue = sl_xstrdup(queue);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "target", 6);
    msgpack_pack_str_with_body(&pk, target, strlen(target));
    job->args = sl_xmalloc(sb.size);
    memcpy(job->args, sb.data, sb.size);
    job->args_len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    job->attempt = 1;
    job->enqueued_at = sl_now_ms();
    job->run = sl_xstrdup("01trust-run");
    job->step = sl_xstrdup("production");
}

static void sign_with(sl_job *job, const char *keyname)
{
    char *path = sl_xasprintf("%s/%s.key", dir, keyname);
    sl_err err;
    sl_sign_key *k = sl_sign_load_private(path, &err);
    cr_assert_not_null(k, "%s", err.msg);
    cr_assert_eq(sl_jobsig_sign(k, job, &err), 0, "%s", err.msg);
    sl_sign_key_free(k);
    free(path);
}

static void xadd(const sl_job *job)
{
    sl_redis *r = th_redis();
    sl_err err;
    cr_assert_eq(sl_queue_enqueue(r, job, &err), 0, "%s", err.msg);
    sl_redis_free(r);
}

static void wait_dead(const char *what)
{
    if (!th_wait(dead_has, (void *)what, 30000)) {
        th_result r = cli("dead", "list", "--queue", queue, NULL);
        char *wlog = th_read_file(pool_log);
        cr_assert_fail("no dead-letter entry says '%s':\n%s\nworker log:\n%s", what, r.out, wlog ? wlog : "");
    }
}

static bool staging_count(void *arg)
{
    char *m = marker("staging");
    int n = 0;
    for (const char *p = m; p && (p = strchr(p, '\n')) != NULL; p++)
        n++;
    free(m);
    return n >= *(int *)arg;
}

Test(trust, unsigned_protected_jobs_are_dead_lettered_without_running)
{
    start_pool(queue);
    /* sluice enqueue, as any producer can */
    th_result r = cli("enqueue", "deploy", "--queue", queue, "--arg", "target=production", "--id", "enq-prod", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    wait_dead("enq-prod");
    /* a raw XADD of a well-formed envelope that even names a run and step */
    sl_job job;
    deploy_job(&job, "raw-prod", "production");
    xadd(&job);
    sl_job_clear(&job);
    wait_dead("raw-prod");
    /* a protected kind (worker.protected_kinds: [sleep]) */
    r = cli("enqueue", "sleep", "--queue", queue, "--json", "{\"ms\": 1}", "--id", "enq-sleep", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    wait_dead("enq-sleep");
    /* an unprotected target still runs unsigned: the check is selective */
    r = cli("enqueue", "deploy", "--queue", queue, "--arg", "target=staging", "--id", "enq-staging", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    int one = 1;
    cr_assert(th_wait(staging_count, &one, 30000), "the staging deploy ran");

    r = cli("dead", "list", "--queue", queue, NULL);
    cr_assert(strstr(r.out, "protected job refused: deploy target 'production' is protected"
                     " (deploy.targets.production.protected) and the envelope carries no scheduler signature"),
              "%s", r.out);
    cr_assert(strstr(r.out, "protected job refused: kind 'sleep' is protected (worker.protected_kinds)"), "%s",
              r.out);
    th_result_free(&r);
    char *m = marker("production");
    cr_assert_null(m, "the production command ran: %s", m);
    /* refused jobs take no row: the ids stay free for the real jobs */
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id IN ('enq-prod', 'raw-prod', 'enq-sleep')",
                              0, NULL), 0);
}

Test(trust, forged_and_misapplied_signatures_are_refused)
{
    start_pool(queue);
    sl_job job;
    /* signed by a key the workers do not trust */
    deploy_job(&job, "forged-key", "production");
    sign_with(&job, "attacker");
    xadd(&job);
    sl_job_clear(&job);
    /* a valid signature with the args changed afterwards */
    deploy_job(&job, "other-args", "staging");
    sign_with(&job, "sched");
    sl_job other;
    deploy_job(&other, "other-args", "production");
    other.sig = job.sig;
    other.sig_len = job.sig_len;
    job.sig = NULL;
    xadd(&other);
    sl_job_clear(&other);
    sl_job_clear(&job);
    /* a valid signature for another queue */
    deploy_job(&job, "other-queue", "production");
    free(job.queue);
    job.queue = sl_xstrdup("elsewhere");
    sign_with(&job, "sched");
    free(job.queue);
    job.queue = sl_xstrdup(queue);
    xadd(&job);
    sl_job_clear(&job);
    /* a valid signature, replayed as a later attempt with no history */
    deploy_job(&job, "replayed-attempt", "production");
    sign_with(&job, "sched");
    job.attempt = 3;
    xadd(&job);
    sl_job_clear(&job);
    /* bit flipped */
    deploy_job(&job, "flipped", "production");
    sign_with(&job, "sched");
    job.sig[10] ^= 1;
    xadd(&job);
    sl_job_clear(&job);

    wait_dead("forged-key");
    wait_dead("other-args");
    wait_dead("other-queue");
    wait_dead("replayed-attempt");
    wait_dead("flipped");
    th_result r = cli("dead", "list", "--queue", queue, NULL);
    cr_assert(strstr(r.out, "its signature does not verify with worker.scheduler_public_keys"), "%s", r.out);
    cr_assert(strstr(r.out, "protected job refused: attempt 3, but PostgreSQL records 0 earlier attempts"
                     " of this job"), "%s", r.out);
    th_result_free(&r);
    char *m = marker("production");
    cr_assert_null(m, "the production command ran: %s", m);

    /* Control: the scheduler's own signature over exactly this job runs. */
    deploy_job(&job, "properly-signed", "production");
    sign_with(&job, "sched");
    xadd(&job);
    sl_job_clear(&job);
    wait_sql("the signed job", "SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = $2",
             "properly-signed", "succeeded");
    m = marker("production");
    cr_assert(m && strcmp(m, "properly-signed\n") == 0, "only the signed job deployed: %s", m ? m : "");
    free(m);
}

Test(trust, a_signed_job_keeps_working_through_retries_and_dead_retry)
{
    /* production's command fails the first time (no flag file), then works */
    char *flag = sl_xasprintf("%s/second-time", dir);
    char *text = sl_xasprintf(
        "worker:\n  block: 100ms\n  batch: 8\n  retry_initial: 50ms\n  retry_max: 50ms\n"
        "  scheduler_public_keys: [%1$s/sched.pub]\n"
        "deploy:\n  targets:\n"
        "    production:\n      type: command\n      protected: true\n"
        "      command: [/bin/sh, -c, 'if [ -e %2$s ]; then echo \"$SLUICE_JOB_ATTEMPT\" >> %1$s/production.marker;"
        " else touch %2$s; exit 1; fi']\n", dir, flag);
    th_write_file(config, text);
    free(text);
    start_pool(queue);
    sl_job job;
    deploy_job(&job, "retried", "production");
    job.max_attempts = 2;
    sign_with(&job, "sched");
    xadd(&job);
    sl_job_clear(&job);
    wait_sql("the retried job", "SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = $2", "retried",
             "succeeded");
    char *m = marker("production");
    cr_assert(m && strcmp(m, "2\n") == 0, "attempt 2 (carrying attempt 1's signature) ran: %s", m ? m : "");
    free(m);

    /* dead retry: attempt 1 dies (max_attempts 1), the operator sends it back */
    cr_assert_eq(unlink(flag), 0);
    deploy_job(&job, "dead-then-retried", "production");
    job.max_attempts = 1;
    sign_with(&job, "sched");
    xadd(&job);
    sl_job_clear(&job);
    wait_dead("dead-then-retried");
    th_result r = cli("dead", "retry", "--all", "--queue", queue, NULL);
    cr_assert_eq(r.status, 0, "%s %s", r.out, r.err);
    th_result_free(&r);
    wait_sql("the dead-retried job", "SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = $2",
             "dead-then-retried", "succeeded");
    m = marker("production");
    cr_assert(m && strcmp(m, "2\n2\n") == 0, "%s", m ? m : "");
    free(m);
    free(flag);
}

/* ---- bypass #4: pre-recorded step ids ------------------------------------------ */

Test(trust, a_pre_recorded_step_id_neither_skips_the_real_job_nor_counts)
{
    char name[64], decoys[96];
    th_name(name, sizeof name, "release");
    th_name(decoys, sizeof decoys, "decoy");
    pipeline(pipes, name, RELEASE);
    char *queues = sl_xasprintf("%s,%s", queue, decoys);
    start_pool(queues);
    start_scheduler();
    start_api();
    th_result r = cli("run", name, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *run = sl_xstrdup(r.out);
    run[strcspn(run, "\n")] = '\0';
    th_result_free(&r);
    wait_gate(run, "go-live");

    /* The old trick: a noop with the id RUN.production.1, before the gate. */
    char *guess = sl_xasprintf("%s.production.1", run);
    r = cli("enqueue", "noop", "--queue", decoys, "--id", guess, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    wait_sql("the decoy", "SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = $2", guess, "succeeded");
    approve(run, "go-live", "alice");
    approve(run, "go-live", "carol");
    wait_run(run, "succeeded");
    const char *rp[] = { run };
    char *pj = query_text("SELECT job_id FROM sluice_run_steps WHERE run_id = $1 AND step_id = 'production'", 1, rp);
    cr_assert(pj && strcmp(pj, guess) != 0, "the step's job id is not guessable: %s", pj ? pj : "");
    char *m = marker("production");
    cr_assert(m && strstr(m, pj), "the real deploy ran: %s", m ? m : "");
    free(m);
    free(pj);

    /* An impostor that learns the real id (here: a pool that does not serve
     * the deploy queue, so the real job waits while a noop with its id is
     * recorded): the step fails loudly, the real job is not skipped as
     * done, and nothing deploys. */
    stop_pool();
    start_pool(decoys);
    r = cli("run", name, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *run2 = sl_xstrdup(r.out);
    run2[strcspn(run2, "\n")] = '\0';
    th_result_free(&r);
    stop_pool();
    start_pool(queues);
    wait_gate(run2, "go-live");
    stop_pool();
    start_pool(decoys);
    approve(run2, "go-live", "alice");
    approve(run2, "go-live", "bob");
    const char *rp2[] = { run2 };
    wait_sql("production queued", "SELECT count(*) FROM sluice_run_steps WHERE run_id = $1 AND step_id = $2"
             " AND enqueued", run2, "production");
    char *real = query_text("SELECT job_id FROM sluice_run_steps WHERE run_id = $1 AND step_id = 'production'",
                            1, rp2);
    r = cli("enqueue", "noop", "--queue", decoys, "--id", real, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    wait_run(run2, "failed");
    char *err = query_text("SELECT error FROM sluice_run_steps WHERE run_id = $1 AND step_id = 'production'",
                           1, rp2);
    cr_assert(err && strstr(err, "was recorded by a different job (kind 'noop'") &&
              strstr(err, "than the scheduler enqueued (kind 'deploy'") && strstr(err, "does not count"),
              "%s", err ? err : "(null)");
    /* now the real job reaches a worker: it is dead-lettered, not run and
     * not skipped as already done */
    stop_pool();
    start_pool(queues);
    wait_dead("job id already used by a different job");
    m = marker("production");
    cr_assert(m && strstr(m, real) == NULL, "the real job of the failed step ran: %s", m);
    free(m);
    free(err);
    free(real);
    free(run2);
    free(guess);
    free(run);
    free(queues);
}

/* ---- Redis ACLs ------------------------------------------------------------------- */

static char acl_pw[40];

/* The tests' Redis URL with user:password inserted. */
static char *url_as(const char *user)
{
    const char *base = th_env("REDIS_URL");
    cr_assert(strncmp(base, "redis://", 8) == 0, "%s", base);
    const char *rest = strchr(base + 8, '@') ? strchr(base + 8, '@') + 1 : base + 8;
    return sl_xasprintf("redis://%s:%s@%s", user, acl_pw, rest);
}

/* Replaces every `from` in s by `to` (returns a new string). */
static char *replace_all(const char *s, const char *from, const char *to)
{
    sl_buf b = SL_BUF_INIT;
    for (const char *p; (p = strstr(s, from)) != NULL; s = p + strlen(from)) {
        sl_buf_append(&b, s, (size_t)(p - s));
        sl_buf_puts(&b, to);
    }
    sl_buf_puts(&b, s);
    return sl_buf_detach(&b);
}

/* Sends each `user NAME RULES...` line of the shipped etc/redis-acl.conf
 * as ACL SETUSER, with QUEUE and the password filled in. */
static void load_shipped_acl(const char *q)
{
    char *text = th_read_file(SLUICE_SOURCE_DIR "/etc/redis-acl.conf");
    cr_assert_not_null(text);
    char *a = replace_all(text, "QUEUE", q);
    char *pw = sl_xasprintf(">%s", acl_pw);
    char *b = replace_all(a, ">CHANGE-ME", pw);
    sl_redis *r = th_redis();
    int users = 0;
    char *save = NULL;
    for (char *line = strtok_r(b, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "user ", 5) != 0)
            continue;
        const char *argv[64] = { "ACL", "SETUSER" };
        int n = 2;
        char *s2 = NULL;
        for (char *w = strtok_r(line + 5, " ", &s2); w && n < 64; w = strtok_r(NULL, " ", &s2))
            argv[n++] = w;
        sl_err err;
        redisReply *rep = sl_redis_command(r, n, argv, NULL, &err);
        cr_assert(rep && rep->type == REDIS_REPLY_STATUS, "ACL SETUSER %s: %s", argv[2],
                  rep && rep->type == REDIS_REPLY_ERROR ? rep->str : err.msg);
        freeReplyObject(rep);
        users++;
    }
    cr_assert_eq(users, 3, "the shipped file defines a producer, a worker and a scheduler user");
    sl_redis_free(r);
    free(text);
    free(a);
    free(b);
    free(pw);
}

/* Sends one command as `url`'s user; returns the reply's error text
 * (NULL if it succeeded). */
static char *try_as(const char *url, int argc, const char **argv)
{
    sl_err err;
    sl_redis *r = sl_redis_connect(url, 5000, &err);
    cr_assert_not_null(r, "connect as %s: %s", url, err.msg);
    redisReply *rep = sl_redis_command(r, argc, argv, NULL, &err);
    char *out = rep == NULL ? sl_xstrdup(err.msg) : rep->type == REDIS_REPLY_ERROR ? sl_xstrdup(rep->str) : NULL;
    freeReplyObject(rep);
    sl_redis_free(r);
    return out;
}

static void refused(const char *url, int argc, const char **argv)
{
    char *e = try_as(url, argc, argv);
    cr_assert(e && (strstr(e, "NOPERM") || strstr(e, "no permissions")), "%s %s was allowed: %s", argv[0],
              argc > 1 ? argv[1] : "", e ? e : "OK");
    free(e);
}

Test(trust, redis_acl_users_from_the_shipped_file)
{
    snprintf(acl_pw, sizeof acl_pw, "pw-%lld-%d", (long long)sl_now_ms(), (int)getpid());
    char other[96];
    th_name(other, sizeof other, "tqother");
    load_shipped_acl(queue);
    char *producer_user = sl_xasprintf("sluice-producer-%s", queue);
    char *producer = url_as(producer_user), *worker = url_as("sluice-worker"), *scheduler = url_as("sluice-scheduler");

    /* The producer enqueues to its own queue with the real CLI ... */
    char *env_p = sl_xasprintf("SLUICE_REDIS_URL=%s", producer);
    const char *penv[] = { env_p, NULL };
    const char *enq[] = { SLUICE_BIN, "enqueue", "noop", "--queue", queue, "--id", "acl-own", "--config", config, NULL };
    th_result r = th_run(enq, penv);
    cr_assert_eq(r.status, 0, "the producer enqueues to its own queue: %s", r.err);
    th_result_free(&r);
    /* ... and to no other queue */
    const char *enq2[] = { SLUICE_BIN, "enqueue", "noop", "--queue", other, "--config", config, NULL };
    r = th_run(enq2, penv);
    cr_assert_neq(r.status, 0, "the producer enqueued to another queue");
    cr_assert(strstr(r.err, "NOPERM") || strstr(r.err, "no permissions"), "%s", r.err);
    th_result_free(&r);
    /* nor read, take, acknowledge or delete anything, nor see the dead letter */
    char jobs[160], dead[160], ojobs[160], delayed[160];
    snprintf(jobs, sizeof jobs, "sluice:{%s}:jobs", queue);
    snprintf(dead, sizeof dead, "sluice:{%s}:dead", queue);
    snprintf(delayed, sizeof delayed, "sluice:{%s}:delayed", queue);
    snprintf(ojobs, sizeof ojobs, "sluice:{%s}:jobs", other);
    const char *zadd[] = { "ZADD", delayed, "1", "x" };
    char *ze = try_as(producer, 4, zadd);
    cr_assert_null(ze, "the producer may add delayed jobs to its queue: %s", ze);
    const char *zrem[] = { "ZREM", delayed, "x" };
    refused(producer, 3, zrem);
    /* it notes when its delayed job is due (sluice:due, write-only), and
     * may WAIT for replicas (wait_replicas) */
    const char *due[] = { "ZADD", SL_DUE_KEY, "LT", "1", queue };
    char *de = try_as(producer, 5, due);
    cr_assert_null(de, "the producer may note its delayed jobs in %s: %s", SL_DUE_KEY, de);
    const char *zrange_due[] = { "ZRANGE", SL_DUE_KEY, "0", "-1" };
    refused(producer, 4, zrange_due);
    const char *wait[] = { "WAIT", "0", "0" };
    char *we = try_as(producer, 3, wait);
    cr_assert_null(we, "the producer may WAIT for replicas: %s", we);
    const char *xrg[] = { "XREADGROUP", "GROUP", "sluice", "thief", "COUNT", "1", "STREAMS", jobs, ">" };
    refused(producer, 9, xrg);
    const char *xack[] = { "XACK", jobs, "sluice", "0-1" };
    refused(producer, 4, xack);
    const char *del[] = { "DEL", jobs };
    refused(producer, 2, del);
    const char *xdel[] = { "XDEL", jobs, "0-1" };
    refused(producer, 3, xdel);
    const char *xrange[] = { "XRANGE", jobs, "-", "+" };
    refused(producer, 4, xrange);
    const char *xdead[] = { "XRANGE", dead, "-", "+" };
    refused(producer, 4, xdead);
    const char *xadd_dead[] = { "XADD", dead, "*", "job", "x" };
    refused(producer, 5, xadd_dead);
    const char *xadd_other[] = { "XADD", ojobs, "*", "job", "x" };
    refused(producer, 5, xadd_other);
    const char *flush[] = { "FLUSHALL" };
    refused(producer, 1, flush);
    const char *dl[] = { SLUICE_BIN, "dead", "list", "--queue", queue, "--config", config, NULL };
    r = th_run(dl, penv);
    cr_assert_neq(r.status, 0, "the producer listed the dead letter:\n%s", r.out);
    th_result_free(&r);
    const char *zrem_clean[] = { "ZREM", delayed, "x" };
    sl_redis *adm = th_redis();
    sl_err aerr;
    freeReplyObject(sl_redis_command(adm, 3, zrem_clean, NULL, &aerr));
    sl_redis_free(adm);

    /* The worker user runs the pool: the producer's job runs, an unsigned
     * protected one still goes to the dead letter. */
    const char *saved = getenv("SLUICE_REDIS_URL");
    char *saved_copy = saved ? sl_xstrdup(saved) : NULL;
    setenv("SLUICE_REDIS_URL", worker, 1);
    start_pool(queue);
    if (saved_copy)
        setenv("SLUICE_REDIS_URL", saved_copy, 1);
    else
        unsetenv("SLUICE_REDIS_URL");
    free(saved_copy);
    wait_sql("the producer's job", "SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = $2", "acl-own",
             "succeeded");
    const char *enq3[] = { SLUICE_BIN, "enqueue", "deploy", "--queue", queue, "--arg", "target=production",
                           "--id", "acl-prod", "--config", config, NULL };
    r = th_run(enq3, penv);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    wait_dead("acl-prod");
    const char *xadmin[] = { "CONFIG", "SET", "maxmemory-policy", "allkeys-lru" };
    refused(worker, 4, xadmin);
    const char *wflush[] = { "FLUSHALL" };
    refused(worker, 1, wflush);
    const char *wother[] = { "GET", "not-sluice" };
    refused(worker, 2, wother);

    /* The scheduler user drives a gated run to production. */
    char name[64];
    th_name(name, sizeof name, "release");
    pipeline(pipes, name, RELEASE);
    sched_redis_url = scheduler;
    start_scheduler();
    start_api();
    r = cli("run", name, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *run = sl_xstrdup(r.out);
    run[strcspn(run, "\n")] = '\0';
    th_result_free(&r);
    wait_gate(run, "go-live");
    approve(run, "go-live", "alice");
    approve(run, "go-live", "carol");
    wait_run(run, "succeeded");
    char *m = marker("production");
    cr_assert_not_null(m, "production deployed through the scheduler user and the worker user");
    free(m);
    /* and they really were connected as those users */
    const char *cl[] = { "CLIENT", "LIST" };
    adm = th_redis();
    redisReply *list = sl_redis_command(adm, 2, cl, NULL, &aerr);
    cr_assert(list && list->type == REDIS_REPLY_STRING, "%s", aerr.msg);
    cr_assert(strstr(list->str, "user=sluice-worker") && strstr(list->str, "user=sluice-scheduler"), "%s",
              list->str);
    freeReplyObject(list);
    sl_redis_free(adm);
    const char *sxrg[] = { "XREADGROUP", "GROUP", "sluice", "thief", "COUNT", "1", "STREAMS", jobs, ">" };
    refused(scheduler, 9, sxrg);
    const char *sxack[] = { "XACK", jobs, "sluice", "0-1" };
    refused(scheduler, 4, sxack);
    const char *sdel[] = { "DEL", jobs };
    refused(scheduler, 2, sdel);
    sched_redis_url = NULL;
    stop_all();   /* before their users go */
    const char *deluser[] = { "ACL", "DELUSER", producer_user, "sluice-worker", "sluice-scheduler" };
    adm = th_redis();
    freeReplyObject(sl_redis_command(adm, 5, deluser, NULL, &aerr));
    sl_redis_free(adm);
    free(run);
    free(env_p);
    free(producer);
    free(worker);
    free(scheduler);
    free(producer_user);
}
