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
    const char *cmds[] = { "enqueue", "job", "dead", "migrate", "kinds" };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *args[] = { cmds[i], "--help", NULL };
        th_result r = sluice(args, NULL);
        cr_assert_eq(r.status, 0, "%s --help: %s", cmds[i], r.err);
        cr_assert(strstr(r.out, "Usage: sluice"), "%s --help printed: %s", cmds[i], r.out);
        th_result_free(&r);
    }
    const char *top[] = { "--help", NULL };
    th_result r = sluice(top, NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "enqueue") && strstr(r.out, "migrate"), "%s", r.out);
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
        { { "dead", NULL }, "missing QUEUE" },
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
    const char *dead[] = { "dead", "q", NULL };
    r = sluice(dead, env);
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    th_result_free(&r);
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

Test(cli, job_not_found_exits_1)
{
    th_migrate();
    const char *args[] = { "job", "no-such-job-id", NULL };
    th_result r = sluice(args, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "no-such-job-id") && strstr(r.err, "no result recorded"), "%s", r.err);
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
