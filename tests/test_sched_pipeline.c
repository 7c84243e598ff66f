/* test_sched_pipeline.c: the pipeline parser and validator
 * (scheduler/pipeline.c): one fixture per error class with its exact
 * FILE:LINE:COLUMN and message, every error reported in one pass, a bad
 * pipeline refused whole while good ones in the same directory load, and
 * standard YAML (anchors, aliases, merge keys, block scalars, flow style). */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "mem.h"
#include "pipeline.h"

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
    const char *text = HEAD "  - id: g\n    approval: {approvers: [leads, carol, alice], required: 3}\n";
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
    const char *four = HEAD "  - id: g\n    approval: {approvers: [leads, alice], required: 3}\n";
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
    const char *text = HEAD "  - id: a\n    kind: noop\n    args: {i: 012, p: +5, f: 1.5, e: 2e3, big: 99999999999999999999,"
                       " s: \"12\", b: true, n: ~, t: yes, h: 0x1F, list: [1, x]}\n";
    sl_yerrors e = SL_YERRORS_INIT;
    sl_pipeline *p = parse(text, &e);
    cr_assert_not_null(p, "%s", e.n ? e.msgs[0] : "");
    sl_buf b = SL_BUF_INIT;
    sl_err err;
    cr_assert_eq(sl_pipeline_node_json(p, p->steps[0].args, NULL, NULL, "args", &b, &err), 0, "%s", err.msg);
    cr_assert_str_eq(sl_buf_str(&b), "{\"i\":12,\"p\":5,\"f\":1.5,\"e\":2000,\"big\":1e+20,"
                     "\"s\":\"12\",\"b\":true,\"n\":null,\"t\":\"yes\",\"h\":\"0x1F\",\"list\":[1,\"x\"]}");
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
