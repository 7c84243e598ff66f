/* test_hostile_input.c: envelopes a careless or hostile producer could XADD
 * (U+0000, duplicate keys, invalid UTF-8, maps as keys, nesting past the
 * limit, bogus kinds), sent raw through a real Redis to a real worker pool
 * whose deploy target records every run.  For each: nothing ran, it is in
 * the dead letter with a clear error, and the well-formed jobs enqueued
 * beside it all ran.  Also: outputs PostgreSQL cannot store are a recorded
 * failure, and bogus kinds share one metric label. */
#include "harness.h"
#include "kindtest.h"

#include "clock.h"
#include "envelope.h"
#include "jobid.h"
#include "json.h"
#include "mem.h"
#include "metrics.h"
#include "queue.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* A well-formed envelope of kind `kind` whose args are the raw MessagePack
 * args[0..n): what a producer using its own MessagePack library sends. */
static void envelope_raw(msgpack_sbuffer *sb, const char *id, const char *kind, const char *queue,
                         const char *args, size_t n)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    pack_str(&pk, "v", 1);
    msgpack_pack_int(&pk, 1);
    pack_str(&pk, "id", 2);
    pack_str(&pk, id, strlen(id));
    pack_str(&pk, "kind", 4);
    pack_str(&pk, kind, strlen(kind));
    pack_str(&pk, "queue", 5);
    pack_str(&pk, queue, strlen(queue));
    pack_str(&pk, "attempt", 7);
    msgpack_pack_int(&pk, 1);
    pack_str(&pk, "enqueued_at", 11);
    msgpack_pack_int64(&pk, sl_now_ms());
    pack_str(&pk, "args", 4);
    msgpack_sbuffer_write(sb, args, n);
}

static void xadd_raw(sl_redis *r, const char *queue, const msgpack_sbuffer *sb)
{
    sl_err err;
    cr_assert_eq(sl_queue_enqueue_raw(r, queue, sb->data, sb->size, &err), 0, "%s", err.msg);
}

/* The dead letter of queue: entries, their errors joined by newlines. */
static long long dead_letters(const char *queue, sl_buf *errors)
{
    sl_redis *r = th_redis();
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "dead");
    const char *argv[] = { "XRANGE", key, "-", "+" };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 4, argv, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    for (size_t i = 0; i < rep->elements; i++) {
        redisReply *fields = rep->element[i]->element[1];
        for (size_t k = 0; k + 1 < fields->elements; k += 2) {
            if (strcmp(fields->element[k]->str, "error") == 0) {
                sl_buf_append(errors, fields->element[k + 1]->str, fields->element[k + 1]->len);
                sl_buf_putc(errors, '\n');
            }
        }
    }
    long long n = (long long)rep->elements;
    freeReplyObject(rep);
    sl_redis_free(r);
    return n;
}

typedef struct drained_arg {
    const char *queue;
    long long dead_want;
} drained_arg;

static bool drained(void *arg)
{
    drained_arg *d = arg;
    sl_redis *r = th_redis();
    long long len = -1, pending = -1;
    sl_err err;
    cr_assert_eq(sl_queue_depth(r, d->queue, &len, &pending, &err), 0, "%s", err.msg);
    sl_redis_free(r);
    sl_buf e = SL_BUF_INIT;
    long long dead = dead_letters(d->queue, &e);
    sl_buf_free(&e);
    return len == 0 && pending == 0 && dead >= d->dead_want;
}

static long long rows_with(const char *sql, const char *param)
{
    const char *p[] = { param };
    return th_pg_number(sql, 1, p);
}

/* Runs a 2-process pool with config on queue until the stream is drained
 * and the dead letter holds dead_want entries; asserts a clean stop. */
static void run_pool(const char *config, const char *queue, long long dead_want)
{
    char name[64];
    th_name(name, sizeof name, "hostile-log");
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "2", NULL };
    drained_arg d = { queue, dead_want };
    char *what = sl_xasprintf("queue %s not drained", queue);
    th_pool_until(args, name, drained, &d, what);
    free(what);
}

/* A worker configuration whose deploy target `t` appends its job id to
 * dir/ran.txt: every run leaves a line. */
static char *deploy_config(const char *dir)
{
    char *yaml = sl_xasprintf("worker:\n  block: 100ms\n  batch: 8\n"
                              "deploy:\n  targets:\n    t:\n      type: command\n      cwd: %s\n"
                              "      command: [/bin/sh, -c, 'echo \"$SLUICE_JOB_ID\" >> ran.txt']\n",
                              dir);
    char *path = th_write_temp("sluice.yaml", yaml);
    free(yaml);
    return path;
}

typedef struct hostile {
    const char *name;
    const char *args;    /* raw MessagePack args */
    size_t len;
    const char *error;   /* the dead letter's error, exactly */
} hostile;

#define H(name, lit, error) { name, lit, sizeof lit - 1, error }

Test(hostile, refused_envelopes_never_run_and_nothing_beside_them_is_lost)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "hostile");
    char *dir = th_tempdir("hostile");
    char *config = deploy_config(dir);

    /* args maps whose keys are maps, 29 deep: {"target":"t", {{…}:"x"}:"x"} */
    char maps_as_keys[160];
    size_t mk = 0;
    memcpy(maps_as_keys, "\x82\xa6target\xa1t", 10);
    mk = 10;
    for (int i = 0; i < 29; i++)
        maps_as_keys[mk++] = (char)0x81;
    maps_as_keys[mk++] = (char)0xa1;
    maps_as_keys[mk++] = 'k';
    for (int i = 0; i < 30; i++) {   /* a value per inner map, then K's own */
        maps_as_keys[mk++] = (char)0xa1;
        maps_as_keys[mk++] = 'x';
    }
    /* args nested 32 deep: {"target":"t","d":[[[…nil…]]]} with 31 arrays */
    char too_deep[64];
    memcpy(too_deep, "\x82\xa6target\xa1t\xa1" "d", 12);
    memset(too_deep + 12, 0x91, 31);
    too_deep[43] = (char)0xc0;

    hostile cases[] = {
        H("nul-value", "\x82\xa6target\xa1t\xa1x\xa3" "a\0b",
          "undecodable envelope: field 'args': a string holds U+0000 (PostgreSQL cannot store it)"),
        H("nul-key", "\x82\xa6target\xa1t\xa2k\0\x01",
          "undecodable envelope: field 'args': a key holds U+0000 (PostgreSQL cannot store it)"),
        H("nul-nested", "\x82\xa6target\xa1t\xa1n\x81\xa1" "d\x91\xa1\0",
          "undecodable envelope: field 'args': a string holds U+0000 (PostgreSQL cannot store it)"),
        H("duplicate-key", "\x82\xa6target\xa1t\xa6target\xa4prod",
          "undecodable envelope: field 'args': duplicate key \"target\" in a map"),
        H("invalid-utf8", "\x82\xa6target\xa1t\xa1v\xa4" "caf\xe9",
          "undecodable envelope: field 'args': a string is not valid UTF-8"),
        H("integer-key", "\x82\xa6target\xa1t\x01\xa1" "a",
          "undecodable envelope: field 'args': map key #2 is of type integer; object keys must be strings"),
        { "maps-as-keys", maps_as_keys, mk,
          "undecodable envelope: field 'args': map key #2 is of type map; object keys must be strings" },
        { "too-deep", too_deep, 44,
          "undecodable envelope: MessagePack nested deeper than 32 levels (args may nest at most 31)" },
    };
    size_t ncases = sizeof cases / sizeof cases[0];

    sl_redis *r = th_redis();
    char ids[16][64];
    char good_ids[16][64];
    size_t ngood = 0;
    for (size_t i = 0; i < ncases; i++) {
        /* a good job before each hostile one, so they share batches */
        msgpack_sbuffer sb;
        th_name(good_ids[ngood], sizeof good_ids[ngood], "good");
        envelope_raw(&sb, good_ids[ngood], "noop", queue, "\x81\xa1i\x01", 4);
        xadd_raw(r, queue, &sb);
        msgpack_sbuffer_destroy(&sb);
        ngood++;
        th_name(ids[i], sizeof ids[i], cases[i].name);
        envelope_raw(&sb, ids[i], "deploy", queue, cases[i].args, cases[i].len);
        xadd_raw(r, queue, &sb);
        msgpack_sbuffer_destroy(&sb);
    }
    /* and one well-formed deploy, which must run */
    char deploy_id[64];
    th_name(deploy_id, sizeof deploy_id, "deploy-ok");
    msgpack_sbuffer sb;
    envelope_raw(&sb, deploy_id, "deploy", queue, "\x81\xa6target\xa1t", 10);
    xadd_raw(r, queue, &sb);
    msgpack_sbuffer_destroy(&sb);
    sl_redis_free(r);

    run_pool(config, queue, (long long)ncases);

    /* Each is in the dead letter with its error. */
    sl_buf errors = SL_BUF_INIT;
    long long ndead = dead_letters(queue, &errors);
    cr_assert_eq(ndead, (long long)ncases, "dead letter:\n%s", sl_buf_str(&errors));
    for (size_t i = 0; i < ncases; i++)
        cr_assert(strstr(sl_buf_str(&errors), cases[i].error), "%s: no \"%s\" in the dead letter:\n%s",
                  cases[i].name, cases[i].error, sl_buf_str(&errors));
    /* Nothing hostile ran: the target's log holds the good deploy alone. */
    char *ran_path = sl_xasprintf("%s/ran.txt", dir);
    char *ran = th_read_file(ran_path);
    char want[80];
    snprintf(want, sizeof want, "%s\n", deploy_id);
    cr_assert(ran != NULL && strcmp(ran, want) == 0, "deploy runs: %s (want only %s)", ran ? ran : "(none)",
              deploy_id);
    for (size_t i = 0; i < ncases; i++)
        cr_assert_eq(rows_with("SELECT count(*) FROM sluice_job_history WHERE job_id = $1", ids[i]), 0,
                     "%s has an attempt", cases[i].name);
    /* Nothing lost beside them. */
    for (size_t i = 0; i < ngood; i++)
        cr_assert_eq(rows_with("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'succeeded'",
                               good_ids[i]), 1, "good job %s did not succeed", good_ids[i]);
    cr_assert_eq(rows_with("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'succeeded'",
                           deploy_id), 1);
    sl_buf_free(&errors);
    free(ran);
    free(ran_path);
    unlink(config);
    free(config);
    th_rmtree(dir);
    free(dir);
}

Test(hostile, duplicate_keys_in_json_args_refused_by_the_cli)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "dupcli");
    const char *argv[] = { SLUICE_BIN, "enqueue", "deploy", "--queue", queue, "--json",
                           "{\"target\":\"staging\",\"target\":\"prod\"}", NULL };
    th_result res = th_run(argv, NULL);
    cr_assert_neq(res.status, 0, "enqueued: %s", res.out);
    cr_assert(strstr(res.err, "JSON at byte 20: duplicate key \"target\" in an object"), "%s", res.err);
    th_result_free(&res);
    const char *nul[] = { SLUICE_BIN, "enqueue", "deploy", "--queue", queue, "--json",
                          "{\"target\":\"t\",\"x\":\"a\\u0000b\"}", NULL };
    res = th_run(nul, NULL);
    cr_assert_neq(res.status, 0, "enqueued: %s", res.out);
    cr_assert(strstr(res.err, "JSON at byte 20: \\u0000 (U+0000) is not allowed in a string "
                     "(PostgreSQL cannot store it)"), "%s", res.err);
    th_result_free(&res);
    /* Nothing reached the queue. */
    sl_redis *r = th_redis();
    long long len = -1, pending = -1;
    sl_err err;
    cr_assert_eq(sl_queue_depth(r, queue, &len, &pending, &err), 0, "%s", err.msg);
    cr_assert_eq(len, 0);
    sl_redis_free(r);
}

/* A deploy whose command prints a NUL byte (and a byte that is not UTF-8):
 * a NUL in outputs must never make a result unrecordable.  The deploy kind
 * replaces each such byte in log_tail by U+FFFD, visibly (log_replaced
 * counts them, log_note says so; docs/jobs.md), so the job succeeds with
 * its result row.  Outputs that still held U+0000 (any other kind) are
 * refused by the worker's check before recording: a recorded permanent
 * failure, never a lost row (the check is asserted below). */
Test(hostile, outputs_with_nul_are_a_recorded_failure)
{
    char *dir = th_tempdir("nulout");
    char *yaml = sl_xasprintf("deploy:\n  targets:\n    t:\n      type: command\n      cwd: %s\n"
                              "      command: [/bin/sh, -c, 'printf \"before\\0after\\377\\n\"']\n", dir);
    th_row row = th_kind_e2e("deploy", yaml, "{\"target\": \"t\"}", 0);
    cr_assert_str_eq(row.status, "succeeded", "status %s, error %s, outputs %s", row.status, row.error,
                     row.outputs);
    cr_assert_str_eq(row.error, "");
    cr_assert_eq(row.attempts, 1);
    /* the result row is there, with the replacement shown, not hidden */
    cr_assert(strstr(row.outputs, "\"log_tail\": \"before\xef\xbf\xbd" "after\xef\xbf\xbd\\n\""), "%s",
              row.outputs);
    cr_assert(strstr(row.outputs, "\"log_replaced\": 2"), "%s", row.outputs);
    cr_assert(strstr(row.outputs, "\"log_note\": \"the output held NUL bytes or invalid UTF-8"), "%s",
              row.outputs);
    cr_assert(!strstr(row.outputs, "\\u0000"), "%s", row.outputs);
    th_row_free(&row);
    free(yaml);
    th_rmtree(dir);
    free(dir);

    /* The worker's check on outputs (worker/consumer.c): the outputs of a
     * kind that let a NUL through, as it would encode them, are refused
     * with the reason, so the attempt is recorded as a failure. */
    sl_buf out = SL_BUF_INIT;
    sl_buf_puts(&out, "{\"log_tail\":");
    sl_json_put_string(&out, "before\0after\n", 13);
    sl_buf_puts(&out, "}");
    sl_err err;
    cr_assert_eq(sl_json_check(out.data, out.len, &err), -1, "%s", sl_buf_str(&out));
    cr_assert(strstr(err.msg, "\\u0000 (U+0000) is not allowed in a string (PostgreSQL cannot store it)"), "%s",
              err.msg);
    sl_buf_free(&out);
}

/* 300 bogus kinds used to make 300 label values (1,800 series). */
Test(hostile, unknown_kinds_share_one_metric_label)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "kinds");
    sl_redis *r = th_redis();
    for (int i = 0; i < 60; i++) {
        char id[64], kind[32];
        th_name(id, sizeof id, "bogus");
        snprintf(kind, sizeof kind, "bogus-%d", i);
        msgpack_sbuffer sb;
        envelope_raw(&sb, id, kind, queue, "\x80", 1);
        xadd_raw(r, queue, &sb);
        msgpack_sbuffer_destroy(&sb);
    }
    char good[64];
    th_name(good, sizeof good, "good");
    msgpack_sbuffer sb;
    envelope_raw(&sb, good, "noop", queue, "\x80", 1);
    xadd_raw(r, queue, &sb);
    msgpack_sbuffer_destroy(&sb);
    char *config = th_write_temp("sluice.yaml", "worker:\n  block: 100ms\n  batch: 16\n");
    run_pool(config, queue, 60);

    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "stats");
    const char *argv[] = { "HGETALL", key };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 2, argv, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    sl_metrics_queue q;
    sl_metrics_queue_decode(rep, &q);
    cr_assert_eq(q.nkinds, 2, "kinds in the stats: %zu", q.nkinds);
    cr_assert_str_eq(q.kinds[0].kind, "(unknown)");
    cr_assert_str_eq(q.kinds[0].kind, SL_METRICS_UNKNOWN_KIND);
    cr_assert_eq(q.kinds[0].counts[SL_M_DEAD], 60);
    cr_assert_str_eq(q.kinds[1].kind, "noop");
    cr_assert_eq(q.kinds[1].counts[SL_M_PROCESSED], 1);
    sl_metrics_queue_clear(&q);
    freeReplyObject(rep);
    /* The dead letter still names each entry's own kind. */
    sl_buf errors = SL_BUF_INIT;
    cr_assert_eq(dead_letters(queue, &errors), 60);
    cr_assert(strstr(sl_buf_str(&errors), "unknown kind 'bogus-59'"), "%s", sl_buf_str(&errors));
    sl_buf_free(&errors);
    sl_redis_free(r);
    unlink(config);
    free(config);
}

typedef struct due_arg {
    char ghost[64];       /* the first and the last of the ghost names */
    char last[80];
    const char *job_id;
} due_arg;

static bool noted(sl_redis *r, const char *member)
{
    const char *argv[] = { "ZSCORE", SL_DUE_KEY, member };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 3, argv, NULL, &err);
    bool there = rep != NULL && rep->type != REDIS_REPLY_NIL;
    if (rep)
        freeReplyObject(rep);
    return there;
}

static bool ghosts_gone_and_job_done(void *arg)
{
    const due_arg *d = arg;
    sl_redis *r = th_redis();
    bool gone = !noted(r, d->ghost) && !noted(r, d->last) && !noted(r, "not a queue{}");
    sl_redis_free(r);
    const char *p[] = { d->job_id };
    return gone && th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'succeeded'", 1, p) == 1;
}

/* A producer writes 12,000 notes into sluice:due, the index of queues with
 * a delayed job due, all due long ago: names of queues that do not exist
 * and members that are no queue name.  A worker fetches at most 10,000
 * notes per promotion, so kept for ever they would hide the real ones and
 * cost every worker a 10,000-name read every 200 ms.  The pool removes
 * them, and the delayed job of the queue it serves still runs. */
Test(hostile, bogus_notes_in_the_due_index_are_removed)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "due-real");
    due_arg d;
    char base[48];
    th_name(base, sizeof base, "ghost");
    sl_redis *r = th_redis();
    sl_err err;
    enum { GHOSTS = 12000, CHUNK = 1000 };
    for (int c = 0; c < GHOSTS / CHUNK; c++) {
        const char *argv[2 + 2 * CHUNK + 2];
        char names[CHUNK][80];
        int n = 0;
        argv[n++] = "ZADD";
        argv[n++] = SL_DUE_KEY;
        for (int i = 0; i < CHUNK; i++) {
            snprintf(names[i], sizeof names[i], "%s.%d", base, c * CHUNK + i);
            argv[n++] = "1";
            argv[n++] = names[i];
        }
        if (c == 0) {
            argv[n++] = "1";
            argv[n++] = "not a queue{}";
        }
        if (c == GHOSTS / CHUNK - 1)
            snprintf(d.last, sizeof d.last, "%s", names[CHUNK - 1]);
        redisReply *rep = sl_redis_command(r, n, argv, NULL, &err);
        cr_assert_not_null(rep, "%s", err.msg);
        freeReplyObject(rep);
    }
    snprintf(d.ghost, sizeof d.ghost, "%s.0", base);
    char id[SL_JOBID_MAX + 1];
    sl_jobid_new(id);
    d.job_id = id;
    sl_job job = { .id = id, .kind = "noop", .queue = queue, .attempt = 1, .enqueued_at = sl_now_ms(),
                   .args = "\x80", .args_len = 1 };
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(sl_envelope_encode(&job, &sb, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_queue_schedule(r, queue, sb.data, sb.size, sl_now_ms() + 300, &err), 0, "%s", err.msg);
    msgpack_sbuffer_destroy(&sb);
    sl_redis_free(r);

    char name[64];
    th_name(name, sizeof name, "due-log");
    const char *args[] = { "--queues", queue, "--processes", "1", NULL };
    th_pool_until(args, name, ghosts_gone_and_job_done, &d,
                  "the bogus notes stayed in " SL_DUE_KEY " or the delayed job did not run");
}
