/* test_e2e.c: a job's whole trip — enqueue (CLI and C library) → Redis
 * stream → forked worker → PostgreSQL row — against the real servers, and
 * what happens to failing and undecodable jobs. */
#include "harness.h"

#include "clock.h"
#include "envelope.h"
#include "mem.h"
#include "queue.h"
#include "sluice.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct queue_state {
    const char *queue;
    long long want;   /* rows expected in sluice_jobs for the queue */
} queue_state;

static long long rows_in_queue(const char *queue)
{
    const char *p[] = { queue };
    return th_pg_number("SELECT count(*) FROM sluice_jobs WHERE queue = $1", 1, p);
}

static bool enough_rows(void *arg)
{
    queue_state *s = arg;
    return rows_in_queue(s->queue) >= s->want;
}

static char *worker_log(void)
{
    char name[64];
    th_name(name, sizeof name, "worker");
    char *path = sl_xasprintf("/tmp/sluice-%s.log", name);
    return path;
}

/* Starts a 2-process pool on queue with a short block so stops are quick. */
static pid_t start_pool(const char *queue, const char *log)
{
    static char *config;
    if (config == NULL)
        config = th_write_temp("sluice.yaml", "worker:\n  block: 100ms\n  batch: 32\n");
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "2", NULL };
    return th_worker_start(args, log);
}

static void stop_pool(pid_t pid, const char *log)
{
    int status = th_stop(pid, SIGTERM, 30000);
    char *text = th_read_file(log);
    cr_assert_eq(status, 0, "worker did not stop cleanly (status %d); log:\n%s", status, text ? text : "");
    cr_assert(text && !strstr(text, "Sanitizer"), "a sanitizer reported an error in the pool:\n%s", text);
    cr_assert(!strstr(text, "level=error"), "the pool logged an error:\n%s", text);
    free(text);
}

static void assert_stream_drained(const char *queue)
{
    sl_redis *r = th_redis();
    long long len = -1, pending = -1;
    sl_err err;
    cr_assert_eq(sl_queue_depth(r, queue, &len, &pending, &err), 0, "%s", err.msg);
    cr_assert_eq(len, 0, "stream of %s still holds %lld entries", queue, len);
    cr_assert_eq(pending, 0, "%lld entries of %s still pending", pending, queue);
    sl_redis_free(r);
}

static void run_thousand(const char *queue, const char *via)
{
    char *log = worker_log();
    pid_t pool = start_pool(queue, log);
    queue_state st = { queue, 1000 };
    double t0 = sl_monotonic_sec();
    bool all = th_wait(enough_rows, &st, 120000);
    double secs = sl_monotonic_sec() - t0;
    stop_pool(pool, log);
    cr_assert(all, "only %lld of 1000 rows after 120 s", rows_in_queue(queue));
    const char *p[] = { queue };
    cr_assert_eq(rows_in_queue(queue), 1000);
    cr_assert_eq(th_pg_number("SELECT count(DISTINCT id) FROM sluice_jobs WHERE queue = $1 AND status = 'succeeded'", 1, p), 1000);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_job_history a JOIN sluice_jobs j ON j.id = a.job_id WHERE j.queue = $1", 1, p), 1000);
    assert_stream_drained(queue);
    /* Throughput is reported, never asserted: timing belongs in bench/. */
    fprintf(stderr, "e2e (%s): 1000 noop jobs drained in %.3f s = %.0f jobs/s (2 processes, enqueued before start)\n",
            via, secs, 1000 / secs);
    unlink(log);
    free(log);
}

Test(e2e, thousand_noop_jobs_via_c_library)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "lib");
    char err[256], id[SLUICE_ID_MAX + 1];
    sluice_client *c = sluice_client_new(NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    for (int i = 0; i < 1000; i++) {
        sluice_job_spec spec = { .kind = "noop", .queue = queue, .args_json = "{\"i\": 1}" };
        cr_assert_eq(sluice_enqueue(c, &spec, id, err, sizeof err), 0, "%s", err);
    }
    sluice_client_free(c);
    run_thousand(queue, "C library");
}

Test(e2e, thousand_noop_jobs_via_cli)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "cli");
    for (int i = 0; i < 1000; i++) {
        const char *argv[] = { SLUICE_BIN, "enqueue", "noop", "--queue", queue, NULL };
        th_result r = th_run(argv, NULL);
        cr_assert_eq(r.status, 0, "enqueue #%d: %s", i, r.err);
        th_result_free(&r);
    }
    run_thousand(queue, "CLI");
}

static bool row_exists(void *arg)
{
    const char *p[] = { arg };
    return th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1", 1, p) > 0;
}

static char *enqueue_cli(const char *const *args)
{
    const char *argv[16] = { SLUICE_BIN, "enqueue" };
    size_t n = 2;
    for (size_t i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0, "enqueue: %s", r.err);
    r.out[strcspn(r.out, "\n")] = '\0';
    char *id = sl_xstrdup(r.out);
    th_result_free(&r);
    return id;
}

static long long dead_letters(const char *queue, char *errors, size_t n);

/* With the default of one attempt, a failing job is dead at once: recorded
 * with its message and moved to the dead letter. */
Test(e2e, failing_job_is_recorded_with_its_message)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "fail");
    const char *args[] = { "fail", "--queue", queue, "--arg", "message=disk full on build host", NULL };
    char *id = enqueue_cli(args);
    char *log = worker_log();
    pid_t pool = start_pool(queue, log);
    bool found = th_wait(row_exists, id, 30000);
    stop_pool(pool, log);
    cr_assert(found, "no row for failing job %s", id);
    const char *p[] = { id };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'dead'"
                              " AND error = 'disk full on build host'", 1, p), 1);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_job_history WHERE job_id = $1 AND attempt = 1"
                              " AND status = 'failed' AND error = 'disk full on build host'", 1, p), 1);
    /* `sluice job` shows it to people and to scripts. */
    const char *show[] = { SLUICE_BIN, "job", id, NULL };
    th_result r = th_run(show, NULL);
    cr_assert_eq(r.status, 5, "dead: finished without success; %s", r.err);
    cr_assert(strstr(r.out, "dead") && strstr(r.out, "disk full on build host"), "%s", r.out);
    th_result_free(&r);
    const char *show_json[] = { SLUICE_BIN, "job", id, "--json", NULL };
    r = th_run(show_json, NULL);
    cr_assert_eq(r.status, 5, "%s", r.err);
    cr_assert(strstr(r.out, "\"status\" : \"dead\"") || strstr(r.out, "\"status\":\"dead\""), "%s", r.out);
    th_result_free(&r);
    assert_stream_drained(queue);
    char errors[1024];
    cr_assert_eq(dead_letters(queue, errors, sizeof errors), 1);
    cr_assert(strstr(errors, "disk full on build host"), "dead letter errors: %s", errors);
    unlink(log);
    free(log);
    free(id);
}

/* Reads the dead letter of queue: count of entries and all errors joined. */
static long long dead_letters(const char *queue, char *errors, size_t n)
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
        redisReply *fields = rep->element[i]->element[1];
        for (size_t k = 0; k + 1 < fields->elements; k += 2) {
            if (strcmp(fields->element[k]->str, "error") == 0) {
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

Test(e2e, garbage_and_unknown_kind_go_to_dead_letter_and_pool_keeps_going)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "dead");
    sl_redis *r = th_redis();
    sl_err err;
    /* 1: bytes that are not MessagePack at all. */
    cr_assert_eq(sl_queue_enqueue_raw(r, queue, "not msgpack", 11, &err), 0, "%s", err.msg);
    /* 2: a well-formed envelope of a kind no worker has. */
    char unknown_id[64];
    th_name(unknown_id, sizeof unknown_id, "unknown");
    sl_job job = { .id = unknown_id, .kind = "no-such-kind", .queue = queue, .attempt = 1,
                   .enqueued_at = sl_now_ms() };
    cr_assert_eq(sl_queue_enqueue(r, &job, &err), 0, "%s", err.msg);
    /* 3: an entry without the `job` field. */
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    const char *xadd[] = { "XADD", key, "*", "payload", "x" };
    redisReply *rep = sl_redis_command(r, 5, xadd, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    freeReplyObject(rep);
    /* 4: an envelope missing a required field ('attempt'): a map with v, id, kind, args, queue, enqueued_at. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    const char *strs[][2] = { { "id", "no-attempt-1" }, { "kind", "noop" }, { "queue", queue } };
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_int(&pk, 1);
    for (int i = 0; i < 3; i++) {
        msgpack_pack_str_with_body(&pk, strs[i][0], strlen(strs[i][0]));
        msgpack_pack_str_with_body(&pk, strs[i][1], strlen(strs[i][1]));
    }
    msgpack_pack_str_with_body(&pk, "args", 4);
    msgpack_pack_map(&pk, 0);
    msgpack_pack_str_with_body(&pk, "enqueued_at", 11);
    msgpack_pack_int64(&pk, sl_now_ms());
    cr_assert_eq(sl_queue_enqueue_raw(r, queue, sb.data, sb.size, &err), 0, "%s", err.msg);
    msgpack_sbuffer_destroy(&sb);
    /* 5: a good job after all that. */
    const char *args[] = { "noop", "--queue", queue, NULL };
    char *good = enqueue_cli(args);

    char *log = worker_log();
    pid_t pool = start_pool(queue, log);
    bool found = th_wait(row_exists, good, 30000);
    cr_assert(found, "the good job after the garbage never ran");
    cr_assert(th_wait(row_exists, unknown_id, 10000), "no row for the unknown-kind job");
    cr_assert_eq(kill(pool, 0), 0, "the pool died");
    /* Still working: a job enqueued now runs too. */
    char *later = enqueue_cli(args);
    cr_assert(th_wait(row_exists, later, 30000), "the pool stopped taking jobs after the garbage");
    stop_pool(pool, log);

    char errors[4096];
    cr_assert_eq(dead_letters(queue, errors, sizeof errors), 4, "dead letter errors:\n%s", errors);
    cr_assert(strstr(errors, "undecodable envelope"), "%s", errors);
    cr_assert(strstr(errors, "unknown kind 'no-such-kind'"), "%s", errors);
    cr_assert(strstr(errors, "no 'job' field"), "%s", errors);
    cr_assert(strstr(errors, "field 'attempt'"), "%s", errors);
    const char *p[] = { unknown_id };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'dead'"
                              " AND error LIKE 'unknown kind%'", 1, p), 1);
    /* The garbage bytes are kept as received. */
    const char *dead_cmd[] = { SLUICE_BIN, "dead", "list", "--queue", queue, "--json", NULL };
    th_result res = th_run(dead_cmd, NULL);
    cr_assert_eq(res.status, 0, "%s", res.err);
    cr_assert(strstr(res.out, "\"bytes\":11"), "%s", res.out);
    th_result_free(&res);
    assert_stream_drained(queue);
    sl_redis_free(r);
    unlink(log);
    free(log);
    free(good);
    free(later);
}

Test(e2e, redelivered_job_with_committed_result_is_not_run_again)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "redeliver");
    /* The same id enqueued twice: the second delivery finds the committed
     * result and is acknowledged without running (the attempt count stays 1). */
    char id[64];
    th_name(id, sizeof id, "twice");
    const char *args[] = { "noop", "--queue", queue, "--id", id, NULL };
    free(enqueue_cli(args));
    char *log = worker_log();
    pid_t pool = start_pool(queue, log);
    cr_assert(th_wait(row_exists, id, 30000));
    free(enqueue_cli(args));
    queue_state st = { queue, 1 };
    cr_assert(th_wait(enough_rows, &st, 1000));
    /* Wait for the second entry to be consumed. */
    sl_redis *r = th_redis();
    bool drained = false;
    for (int i = 0; i < 1500 && !drained; i++) {
        long long len, pending;
        sl_err err;
        cr_assert_eq(sl_queue_depth(r, queue, &len, &pending, &err), 0, "%s", err.msg);
        drained = len == 0 && pending == 0;
        if (!drained)
            usleep(20000);
    }
    stop_pool(pool, log);
    cr_assert(drained, "second delivery was never acknowledged");
    const char *p[] = { id };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_job_history WHERE job_id = $1", 1, p), 1);
    char *text = th_read_file(log);
    cr_assert(text && strstr(text, "event=job.already_done"), "log:\n%s", text ? text : "");
    free(text);
    sl_redis_free(r);
    unlink(log);
    free(log);
}

/* args {"s": "a\0b"}: valid MessagePack, but jsonb cannot store U+0000 and
 * the handler would see a value PostgreSQL refuses.  The worker refuses the
 * envelope at decoding: it never runs, it goes to the dead letter with the
 * reason, and the good job beside it is recorded. */
Test(e2e, job_with_nul_in_args_is_dead_lettered_without_running)
{
    th_migrate();
    char queue[64], bad_id[64];
    th_name(queue, sizeof queue, "refused");
    th_name(bad_id, sizeof bad_id, "nul");
    /* The encoder refuses it, so pack it by hand as another producer would. */
    sl_job job = { .id = bad_id, .kind = "noop", .queue = queue, .attempt = 1,
                   .enqueued_at = sl_now_ms(), .args = "\x81\xa1s\xa3" "a\0b", .args_len = 7 };
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    sl_err err;
    cr_assert_eq(sl_envelope_encode(&job, &sb, &err), -1);
    cr_assert_str_eq(err.msg, "field 'args': a string holds U+0000 (PostgreSQL cannot store it)");
    job.args = NULL;
    job.args_len = 0;
    cr_assert_eq(sl_envelope_encode(&job, &sb, &err), 0, "%s", err.msg);
    cr_assert_eq((unsigned char)sb.data[sb.size - 1], 0x80, "args should be packed last");
    sb.size--;                                            /* replace the empty args map */
    msgpack_sbuffer_write(&sb, "\x81\xa1s\xa3" "a\0b", 7);
    sl_redis *r = th_redis();
    cr_assert_eq(sl_queue_enqueue_raw(r, queue, sb.data, sb.size, &err), 0, "%s", err.msg);
    msgpack_sbuffer_destroy(&sb);
    /* A good job in the same batch must still be recorded. */
    const char *good_args[] = { "noop", "--queue", queue, NULL };
    char *good = enqueue_cli(good_args);
    char *log = worker_log();
    pid_t pool = start_pool(queue, log);
    cr_assert(th_wait(row_exists, good, 30000), "the good job was held back by the bad one");
    char errors[4096] = "";
    bool dead = false;
    for (int i = 0; i < 500 && !dead; i++) {
        dead = dead_letters(queue, errors, sizeof errors) == 1;
        if (!dead)
            usleep(20000);
    }
    stop_pool(pool, log);
    cr_assert(dead, "the refused job never reached the dead letter");
    cr_assert(strstr(errors, "undecodable envelope: field 'args': a string holds U+0000 "
                     "(PostgreSQL cannot store it)"), "%s", errors);
    const char *p[] = { bad_id };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_job_history WHERE job_id = $1", 1, p), 0);
    assert_stream_drained(queue);
    sl_redis_free(r);
    unlink(log);
    free(log);
    free(good);
}
