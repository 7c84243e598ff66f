/* test_sched_expr.c: template references, `${{ }}` rendering and `if`
 * expressions (scheduler/expr.c), against a fixed set of values. */
#include <criterion/criterion.h>

#include <string.h>

#include "expr.h"
#include "jsonval.h"
#include "args.h"

/* vars.app = "shop", vars.n = 3 (and the numbers below), steps.build:
 * succeeded, outputs {dir: "/out", count: 2, ok: true, nested: {x: "y"}},
 * run.id = "r1". */
static sl_jsonval vars, outputs;

static void setup(void)
{
    sl_jsonval_init(&vars, "{\"app\": \"shop\", \"n\": 3, \"force\": \"yes\", \"ratio\": 0.1,"
                    " \"sum\": 0.30000000000000004, \"big\": 9007199254740993, \"one\": 1,"
                    " \"half\": \"0.5\", \"t\": true, \"f\": false}");
    sl_jsonval_init(&outputs, "{\"dir\": \"/out\", \"count\": 2, \"ok\": true, \"nested\": {\"x\": \"y\"}}");
    cr_assert(vars.ok && outputs.ok);
}

static void teardown(void)
{
    sl_jsonval_free(&vars);
    sl_jsonval_free(&outputs);
}

TestSuite(expr, .init = setup, .fini = teardown);

static void str(msgpack_object *o, const char *s)
{
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = s;
    o->via.str.size = (uint32_t)strlen(s);
}

/* arg, when not NULL, counts the references resolved. */
static int resolve(void *arg, const sl_ref *ref, msgpack_object *out, sl_err *err)
{
    if (arg)
        (*(int *)arg)++;
    const msgpack_object *v = NULL;
    switch (ref->kind) {
    case SL_REF_VAR: v = sl_args_get(&vars.up.data, ref->id); break;
    case SL_REF_RUN_ID: str(out, "r1"); return 0;
    case SL_REF_RUN_TRIGGERED_BY: str(out, "alice"); return 0;
    case SL_REF_STEP_STATUS:
        if (strcmp(ref->id, "build") == 0) {
            str(out, "succeeded");
            return 0;
        }
        break;
    case SL_REF_STEP_OUTPUT:
        if (strcmp(ref->id, "build") == 0) {
            v = &outputs.up.data;
            char key[64];
            const char *k = ref->key;
            while (v && *k) {
                size_t n = strcspn(k, ".");
                memcpy(key, k, n);
                key[n] = '\0';
                v = sl_args_get(v, key);
                k += n + (k[n] == '.');
            }
        }
        break;
    case SL_REF_GATE_INPUT: break;
    }
    if (v == NULL)
        return sl_err_set(err, SL_EINVAL, "cannot resolve '%s'", ref->text);
    *out = *v;
    return 0;
}

static void render(const char *tmpl, const char *want)
{
    sl_buf b = SL_BUF_INIT;
    sl_err err;
    cr_assert_eq(sl_tmpl_render(tmpl, resolve, NULL, &b, &err), 0, "%s: %s", tmpl, err.msg);
    cr_assert_str_eq(sl_buf_str(&b), want, "%s", tmpl);
    sl_buf_free(&b);
}

static bool eval(const char *e)
{
    bool v = false;
    sl_err err;
    cr_assert_eq(sl_expr_eval(e, resolve, NULL, &v, &err), 0, "%s: %s", e, err.msg);
    return v;
}

Test(expr, references)
{
    sl_ref r;
    sl_err err;
    cr_assert_eq(sl_ref_parse(" steps.go-live.outputs.a.b ", 27, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.kind, SL_REF_STEP_OUTPUT);
    cr_assert_str_eq(r.id, "go-live");
    cr_assert_str_eq(r.key, "a.b");
    cr_assert_eq(sl_ref_parse("gate.g.inputs.percent", 21, &r, &err), 0);
    cr_assert_eq(r.kind, SL_REF_GATE_INPUT);
    cr_assert_str_eq(r.key, "percent");
    cr_assert_eq(sl_ref_parse("steps.a.status", 14, &r, &err), 0);
    cr_assert_eq(r.kind, SL_REF_STEP_STATUS);
    cr_assert_eq(sl_ref_parse("run.triggered_by", 16, &r, &err), 0);
    cr_assert_eq(r.kind, SL_REF_RUN_TRIGGERED_BY);
    cr_assert_eq(sl_ref_parse("steps.a", 7, &r, &err), -1);
    cr_assert_eq(sl_ref_parse("vars.a b", 8, &r, &err), -1);
    cr_assert_eq(sl_ref_parse("secrets.x", 9, &r, &err), -1);
    cr_assert(strstr(err.msg, "unknown reference 'secrets.x'"), "%s", err.msg);
}

Test(expr, templates)
{
    render("plain", "\"plain\"");
    render("${{ vars.app }}", "\"shop\"");
    render("${{ vars.n }}", "3");                          /* a lone reference keeps its type */
    render("${{steps.build.outputs.ok}}", "true");
    render("n=${{ vars.n }} on ${{ vars.app }}", "\"n=3 on shop\"");
    render("${{ steps.build.outputs.nested }}", "{\"x\":\"y\"}");
    render("${{ steps.build.outputs.nested.x }}/${{ run.id }}", "\"y/r1\"");
    render("say \"${{ run.triggered_by }}\"", "\"say \\\"alice\\\"\"");
    sl_buf b = SL_BUF_INIT;
    sl_err err;
    cr_assert_eq(sl_tmpl_render("x ${{ steps.build.outputs.missing }}", resolve, NULL, &b, &err), -1);
    cr_assert(strstr(err.msg, "cannot resolve 'steps.build.outputs.missing'"), "%s", err.msg);
    cr_assert_eq(sl_tmpl_render("x ${{ vars.app", resolve, NULL, &b, &err), -1);
    cr_assert(strstr(err.msg, "without a closing"), "%s", err.msg);
    sl_buf_free(&b);
}

Test(expr, expressions)
{
    cr_assert(eval("steps.build.status == 'succeeded'"));
    cr_assert(!eval("steps.build.status != 'succeeded'"));
    cr_assert(eval("${{ steps.build.status == 'succeeded' }}"));
    cr_assert(eval("${{ vars.app }} == \"shop\""));
    cr_assert(eval("vars.n == 3"));
    cr_assert(eval("vars.n == '3'"));          /* compared by text */
    cr_assert(eval("steps.build.outputs.ok"));
    cr_assert(eval("steps.build.outputs.ok == true"));
    cr_assert(!eval("!steps.build.outputs.ok"));
    cr_assert(eval("vars.app == 'x' || vars.n == 3"));
    cr_assert(!eval("vars.app == 'x' || vars.n == 4"));
    cr_assert(!eval("vars.app == 'shop' && vars.n == 4"));
    cr_assert(eval("!(vars.app == 'shop' && vars.n == 4)"));
    cr_assert(eval("true && !false"));
    cr_assert(!eval("null"));
    cr_assert(!eval("''"));
    cr_assert(!eval("'false'"));
    cr_assert(!eval("0"));
    cr_assert(eval("'no'"));
    /* && binds tighter than || */
    cr_assert(eval("true || false && false"));
    cr_assert(!eval("(true || false) && false"));
}

static int count_refs(void *arg, const sl_ref *ref, sl_err *err)
{
    (void)ref;
    (void)err;
    (*(int *)arg)++;
    return 0;
}

Test(expr, errors_and_check)
{
    bool v;
    sl_err err;
    cr_assert_eq(sl_expr_eval("vars.app ==", resolve, NULL, &v, &err), -1);
    cr_assert_eq(sl_expr_eval("(vars.app == 'shop'", resolve, NULL, &v, &err), -1);
    cr_assert(strstr(err.msg, "expected ')'"), "%s", err.msg);
    cr_assert_eq(sl_expr_eval("vars.app == 'shop' junk", resolve, NULL, &v, &err), -1);
    cr_assert_eq(sl_expr_eval("vars.nope == 1", resolve, NULL, &v, &err), -1);
    cr_assert(strstr(err.msg, "cannot resolve 'vars.nope'"), "%s", err.msg);
    cr_assert_eq(sl_expr_eval("'open", resolve, NULL, &v, &err), -1);
    int n = 0;
    cr_assert_eq(sl_expr_check("steps.a.status == 'succeeded' && ${{ vars.x }} != gate.g.inputs.y",
                               count_refs, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 3);
}

/* Evaluates e, counting the references it resolves into *resolved. */
static int eval_counted(const char *e, bool *v, int *resolved, sl_err *err)
{
    *resolved = 0;
    return sl_expr_eval(e, resolve, resolved, v, err);
}

Test(expr, and_or_short_circuit)
{
    bool v = false;
    int n;
    sl_err err = { 0 };
    /* the documentation's example: x is never written, force decides */
    cr_assert_eq(eval_counted("vars.force == 'yes' || steps.build.outputs.missing == 1", &v, &n, &err),
                 0, "%s", err.msg);
    cr_assert(v);
    cr_assert_eq(n, 1, "the right operand of a true || was resolved (%d references)", n);
    cr_assert_eq(eval_counted("vars.force == 'no' && steps.build.outputs.missing == 1", &v, &n, &err),
                 0, "%s", err.msg);
    cr_assert(!v);
    cr_assert_eq(n, 1);
    /* nested: the whole skipped operand resolves nothing */
    cr_assert_eq(eval_counted("vars.t || (steps.build.outputs.missing && !steps.nope.status)", &v, &n,
                              &err), 0, "%s", err.msg);
    cr_assert(v);
    cr_assert_eq(n, 1);
    /* when the right side decides, it is resolved, and a missing output is an error */
    cr_assert_eq(eval_counted("vars.force == 'no' || steps.build.outputs.missing == 1", &v, &n, &err), -1);
    cr_assert(strstr(err.msg, "cannot resolve 'steps.build.outputs.missing'"), "%s", err.msg);
    cr_assert_eq(eval_counted("vars.t && vars.f || vars.one == 1", &v, &n, &err), 0, "%s", err.msg);
    cr_assert(v);
    cr_assert_eq(n, 3);
    /* a syntax error in a skipped operand is still an error */
    cr_assert_eq(eval_counted("true || (vars.app ==", &v, &n, &err), -1);
    cr_assert_eq(eval_counted("false && 'open", &v, &n, &err), -1);
    /* validation still visits every reference, skipped or not */
    int refs = 0;
    cr_assert_eq(sl_expr_check("true || vars.a == vars.b && !steps.c.status", count_refs, &refs, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(refs, 3);
}

/* The value of literal or variable name `x` in C terms: t/f are vars. */
static const char *name_of(bool b) { return b ? "vars.t" : "vars.f"; }

Test(expr, precedence_truth_tables)
{
    char e[200];
    for (int m = 0; m < 8; m++) {
        bool a = m & 1, b = m & 2, c = m & 4;
        const char *A = name_of(a), *B = name_of(b), *C = name_of(c);
        /* ! binds tighter than == and != */
        snprintf(e, sizeof e, "!%s == %s", A, B);
        cr_assert_eq(eval(e), (!a) == b, "%s", e);
        snprintf(e, sizeof e, "!%s != %s", A, B);
        cr_assert_eq(eval(e), (!a) != b, "%s", e);
        snprintf(e, sizeof e, "!(%s == %s)", A, B);
        cr_assert_eq(eval(e), !(a == b), "%s", e);
        /* == binds tighter than && and ||; && tighter than || */
        snprintf(e, sizeof e, "%s == %s && %s", A, B, C);
        cr_assert_eq(eval(e), (a == b) && c, "%s", e);
        snprintf(e, sizeof e, "%s || %s == %s", A, B, C);
        cr_assert_eq(eval(e), a || (b == c), "%s", e);
        snprintf(e, sizeof e, "%s || %s && %s", A, B, C);
        cr_assert_eq(eval(e), a || (b && c), "%s", e);
        snprintf(e, sizeof e, "%s && %s || %s", A, B, C);
        cr_assert_eq(eval(e), (a && b) || c, "%s", e);
        snprintf(e, sizeof e, "!%s && !%s || %s", A, B, C);
        cr_assert_eq(eval(e), (!a && !b) || c, "%s", e);
        snprintf(e, sizeof e, "!!%s == %s", A, B);
        cr_assert_eq(eval(e), (!!a) == b, "%s", e);
    }
    /* With booleans !(x == y) and (!x) == y agree; other operands tell the
     * two readings apart: `!x == y` must be the parenthesised (!x) == y. */
    const char *ops[] = { "vars.one", "0", "1", "'x'", "vars.f", "''", "null" };
    int differs = 0;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        for (size_t j = 0; j < sizeof ops / sizeof ops[0]; j++) {
            char tight[100], loose[100];
            snprintf(e, sizeof e, "!%s == %s", ops[i], ops[j]);
            snprintf(tight, sizeof tight, "(!%s) == %s", ops[i], ops[j]);
            snprintf(loose, sizeof loose, "!(%s == %s)", ops[i], ops[j]);
            cr_assert_eq(eval(e), eval(tight), "%s", e);
            differs += eval(tight) != eval(loose);
        }
    }
    cr_assert_gt(differs, 0, "no operand tells the two readings apart");
    cr_assert(!eval("!0 == 1"), "read as !(0 == 1)");
    cr_assert(eval("!0 == true"));
    bool v;
    sl_err err;
    cr_assert_eq(sl_expr_eval("vars.t == vars.t == true", resolve, NULL, &v, &err), -1);
    cr_assert(strstr(err.msg, "comparisons do not chain"), "%s", err.msg);
    cr_assert(eval("(vars.t == vars.t) == true"));
}

Test(expr, numbers_compare_numerically_and_print_shortest)
{
    cr_assert(eval("vars.ratio == 0.1"));
    cr_assert(eval("vars.ratio == '0.1'"), "0.1 compared with its %%.17g text");
    cr_assert(eval("vars.ratio == 1e-1"));
    cr_assert(!eval("vars.sum == 0.3"));
    cr_assert(eval("vars.sum == 0.30000000000000004"));
    cr_assert(eval("vars.sum == '0.30000000000000004'"));
    /* integers compare exactly, beyond 2^53 too */
    cr_assert(eval("vars.big == 9007199254740993"));
    cr_assert(eval("vars.big != 9007199254740992"));
    cr_assert(!eval("vars.big == 9007199254740992.0"));
    /* a string that is exactly a number compares as that number */
    cr_assert(eval("vars.one == '1.0'"));
    cr_assert(eval("vars.one == 1.0"));
    cr_assert(eval("vars.half == 0.5"));
    cr_assert(eval("vars.half == 5e-1"));
    cr_assert(!eval("vars.half == '5e-1'"), "two strings compare by text");
    cr_assert(!eval("vars.app == 0"));
    cr_assert(eval("-0 == 0"));
    render("r=${{ vars.ratio }} s=${{ vars.sum }} b=${{ vars.big }}",
           "\"r=0.1 s=0.30000000000000004 b=9007199254740993\"");
    bool v;
    sl_err err;
    cr_assert_eq(sl_expr_eval("vars.one == 1x", resolve, NULL, &v, &err), -1);
    cr_assert(strstr(err.msg, "bad number"), "%s", err.msg);
    cr_assert_eq(sl_expr_eval("vars.one == 0x1", resolve, NULL, &v, &err), -1);
}
