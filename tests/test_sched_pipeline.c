/* test_sched_pipeline.c: the pipeline parser and validator
 * (scheduler/pipeline.c): one fixture per error class with its exact
 * FILE:LINE:COLUMN and message, every error reported in one pass, a bad
 * pipeline refused whole while good ones in the same directory load, and
 * standard YAML (anchors, aliases, merge keys, block scalars, flow style). */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "envelope.h"
#include "harness.h"
#include "json.h"
#include "mem.h"
#include "config_jobs.h"
#include "pipeline.h"

TH_REGISTER_CONFIG_SECTIONS

/* The envelope's args nesting limit, as validation must apply it. */
#define SL_JSON_MAX_DEPTH_USED 31

static sl_pipeline *parse(const char *text, sl_yerrors *errors)
{
    return sl_pipeline_parse("p.yaml", text, strlen(text), NULL, errors);
}

static void dump(const sl_yerrors *e, char *buf, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < e->n && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "  %s\n", e->msgs[i]);
}

/* Parses text and asserts it fails with an error starting with `where`
 * ("p.yaml:L:C: ") and containing `what`. */
static void expect_error(const char *text, const char *where, const char *what)
{
    sl_yerrors e = SL_YERRORS_INIT;
    sl_pipeline *p = parse(text, &e);
    char all[4096];
    dump(&e, all, sizeof all);
    cr_assert_null(p, "pipeline loaded although it has an error (%s)", what);
    bool found = false;
    for (size_t i = 0; i < e.n; i++)
        found = found || (strncmp(e.msgs[i], where, strlen(where)) == 0 && strstr(e.msgs[i], what));
    cr_assert(found, "expected '%s ...%s...' among:\n%s", where, what, all);
    sl_yerrors_free(&e);
}

#define HEAD "name: p\nsteps:\n"

Test(pipeline, unknown_key)
{
    expect_error(HEAD "  - id: a\n    kind: noop\n    retries: 3\n", "p.yaml:5:5:",
                 "unknown key 'retries' in a step");
    expect_error("name: p\ntimeout: 1s\nsteps:\n  - {id: a, kind: noop}\n", "p.yaml:2:1:",
                 "unknown key 'timeout' at the top");
    expect_error(HEAD "  - id: a\n    kind: noop\n    retry: {max_attempts: 2, jitter: 1}\n", "p.yaml:5:30:",
                 "unknown key 'jitter' in 'retry'");
}

Test(pipeline, wrong_type)
{
    expect_error(HEAD "  - id: a\n    kind: noop\n    needs: b\n", "p.yaml:5:12:", "'needs' must be a list");
    expect_error(HEAD "  - id: a\n    kind: noop\n    args: [1, 2]\n", "p.yaml:5:11:", "'args' must be a mapping");
    expect_error(HEAD "  - id: a\n    kind: noop\n    retry: {max_attempts: many}\n", "p.yaml:5:27:",
                 "'retry.max_attempts' must be");
    expect_error("name: p\nsteps: {a: 1}\n", "p.yaml:2:8:", "'steps' must be a list");
}

Test(pipeline, missing_id_and_kind)
{
    expect_error(HEAD "  - kind: noop\n", "p.yaml:3:5:", "step 1 has no 'id'");
    expect_error(HEAD "  - id: a\n    args: {}\n", "p.yaml:3:5:", "step 'a' has no 'kind'");
}

Test(pipeline, duplicate_step_id)
{
    expect_error(HEAD "  - {id: a, kind: noop}\n  - {id: a, kind: noop}\n", "p.yaml:4:10:",
                 "duplicate step id 'a'");
}

Test(pipeline, unknown_kind)
{
    expect_error(HEAD "  - id: a\n    kind: teleport\n", "p.yaml:4:11:", "unknown kind 'teleport'");
}

Test(pipeline, unknown_need)
{
    expect_error(HEAD "  - {id: a, kind: noop}\n  - id: b\n    kind: noop\n    needs: [a, nope]\n",
                 "p.yaml:6:16:", "step 'b' needs unknown step 'nope'");
}

Test(pipeline, cycle_printed_as_path)
{
    expect_error(HEAD
                 "  - {id: a, kind: noop, needs: [c]}\n"
                 "  - {id: b, kind: noop, needs: [a]}\n"
                 "  - {id: c, kind: noop, needs: [b]}\n"
                 "  - {id: d, kind: noop}\n",
                 "p.yaml:4:33:", "cycle in needs: a -> c -> b -> a");
    expect_error(HEAD "  - {id: a, kind: noop, needs: [a]}\n", "p.yaml:3:33:", "cycle: a -> a");
}

Test(pipeline, bad_duration)
{
    expect_error(HEAD "  - id: a\n    kind: noop\n    timeout: 10 minutes\n", "p.yaml:5:14:", "'timeout'");
    expect_error(HEAD "  - id: g\n    approval: {approvers: [x], timeout: 1y}\n", "p.yaml:4:41:",
                 "'approval.timeout'");
}

Test(pipeline, bad_cron)
{
    expect_error("name: p\nschedule: \"61 * * * *\"\nsteps:\n  - {id: a, kind: noop}\n", "p.yaml:2:11:",
                 "bad cron expression '61 * * * *': minute field '61': value out of range 0-59");
    expect_error("name: p\nschedule: \"0 0 30 feb *\"\nsteps:\n  - {id: a, kind: noop}\n", "p.yaml:2:11:",
                 "never fires");
    expect_error("name: p\nschedule: \"@fortnightly\"\nsteps:\n  - {id: a, kind: noop}\n", "p.yaml:2:11:",
                 "unknown shorthand");
    expect_error("name: p\nschedule: \"* * *\"\nsteps:\n  - {id: a, kind: noop}\n", "p.yaml:2:11:",
                 "expected 5 fields");
}

Test(pipeline, unknown_template_reference)
{
    const char *vars = "name: p\nvars: {app: shop}\nsteps:\n";
    char *t = sl_xasprintf("%s  - id: a\n    kind: noop\n    args: {x: \"${{ vars.nope }}\"}\n", vars);
    expect_error(t, "p.yaml:6:15:", "unknown template reference '${{ vars.nope }}': no such variable");
    free(t);
    t = sl_xasprintf("%s  - {id: a, kind: noop}\n  - id: b\n    kind: noop\n"
                     "    args: {x: \"${{ steps.a.outputs.dir }}\"}\n", vars);
    expect_error(t, "p.yaml:7:15:", "step 'b' does not need 'a'");
    free(t);
    t = sl_xasprintf("%s  - id: a\n    kind: noop\n    if: steps.zz.status == 'succeeded'\n", vars);
    expect_error(t, "p.yaml:6:9:", "there is no step 'zz'");
    free(t);
    t = sl_xasprintf("%s  - id: g\n    approval: {approvers: [x]}\n  - id: b\n    kind: noop\n"
                     "    needs: [g]\n    args: {p: \"${{ gate.g.inputs.percent }}\"}\n", vars);
    expect_error(t, "p.yaml:9:15:", "gate 'g' declares no input 'percent'");
    free(t);
    expect_error(HEAD "  - id: a\n    kind: noop\n    args: {x: \"${{ env.HOME }}\"}\n", "p.yaml:5:15:",
                 "unknown reference 'env.HOME'");
}

Test(pipeline, approval_required_above_approvers)
{
    expect_error(HEAD "  - id: g\n    approval:\n      approvers: [alice, bob]\n      required: 3\n",
                 "p.yaml:6:17:", "requires 3 approvals but only 2 approvers are listed");
}

Test(pipeline, every_error_in_one_pass)
{
    sl_yerrors e = SL_YERRORS_INIT;
    sl_pipeline *p = parse(HEAD
                           "  - {id: a, kind: teleport}\n"
                           "  - {id: a, kind: noop, timeout: soon}\n"
                           "  - {id: c, kind: noop, needs: [zz], colour: red}\n", &e);
    cr_assert_null(p);
    char all[4096];
    dump(&e, all, sizeof all);
    cr_assert_eq(e.n, 5, "expected 5 errors, got:\n%s", all);
    sl_yerrors_free(&e);
}

Test(pipeline, standard_yaml)
{
    const char *text =
        "# anchors, aliases, merge keys, block scalars and flow style\n"
        "name: std\n"
        "vars: {app: shop, replicas: 3}\n"
        "defaults: &defaults\n"
        "  kind: sleep\n"
        "  retry: {max_attempts: 3, backoff: exponential, initial: 2s, max: 1m}\n"
        "  timeout: 10m\n"
        "steps:\n"
        "  - <<: *defaults\n"
        "    id: one\n"
        "    args: {ms: 5}\n"
        "  - <<: *defaults\n"
        "    id: two\n"
        "    needs: [one]\n"
        "    timeout: 1m\n"
        "    args:\n"
        "      note: |\n"
        "        line one ${{ vars.app }}\n"
        "        line two\n"
        "      folded: >\n"
        "        folded\n"
        "        text\n"
        "  - id: gate\n"
        "    needs: [two]\n"
        "    approval:\n"
        "      approvers: [alice, bob, carol]\n"
        "      required: 2\n"
        "      instructions: >-\n"
        "        Check the output of two.\n"
        "      inputs: [{name: percent, type: int, default: 10}]\n";
    /* `defaults` is not a pipeline key: it must be refused... */
    sl_yerrors e = SL_YERRORS_INIT;
    cr_assert_null(parse(text, &e));
    cr_assert_eq(e.n, 1);
    cr_assert(strstr(e.msgs[0], "p.yaml:4:1: unknown key 'defaults'"), "%s", e.msgs[0]);
    sl_yerrors_free(&e);
    /* ...so anchors live in a hidden place: an anchor on the first step works. */
    const char *ok =
        "name: std\n"
        "vars: {app: shop, replicas: 3}\n"
        "steps:\n"
        "  - &base\n"
        "    id: one\n"
        "    kind: sleep\n"
        "    retry: {max_attempts: 3, backoff: exponential, initial: 2s, max: 1m}\n"
        "    timeout: 10m\n"
        "    args: {ms: 5}\n"
        "  - <<: *base\n"
        "    id: two\n"
        "    needs: [one]\n"
        "    timeout: 1m\n"
        "    args:\n"
        "      note: |\n"
        "        line one ${{ vars.app }}\n"
        "        line two\n"
        "  - id: gate\n"
        "    needs: [two]\n"
        "    approval:\n"
        "      approvers: [alice, bob, carol]\n"
        "      required: 2\n"
        "      instructions: >-\n"
        "        Check the output\n"
        "        of two.\n"
        "      inputs: [{name: percent, type: int, default: 10}]\n";
    sl_pipeline *p = parse(ok, &e);
    char all[4096];
    dump(&e, all, sizeof all);
    cr_assert_not_null(p, "errors:\n%s", all);
    cr_assert_eq(p->nsteps, 3);
    cr_assert_str_eq(p->steps[1].kind, "sleep");
    cr_assert_eq(p->steps[1].max_attempts, 3);
    cr_assert_eq(p->steps[1].timeout_ms, 60000);
    cr_assert_eq(p->steps[0].timeout_ms, 600000);
    cr_assert_str_eq(p->steps[1].backoff, "exponential");
    cr_assert_eq(p->steps[2].gate->required, 2);
    cr_assert_str_eq(p->steps[2].gate->instructions, "Check the output of two.");
    cr_assert_str_eq(p->steps[1].queue, "sleep", "the queue defaults to the kind's name");
    sl_buf b = SL_BUF_INIT;
    sl_err err;
    cr_assert_eq(sl_pipeline_node_json(p, p->steps[1].args, NULL, NULL, "args", &b, &err), 0);
    cr_assert_str_eq(sl_buf_str(&b), "{\"note\":\"line one ${{ vars.app }}\\nline two\\n\"}");
    sl_buf_free(&b);
    sl_pipeline_free(p);
}

Test(pipeline, groups_count_as_their_members)
{
    sl_sched_config cfg;
    sl_sched_config_init(&cfg);
    cfg.groups = sl_xcalloc(1, sizeof *cfg.groups);
    cfg.groups[0].name = sl_xstrdup("leads");
    cfg.groups[0].users = sl_xcalloc(3, sizeof(char *));
    cfg.groups[0].users[0] = sl_xstrdup("alice");
    cfg.groups[0].users[1] = sl_xstrdup("bob");
    cfg.groups[0].nusers = 2;
    cfg.ngroups = 1;
    const char *text = HEAD "  - id: g\n    approval: {approvers: [group:leads, carol, alice], required: 3}\n";
    sl_yerrors e = SL_YERRORS_INIT;
    sl_pipeline *p = sl_pipeline_parse("p.yaml", text, strlen(text), &cfg, &e);
    cr_assert_not_null(p, "%s", e.n ? e.msgs[0] : "");
    size_t n;
    char **users = sl_pipeline_gate_users(p->steps[0].gate, &cfg, &n);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(users[0], "alice");
    cr_assert_str_eq(users[1], "bob");
    cr_assert_str_eq(users[2], "carol");
    sl_pipeline_users_free(users);
    sl_pipeline_free(p);
    const char *four = HEAD "  - id: g\n    approval: {approvers: [group:leads, alice], required: 3}\n";
    cr_assert_null(sl_pipeline_parse("p.yaml", four, strlen(four), &cfg, &e));
    sl_yerrors_free(&e);
    sl_sched_config_clear(&cfg);
}

Test(pipeline, bad_file_refused_whole_others_load)
{
    char dir[] = "/tmp/sluice-pipes-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *good = sl_xasprintf("%s/good.yaml", dir), *bad = sl_xasprintf("%s/bad.yaml", dir);
    FILE *f = fopen(good, "w");
    fputs("name: good\nsteps:\n  - {id: a, kind: noop}\n", f);
    fclose(f);
    f = fopen(bad, "w");
    fputs("name: bad\nsteps:\n  - {id: a, kind: noop}\n  - {id: b, kind: nope}\n", f);
    fclose(f);
    sl_pipeline **list;
    size_t n;
    sl_yerrors e = SL_YERRORS_INIT;
    sl_err err;
    cr_assert_eq(sl_pipelines_load_dir(dir, NULL, &list, &n, &e, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(list[0]->name, "good");
    cr_assert_eq(e.n, 1);
    char *want = sl_xasprintf("%s:4:19: unknown kind 'nope'", bad);
    cr_assert(strncmp(e.msgs[0], want, strlen(want)) == 0, "%s", e.msgs[0]);
    free(want);
    sl_pipelines_free(list, n);
    sl_yerrors_free(&e);
    unlink(good);
    unlink(bad);
    rmdir(dir);
    free(good);
    free(bad);
}

Test(pipeline, scalar_types_become_json)
{
    const char *text = HEAD "  - id: a\n    kind: noop\n    args: {i: 012, p: +5, f: 1.5, e: 2e3, big: \"99999999999999999999\","
                       " s: \"12\", b: true, n: ~, t: yes, h: 0x1F, o: 0o17, list: [1, x], tenth: 0.1, tiny: 1e-7,"
                       " u: On, F: FALSE}\n";
    sl_yerrors e = SL_YERRORS_INIT;
    sl_pipeline *p = parse(text, &e);
    cr_assert_not_null(p, "%s", e.n ? e.msgs[0] : "");
    sl_buf b = SL_BUF_INIT;
    sl_err err;
    cr_assert_eq(sl_pipeline_node_json(p, p->steps[0].args, NULL, NULL, "args", &b, &err), 0, "%s", err.msg);
    cr_assert_str_eq(sl_buf_str(&b), "{\"i\":12,\"p\":5,\"f\":1.5,\"e\":2000,\"big\":\"99999999999999999999\","
                     "\"s\":\"12\",\"b\":true,\"n\":null,\"t\":\"yes\",\"h\":31,\"o\":15,\"list\":[1,\"x\"],"
                     "\"tenth\":0.1,\"tiny\":1e-07,\"u\":\"On\",\"F\":false}");
    sl_buf_free(&b);
    sl_pipeline_free(p);
}

Test(pipeline, validate_command)
{
    char dir[] = "/tmp/sluice-validate-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *good = sl_xasprintf("%s/good.yaml", dir), *bad = sl_xasprintf("%s/bad.yaml", dir);
    FILE *f = fopen(good, "w");
    fputs("name: good\nsteps:\n  - {id: a, kind: noop}\n", f);
    fclose(f);
    f = fopen(bad, "w");
    fputs("name: bad\nsteps:\n  - {id: a, kind: noop, needs: [b]}\n  - {id: b, kind: noop, needs: [a]}\n", f);
    fclose(f);
    const char *env[] = { "SLUICE_CONFIG=", NULL };
    const char *one[] = { SLUICE_BIN, "validate", good, NULL };
    th_result r = th_run(one, env);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "ok (pipeline good, 1 steps)"), "%s", r.out);
    th_result_free(&r);
    const char *all[] = { SLUICE_BIN, "validate", "--pipelines", dir, NULL };
    r = th_run(all, env);
    cr_assert_eq(r.status, 1);
    char *want = sl_xasprintf("%s:4:33: cycle in needs: a -> b -> a\n", bad);
    cr_assert(strstr(r.err, want), "want '%s' in:\n%s", want, r.err);
    cr_assert(strstr(r.out, "good.yaml: ok"), "%s", r.out);
    th_result_free(&r);
    free(want);
    unlink(good);
    unlink(bad);
    rmdir(dir);
    free(good);
    free(bad);
}

/* ---- found by fuzzing the loader ----------------------------------------- */

/* A key repeated under a quoted spelling with a NUL byte ("approvers\0"
 * beside approvers) is a different key to libyaml but the same to strcmp:
 * the second list grew the array allocated for the first (a heap overflow
 * that ASan reports), `inputs` reached strcmp with NULL, `needs` leaked.
 * Each is now refused at the key, before any list is read. */
Test(pipeline, key_with_nul_byte_is_refused)
{
    static const char approvers[] = HEAD "  - id: g\n    approval:\n      approvers: [a]\n"
                                         "      \"approvers\\0\": [b, c, d, e, f, g, h, i, j]\n";
    static const char inputs[] = HEAD "  - id: g\n    approval:\n      approvers: [a]\n"
                                      "      inputs: [{name: x}]\n      \"inputs\\0\": [{name: y}, {type: int}]\n";
    static const char needs[] = HEAD "  - {id: a, kind: noop}\n  - id: b\n    kind: noop\n    needs: [a]\n"
                                     "    \"needs\\0\": [a, a]\n";
    expect_error(approvers, "p.yaml:6:7:", "mapping key 'approvers?' contains a NUL byte");
    expect_error(inputs, "p.yaml:7:7:", "mapping key 'inputs?' contains a NUL byte");
    expect_error(needs, "p.yaml:7:5:", "mapping key 'needs?' contains a NUL byte");
}

Test(pipeline, repeated_key_is_an_error_at_its_position)
{
    expect_error(HEAD "  - id: g\n    approval:\n      approvers: [a]\n      required: 1\n"
                 "      approvers: [b, c]\n", "p.yaml:7:7:", "duplicate key 'approvers' (first at line 5)");
    expect_error(HEAD "  - {id: a, kind: noop}\n  - {id: b, kind: noop, needs: [a], 'needs': [a]}\n",
                 "p.yaml:4:37:", "duplicate key 'needs' (first at line 4)");
    expect_error("name: p\nsteps: []\n\"steps\": [{id: a, kind: noop}]\n", "p.yaml:3:1:", "duplicate key 'steps'");
}

/* A few hundred bytes of aliases that would make validation (and every
 * render of the args) visit 10^9 nodes: refused at load, fast. */
Test(pipeline, alias_bomb_fails_fast, .timeout = 10)
{
    sl_buf b = SL_BUF_INIT;
    sl_buf_puts(&b, "name: p\nx-a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (char c = 'b'; c <= 'i'; c++)
        sl_buf_printf(&b, "x-%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", c, c,
                      c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
    sl_buf_puts(&b, "steps:\n  - id: a\n    kind: noop\n    args: {all: *i}\n");
    cr_assert_lt(b.len, 700);
    expect_error(sl_buf_str(&b), "p.yaml:6:6:", "aliases expand this to more than 100000 nodes");
    sl_buf_free(&b);
}

/* ---- validation refuses what cannot run ----------------------------------- */

Test(pipeline, empty_args_are_refused)
{
    expect_error(HEAD "  - id: a\n    kind: noop\n    args:\n", "p.yaml:5:10:",
                 "'args' must be a mapping, got nothing (write {} for no arguments)");
    expect_error(HEAD "  - id: a\n    kind: noop\n    args: ~\n", "p.yaml:5:11:", "'args' must be a mapping");
    expect_error(HEAD "  - id: a\n    kind: noop\n    args: \"\\0\"\n", "p.yaml:5:11:", "'args' must be a mapping");
    expect_error(HEAD "  - id: a\n    kind: noop\n    args: {s: \"a\\0b\"}\n", "p.yaml:5:15:",
                 "a string holding a NUL byte cannot be passed to a job");
    expect_error(HEAD "  - id: a\n    kind: noop\n    args: {n: 99999999999999999999}\n", "p.yaml:5:15:",
                 "does not fit 64 bits");
    expect_error(HEAD "  - id: a\n    kind: noop\n    args: {n: .inf}\n", "p.yaml:5:15:",
                 "cannot be written as JSON");
    expect_error("name: p\nvars: {big: 0x8000000000000000, ok: 1}\nsteps: [{id: a, kind: noop}]\n", "p.yaml:2:13:",
                 "does not fit 64 bits");
    /* {} is fine */
    sl_yerrors e = SL_YERRORS_INIT;
    sl_pipeline *p = parse(HEAD "  - id: a\n    kind: noop\n    args: {}\n", &e);
    cr_assert_not_null(p, "%s", e.n ? e.msgs[0] : "");
    sl_pipeline_free(p);
}

/* Args of `levels` nested mappings, the args mapping included. */
static char *deep_args(int levels)
{
    sl_buf b = SL_BUF_INIT;
    sl_buf_puts(&b, HEAD "  - id: a\n    kind: noop\n    args: ");
    for (int i = 1; i < levels; i++)
        sl_buf_puts(&b, "{a: ");
    sl_buf_puts(&b, "{a: 1}");
    for (int i = 1; i < levels; i++)
        sl_buf_putc(&b, '}');
    sl_buf_putc(&b, '\n');
    char *s = sl_xstrdup(sl_buf_str(&b));
    sl_buf_free(&b);
    return s;
}

/* Renders args of `levels` levels (validation bypassed through a pipeline
 * that has none) and asks the envelope encoder whether it would carry them. */
static int encode_depth(int levels, sl_err *err)
{
    sl_buf json = SL_BUF_INIT;
    for (int i = 0; i < levels; i++)
        sl_buf_puts(&json, "{\"a\":");
    sl_buf_puts(&json, "1");
    for (int i = 0; i < levels; i++)
        sl_buf_putc(&json, '}');
    msgpack_sbuffer sb, env;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&env);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = sl_json_to_msgpack(json.data, json.len, &pk, err);
    if (rc == 0) {
        sl_job job = { .id = "t.a.1", .kind = "noop", .queue = "noop", .args = sb.data,
                       .args_len = sb.size, .attempt = 1, .enqueued_at = 1 };
        rc = sl_envelope_encode(&job, &env, err);
    }
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&env);
    sl_buf_free(&json);
    return rc;
}

Test(pipeline, args_deeper_than_an_envelope_carries_are_refused)
{
    sl_err err;
    /* the limit is the envelope's: 31 levels encode, 32 do not */
    cr_assert_eq(encode_depth(SL_JSON_MAX_DEPTH_USED, &err), 0, "%s", err.msg);
    cr_assert_eq(encode_depth(SL_JSON_MAX_DEPTH_USED + 1, &err), -1);
    char *ok = deep_args(SL_JSON_MAX_DEPTH_USED), *deep = deep_args(SL_JSON_MAX_DEPTH_USED + 1);
    sl_yerrors e = SL_YERRORS_INIT;
    sl_pipeline *p = parse(ok, &e);
    cr_assert_not_null(p, "%s", e.n ? e.msgs[0] : "");
    sl_buf b = SL_BUF_INIT;
    cr_assert_eq(sl_pipeline_node_json(p, p->steps[0].args, NULL, NULL, "args", &b, &err), 0, "%s", err.msg);
    sl_buf_free(&b);
    sl_pipeline_free(p);
    char where[32];
    snprintf(where, sizeof where, "p.yaml:5:%d:", 11 + 4 * SL_JSON_MAX_DEPTH_USED);
    expect_error(deep, where, "args nest more than 31 levels deep");
    free(ok);
    free(deep);
    /* 70 levels, as the fuzzer found: refused too (YAML's own limit is 128) */
    char *seventy = deep_args(70);
    expect_error(seventy, "p.yaml:5:", "args nest more than 31 levels deep");
    free(seventy);
}

/* ---- x- extension keys ----------------------------------------------------- */

Test(pipeline, x_keys_hold_shared_anchors)
{
    const char *text = "name: p\n"
                       "x-retry: &retry {max_attempts: 4, backoff: fixed, initial: 1s}\n"
                       "x-job: &job\n  kind: noop\n  retry: *retry\n  timeout: 30s\n"
                       "x-notes: anything at all, [ignored]\n"
                       "steps:\n"
                       "  - <<: *job\n    id: a\n    args: {n: 1}\n"
                       "  - <<: *job\n    id: b\n    needs: [a]\n    timeout: 5s\n";
    sl_yerrors e = SL_YERRORS_INIT;
    sl_pipeline *p = parse(text, &e);
    char all[2048];
    dump(&e, all, sizeof all);
    cr_assert_not_null(p, "%s", all);
    cr_assert_eq(p->nsteps, 2);
    for (size_t i = 0; i < 2; i++) {
        cr_assert_str_eq(p->steps[i].kind, "noop");
        cr_assert_eq(p->steps[i].max_attempts, 4);
        cr_assert_str_eq(p->steps[i].backoff, "fixed");
        cr_assert_eq(p->steps[i].retry_initial_ms, 1000);
    }
    cr_assert_eq(p->steps[0].timeout_ms, 30000);
    cr_assert_eq(p->steps[1].timeout_ms, 5000, "a step's own key beats the merged one");
    sl_pipeline_free(p);
    /* only at the top level, and only x-NAME */
    expect_error(HEAD "  - {id: a, kind: noop, x-note: hi}\n", "p.yaml:3:25:", "unknown key 'x-note' in a step");
    expect_error("name: p\nx_shared: 1\nsteps: [{id: a, kind: noop}]\n", "p.yaml:2:1:",
                 "unknown key 'x_shared' at the top");
}

/* ---- approvers: users and group:NAME ---------------------------------------- */

Test(pipeline, undefined_group_is_an_error)
{
    sl_sched_config cfg;
    sl_sched_config_init(&cfg);
    cfg.groups = sl_xcalloc(1, sizeof *cfg.groups);
    cfg.groups[0].name = sl_xstrdup("leads");
    cfg.groups[0].users = sl_xcalloc(2, sizeof(char *));
    cfg.groups[0].users[0] = sl_xstrdup("alice");
    cfg.groups[0].nusers = 1;
    cfg.ngroups = 1;
    static const struct { const char *text, *where, *what; } bad[] = {
        { HEAD "  - id: g\n    approval: {approvers: [bob, group:nope]}\n", "p.yaml:4:33:",
          "approver 'group:nope': no group 'nope' is defined under 'groups:'" },
        { HEAD "  - id: g\n    approval:\n      approvers:\n        - bob\n        - 'group:'\n", "p.yaml:7:11:",
          "no group '' is defined" },
        { HEAD "  - id: g\n    approval: {approvers: [leads]}\n", "p.yaml:4:28:",
          "approver 'leads' is the name of a group: write group:leads for the group" },
        { HEAD "  - id: g\n    approval: {approvers: ['']}\n", "p.yaml:4:28:", "an approver must not be empty" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_yerrors e = SL_YERRORS_INIT;
        sl_pipeline *p = sl_pipeline_parse("p.yaml", bad[i].text, strlen(bad[i].text), &cfg, &e);
        char all[2048];
        dump(&e, all, sizeof all);
        cr_assert_null(p, "accepted: %s", bad[i].text);
        bool found = false;
        for (size_t k = 0; k < e.n; k++)
            found = found || (strncmp(e.msgs[k], bad[i].where, strlen(bad[i].where)) == 0 &&
                              strstr(e.msgs[k], bad[i].what));
        cr_assert(found, "expected '%s ...%s...' among:\n%s", bad[i].where, bad[i].what, all);
        sl_yerrors_free(&e);
    }
    /* without a configuration, no group is defined */
    expect_error(HEAD "  - id: g\n    approval: {approvers: [group:leads]}\n", "p.yaml:4:28:",
                 "no group 'leads' is defined");
    sl_sched_config_clear(&cfg);
}

/* ---- args against what each kind takes ---------------------------------------- */

Test(pipeline, args_are_checked_against_the_kind)
{
    expect_error(HEAD "  - id: a\n    kind: import\n    args: {url: 'https://x/y', fromat: csv}\n", "p.yaml:5:32:",
                 "kind 'import' takes no argument 'fromat' (it takes url, sha256, format, name, table)");
    expect_error(HEAD "  - id: a\n    kind: import\n    args: {format: csv}\n", "p.yaml:5:11:",
                 "step 'a': kind 'import' needs argument 'url'");
    expect_error(HEAD "  - id: a\n    kind: codegen\n", "p.yaml:3:5:", "kind 'codegen' needs argument 'template'");
    expect_error(HEAD "  - id: a\n    kind: import\n    args: {url: 'https://x/y', format: xml}\n", "p.yaml:5:40:",
                 "argument 'format' of kind 'import' must be one of raw, csv, got 'xml'");
    expect_error(HEAD "  - id: a\n    kind: provision\n    args: {resource: postgres_table, name: t}\n", "p.yaml:5:22:",
                 "must be one of postgres_schema, postgres_role, postgres_database, http");
    /* deploy and provision pass other arguments on; templated values are
     * checked when the job runs */
    const char *ok = "name: p\nvars: {fmt: csv}\nsteps:\n"
                     "  - {id: a, kind: deploy, args: {target: staging, version: 1.2, anything: [1]}}\n"
                     "  - {id: b, kind: import, args: {url: 'https://x/y', format: '${{ vars.fmt }}'}}\n"
                     "  - {id: c, kind: provision, args: {resource: http, endpoint: e, seats: 3}}\n"
                     "  - {id: d, kind: noop, args: {whatever: 1}}\n";
    sl_yerrors e = SL_YERRORS_INIT;
    sl_pipeline *p = parse(ok, &e);
    cr_assert_not_null(p, "%s", e.n ? e.msgs[0] : "");
    sl_pipeline_free(p);
}

/* Every pipeline shipped in pipelines/ validates against the shipped
 * configuration and the real kinds' argument rules (plus the approver
 * group the onboarding example asks the operator to define). */
Test(pipeline, shipped_pipelines_validate_strictly)
{
    sl_err err;
    sl_config *cfg = sl_config_load(SLUICE_SOURCE_DIR "/etc/sluice.yaml", &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    const char *dir = SLUICE_SOURCE_DIR "/pipelines";
    size_t files = 0;
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        size_t l = strlen(de->d_name);
        files += de->d_name[0] != '.' && l > 5 && strcmp(de->d_name + l - 5, ".yaml") == 0;
    }
    closedir(d);
    cr_assert_geq(files, 4);

    /* without the group, the onboarding pipeline says what is missing */
    sl_pipeline **list;
    size_t n;
    sl_yerrors e = SL_YERRORS_INIT;
    cr_assert_eq(sl_pipelines_load_dir(dir, sl_sched_config_of(cfg), &list, &n, &e, &err), 0, "%s", err.msg);
    cr_assert_eq(n, files - 1);
    cr_assert_eq(e.n, 1);
    cr_assert(strstr(e.msgs[0], "tenant-onboarding.yaml:") &&
              strstr(e.msgs[0], "approver 'group:onboarding': no group 'onboarding' is defined"), "%s", e.msgs[0]);
    sl_yerrors_free(&e);
    sl_pipelines_free(list, n);

    sl_sched_config_of(cfg)->groups = sl_xrealloc(sl_sched_config_of(cfg)->groups, (sl_sched_config_of(cfg)->ngroups + 1) * sizeof *sl_sched_config_of(cfg)->groups);
    sl_group *g = &sl_sched_config_of(cfg)->groups[sl_sched_config_of(cfg)->ngroups++];
    g->name = sl_xstrdup("onboarding");
    g->users = sl_xcalloc(2, sizeof(char *));
    g->users[0] = sl_xstrdup("olivia");
    g->nusers = 1;
    cr_assert_eq(sl_pipelines_load_dir(dir, sl_sched_config_of(cfg), &list, &n, &e, &err), 0, "%s", err.msg);
    char all[4096];
    dump(&e, all, sizeof all);
    cr_assert_eq(e.n, 0, "shipped pipelines do not validate:\n%s", all);
    cr_assert_eq(n, files);
    sl_pipelines_free(list, n);

    /* the onboarding pipeline as it was shipped before: refused */
    const char *old = "name: t\nvars: {tenant: acme}\nsteps:\n"
                      "  - id: provision\n    kind: provision\n"
                      "    args: { schema: \"tenant_${{ vars.tenant }}\", role: \"tenant_${{ vars.tenant }}\" }\n";
    expect_error(old, "p.yaml:6:11:", "kind 'provision' needs argument 'resource'");
    sl_config_free(cfg);
}

/* ---- notify: channels -------------------------------------------------------- */

Test(pipeline, notify_channels_per_pipeline_and_gate)
{
    sl_notify_config nc = { 0 };
    char *defaults[] = { "ops" };
    sl_notify_channel ch[] = { { .name = "ops" }, { .name = "chat", .type = SL_NOTIFY_SLACK },
                               { .name = "hook" } };
    nc.channels = ch;
    nc.nchannels = 3;
    nc.defaults = defaults;
    nc.ndefaults = 1;
    sl_sched_config cfg;
    sl_sched_config_init(&cfg);
    cfg.notify = &nc;
    const char *text = "name: p\nnotify: [chat]\nsteps:\n"
                       "  - id: a\n    approval: {approvers: [bob]}\n"
                       "  - id: b\n    approval: {approvers: [bob], notify: [hook, ops]}\n"
                       "  - id: c\n    approval: {approvers: [bob], notify: []}\n";
    sl_yerrors e = SL_YERRORS_INIT;
    sl_pipeline *p = sl_pipeline_parse("p.yaml", text, strlen(text), &cfg, &e);
    cr_assert_not_null(p, "%s", e.n ? e.msgs[0] : "");
    size_t n;
    const char *const *list = sl_pipeline_gate_channels(p, p->steps[0].gate, &nc, &n);
    cr_assert(n == 1 && strcmp(list[0], "chat") == 0, "the pipeline's list");
    list = sl_pipeline_gate_channels(p, p->steps[1].gate, &nc, &n);
    cr_assert(n == 2 && strcmp(list[0], "hook") == 0 && strcmp(list[1], "ops") == 0, "the gate's own list");
    (void)sl_pipeline_gate_channels(p, p->steps[2].gate, &nc, &n);
    cr_assert_eq(n, 0, "notify: [] means none");
    sl_pipeline_free(p);
    const char *plain = "name: p\nsteps:\n  - id: a\n    approval: {approvers: [bob]}\n";
    p = sl_pipeline_parse("p.yaml", plain, strlen(plain), &cfg, &e);
    cr_assert_not_null(p);
    list = sl_pipeline_gate_channels(p, p->steps[0].gate, &nc, &n);
    cr_assert(n == 1 && strcmp(list[0], "ops") == 0, "notify.default when the pipeline names none");
    sl_pipeline_free(p);

    static const struct { const char *text, *where, *what; } bad[] = {
        { "name: p\nnotify: [chat, nope]\nsteps:\n  - id: a\n    approval: {approvers: [bob]}\n",
          "p.yaml:2:16:", "notify: no channel 'nope' is defined under 'notify.channels'" },
        { HEAD "  - id: a\n    approval: {approvers: [bob], notify: [hook, hook]}\n", "p.yaml:4:49:",
          "channel 'hook' is listed twice" },
        { HEAD "  - id: a\n    approval: {approvers: [bob], notify: hook}\n", "p.yaml:4:42:", "'approval.notify' must be a list" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_yerrors be = SL_YERRORS_INIT;
        cr_assert_null(sl_pipeline_parse("p.yaml", bad[i].text, strlen(bad[i].text), &cfg, &be),
                       "accepted: %s", bad[i].text);
        char all[2048];
        dump(&be, all, sizeof all);
        bool found = false;
        for (size_t k = 0; k < be.n; k++)
            found = found || (strncmp(be.msgs[k], bad[i].where, strlen(bad[i].where)) == 0 &&
                              strstr(be.msgs[k], bad[i].what));
        cr_assert(found, "expected '%s ...%s...' among:\n%s", bad[i].where, bad[i].what, all);
        sl_yerrors_free(&be);
    }
    sl_yerrors_free(&e);
    cfg.notify = NULL;
    sl_sched_config_clear(&cfg);
}
