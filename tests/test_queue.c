/* test_queue.c: the Redis side (lib/redis.c, lib/queue.c) against a real
 * Redis: URL handling, enqueue/read/ack, dead letter, delayed jobs and
 * retries, reclaiming a dead consumer's entries, pause, dead-letter requeue
 * and purge. */
#include "harness.h"

#include "clock.h"
#include "envelope.h"
#include "queue.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(redis, bad_urls_are_refused_with_the_reason)
{
    struct { const char *url; const char *expect; } cases[] = {
        { "http://localhost", "must start with redis://" },
        { "rediss://localhost:6380", "TLS" },
        { "redis://", "missing host" },
        { "redis://localhost:99999", "bad port" },
        { "redis://localhost:6379/x", "bad database" },
        { "unix://relative.sock", "absolute" },
        { "redis://localhost:+1", "bad port" },
        { "redis://localhost:0", "bad port" },
        { "redis://localhost:65536", "bad port" },
        { "redis://localhost:6379/+1", "bad database" },
        { "redis://localhost:6379/-1", "bad database" },
        { "unix://:pw@/tmp/x.sock?db=x", "bad database" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_err err;
        sl_redis *r = sl_redis_connect(cases[i].url, 1000, &err);
        cr_assert_null(r, "%s was accepted", cases[i].url);
        cr_assert_eq(err.code, SL_EINVAL);
        cr_assert(strstr(err.msg, cases[i].expect), "%s: %s", cases[i].url, err.msg);
    }
}

/* A URL may carry a password: no message may repeat it, whatever fails. */
Test(redis, credentials_never_appear_in_messages)
{
    const char *urls[] = {
        "redis://:s3cretpw@localhost:99999", "redis://user:s3cretpw@localhost:+1/0",
        "redis://user:s3cretpw@localhost:6379/x", "redis://:s3cretpw@127.0.0.1:1/0",
        "unix://user:s3cretpw@relative.sock", "unix://:s3cretpw@/nonexistent/redis.sock",
        "rediss://:s3cretpw@localhost", "http://:s3cretpw@localhost",
    };
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
        sl_err err = { 0 };
        sl_redis *r = sl_redis_connect(urls[i], 1000, &err);
        cr_assert_null(r, "%s was accepted", urls[i]);
        cr_assert_null(strstr(err.msg, "s3cretpw"), "the password leaked: %s", err.msg);
    }
    /* A wrong password against the real server: refused, and not echoed. */
    const char *real = th_env("REDIS_URL");
    const char *hostport = strstr(real, "://") + 3;
    char url[300];
    snprintf(url, sizeof url, "redis://nobody:s3cretpw@%s", hostport);
    sl_err err = { 0 };
    cr_assert_null(sl_redis_connect(url, 1000, &err));
    cr_assert_eq(err.code, SL_EREDIS, "%s", err.msg);
    cr_assert_null(strstr(err.msg, "s3cretpw"), "the password leaked: %s", err.msg);
}

/* IPv6 literals and unix sockets with credentials parse (the connection
 * then fails on an address nothing listens on, naming that address). */
Test(redis, ipv6_literals_and_unix_sockets_with_passwords_parse)
{
    struct { const char *url; const char *address; } cases[] = {
        { "redis://[::1]:1/0", "::1:1" },
        { "redis://:pw@[::1]:1", "::1:1" },
        { "unix://:pw@/nonexistent/redis.sock?db=2", "/nonexistent/redis.sock" },
        { "unix://user:p%40ss@/nonexistent/redis.sock", "/nonexistent/redis.sock" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sl_err err = { 0 };
        cr_assert_null(sl_redis_connect(cases[i].url, 1000, &err));
        cr_assert_eq(err.code, SL_EREDIS, "%s was not parsed: %s", cases[i].url, err.msg);
        cr_assert_not_null(strstr(err.msg, cases[i].address), "%s: %s", cases[i].url, err.msg);
    }
}

Test(redis, unreachable_server_names_the_address)
{
    sl_err err;
    sl_redis *r = sl_redis_connect("redis://127.0.0.1:1/0", 1000, &err);
    cr_assert_null(r);
    cr_assert_eq(err.code, SL_EREDIS);
    cr_assert(strstr(err.msg, "127.0.0.1:1") && strstr(err.msg, "connect"), "%s", err.msg);
}

Test(redis, auth_error_is_reported)
{
    const char *url = th_env("REDIS_URL");   /* redis://127.0.0.1:PORT/0 */
    char bad[256];
    snprintf(bad, sizeof bad, "redis://:wrong@%s", url + strlen("redis://"));
    sl_err err;
    sl_redis *r = sl_redis_connect(bad, 1000, &err);
    cr_assert_null(r, "AUTH with a password the server does not have succeeded");
    cr_assert(strstr(err.msg, "AUTH"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "wrong"), "the password leaked into the message: %s", err.msg);
}

static void make_job(sl_job *job, char *id, size_t idlen, const char *queue)
{
    th_name(id, idlen, "job");
    memset(job, 0, sizeof *job);
    job->id = id;
    job->kind = "noop";
    job->queue = (char *)queue;
    job->attempt = 1;
    job->enqueued_at = sl_now_ms();
}

Test(queue, enqueue_read_ack_leaves_nothing_behind)
{
    sl_redis *r = th_redis();
    char q1[64], q2[64], id1[64], id2[64];
    th_name(q1, sizeof q1, "qa");
    th_name(q2, sizeof q2, "qb");
    sl_err err;
    cr_assert_eq(sl_queue_ensure_group(r, q1, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_queue_ensure_group(r, q1, &err), 0, "existing group must be fine: %s", err.msg);
    cr_assert_eq(sl_queue_ensure_group(r, q2, &err), 0, "%s", err.msg);
    sl_job j1, j2;
    make_job(&j1, id1, sizeof id1, q1);
    make_job(&j2, id2, sizeof id2, q2);
    cr_assert_eq(sl_queue_enqueue(r, &j1, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_queue_enqueue(r, &j2, &err), 0, "%s", err.msg);
    char *queues[] = { q1, q2 };
    sl_batch b = { 0 };
    int got = sl_queue_read(r, "tester", queues, 2, 10, 100, &b, &err);
    cr_assert_eq(got, 2, "read %d: %s", got, err.msg);
    long long len, pending;
    cr_assert_eq(sl_queue_depth(r, q1, &len, &pending, &err), 0);
    cr_assert_eq(pending, 1, "a read entry is pending until acknowledged");
    bool seen1 = false, seen2 = false;
    for (size_t i = 0; i < b.n; i++) {
        sl_job job;
        cr_assert_eq(sl_envelope_decode(b.items[i].data, b.items[i].len, &job, &err), 0, "%s", err.msg);
        cr_assert_str_eq(job.queue, b.items[i].queue);
        seen1 |= strcmp(job.id, id1) == 0;
        seen2 |= strcmp(job.id, id2) == 0;
        sl_job_clear(&job);
    }
    cr_assert(seen1 && seen2);
    sl_entry *acks[] = { &b.items[0], &b.items[1] };
    cr_assert_eq(sl_queue_ack(r, acks, 2, &err), 0, "%s", err.msg);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(sl_queue_depth(r, queues[i], &len, &pending, &err), 0);
        cr_assert_eq(len, 0, "acknowledged entries must be deleted");
        cr_assert_eq(pending, 0);
    }
    /* Nothing more to read: an empty read returns 0 after the block. */
    sl_batch_clear(&b);
    cr_assert_eq(sl_queue_read(r, "tester", queues, 2, 10, 50, &b, &err), 0);
    sl_batch_free(&b);
    sl_redis_free(r);
}

Test(queue, entries_added_before_the_group_are_delivered)
{
    sl_redis *r = th_redis();
    char q[64], id[64];
    th_name(q, sizeof q, "early");
    sl_job j;
    make_job(&j, id, sizeof id, q);
    sl_err err;
    cr_assert_eq(sl_queue_enqueue(r, &j, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_queue_ensure_group(r, q, &err), 0, "%s", err.msg);
    char *queues[] = { q };
    sl_batch b = { 0 };
    cr_assert_eq(sl_queue_read(r, "tester", queues, 1, 10, 0, &b, &err), 1, "%s", err.msg);
    sl_batch_free(&b);
    sl_redis_free(r);
}

Test(queue, dead_letter_moves_the_entry_atomically)
{
    sl_redis *r = th_redis();
    char q[64];
    th_name(q, sizeof q, "dl");
    sl_err err;
    cr_assert_eq(sl_queue_ensure_group(r, q, &err), 0, "%s", err.msg);
    const char garbage[] = "\xc1\x00garbage";
    cr_assert_eq(sl_queue_enqueue_raw(r, q, garbage, sizeof garbage - 1, &err), 0, "%s", err.msg);
    char *queues[] = { q };
    sl_batch b = { 0 };
    cr_assert_eq(sl_queue_read(r, "tester", queues, 1, 10, 0, &b, &err), 1, "%s", err.msg);
    cr_assert_eq(b.items[0].len, sizeof garbage - 1, "binary data must survive intact");
    cr_assert_eq(sl_queue_dead_letter(r, &b.items[0], NULL, "undecodable envelope: test", &err), 0, "%s", err.msg);
    long long len, pending;
    cr_assert_eq(sl_queue_depth(r, q, &len, &pending, &err), 0);
    cr_assert_eq(len + pending, 0);
    char key[SL_KEY_MAX];
    sl_queue_key(key, q, "dead");
    const char *xr[] = { "XRANGE", key, "-", "+" };
    redisReply *rep = sl_redis_command(r, 4, xr, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    cr_assert_eq(rep->elements, 1);
    redisReply *f = rep->element[0]->element[1];
    cr_assert_eq(f->elements, 6, "no id field when the id could not be read");
    cr_assert_str_eq(f->element[0]->str, "job");
    cr_assert_eq(f->element[1]->len, sizeof garbage - 1);
    cr_assert(memcmp(f->element[1]->str, garbage, sizeof garbage - 1) == 0, "bytes kept as received");
    cr_assert_str_eq(f->element[2]->str, "error");
    cr_assert_str_eq(f->element[3]->str, "undecodable envelope: test");
    cr_assert_str_eq(f->element[4]->str, "failed_at");
    cr_assert_gt(atoll(f->element[5]->str), 0);
    freeReplyObject(rep);
    sl_batch_free(&b);
    sl_redis_free(r);
}

Test(queue, enqueue_refuses_an_invalid_job)
{
    sl_redis *r = th_redis();
    sl_job j = { .id = "x", .kind = "noop", .queue = "bad{queue}", .attempt = 1, .enqueued_at = 1 };
    sl_err err;
    cr_assert_eq(sl_queue_enqueue(r, &j, &err), -1);
    cr_assert(strstr(err.msg, "queue"), "%s", err.msg);
    sl_redis_free(r);
}

/* ---- retries, delays, recovery, operator controls ------------------------ */

/* Encodes a fresh noop job of queue with the given attempt; returns its
 * envelope (caller frees) and writes its id into id. */
static char *envelope(const char *queue, int attempt, char *id, size_t idlen, size_t *len)
{
    sl_job j;
    make_job(&j, id, idlen, queue);
    j.attempt = attempt;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    sl_err err;
    cr_assert_eq(sl_envelope_encode(&j, &sb, &err), 0, "%s", err.msg);
    *len = sb.size;
    return sb.data;   /* msgpack_sbuffer's data is malloc'ed */
}

/* Runs a command given as words; fails the test on error. */
static redisReply *cmd(sl_redis *r, int argc, const char **argv)
{
    sl_err err;
    redisReply *rep = sl_redis_command(r, argc, argv, NULL, &err);
    cr_assert_not_null(rep, "%s: %s", argv[0], err.msg);
    return rep;
}

static long long cmd_int(sl_redis *r, int argc, const char **argv)
{
    redisReply *rep = cmd(r, argc, argv);
    cr_assert_eq(rep->type, REDIS_REPLY_INTEGER, "%s did not answer an integer", argv[0]);
    long long v = rep->integer;
    freeReplyObject(rep);
    return v;
}

/* Counts how many times job id occurs in the queue's stream and delayed set. */
static int occurrences(sl_redis *r, const char *queue, const char *id)
{
    char jobs[SL_KEY_MAX], delayed[SL_KEY_MAX];
    sl_queue_key(jobs, queue, "jobs");
    sl_queue_key(delayed, queue, "delayed");
    int n = 0;
    const char *xr[] = { "XRANGE", jobs, "-", "+" };
    redisReply *rep = cmd(r, 4, xr);
    for (size_t i = 0; i < rep->elements; i++) {
        redisReply *v = rep->element[i]->element[1]->element[1];
        sl_job j;
        sl_err err;
        cr_assert_eq(sl_envelope_decode(v->str, v->len, &j, &err), 0, "%s", err.msg);
        n += strcmp(j.id, id) == 0;
        sl_job_clear(&j);
    }
    freeReplyObject(rep);
    const char *zr[] = { "ZRANGE", delayed, "0", "-1" };
    rep = cmd(r, 4, zr);
    for (size_t i = 0; i < rep->elements; i++) {
        sl_job j;
        sl_err err;
        cr_assert_eq(sl_envelope_decode(rep->element[i]->str, rep->element[i]->len, &j, &err), 0);
        n += strcmp(j.id, id) == 0;
        sl_job_clear(&j);
    }
    freeReplyObject(rep);
    return n;
}

Test(queue, promote_moves_only_due_members_each_to_exactly_one_place)
{
    sl_redis *r = th_redis();
    char q[64], ids[5][64];
    th_name(q, sizeof q, "delay");
    sl_err err;
    int64_t now = sl_now_ms();
    int64_t due[5] = { now - 60000, now - 10, now, now + 1, now + 3600000 };
    for (int i = 0; i < 5; i++) {
        size_t len;
        char *env = envelope(q, 1, ids[i], sizeof ids[i], &len);
        cr_assert_eq(sl_queue_schedule(r, q, env, len, due[i], &err), 0, "%s", err.msg);
        /* The same bytes again store the job once. */
        cr_assert_eq(sl_queue_schedule(r, q, env, len, due[i], &err), 0, "%s", err.msg);
        free(env);
    }
    const char *ism[] = { "SISMEMBER", SL_QUEUES_KEY, q };
    cr_assert_eq(cmd_int(r, 3, ism), 1, "a scheduled queue must be discoverable");
    /* A limit of 2 moves the two most overdue; the rest of the due ones next. */
    cr_assert_eq(sl_queue_promote(r, q, now, 2, &err), 2, "%s", err.msg);
    cr_assert_eq(sl_queue_promote(r, q, now, 100, &err), 1, "%s", err.msg);
    cr_assert_eq(sl_queue_promote(r, q, now, 100, &err), 0, "nothing else is due: %s", err.msg);
    char jobs[SL_KEY_MAX], delayed[SL_KEY_MAX];
    sl_queue_key(jobs, q, "jobs");
    sl_queue_key(delayed, q, "delayed");
    const char *xlen[] = { "XLEN", jobs }, *zcard[] = { "ZCARD", delayed };
    cr_assert_eq(cmd_int(r, 2, xlen), 3);
    cr_assert_eq(cmd_int(r, 2, zcard), 2);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(occurrences(r, q, ids[i]), 1, "job %d is in %d places", i, occurrences(r, q, ids[i]));
    /* Promoted entries are ordinary jobs: a consumer reads them. */
    cr_assert_eq(sl_queue_ensure_group(r, q, &err), 0, "%s", err.msg);
    char *queues[] = { q };
    sl_batch b = { 0 };
    cr_assert_eq(sl_queue_read(r, "tester", queues, 1, 10, 0, &b, &err), 3, "%s", err.msg);
    sl_batch_free(&b);
    cr_assert_eq(sl_queue_promote(r, q, now, 0, &err), -1);
    cr_assert_eq(err.code, SL_EINVAL);
    sl_redis_free(r);
}

/* The scripts are run by SHA once cached (so the SHA written in queue.c
 * matches the script), and by text when the server lost them. */
Test(queue, scripts_run_by_sha_and_survive_a_script_flush)
{
    sl_redis *r = th_redis(), *observer = th_redis();
    char q[64];
    th_name(q, sizeof q, "sha");
    sl_err err;
    const char *id[] = { "CLIENT", "ID" };
    char client[32];
    snprintf(client, sizeof client, "%lld", cmd_int(r, 2, id));
    const char *flush[] = { "SCRIPT", "FLUSH" };
    freeReplyObject(cmd(r, 2, flush));
    cr_assert_eq(sl_queue_promote(r, q, sl_now_ms(), 10, &err), 0, "after SCRIPT FLUSH: %s", err.msg);
    char missing[] = "1-1";
    cr_assert_eq(sl_queue_dead_requeue(r, q, missing, "x", 1, &err), -1);
    cr_assert_eq(err.code, SL_ENOTFOUND, "after SCRIPT FLUSH: %s", err.msg);
    const char *list[] = { "CLIENT", "LIST", "ID", client };
    for (int script = 0; script < 2; script++) {
        if (script == 0)
            cr_assert_eq(sl_queue_promote(r, q, sl_now_ms(), 10, &err), 0, "%s", err.msg);
        else
            cr_assert_eq(sl_queue_dead_requeue(r, q, missing, "x", 1, &err), -1);
        redisReply *rep = cmd(observer, 4, list);
        cr_assert(strstr(rep->str, " cmd=evalsha "), "script %d was not run by its SHA (stale SHA "
                  "in queue.c?): %s", script, rep->str);
        freeReplyObject(rep);
    }
    sl_redis_free(observer);
    sl_redis_free(r);
}

Test(queue, retry_later_acknowledges_and_delays_in_one_step)
{
    sl_redis *r = th_redis();
    char q[64], id[64];
    th_name(q, sizeof q, "retry");
    sl_err err;
    cr_assert_eq(sl_queue_ensure_group(r, q, &err), 0, "%s", err.msg);
    size_t len;
    char *first = envelope(q, 1, id, sizeof id, &len);
    cr_assert_eq(sl_queue_enqueue_raw(r, q, first, len, &err), 0, "%s", err.msg);
    free(first);
    char *queues[] = { q };
    sl_batch b = { 0 };
    cr_assert_eq(sl_queue_read(r, "tester", queues, 1, 10, 0, &b, &err), 1, "%s", err.msg);
    char id2[64];
    size_t len2;
    char *next = envelope(q, 2, id2, sizeof id2, &len2);
    int64_t due = sl_now_ms() + 60000;
    cr_assert_eq(sl_queue_retry_later(r, &b.items[0], next, len2, due, &err), 0, "%s", err.msg);
    long long xlen, pending;
    cr_assert_eq(sl_queue_depth(r, q, &xlen, &pending, &err), 0, "%s", err.msg);
    cr_assert_eq(xlen, 0, "the entry must be deleted");
    cr_assert_eq(pending, 0, "the entry must be acknowledged");
    /* Again with the same bytes: harmless. */
    cr_assert_eq(sl_queue_retry_later(r, &b.items[0], next, len2, due, &err), 0, "%s", err.msg);
    char delayed[SL_KEY_MAX], score[24];
    sl_queue_key(delayed, q, "delayed");
    snprintf(score, sizeof score, "%lld", (long long)due);
    const char *zcard[] = { "ZCARD", delayed };
    cr_assert_eq(cmd_int(r, 2, zcard), 1);
    const char *zscore[] = { "ZSCORE", delayed, next };
    size_t zlens[] = { 6, strlen(delayed), len2 };
    redisReply *rep = sl_redis_command(r, 3, zscore, zlens, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    cr_assert_eq(rep->type, REDIS_REPLY_STRING, "the next attempt's bytes are not the member");
    cr_assert_str_eq(rep->str, score);
    freeReplyObject(rep);
    free(next);
    sl_batch_free(&b);
    sl_redis_free(r);
}

/* Enqueues n jobs to q and reads them all as consumer (which then "dies"). */
static void enqueue_and_abandon(sl_redis *r, const char *q, int n, const char *consumer)
{
    sl_err err;
    cr_assert_eq(sl_queue_ensure_group(r, q, &err), 0, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        char id[64];
        sl_job j;
        make_job(&j, id, sizeof id, q);
        cr_assert_eq(sl_queue_enqueue(r, &j, &err), 0, "%s", err.msg);
    }
    char *queues[] = { (char *)q };
    sl_batch b = { 0 };
    cr_assert_eq(sl_queue_read(r, consumer, queues, 1, n, 0, &b, &err), n, "%s", err.msg);
    sl_batch_free(&b);
}

/* XPENDING's summary: how many entries consumer holds. */
static long long held_by(sl_redis *r, const char *q, const char *consumer)
{
    char key[SL_KEY_MAX];
    sl_queue_key(key, q, "jobs");
    const char *xp[] = { "XPENDING", key, SL_GROUP, "-", "+", "100000", consumer };
    redisReply *rep = cmd(r, 7, xp);
    long long n = (long long)rep->elements;
    freeReplyObject(rep);
    return n;
}

Test(queue, reclaim_takes_over_a_dead_consumers_entries)
{
    sl_redis *r = th_redis();
    char q[64];
    th_name(q, sizeof q, "reclaim");
    enqueue_and_abandon(r, q, 3, "dead-one");
    sl_err err;
    sl_batch b = { 0 };
    cr_assert_eq(sl_queue_reclaim(r, "rescuer", q, 60000, 100, &b, &err), 0,
                 "entries idle for less than min_idle were taken: %s", err.msg);
    sl_sleep_ms(120);
    cr_assert_eq(sl_queue_reclaim(r, "rescuer", q, 100, 100, &b, &err), 3, "%s", err.msg);
    cr_assert_eq(b.n, 3);
    for (size_t i = 0; i < b.n; i++) {
        cr_assert_eq(b.items[i].deliveries, 2, "deliveries %lld", (long long)b.items[i].deliveries);
        cr_assert_str_eq(b.items[i].queue, q);
        cr_assert_neq(b.items[i].stream_id[0], '\0');
        sl_job j;
        cr_assert_eq(sl_envelope_decode(b.items[i].data, b.items[i].len, &j, &err), 0, "%s", err.msg);
        sl_job_clear(&j);
    }
    cr_assert_eq(held_by(r, q, "rescuer"), 3);
    cr_assert_eq(held_by(r, q, "dead-one"), 0);
    /* The rescuer finishes them: nothing is left. */
    sl_entry *acks[] = { &b.items[0], &b.items[1], &b.items[2] };
    cr_assert_eq(sl_queue_ack(r, acks, 3, &err), 0, "%s", err.msg);
    long long len, pending;
    cr_assert_eq(sl_queue_depth(r, q, &len, &pending, &err), 0);
    cr_assert_eq(len + pending, 0);
    sl_batch_free(&b);
    /* A queue nobody has created a group for has nothing to reclaim. */
    char fresh[64];
    th_name(fresh, sizeof fresh, "nogroup");
    cr_assert_eq(sl_queue_reclaim(r, "rescuer", fresh, 0, 10, &b, &err), 0, "%s", err.msg);
    sl_batch_free(&b);
    sl_redis_free(r);
}

/* Deletes the first entry of stream key (it stays pending if it was),
 * writing its id into victim. */
static void delete_first_entry(sl_redis *r, const char *key, char victim[48])
{
    const char *first[] = { "XRANGE", key, "-", "+", "COUNT", "1" };
    redisReply *rep = cmd(r, 6, first);
    snprintf(victim, 48, "%s", rep->element[0]->element[0]->str);
    freeReplyObject(rep);
    const char *xdel[] = { "XDEL", key, victim };
    cr_assert_eq(cmd_int(r, 3, xdel), 1);
}

Test(queue, reclaim_drops_entries_deleted_while_pending)
{
    sl_redis *r = th_redis();
    char q[64], key[SL_KEY_MAX];
    th_name(q, sizeof q, "gone");
    sl_queue_key(key, q, "jobs");
    enqueue_and_abandon(r, q, 2, "dead-one");
    char victim[48];
    delete_first_entry(r, key, victim);
    sl_sleep_ms(60);
    sl_err err;
    sl_batch b = { 0 };
    cr_assert_eq(sl_queue_reclaim(r, "rescuer", q, 50, 100, &b, &err), 1, "%s", err.msg);
    cr_assert_str_neq(b.items[0].stream_id, victim);
    cr_assert_not_null(b.items[0].data);
    long long len, pending;
    cr_assert_eq(sl_queue_depth(r, q, &len, &pending, &err), 0);
    cr_assert_eq(pending, 1, "the deleted entry must no longer be pending");
    const char *xp[] = { "XPENDING", key, SL_GROUP, victim, victim, "1" };
    redisReply *rep = cmd(r, 6, xp);
    cr_assert_eq(rep->elements, 0, "the deleted id is still in the PEL");
    freeReplyObject(rep);
    sl_batch_free(&b);
    sl_redis_free(r);
}

/* A replacement takes over the batch of a child the master killed: at
 * once (no idle time), only that consumer's entries, dropping deleted ones. */
Test(queue, take_over_claims_one_consumers_entries_whatever_their_idle_time)
{
    sl_redis *r = th_redis();
    char q[64], key[SL_KEY_MAX];
    th_name(q, sizeof q, "takeover");
    sl_queue_key(key, q, "jobs");
    enqueue_and_abandon(r, q, 3, "killed");
    enqueue_and_abandon(r, q, 2, "bystander");
    char victim[48];
    delete_first_entry(r, key, victim);
    sl_err err;
    sl_batch b = { 0 };
    cr_assert_eq(sl_queue_take_over(r, "heir", q, "killed", 100, &b, &err), 2, "%s", err.msg);
    for (size_t i = 0; i < b.n; i++) {
        cr_assert_str_neq(b.items[i].stream_id, victim);
        cr_assert_not_null(b.items[i].data);
        cr_assert_eq(b.items[i].deliveries, 2, "deliveries %lld", (long long)b.items[i].deliveries);
    }
    cr_assert_eq(held_by(r, q, "heir"), 2);
    cr_assert_eq(held_by(r, q, "killed"), 0, "the deleted id must be dropped from the PEL");
    cr_assert_eq(held_by(r, q, "bystander"), 2);
    sl_batch_clear(&b);
    cr_assert_eq(sl_queue_take_over(r, "heir", q, "killed", 100, &b, &err), 0, "%s", err.msg);
    char fresh[64];
    th_name(fresh, sizeof fresh, "nogroup");
    cr_assert_eq(sl_queue_take_over(r, "heir", fresh, "killed", 10, &b, &err), 0, "%s", err.msg);
    sl_batch_free(&b);
    sl_redis_free(r);
}

Test(queue, reclaim_follows_the_cursor_past_one_window_and_honours_max)
{
    sl_redis *r = th_redis();
    char q[64];
    th_name(q, sizeof q, "many");
    enqueue_and_abandon(r, q, 250, "dead-one");
    sl_err err;
    sl_batch b = { 0 };
    /* max below the number pending: exactly max. */
    cr_assert_eq(sl_queue_reclaim(r, "rescuer-a", q, 0, 130, &b, &err), 130, "%s", err.msg);
    cr_assert_eq(b.n, 130);
    /* The rest, over more than one XAUTOCLAIM call, appended to *out. */
    cr_assert_eq(sl_queue_reclaim(r, "rescuer-b", q, 0, 1000, &b, &err), 250, "%s", err.msg);
    cr_assert_eq(b.n, 380);
    cr_assert_eq(held_by(r, q, "dead-one"), 0);
    cr_assert_eq(held_by(r, q, "rescuer-b"), 250);
    /* rescuer-b took rescuer-a's 130 too (min_idle 0): their third delivery. */
    size_t thirds = 0;
    for (size_t i = 130; i < b.n; i++)
        thirds += b.items[i].deliveries == 3;
    cr_assert_eq(thirds, 130);
    sl_batch_free(&b);
    sl_redis_free(r);
}

Test(queue, renew_keeps_a_running_entry_from_being_reclaimed)
{
    sl_redis *r = th_redis();
    char q[64], key[SL_KEY_MAX];
    th_name(q, sizeof q, "renew");
    sl_queue_key(key, q, "jobs");
    sl_err err;
    cr_assert_eq(sl_queue_ensure_group(r, q, &err), 0, "%s", err.msg);
    for (int i = 0; i < 2; i++) {
        char id[64];
        sl_job j;
        make_job(&j, id, sizeof id, q);
        cr_assert_eq(sl_queue_enqueue(r, &j, &err), 0, "%s", err.msg);
    }
    char *queues[] = { q };
    sl_batch mine = { 0 };
    cr_assert_eq(sl_queue_read(r, "runner", queues, 1, 10, 0, &mine, &err), 2, "%s", err.msg);
    sl_sleep_ms(300);
    const char *renewed[] = { mine.items[0].stream_id };
    cr_assert_eq(sl_queue_renew(r, "runner", q, renewed, 1, &err), 1, "%s", err.msg);
    cr_assert_eq(sl_queue_renew(r, "runner", q, NULL, 0, &err), 0, "%s", err.msg);
    const char *xp[] = { "XPENDING", key, SL_GROUP, renewed[0], renewed[0], "1" };
    redisReply *rep = cmd(r, 6, xp);
    cr_assert_eq(rep->elements, 1);
    redisReply *p = rep->element[0];
    cr_assert_str_eq(p->element[1]->str, "runner");
    cr_assert_lt(p->element[2]->integer, 250, "idle %lld ms after renew", p->element[2]->integer);
    cr_assert_eq(p->element[3]->integer, 1, "a renewal is not a delivery");
    freeReplyObject(rep);
    sl_batch stolen = { 0 };
    cr_assert_eq(sl_queue_reclaim(r, "thief", q, 250, 100, &stolen, &err), 1, "%s", err.msg);
    cr_assert_str_eq(stolen.items[0].stream_id, mine.items[1].stream_id,
                     "the renewed entry was reclaimed");
    /* The old owner's renewal of the reclaimed entry (a master renewing
     * what its child held, or what a dead child held while its replacement
     * takes it over) leaves it with the one that holds it now, and renews
     * what is still the owner's. */
    const char *both[] = { mine.items[0].stream_id, mine.items[1].stream_id };
    cr_assert_eq(sl_queue_renew(r, "runner", q, both, 2, &err), 1, "%s", err.msg);
    const char *xp1[] = { "XPENDING", key, SL_GROUP, both[1], both[1], "1" };
    rep = cmd(r, 6, xp1);
    cr_assert_eq(rep->elements, 1);
    cr_assert_str_eq(rep->element[0]->element[1]->str, "thief", "a renewal took a reclaimed entry back");
    cr_assert_eq(rep->element[0]->element[3]->integer, 2, "the renewal counted a delivery");
    freeReplyObject(rep);
    /* An entry no longer pending (acknowledged) is not renewed either. */
    sl_entry *acked[] = { &stolen.items[0] };
    cr_assert_eq(sl_queue_ack(r, acked, 1, &err), 0, "%s", err.msg);
    const char *id[] = { "CLIENT", "ID" };
    char client[32];
    snprintf(client, sizeof client, "%lld", cmd_int(r, 2, id));
    cr_assert_eq(sl_queue_renew(r, "thief", q, &both[1], 1, &err), 0, "%s", err.msg);
    /* Run by its SHA (the one written in queue.c is the script's). */
    sl_redis *observer = th_redis();
    const char *list[] = { "CLIENT", "LIST", "ID", client };
    rep = cmd(observer, 4, list);
    cr_assert(strstr(rep->str, " cmd=evalsha "), "RENEW was not run by its SHA: %s", rep->str);
    freeReplyObject(rep);
    sl_redis_free(observer);
    sl_batch_free(&stolen);
    sl_batch_free(&mine);
    sl_redis_free(r);
}

Test(queue, paused_set_round_trip)
{
    sl_redis *r = th_redis();
    char q1[64], q2[64];
    th_name(q1, sizeof q1, "pause");
    th_name(q2, sizeof q2, "pause");
    char *queues[] = { q1, q2 };
    bool paused[2] = { true, true };
    sl_err err;
    cr_assert_eq(sl_queue_paused(r, queues, 2, paused, &err), 0, "%s", err.msg);
    cr_assert(!paused[0] && !paused[1]);
    cr_assert_eq(sl_queue_set_paused(r, q1, true, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_queue_set_paused(r, q1, true, &err), 0, "pausing twice is fine: %s", err.msg);
    cr_assert_eq(sl_queue_paused(r, queues, 2, paused, &err), 0, "%s", err.msg);
    cr_assert(paused[0] && !paused[1]);
    cr_assert_eq(sl_queue_set_paused(r, q1, false, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_queue_paused(r, queues, 2, paused, &err), 0, "%s", err.msg);
    cr_assert(!paused[0] && !paused[1]);
    cr_assert_eq(sl_queue_set_paused(r, "bad{name}", true, &err), -1);
    cr_assert_eq(err.code, SL_EINVAL);
    sl_redis_free(r);
}

Test(queue, eviction_policy_of_the_test_server_is_noeviction)
{
    sl_redis *r = th_redis();
    char policy[64];
    sl_err err;
    cr_assert_eq(sl_queue_eviction_policy(r, policy, sizeof policy, &err), 0, "%s", err.msg);
    cr_assert_str_eq(policy, "noeviction", "scripts/servers.sh configures noeviction");
    sl_redis_free(r);
}

Test(queue, dead_requeue_moves_an_entry_back_once)
{
    sl_redis *r = th_redis();
    char q[64], id[64], dead[SL_KEY_MAX], jobs[SL_KEY_MAX];
    th_name(q, sizeof q, "requeue");
    sl_queue_key(dead, q, "dead");
    sl_queue_key(jobs, q, "jobs");
    sl_err err;
    cr_assert_eq(sl_queue_ensure_group(r, q, &err), 0, "%s", err.msg);
    size_t len;
    char *env = envelope(q, 3, id, sizeof id, &len);
    cr_assert_eq(sl_queue_enqueue_raw(r, q, env, len, &err), 0, "%s", err.msg);
    free(env);
    char *queues[] = { q };
    sl_batch b = { 0 };
    cr_assert_eq(sl_queue_read(r, "tester", queues, 1, 10, 0, &b, &err), 1, "%s", err.msg);
    cr_assert_eq(sl_queue_dead_letter(r, &b.items[0], id, "failed 3 times", &err), 0, "%s", err.msg);
    const char *xr[] = { "XRANGE", dead, "-", "+" };
    redisReply *rep = cmd(r, 4, xr);
    cr_assert_eq(rep->elements, 1);
    /* The job id travels beside the bytes, as the last field. */
    redisReply *fields = rep->element[0]->element[1];
    cr_assert_eq(fields->elements, 8);
    cr_assert_str_eq(fields->element[6]->str, "id");
    cr_assert_str_eq(fields->element[7]->str, id);
    char dead_id[48];
    snprintf(dead_id, sizeof dead_id, "%s", rep->element[0]->element[0]->str);
    freeReplyObject(rep);
    char id2[64];
    char *fresh = envelope(q, 1, id2, sizeof id2, &len);
    cr_assert_eq(sl_queue_dead_requeue(r, q, dead_id, fresh, len, &err), 0, "%s", err.msg);
    const char *xlen_dead[] = { "XLEN", dead }, *xlen_jobs[] = { "XLEN", jobs };
    cr_assert_eq(cmd_int(r, 2, xlen_dead), 0);
    cr_assert_eq(cmd_int(r, 2, xlen_jobs), 1);
    const char *xj[] = { "XRANGE", jobs, "-", "+" };
    rep = cmd(r, 4, xj);
    redisReply *v = rep->element[0]->element[1]->element[1];
    cr_assert(v->len == len && memcmp(v->str, fresh, len) == 0, "the stream holds other bytes");
    freeReplyObject(rep);
    /* Twice: the entry is gone, nothing is added. */
    cr_assert_eq(sl_queue_dead_requeue(r, q, dead_id, fresh, len, &err), -1);
    cr_assert_eq(err.code, SL_ENOTFOUND);
    cr_assert(strstr(err.msg, dead_id), "%s", err.msg);
    cr_assert_eq(cmd_int(r, 2, xlen_jobs), 1);
    /* An incomplete id would mean a range to XRANGE: refused. */
    cr_assert_eq(sl_queue_dead_requeue(r, q, "12345", fresh, len, &err), -1);
    cr_assert_eq(err.code, SL_EINVAL);
    free(fresh);
    sl_batch_free(&b);
    sl_redis_free(r);
}

Test(queue, dead_purge_by_cutoff_and_all)
{
    sl_redis *r = th_redis();
    char q[64], dead[SL_KEY_MAX];
    th_name(q, sizeof q, "purge");
    sl_queue_key(dead, q, "dead");
    const char *ids[] = { "1000-0", "2000-0", "2000-1", "3000-0" };
    for (int i = 0; i < 4; i++) {
        const char *xadd[] = { "XADD", dead, ids[i], "job", "x", "error", "e", "failed_at", "1" };
        freeReplyObject(cmd(r, 9, xadd));
    }
    long long removed = -1;
    sl_err err;
    cr_assert_eq(sl_queue_dead_purge(r, q, 2001, &removed, &err), 0, "%s", err.msg);
    cr_assert_eq(removed, 3, "entries before 2001 ms: %lld", removed);
    const char *xlen[] = { "XLEN", dead };
    cr_assert_eq(cmd_int(r, 2, xlen), 1);
    cr_assert_eq(sl_queue_dead_purge(r, q, 2001, &removed, &err), 0, "%s", err.msg);
    cr_assert_eq(removed, 0);
    cr_assert_eq(sl_queue_dead_purge(r, q, 0, &removed, &err), 0, "%s", err.msg);
    cr_assert_eq(removed, 1);
    const char *exists[] = { "EXISTS", dead };
    cr_assert_eq(cmd_int(r, 2, exists), 0);
    cr_assert_eq(sl_queue_dead_purge(r, q, 0, &removed, &err), 0, "an empty dead letter: %s", err.msg);
    cr_assert_eq(removed, 0);
    sl_redis_free(r);
}

/* Several queues in one round trip: priority order kept (a later queue
 * only once the earlier ones have fewer than asked), the total bounded,
 * each entry labelled with its own queue; and their delayed jobs promoted
 * together, each queue within its own limit. */
Test(queue, many_queues_read_and_promote_in_one_call)
{
    sl_redis *r = th_redis();
    sl_err err;
    char names[4][64];
    char *queues[4];
    int waiting[4] = { 0, 2, 0, 5 };   /* an empty queue between and before them */
    for (int q = 0; q < 4; q++) {
        th_name(names[q], sizeof names[q], "many");
        queues[q] = names[q];
        cr_assert_eq(sl_queue_ensure_group(r, queues[q], &err), 0, "%s", err.msg);
        for (int i = 0; i < waiting[q]; i++) {
            sl_job job;
            char id[64];
            make_job(&job, id, sizeof id, queues[q]);
            cr_assert_eq(sl_queue_enqueue(r, &job, &err), 0, "%s", err.msg);
        }
    }
    sl_batch b = { 0 };
    cr_assert_eq(sl_queue_read_many(r, "tester", queues, 4, 4, 1 << 20, &b, &err), 4, "%s", err.msg);
    for (size_t i = 0; i < b.n; i++)
        cr_assert_str_eq(b.items[i].queue, i < 2 ? queues[1] : queues[3],
                         "entry %zu came from the wrong queue: priority order broken", i);
    sl_batch_clear(&b);
    cr_assert_eq(sl_queue_read_many(r, "tester", queues, 4, 100, 1 << 20, &b, &err), 3, "%s", err.msg);
    sl_batch_clear(&b);
    cr_assert_eq(sl_queue_read_many(r, "tester", queues, 4, 100, 1 << 20, &b, &err), 0, "%s", err.msg);
    sl_batch_free(&b);

    int64_t now = sl_now_ms();
    for (int q = 0; q < 4; q++) {
        for (int i = 0; i < q; i++) {   /* queue q has q due jobs and one not due */
            char id[64];
            size_t len;
            char *env = envelope(queues[q], 1, id, sizeof id, &len);
            cr_assert_eq(sl_queue_schedule(r, queues[q], env, len, now - 1000, &err), 0, "%s", err.msg);
            free(env);
        }
        char id[64];
        size_t len;
        char *env = envelope(queues[q], 1, id, sizeof id, &len);
        cr_assert_eq(sl_queue_schedule(r, queues[q], env, len, now + 3600000, &err), 0, "%s", err.msg);
        free(env);
    }
    cr_assert_eq(sl_queue_promote_many(r, queues, 4, now, 2, &err), 0 + 1 + 2 + 2, "%s", err.msg);
    cr_assert_eq(sl_queue_promote_many(r, queues, 4, now, 2, &err), 1, "queue 3's third due job: %s", err.msg);
    for (int q = 0; q < 4; q++) {
        char delayed[SL_KEY_MAX];
        sl_queue_key(delayed, queues[q], "delayed");
        const char *zcard[] = { "ZCARD", delayed };
        cr_assert_eq(cmd_int(r, 2, zcard), 1, "queue %d keeps only its job that is not due", q);
    }
    sl_redis_free(r);
}

/* The score of queue in sluice:due, or -1 when it has none. */
static long long due_score(sl_redis *r, const char *queue)
{
    const char *argv[] = { "ZSCORE", SL_DUE_KEY, queue };
    redisReply *rep = cmd(r, 3, argv);
    long long v = rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : -1;
    freeReplyObject(rep);
    return v;
}

static bool due_lists(sl_redis *r, int64_t now, const char *queue)
{
    char **due;
    size_t n;
    sl_err err;
    cr_assert_eq(sl_queue_due(r, now, 100000, &due, &n, &err), 0, "%s", err.msg);
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        found = found || strcmp(due[i], queue) == 0;
        free(due[i]);
    }
    free(due);
    return found;
}

/* sluice:due: sluice's writers of delayed jobs note each queue's earliest
 * due time; promoting through it moves the due jobs and keeps the note in
 * step (the next job's time, or none); a delayed job added without the
 * note (another producer) is not in it, and the full pass still moves it. */
Test(queue, the_due_index_names_the_queues_with_a_job_due)
{
    sl_redis *r = th_redis();
    char q[64], other[64];
    th_name(q, sizeof q, "due");
    th_name(other, sizeof other, "unnoted");
    sl_err err;
    int64_t now = sl_now_ms();
    int64_t due[3] = { now + 3600000, now - 5000, now + 7200000 };
    for (int i = 0; i < 3; i++) {
        char id[64];
        size_t len;
        char *env = envelope(q, 1, id, sizeof id, &len);
        cr_assert_eq(sl_queue_schedule(r, q, env, len, due[i], &err), 0, "%s", err.msg);
        free(env);
        /* The note keeps the earliest time: a later job does not raise it. */
        cr_assert_eq(due_score(r, q), i == 0 ? due[0] : due[1], "after job %d", i);
    }
    cr_assert(due_lists(r, now, q));
    cr_assert(!due_lists(r, now - 10000, q), "listed before its first job was due");
    char *queues[] = { q };
    cr_assert_eq(sl_queue_promote_noted(r, queues, 1, now, 10, &err), 1, "%s", err.msg);
    cr_assert_eq(due_score(r, q), due[0], "the note did not move to the next job's time");
    cr_assert(!due_lists(r, now, q));
    cr_assert_eq(sl_queue_promote_noted(r, queues, 1, now + 8000000, 10, &err), 2, "%s", err.msg);
    cr_assert_eq(due_score(r, q), -1, "an empty delayed set keeps its note");
    /* run by its SHA (the one written in queue.c is the script's) */
    sl_redis *observer = th_redis();
    const char *cid[] = { "CLIENT", "ID" };
    char client[32];
    snprintf(client, sizeof client, "%lld", cmd_int(r, 2, cid));
    cr_assert_eq(sl_queue_promote_noted(r, queues, 1, now, 10, &err), 0, "%s", err.msg);
    const char *list[] = { "CLIENT", "LIST", "ID", client };
    redisReply *seen = cmd(observer, 4, list);
    cr_assert(strstr(seen->str, " cmd=evalsha "), "PROMOTE_NOTED was not run by its SHA: %s", seen->str);
    freeReplyObject(seen);
    sl_redis_free(observer);
    /* A retry notes its time too. */
    cr_assert_eq(sl_queue_ensure_group(r, q, &err), 0, "%s", err.msg);
    sl_batch b = { 0 };
    cr_assert_eq(sl_queue_read(r, "tester", queues, 1, 1, 0, &b, &err), 1, "%s", err.msg);
    char id[64];
    size_t len;
    char *env = envelope(q, 2, id, sizeof id, &len);
    cr_assert_eq(sl_queue_retry_later(r, &b.items[0], env, len, now + 1000, &err), 0, "%s", err.msg);
    free(env);
    sl_batch_free(&b);
    cr_assert_eq(due_score(r, q), now + 1000);
    /* Another producer's ZADD, without the note. */
    char delayed[SL_KEY_MAX], score[24];
    sl_queue_key(delayed, other, "delayed");
    snprintf(score, sizeof score, "%lld", (long long)(now - 1000));
    env = envelope(other, 1, id, sizeof id, &len);
    const char *zadd[] = { "ZADD", delayed, score, env };
    size_t zlen[] = { 4, strlen(delayed), strlen(score), len };
    sl_err e2;
    redisReply *rep = sl_redis_command(r, 4, zadd, zlen, &e2);
    cr_assert_not_null(rep, "%s", e2.msg);
    freeReplyObject(rep);
    free(env);
    cr_assert(!due_lists(r, now, other));
    char *others[] = { other };
    cr_assert_eq(sl_queue_promote_many(r, others, 1, now, 10, &err), 1, "%s", err.msg);
    sl_redis_free(r);
}

/* A hostile producer (or a careless hand) fills sluice:due with notes of
 * no queue, of queues that do not exist, and names with a NUL inside: they
 * must not stay due for ever, or every worker would fetch them every
 * promotion and the real notes behind them would wait for the full pass.
 * Members that are no queue name leave at the first read; notes of queues
 * without a delayed set leave when pruned; a note whose queue has delayed
 * jobs (another pool's queue) stays. */
Test(queue, notes_of_no_queue_leave_the_due_index)
{
    sl_redis *r = th_redis();
    char ghost[64], real[64];
    th_name(ghost, sizeof ghost, "ghost");
    th_name(real, sizeof real, "elsewhere");
    sl_err err;
    int64_t now = sl_now_ms();
    char id[64];
    size_t len;
    char *env = envelope(real, 1, id, sizeof id, &len);
    cr_assert_eq(sl_queue_schedule(r, real, env, len, now - 10, &err), 0, "%s", err.msg);
    free(env);
    char bad1[96], bad2[96];
    snprintf(bad1, sizeof bad1, "%s{x}", ghost);
    int n2 = snprintf(bad2, sizeof bad2, "%s", ghost);
    bad2[n2++] = '\0';
    bad2[n2++] = 'z';
    const char *zadd[] = { "ZADD", SL_DUE_KEY, "0", ghost, "0", bad1, "0", bad2 };
    size_t lens[] = { 4, strlen(SL_DUE_KEY), 1, strlen(ghost), 1, strlen(bad1), 1, (size_t)n2 };
    redisReply *rep = sl_redis_command(r, 8, zadd, lens, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    cr_assert_eq(rep->integer, 3);
    freeReplyObject(rep);

    cr_assert(due_lists(r, now, ghost), "a valid name is listed");
    cr_assert(due_lists(r, now, real));
    const char *zs1[] = { "ZSCORE", SL_DUE_KEY, bad1 };
    rep = cmd(r, 3, zs1);
    cr_assert_eq(rep->type, REDIS_REPLY_NIL, "a member that is no queue name stayed in the index");
    freeReplyObject(rep);
    const char *zs2[] = { "ZSCORE", SL_DUE_KEY, bad2 };
    size_t zl[] = { 6, strlen(SL_DUE_KEY), (size_t)n2 };
    rep = sl_redis_command(r, 3, zs2, zl, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    cr_assert_eq(rep->type, REDIS_REPLY_NIL, "a member with a NUL inside stayed in the index");
    freeReplyObject(rep);

    char *both[] = { ghost, real };
    cr_assert_eq(sl_queue_due_prune(r, both, 2, &err), 1, "%s", err.msg);
    cr_assert_eq(due_score(r, ghost), -1, "the note of a queue without delayed jobs stayed");
    cr_assert_eq(due_score(r, real), now - 10, "the note of a queue with delayed jobs was removed");
    cr_assert_eq(sl_queue_due_prune(r, both, 2, &err), 0, "%s", err.msg);
    sl_redis_free(r);
}

