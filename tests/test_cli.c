/* test_cli.c: the `sluice` command line: help, exit codes, and clear
 * messages for bad input and unreachable servers — and that a rejected
 * command writes nothing. */
#include "harness.h"

#include "mem.h"
#include "queue.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static th_result sluice(const char *const *args, const char *const *env)
{
    const char *argv[24] = { SLUICE_BIN };
    size_t n = 1;
    for (size_t i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return th_run(argv, env);
}

static long long stream_length(const char *queue)
{
    sl_redis *r = th_redis();
    long long len = -1, pending = -1;
    sl_err err;
    cr_assert_eq(sl_queue_depth(r, queue, &len, &pending, &err), 0, "%s", err.msg);
    sl_redis_free(r);
    return len;
}

Test(cli, every_command_has_help)
{
    const char *cmds[][3] = {
        { "enqueue" }, { "job" }, { "dead" }, { "dead", "list" }, { "dead", "retry" },
        { "dead", "purge" }, { "pause" }, { "resume" }, { "migrate" }, { "kinds" },
        { "gates" }, { "open" }, { "audit" }, { "approve" }, { "reject" }, { "validate" }, { "run" },
        { "runs" }, { "status" }, { "cancel" }, { "stats" }, { "top" }, { "metrics" }, { "serve" },
        { "token" }, { "workers" }, { "break-glass" },
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *args[] = { cmds[i][0], cmds[i][1] ? cmds[i][1] : "--help", "--help", NULL };
        if (cmds[i][1] == NULL)
            args[2] = NULL;
        char usage[64];
        snprintf(usage, sizeof usage, "Usage: sluice %s%s%s", cmds[i][0], cmds[i][1] ? " " : "",
                 cmds[i][1] ? cmds[i][1] : "");
        th_result r = sluice(args, NULL);
        cr_assert_eq(r.status, 0, "%s --help: %s", usage, r.err);
        cr_assert(strstr(r.out, usage), "%s --help printed: %s", usage, r.out);
        /* the options come from the command's table (lib/opts), listed whole */
        bool no_options = strcmp(cmds[i][0], "kinds") == 0 || (strcmp(cmds[i][0], "dead") == 0 && !cmds[i][1]);
        if (!no_options)
            cr_assert(strstr(r.out, "\nOptions:\n") && strstr(r.out, "  -h, --help "), "%s --help: %s", usage,
                      r.out);
        th_result_free(&r);
    }
    const char *top[] = { "--help", NULL };
    th_result r = sluice(top, NULL);
    cr_assert_eq(r.status, 0);
    const char *listed[] = { "enqueue", "job", "dead", "pause", "resume", "migrate", "kinds" };
    for (size_t i = 0; i < sizeof listed / sizeof listed[0]; i++)
        cr_assert(strstr(r.out, listed[i]), "'%s' is not listed: %s", listed[i], r.out);
    th_result_free(&r);
    const char *worker[] = { SLUICE_WORKER_BIN, "--help", NULL };
    r = th_run(worker, NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "Usage: sluice-worker"), "%s", r.out);
    th_result_free(&r);
}

/* Each case: arguments, the words the message must contain. */
typedef struct usage_case {
    const char *args[8];
    const char *expect;
} usage_case;

Test(cli, usage_errors_exit_2_with_a_clear_message_and_write_nothing)
{
    char queue[64];
    th_name(queue, sizeof queue, "usage");
    usage_case cases[] = {
        { { "enqueue", "noop", "--queue", queue, "--json", "{\"a\": 1,}", NULL }, "--json: JSON at byte" },
        { { "enqueue", "noop", "--queue", queue, "--json", "[1, 2]", NULL }, "expected a JSON object" },
        { { "enqueue", "noop", "--queue", queue, "--bogus", NULL }, "unknown option '--bogus'" },
        { { "enqueue", "no-such-kind", "--queue", queue, NULL }, "unknown kind 'no-such-kind'" },
        { { "enqueue", "--queue", queue, NULL }, "missing KIND" },
        { { "enqueue", "noop", "--queue", "a{b}", NULL }, "invalid queue name" },
        { { "enqueue", "noop", "--queue", queue, "--id", "has space", NULL }, "--id: invalid job id" },
        { { "enqueue", "noop", "--queue", queue, "--timeout", "10", NULL }, "--timeout" },
        { { "enqueue", "noop", "--queue", queue, "--max-attempts", "0", NULL }, "--max-attempts" },
        { { "enqueue", "noop", "--queue", queue, "--arg", "novalue", NULL }, "expected KEY=VALUE" },
        { { "enqueue", "noop", "--queue", queue, "--queue", NULL }, "needs a value" },
        { { "job", NULL }, "missing job ID" },
        { { "dead", NULL }, "missing subcommand" },
        { { "dead", queue, NULL }, "'sluice dead list --queue" },
        { { "dead", "--frob", NULL }, "unknown subcommand '--frob'" },
        { { "dead", "list", queue, NULL }, "unexpected argument" },
        { { "dead", "list", "--count", "0", NULL }, "--count" },
        { { "dead", "list", "--queue", "a{b}", NULL }, "invalid queue name" },
        { { "dead", "retry", NULL }, "missing ENTRY_ID" },
        { { "dead", "retry", "1-0", NULL }, "needs --queue" },
        { { "dead", "retry", "1-0", "--all", "--queue", queue, NULL }, "not both" },
        { { "dead", "retry", "12345", "--queue", queue, NULL }, "invalid entry id '12345'" },
        { { "dead", "retry", "--all", "--queue", "a{b}", NULL }, "invalid queue name" },
        { { "dead", "purge", "--older-than", "10", NULL }, "--older-than" },
        { { "dead", "purge", queue, NULL }, "unexpected argument" },
        { { "pause", NULL }, "missing QUEUE" },
        { { "pause", "a{b}", NULL }, "invalid queue name" },
        { { "resume", queue, "extra", NULL }, "unexpected argument 'extra'" },
        { { "frobnicate", NULL }, "unknown command 'frobnicate'" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        th_result r = sluice(cases[i].args, NULL);
        cr_assert_eq(r.status, 2, "case %zu (%s …): exit %d, stderr: %s", i, cases[i].args[0], r.status, r.err);
        cr_assert(strstr(r.err, cases[i].expect), "case %zu: stderr lacks '%s': %s", i, cases[i].expect, r.err);
        cr_assert_str_empty(r.out, "case %zu printed to stdout: %s", i, r.out);
        th_result_free(&r);
    }
    cr_assert_eq(stream_length(queue), 0, "a rejected enqueue wrote to the stream");
    sl_redis *redis = th_redis();
    char *queues[] = { queue };
    bool paused = true;
    sl_err err;
    cr_assert_eq(sl_queue_paused(redis, queues, 1, &paused, &err), 0, "%s", err.msg);
    cr_assert(!paused, "a rejected resume paused the queue?");
    sl_redis_free(redis);
}

Test(cli, unreachable_redis_exits_1_naming_the_address)
{
    const char *env[] = { "SLUICE_REDIS_URL=redis://127.0.0.1:1/0", NULL };
    const char *args[] = { "enqueue", "noop", NULL };
    th_result r = sluice(args, env);
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_assert(strstr(r.err, "127.0.0.1:1") && strstr(r.err, "connect"), "%s", r.err);
    cr_assert_str_empty(r.out);
    th_result_free(&r);
    const char *others[][5] = {
        { "dead", "list", "--queue", "q", NULL }, { "dead", "list", NULL },
        { "dead", "purge", NULL }, { "pause", "q", NULL }, { "resume", "q", NULL },
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        r = sluice(others[i], env);
        cr_assert_eq(r.status, 1, "%s %s: exit %d: %s", others[i][0], others[i][1], r.status, r.err);
        cr_assert(strstr(r.err, "127.0.0.1:1"), "%s", r.err);
        cr_assert_str_empty(r.out);
        th_result_free(&r);
    }
}

Test(cli, unreachable_postgres_exits_1_with_the_reason)
{
    const char *env[] = { "SLUICE_DATABASE_URL=postgresql://sluice@127.0.0.1:1/sluice?connect_timeout=2", NULL };
    const char *cmds[][3] = { { "migrate", NULL, NULL }, { "job", "some-id", NULL } };
    for (size_t i = 0; i < 2; i++) {
        th_result r = sluice(cmds[i], env);
        cr_assert_eq(r.status, 1, "%s: exit %d: %s", cmds[i][0], r.status, r.err);
        cr_assert(strstr(r.err, "postgres: connect") && strstr(r.err, "127.0.0.1"), "%s", r.err);
        th_result_free(&r);
    }
}

Test(cli, bad_config_file_exits_1_with_its_position)
{
    char *path = th_write_temp("bad.yaml", "worker:\n  processes: lots\n");
    const char *args[] = { "enqueue", "noop", "--config", path, NULL };
    th_result r = sluice(args, NULL);
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    char where[512];
    snprintf(where, sizeof where, "%s:2:", path);
    cr_assert(strstr(r.err, where), "expected '%s' in: %s", where, r.err);
    th_result_free(&r);
    const char *worker[] = { SLUICE_WORKER_BIN, "--config", path, NULL };
    r = th_run(worker, NULL);
    cr_assert_eq(r.status, 78, "sluice-worker with a bad config: exit %d: %s", r.status, r.err);
    cr_assert(strstr(r.err, where), "%s", r.err);
    th_result_free(&r);
    free(path);
}

/* Each section is checked by the programs that read it: sluice-scheduler
 * skips the pool's worker and queues, sluice-worker skips the scheduler's
 * retention, and sluice checks both.  Each program stops at the first
 * error of a section it reads, so the line it names shows what it skipped. */
Test(cli, each_program_checks_the_sections_it_reads)
{
    char *path = th_write_temp("owners.yaml", "worker:\n  processes: lots\n"
                                              "retention:\n  batch: 0\n"
                                              "scheduler:\n  reconcile: never\n");
    char at[512];
    const char *sched[] = { SLUICE_SCHEDULER_BIN, "--config", path, NULL };
    th_result r = th_run(sched, NULL);
    cr_assert_eq(r.status, 78, "sluice-scheduler: exit %d: %s", r.status, r.err);
    snprintf(at, sizeof at, "%s:4:", path);
    cr_assert(strstr(r.err, at) && strstr(r.err, "retention.batch"), "the worker section is not its: %s", r.err);
    th_result_free(&r);
    const char *worker[] = { SLUICE_WORKER_BIN, "--config", path, NULL };
    r = th_run(worker, NULL);
    cr_assert_eq(r.status, 78, "sluice-worker: exit %d: %s", r.status, r.err);
    snprintf(at, sizeof at, "%s:2:", path);
    cr_assert(strstr(r.err, at) && strstr(r.err, "worker.processes"), "%s", r.err);
    th_result_free(&r);
    /* without the worker's error, the worker reaches the scheduler's
     * sections and skips them: only a misspelt section name stops it */
    free(path);
    path = th_write_temp("owners.yaml", "retention:\n  batch: 0\nscheduler:\n  reconcile: never\n"
                                        "worker:\n  procesess: 2\n");
    const char *worker2[] = { SLUICE_WORKER_BIN, "--config", path, NULL };   /* the new file */
    r = th_run(worker2, NULL);
    snprintf(at, sizeof at, "%s:6:", path);
    cr_assert_eq(r.status, 78, "sluice-worker: exit %d: %s", r.status, r.err);
    cr_assert(strstr(r.err, at) && strstr(r.err, "unknown key 'procesess' in 'worker'"), "%s", r.err);
    th_result_free(&r);
    const char *args[] = { "enqueue", "noop", "--config", path, NULL };
    r = sluice(args, NULL);
    snprintf(at, sizeof at, "%s:2:", path);
    cr_assert_eq(r.status, 1, "sluice: exit %d: %s", r.status, r.err);
    cr_assert(strstr(r.err, at) && strstr(r.err, "retention.batch"), "sluice checks every section: %s", r.err);
    th_result_free(&r);
    free(path);
}

Test(cli, job_not_found_exits_3_unknown)
{
    th_migrate();
    const char *args[] = { "job", "no-such-job-id", NULL };
    th_result r = sluice(args, NULL);
    cr_assert_eq(r.status, 3, "unknown has its own exit status (1 is a server failure)");
    cr_assert(strstr(r.out, "no-such-job-id") && strstr(r.out, "unknown: no result recorded"), "%s", r.out);
    th_result_free(&r);
}

Test(cli, enqueue_prints_the_id_and_writes_one_entry)
{
    char queue[64];
    th_name(queue, sizeof queue, "enq");
    const char *args[] = { "enqueue", "sleep", "--queue", queue, "--json", "{\"ms\": 5, \"tag\": \"a\"}",
                           "--arg", "tag=b", "--id", "my-job-1", "--max-attempts", "3", "--timeout", "1m", NULL };
    th_result r = sluice(args, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "my-job-1\n");
    th_result_free(&r);
    cr_assert_eq(stream_length(queue), 1);
    /* The entry decodes to what was asked for. */
    sl_redis *redis = th_redis();
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    const char *xr[] = { "XRANGE", key, "-", "+" };
    sl_err err;
    redisReply *rep = sl_redis_command(redis, 4, xr, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    redisReply *val = rep->element[0]->element[1]->element[1];
    sl_job job;
    cr_assert_eq(sl_envelope_decode(val->str, val->len, &job, &err), 0, "%s", err.msg);
    cr_assert_str_eq(job.id, "my-job-1");
    cr_assert_str_eq(job.kind, "sleep");
    cr_assert_str_eq(job.queue, queue);
    cr_assert_eq(job.max_attempts, 3);
    cr_assert_eq(job.timeout_ms, 60000);
    cr_assert_eq(job.attempt, 1);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&up, job.args, job.args_len, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(up.data.type, MSGPACK_OBJECT_MAP);
    cr_assert_eq(up.data.via.map.size, 2, "args should hold ms and tag once");
    msgpack_unpacked_destroy(&up);
    sl_job_clear(&job);
    freeReplyObject(rep);
    /* Registered for discovery. */
    const char *ism[] = { "SISMEMBER", SL_QUEUES_KEY, queue };
    rep = sl_redis_command(redis, 3, ism, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    cr_assert_eq(rep->integer, 1);
    freeReplyObject(rep);
    sl_redis_free(redis);
}

Test(cli, migrate_is_idempotent_and_safe_concurrently)
{
    /* A fresh database, migrated by four processes at once. */
    char db[64];
    th_name(db, sizeof db, "migr");
    for (char *p = db; *p; p++)
        if (*p == '-')
            *p = '_';
    PGconn *c = th_pg();
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    PGresult *res = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(res);
    const char *base = th_env("DATABASE_URL");
    char url[512];
    snprintf(url, sizeof url, "%.*s/%s", (int)(strrchr(base, '/') - base), base, db);
    char *env_var = sl_xasprintf("SLUICE_DATABASE_URL=%s", url);
    const char *env[] = { env_var, NULL };
    pid_t pids[4];
    for (int i = 0; i < 4; i++) {
        pids[i] = fork();
        cr_assert(pids[i] >= 0);
        if (pids[i] == 0) {
            const char *args[] = { "migrate", NULL };
            th_result r = sluice(args, env);
            _exit(r.status == 0 ? 0 : 1);
        }
    }
    for (int i = 0; i < 4; i++) {
        int st;
        cr_assert_eq(waitpid(pids[i], &st, 0), pids[i]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "concurrent migrate #%d failed", i);
    }
    const char *args[] = { "migrate", NULL };
    th_result r = sluice(args, env);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "applied 0 migrations"), "re-running migrate applied something: %s", r.out);
    th_result_free(&r);
    free(env_var);
    snprintf(sql, sizeof sql, "DROP DATABASE %s", db);
    PQclear(PQexec(c, sql));
    PQfinish(c);
}

Test(cli, pause_and_resume_a_queue)
{
    char queue[64];
    th_name(queue, sizeof queue, "pause");
    char *queues[] = { queue };
    sl_redis *redis = th_redis();
    sl_err err;
    const char *verbs[] = { "pause", "pause", "resume", "resume" };
    const bool expect[] = { true, true, false, false };
    for (int i = 0; i < 4; i++) {
        const char *args[] = { verbs[i], queue, NULL };
        th_result r = sluice(args, NULL);
        cr_assert_eq(r.status, 0, "%s #%d: %s", verbs[i], i, r.err);
        cr_assert(strstr(r.out, queue), "%s", r.out);
        cr_assert(strstr(r.err, "no job has ever been enqueued"), "an unknown queue is worth a note: %s", r.err);
        th_result_free(&r);
        bool paused = !expect[i];
        cr_assert_eq(sl_queue_paused(redis, queues, 1, &paused, &err), 0, "%s", err.msg);
        cr_assert_eq(paused, expect[i], "after %s #%d", verbs[i], i);
    }
    sl_redis_free(redis);
}

/* Adds an entry to queue's dead letter; returns its id (caller frees). */
static char *add_dead(sl_redis *redis, const char *queue, const char *data, size_t len)
{
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "dead");
    const char *xadd[] = { "XADD", key, "*", "job", data, "error", "failed 3 times: boom",
                           "failed_at", "1700000000000" };
    size_t lens[] = { 4, strlen(key), 1, 3, len, 5, 20, 9, 13 };
    sl_err err;
    redisReply *rep = sl_redis_command(redis, 9, xadd, lens, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    char *id = sl_xstrdup(rep->str);
    freeReplyObject(rep);
    return id;
}

/* A dead job: its envelope (attempt 3 of 3) in the dead letter and, if
 * recorded, its row in PostgreSQL.  Returns the dead entry id. */
static char *dead_job(sl_redis *redis, const char *queue, const char *id, bool recorded)
{
    sl_job job = { .id = (char *)id, .kind = "noop", .queue = (char *)queue, .attempt = 3,
                   .max_attempts = 3, .enqueued_at = 1700000000000 };
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    sl_err err;
    cr_assert_eq(sl_envelope_encode(&job, &sb, &err), 0, "%s", err.msg);
    char *entry = add_dead(redis, queue, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (recorded) {
        const char *p[] = { id, queue };
        cr_assert_eq(th_pg_number("INSERT INTO sluice_jobs (id, queue, kind, status, attempts, error)"
                                  " VALUES ($1, $2, 'noop', 'dead', 3, 'boom') RETURNING 1", 2, p), 1);
    }
    return entry;
}

static long long xlen(sl_redis *redis, const char *queue, const char *suffix)
{
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, suffix);
    const char *cmd[] = { "XLEN", key };
    sl_err err;
    redisReply *rep = sl_redis_command(redis, 2, cmd, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    long long n = rep->integer;
    freeReplyObject(rep);
    return n;
}

static long long status_is(const char *id, const char *status)
{
    const char *p[] = { id, status };
    return th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = $2", 2, p);
}

Test(cli, dead_list_retry_and_purge_round_trip)
{
    th_migrate();
    char queue[64], job1[64], job2[64];
    th_name(queue, sizeof queue, "deadcli");
    th_name(job1, sizeof job1, "dead1");
    th_name(job2, sizeof job2, "dead2");
    sl_redis *redis = th_redis();
    char *e1 = dead_job(redis, queue, job1, true);
    char *garbage = add_dead(redis, queue, "not msgpack", 11);
    /* The queue is known, as it is once anything was enqueued to it. */
    const char *sadd[] = { "SADD", SL_QUEUES_KEY, queue };
    sl_err err;
    freeReplyObject(sl_redis_command(redis, 3, sadd, NULL, &err));

    const char *list[] = { "dead", "list", "--queue", queue, "--json", NULL };
    th_result r = sluice(list, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, job1) && strstr(r.out, e1) && strstr(r.out, "\"attempt\":3"), "%s", r.out);
    cr_assert(strstr(r.out, garbage) && strstr(r.out, "\"bytes\":11"), "%s", r.out);
    th_result_free(&r);

    /* One entry by id: back in the stream as the attempt after the 3
     * recorded ones, allowed one attempt (--attempts' default), and reset
     * in PostgreSQL. */
    const char *retry[] = { "dead", "retry", e1, "--queue", queue, NULL };
    r = sluice(retry, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, job1) && strstr(r.out, e1), "%s", r.out);
    th_result_free(&r);
    cr_assert_eq(xlen(redis, queue, "jobs"), 1);
    cr_assert_eq(xlen(redis, queue, "dead"), 1, "the garbage stays");
    cr_assert_eq(status_is(job1, "queued"), 1, "the job was not reset in PostgreSQL");
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    const char *xr[] = { "XRANGE", key, "-", "+" };
    redisReply *rep = sl_redis_command(redis, 4, xr, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    redisReply *v = rep->element[0]->element[1]->element[1];
    sl_job job;
    cr_assert_eq(sl_envelope_decode(v->str, v->len, &job, &err), 0, "%s", err.msg);
    cr_assert_str_eq(job.id, job1);
    cr_assert_eq(job.attempt, 4);
    cr_assert_eq(job.max_attempts, 4);
    cr_assert_eq(job.enqueued_at, 1700000000000);
    sl_job_clear(&job);
    freeReplyObject(rep);

    /* The same entry again: it is gone. */
    r = sluice(retry, NULL);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, e1) && strstr(r.err, "no entry"), "%s", r.err);
    th_result_free(&r);
    cr_assert_eq(xlen(redis, queue, "jobs"), 1, "a second retry added an entry");

    /* Undecodable: cannot be retried, and stays. */
    const char *retry_garbage[] = { "dead", "retry", garbage, "--queue", queue, NULL };
    r = sluice(retry_garbage, NULL);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "cannot be retried") && strstr(r.err, "undecodable"), "%s", r.err);
    cr_assert_str_empty(r.out);
    th_result_free(&r);
    cr_assert_eq(xlen(redis, queue, "dead"), 1);

    /* --all: retries what it can (a job PostgreSQL never recorded too, with
     * a note), reports the rest, exits 1. */
    char *e2 = dead_job(redis, queue, job2, false);
    const char *all[] = { "dead", "retry", "--all", "--queue", queue, NULL };
    r = sluice(all, NULL);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.out, job2) && strstr(r.out, "retried 1 dead-letter entry; 1 could not"), "%s", r.out);
    cr_assert(strstr(r.err, "note") && strstr(r.err, job2), "%s", r.err);
    cr_assert(strstr(r.err, garbage) && strstr(r.err, "cannot be retried"), "%s", r.err);
    th_result_free(&r);
    cr_assert_eq(xlen(redis, queue, "jobs"), 2);
    cr_assert_eq(xlen(redis, queue, "dead"), 1);

    /* purge: nothing is an hour old; then everything. */
    const char *older[] = { "dead", "purge", "--queue", queue, "--older-than", "1h", NULL };
    r = sluice(older, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "purged 0 entries"), "%s", r.out);
    th_result_free(&r);
    cr_assert_eq(xlen(redis, queue, "dead"), 1);
    const char *purge[] = { "dead", "purge", "--queue", queue, NULL };
    r = sluice(purge, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "purged 1 entry"), "%s", r.out);
    th_result_free(&r);
    cr_assert_eq(xlen(redis, queue, "dead"), 0);
    const char *empty[] = { "dead", "list", "--queue", queue, NULL };
    r = sluice(empty, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "is empty"), "%s", r.out);
    th_result_free(&r);
    free(e1);
    free(e2);
    free(garbage);
    sl_redis_free(redis);
}
