/* test_queue.c: the Redis side (lib/redis.c, lib/queue.c) against a real
 * Redis: URL handling, enqueue/read/ack, dead letter. */
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
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_err err;
        sl_redis *r = sl_redis_connect(cases[i].url, 1000, &err);
        cr_assert_null(r, "%s was accepted", cases[i].url);
        cr_assert_eq(err.code, SL_EINVAL);
        cr_assert(strstr(err.msg, cases[i].expect), "%s: %s", cases[i].url, err.msg);
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
    cr_assert_eq(sl_queue_dead_letter(r, &b.items[0], "undecodable envelope: test", &err), 0, "%s", err.msg);
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
    cr_assert_eq(f->elements, 6);
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
