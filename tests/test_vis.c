/* test_vis.c: values rendered visibly for terminals (lib/vis.c), alone and
 * through every command that prints for people, with hostile values put
 * in the real PostgreSQL and Redis. */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem.h"
#include "queue.h"
#include "vis.h"

static void expect_len(const char *in, size_t len, const char *want)
{
    sl_buf b = SL_BUF_INIT;
    sl_vis_append(&b, in, len);
    cr_assert_str_eq(sl_buf_str(&b), want);
    sl_buf_free(&b);
}

/* in: a string literal (its length is taken with sizeof: it may hold NUL). */
#define expect(in, want) expect_len((in), sizeof(in) - 1, (want))

Test(vis, controls_are_shown_not_obeyed)
{
    expect("plain text, ünïcode ✓", "plain text, ünïcode ✓");
    expect("\x1b[2J\x1b[Happrovals: 2 of 2", "\\e[2J\\e[Happrovals: 2 of 2");
    expect("a\rb\bc\nd\te\x7f\x01", "a\\rb\\bc\\nd\\te\\x7f\\x01");
    expect("nul\0here", "nul\\x00here");
    /* C1 CSI (U+009B), bidi override (U+202E), line separator (U+2028). */
    expect("\xc2\x9b" "2J \xe2\x80\xae" "evil \xe2\x80\xa8", "\\u009b2J \\u202eevil \\u2028");
    /* Bytes that are not UTF-8 (a bare C1 byte, a cut sequence). */
    expect("\x9b" "x \xe2\x80", "\\x9bx \\xe2\\x80");
    expect("back\\slash", "back\\slash");
}

Test(vis, fixed_buffers_cut_between_characters_and_escapes)
{
    char buf[16];
    cr_assert_str_eq(sl_vis(buf, sizeof buf, NULL), "");
    cr_assert_str_eq(sl_vis(buf, sizeof buf, "short"), "short");
    cr_assert_str_eq(sl_vis(buf, sizeof buf, "0123456789abcdefghij"), "0123456789ab...");
    /* The cut never leaves half an escape or half a character. */
    cr_assert_str_eq(sl_vis(buf, sizeof buf, "0123456789\x1b[31m"), "0123456789...");
    cr_assert_str_eq(sl_vis(buf, sizeof buf, "0123456789é\xc3\xa9xyz"), "0123456789é...");
    for (size_t n = 1; n < 12; n++) {
        char small[12];
        sl_vis(small, n, "\x1b\x1b\x1b\x1b\x1b\x1b");
        cr_assert(strlen(small) < n);
        cr_assert(strchr(small, 0x1b) == NULL);
        size_t len = strlen(small);
        cr_assert(len == 0 || small[len - 1] != '\\', "'%s' ends in half an escape", small);
    }
}

Test(vis, json_keeps_its_meaning)
{
    const char json[] = "{\"a\":\"x\x7fy\xc2\x9b\xe2\x80\xae\",\n\"b\":[1,\t2]}";
    sl_buf b = SL_BUF_INIT;
    sl_vis_json(&b, json, sizeof json - 1);
    cr_assert_str_eq(sl_buf_str(&b), "{\"a\":\"x\\u007fy\\u009b\\u202e\",\n\"b\":[1,\t2]}");
    sl_buf_free(&b);
}

/* ---- every command that prints for people, with hostile values ----------- */

/* A value that would clear the screen, forge a line, retitle the window,
 * ring the bell, overwrite with CR/BS, use the 8-bit CSI and reverse the
 * text, if a terminal obeyed it. */
#define EVIL "\x1b[2J\x1b[Happrovals: 2 of 2\r\b\x07\x1b]0;pwned\x07\xc2\x9b" "31m\xe2\x80\xae" "x"
/* The same in JSON (jsonb columns, registry documents). */
#define EVIL_JSON "\\u001b[2J\\u001b[Happrovals: 2 of 2\\r\\b\\u0007\\u001b]0;pwned\\u0007\\u009b31m\\u202ex"

/* Fails if out holds a byte a terminal would obey (any C0 control but
 * newline, DEL, a UTF-8 C1 control, a bidi override). */
static void assert_clean(const char *what, const char *out)
{
    const unsigned char *u = (const unsigned char *)out;
    for (size_t i = 0; u[i]; i++) {
        cr_assert(!(u[i] < 0x20 && u[i] != '\n') && u[i] != 0x7f,
                  "%s printed control byte 0x%02x at %zu:\n%s", what, u[i], i, out);
        cr_assert(!(u[i] == 0xc2 && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f), "%s printed a C1 control:\n%s", what, out);
        cr_assert(!(u[i] == 0xe2 && u[i + 1] == 0x80 && u[i + 2] == 0xae), "%s printed U+202E:\n%s", what, out);
    }
}

/* Runs `sluice ARGS…` and checks stdout and stderr are clean and, when
 * shown is not NULL, that stdout shows it (so the value was printed). */
static void check(const char *const *args, const char *shown)
{
    const char *argv[16] = { SLUICE_BIN };
    size_t n = 1;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    th_result r = th_run(argv, NULL);
    char what[128];
    snprintf(what, sizeof what, "sluice %s %s", args[0], args[1] ? args[1] : "");
    assert_clean(what, r.out);
    assert_clean(what, r.err);
    if (shown)
        cr_assert(strstr(r.out, shown), "%s does not show the value visibly (%s):\n%s\n%s", what, shown, r.out, r.err);
    th_result_free(&r);
}

Test(vis, hostile_values_in_postgres_are_shown_not_obeyed, .timeout = 60)
{
    th_migrate();
    char run[64], job[64];
    th_name(run, sizeof run, "vrun");
    th_name(job, sizeof job, "vjob");
    const char *p[] = { run, EVIL, job };
    th_pg_number("INSERT INTO sluice_runs (id, pipeline, source_name, source, vars, triggered_by, status, error)"
                 " VALUES ($1, 'release', 'x.yaml', 'name: release', '{\"v\": \"" EVIL_JSON "\"}', $2,"
                 " 'running', $2) RETURNING 1", 2, p);
    th_pg_number("INSERT INTO sluice_run_steps (run_id, step_id, position, status, job_id, outputs, error)"
                 " VALUES ($1, 'build', 0, 'failed', $3, '{\"o\": \"" EVIL_JSON "\"}', $2) RETURNING 1", 3, p);
    th_pg_number("INSERT INTO sluice_gates (run_id, gate_id, status, approvers, required, triggered_by,"
                 " instructions, input_spec) VALUES ($1, 'go-live', 'open', ARRAY[$2], 2, $2, $2,"
                 " '[{\"name\": \"" EVIL_JSON "\"}]') RETURNING 1", 2, p);
    const char *q[] = { job, EVIL };
    th_pg_number("INSERT INTO sluice_jobs (id, queue, kind, status, attempts, args, outputs, worker, error)"
                 " VALUES ($1, 'default', 'noop', 'dead', 1, '{\"a\": \"" EVIL_JSON "\"}',"
                 " '{\"o\": \"" EVIL_JSON "\"}', $2, $2) RETURNING 1", 2, q);
    th_pg_number("INSERT INTO sluice_job_attempts (job_id, attempt, status, error, worker)"
                 " VALUES ($1, 1, 'dead', $2, $2) RETURNING 1", 2, q);

    check((const char *[]){ "gates", NULL }, "\\e[2J\\e[Happrovals: 2 of 2\\r\\b\\a\\e]0;pwned\\a\\u009b31m\\u202ex");
    check((const char *[]){ "status", run, NULL }, "\\e[2J");
    check((const char *[]){ "runs", NULL }, "\\e[2J");
    check((const char *[]){ "job", job, NULL }, "\\e[2J\\e[Happrovals");
    check((const char *[]){ "job", job, "--json", NULL }, "\\u001b[2J");
}

Test(vis, hostile_values_in_redis_are_shown_not_obeyed, .timeout = 60)
{
    th_migrate();
    char queue[64], key[SL_KEY_MAX], reg[128];
    th_name(queue, sizeof queue, "vq");
    sl_queue_key(key, queue, "dead");
    sl_redis *r = th_redis();
    sl_err err;
    /* A dead-letter entry whose error and id quote hostile bytes. */
    const char *sadd[] = { "SADD", SL_QUEUES_KEY, queue };
    const char *xadd[] = { "XADD", key, "*", "job", "\xc1", "error", "undecodable: " EVIL, "failed_at", "1",
                           "id", EVIL };
    redisReply *rep = sl_redis_command(r, 3, sadd, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    freeReplyObject(rep);
    rep = sl_redis_command(r, 11, xadd, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    freeReplyObject(rep);
    /* A counter field with a kind no worker would write. */
    char stats[SL_KEY_MAX];
    sl_queue_key(stats, queue, "stats");
    const char *hincr[] = { "HINCRBY", stats, "processed:" EVIL, "1" };
    rep = sl_redis_command(r, 4, hincr, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    freeReplyObject(rep);
    /* A worker registry document anyone with Redis access could write. */
    snprintf(reg, sizeof reg, "sluice:worker:vis:%ld", (long)getpid());
    char *doc = sl_xasprintf("{\"host\":\"h" EVIL_JSON "\",\"pid\":1,\"state\":\"running\",\"queues\":[\"%s\"],"
                             "\"children\":[{\"pid\":2,\"state\":\"r" EVIL_JSON "\",\"job\":\"j" EVIL_JSON "\","
                             "\"kind\":\"k" EVIL_JSON "\",\"queue\":\"%s\",\"job_ms\":5}]}", queue, queue);
    const char *set[] = { "SET", reg, doc, "EX", "30" };
    rep = sl_redis_command(r, 5, set, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    freeReplyObject(rep);

    check((const char *[]){ "dead", "list", "--queue", queue, NULL }, "undecodable: \\e[2J");
    check((const char *[]){ "dead", "list", "--queue", queue, "--json", NULL }, "\\u001b[2J");
    check((const char *[]){ "workers", NULL }, "h\\e[2J");
    check((const char *[]){ "workers", "--json", NULL }, "h\\u001b[2J");
    check((const char *[]){ "stats", NULL }, "\\e[2J");
    check((const char *[]){ "stats", "--json", NULL }, "h\\u001b[2J");
    check((const char *[]){ "top", "--once", NULL }, "\\e[2J");
    check((const char *[]){ "metrics", NULL }, NULL);

    const char *del[] = { "DEL", reg };
    rep = sl_redis_command(r, 2, del, NULL, &err);
    freeReplyObject(rep);
    free(doc);
    sl_redis_free(r);
}
