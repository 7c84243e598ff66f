/* expr.c: see expr.h.
 *
 * One recursive-descent parser serves both sl_expr_check (which only
 * visits references, so validation needs no values) and sl_expr_eval: the
 * parser carries a resolver or a visitor and each primary either looks its
 * value up or just reports it. */
#include "expr.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mem.h"
#include "numfmt.h"

static size_t seg_len(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
        i++;
    return i;
}

/* Splits text[0..len) into dot-separated segments; returns their count or -1. */
static int split(const char *text, size_t len, const char *seg[8], size_t seglen[8])
{
    int n = 0;
    size_t i = 0;
    for (;;) {
        size_t l = seg_len(text + i, len - i);
        if (l == 0 || n == 8)
            return -1;
        seg[n] = text + i;
        seglen[n++] = l;
        i += l;
        if (i == len)
            return n;
        if (text[i] != '.')
            return -1;
        i++;
    }
}

static bool seg_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(s, word, n) == 0;
}

int sl_ref_parse(const char *text, size_t len, sl_ref *out, sl_err *err)
{
    while (len > 0 && isspace((unsigned char)*text))
        text++, len--;
    while (len > 0 && isspace((unsigned char)text[len - 1]))
        len--;
    memset(out, 0, sizeof *out);
    snprintf(out->text, sizeof out->text, "%.*s", (int)(len < 200 ? len : 200), text);
    const char *seg[8];
    size_t sl[8];
    int n = split(text, len, seg, sl);
    if (n < 0)
        return sl_err_set(err, SL_EINVAL, "'%s' is not a reference (expected vars.NAME, "
                          "steps.ID.outputs.KEY, steps.ID.status, run.id, run.triggered_by "
                          "or gate.ID.inputs.NAME)", out->text);
    for (int i = 0; i < n; i++) {
        if (sl[i] > SL_REF_ID_MAX)
            return sl_err_set(err, SL_EINVAL, "'%s': name too long", out->text);
    }
    if (seg_is(seg[0], sl[0], "vars") && n == 2) {
        out->kind = SL_REF_VAR;
        memcpy(out->id, seg[1], sl[1]);
        return 0;
    }
    if (seg_is(seg[0], sl[0], "run") && n == 2 && seg_is(seg[1], sl[1], "id")) {
        out->kind = SL_REF_RUN_ID;
        return 0;
    }
    if (seg_is(seg[0], sl[0], "run") && n == 2 && seg_is(seg[1], sl[1], "triggered_by")) {
        out->kind = SL_REF_RUN_TRIGGERED_BY;
        return 0;
    }
    if (seg_is(seg[0], sl[0], "steps") && n == 3 && seg_is(seg[2], sl[2], "status")) {
        out->kind = SL_REF_STEP_STATUS;
        memcpy(out->id, seg[1], sl[1]);
        return 0;
    }
    if (seg_is(seg[0], sl[0], "steps") && n >= 4 && seg_is(seg[2], sl[2], "outputs")) {
        out->kind = SL_REF_STEP_OUTPUT;
        memcpy(out->id, seg[1], sl[1]);
        size_t klen = (size_t)(text + len - seg[3]);
        if (klen > SL_REF_KEY_MAX)
            return sl_err_set(err, SL_EINVAL, "'%s': output path too long", out->text);
        memcpy(out->key, seg[3], klen);
        return 0;
    }
    if (seg_is(seg[0], sl[0], "gate") && n == 4 && seg_is(seg[2], sl[2], "inputs")) {
        out->kind = SL_REF_GATE_INPUT;
        memcpy(out->id, seg[1], sl[1]);
        memcpy(out->key, seg[3], sl[3]);
        return 0;
    }
    return sl_err_set(err, SL_EINVAL, "unknown reference '%s' (expected vars.NAME, "
                      "steps.ID.outputs.KEY, steps.ID.status, run.id, run.triggered_by or "
                      "gate.ID.inputs.NAME)", out->text);
}

bool sl_tmpl_has_refs(const char *s) { return strstr(s, "${{") != NULL; }

/* Finds the next "${{ … }}" in s: *start at "${{", *inner and *inner_len the
 * text between, *end just past "}}".  Returns 0 (found), 1 (none), -1 (unclosed). */
static int next_ref(const char *s, const char **start, const char **inner, size_t *inner_len,
                    const char **end)
{
    const char *a = strstr(s, "${{");
    if (a == NULL)
        return 1;
    const char *b = strstr(a + 3, "}}");
    if (b == NULL)
        return -1;
    *start = a;
    *inner = a + 3;
    *inner_len = (size_t)(b - (a + 3));
    *end = b + 2;
    return 0;
}

int sl_tmpl_refs(const char *s, sl_ref_visit_fn visit, void *arg, sl_err *err)
{
    const char *p = s, *start, *inner, *end;
    size_t ilen;
    int rc;
    while ((rc = next_ref(p, &start, &inner, &ilen, &end)) == 0) {
        sl_ref ref;
        if (sl_ref_parse(inner, ilen, &ref, err) < 0)
            return -1;
        if (visit && visit(arg, &ref, err) < 0)
            return -1;
        p = end;
    }
    if (rc < 0)
        return sl_err_set(err, SL_EINVAL, "'${{' without a closing '}}'");
    return 0;
}

/* A float32 as the decimal it was written as: the shortest text that reads
 * back as the same float, read as a double (so 0.1f equals 0.1). */
static double float32_value(float f)
{
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f)
            return strtod(buf, NULL);
    }
    return (double)f;
}

/* Appends o as text: a string as it is, a number in its shortest form
 * (sl_fmt_double: 0.1, not 0.10000000000000001), anything else as JSON. */
static int put_text(sl_buf *out, const msgpack_object *o, sl_err *err)
{
    char num[SL_NUMFMT_MAX];
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        sl_buf_append(out, o->via.str.ptr, o->via.str.size);
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64))
            return sl_err_set(err, SL_EINVAL, "a number that is not finite cannot be rendered");
        sl_buf_puts(out, sl_fmt_double(o->type == MSGPACK_OBJECT_FLOAT32 ? float32_value((float)o->via.f64)
                                                                         : o->via.f64, num));
        return 0;
    default:
        return sl_json_from_msgpack(o, out, err);
    }
}

static int render(const char *s, sl_ref_resolve_fn resolve, void *arg, sl_buf *out, bool json,
                  sl_err *err)
{
    const char *p = s, *start, *inner, *end;
    size_t ilen;
    int rc = next_ref(p, &start, &inner, &ilen, &end);
    if (rc < 0)
        return sl_err_set(err, SL_EINVAL, "'${{' without a closing '}}'");
    if (json && rc == 0 && start == s && *end == '\0') {
        /* a lone reference keeps its value's type */
        sl_ref ref;
        msgpack_object v;
        if (sl_ref_parse(inner, ilen, &ref, err) < 0 || resolve(arg, &ref, &v, err) < 0)
            return -1;
        return sl_json_from_msgpack(&v, out, err);
    }
    sl_buf text = SL_BUF_INIT;
    while (rc == 0) {
        sl_ref ref;
        msgpack_object v;
        sl_buf_append(&text, p, (size_t)(start - p));
        if (sl_ref_parse(inner, ilen, &ref, err) < 0 || resolve(arg, &ref, &v, err) < 0 ||
            put_text(&text, &v, err) < 0) {
            sl_buf_free(&text);
            return -1;
        }
        p = end;
        rc = next_ref(p, &start, &inner, &ilen, &end);
    }
    if (rc < 0) {
        sl_buf_free(&text);
        return sl_err_set(err, SL_EINVAL, "'${{' without a closing '}}'");
    }
    sl_buf_puts(&text, p);
    if (json)
        sl_json_put_string(out, text.data ? text.data : "", text.len);
    else
        sl_buf_append(out, sl_buf_str(&text), text.len);
    sl_buf_free(&text);
    return 0;
}

int sl_tmpl_render(const char *s, sl_ref_resolve_fn resolve, void *arg, sl_buf *out, sl_err *err)
{
    return render(s, resolve, arg, out, true, err);
}

int sl_tmpl_render_text(const char *s, sl_ref_resolve_fn resolve, void *arg, sl_buf *out,
                        sl_err *err)
{
    return render(s, resolve, arg, out, false, err);
}

/* ---- expressions ----------------------------------------------------------
 *
 * Grammar, loosest first (as in C and JavaScript, `!` binds tighter than
 * a comparison, so `!a == b` is `(!a) == b`):
 *
 *   or      := and ( '||' and )*
 *   and     := compare ( '&&' compare )*
 *   compare := unary [ ( '==' | '!=' ) unary ]     (no chains: a == b == c
 *                                                    is an error)
 *   unary   := '!' unary | primary
 *   primary := '(' or ')' | 'text' | "text" | number | true | false | null
 *            | reference | ${{ reference }}
 *
 * `&&` and `||` short-circuit: the operand that cannot change the result
 * is parsed (so a syntax error anywhere is still an error) but its
 * references are not resolved, so `vars.force == 'yes' || steps.a.outputs.x
 * == 1` holds without asking for an output that a skipped path never
 * wrote.  ps->skip counts the enclosing operands being skipped. */

typedef enum { V_NULL, V_BOOL, V_NUM, V_STR } vtype;

typedef struct value {
    vtype type;
    bool b;
    double num;       /* V_NUM: the value */
    bool isint;       /* V_NUM: exactly the int64 i */
    int64_t i;
    const char *s;    /* V_STR: not NUL-terminated */
    size_t len;
    char numtext[SL_NUMFMT_MAX];
} value;

typedef struct parser {
    const char *p;
    sl_ref_resolve_fn resolve;   /* NULL: check only */
    sl_ref_visit_fn visit;
    void *arg;
    sl_err *err;
    int depth;
    int skip;                    /* > 0: inside an operand short-circuited away */
} parser;

static void skip_ws(parser *ps)
{
    while (isspace((unsigned char)*ps->p))
        ps->p++;
}

static bool take(parser *ps, const char *tok)
{
    skip_ws(ps);
    size_t n = strlen(tok);
    if (strncmp(ps->p, tok, n) != 0)
        return false;
    ps->p += n;
    return true;
}

static bool truthy(const value *v)
{
    switch (v->type) {
    case V_NULL: return false;
    case V_BOOL: return v->b;
    case V_NUM: return v->num != 0;
    case V_STR:
        return !(v->len == 0 || (v->len == 5 && memcmp(v->s, "false", 5) == 0) ||
                 (v->len == 1 && v->s[0] == '0'));
    }
    return false;
}

static void set_bool(value *v, bool b)
{
    memset(v, 0, sizeof *v);
    v->type = V_BOOL;
    v->b = b;
}

/* Length of the number at s[0..n) (JSON's syntax: -?D+(.D+)?([eE][+-]?D+)?),
 * 0 if there is none. */
static size_t number_len(const char *s, size_t n)
{
    size_t i = 0, d;
    if (i < n && s[i] == '-')
        i++;
    for (d = i; i < n && isdigit((unsigned char)s[i]); i++)
        ;
    if (i == d)
        return 0;
    if (i + 1 < n && s[i] == '.' && isdigit((unsigned char)s[i + 1])) {
        for (i++; i < n && isdigit((unsigned char)s[i]); i++)
            ;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t e = i + 1;
        if (e < n && (s[e] == '+' || s[e] == '-'))
            e++;
        if (e < n && isdigit((unsigned char)s[e])) {
            for (i = e; i < n && isdigit((unsigned char)s[i]); i++)
                ;
        }
    }
    return i;
}

/* Reads the number text s[0..n) into v (V_NUM); integers that fit an
 * int64 are kept exactly. */
static void number_value(const char *s, size_t n, value *v)
{
    char buf[64];
    memset(v, 0, sizeof *v);
    v->type = V_NUM;
    snprintf(buf, sizeof buf, "%.*s", (int)(n < 63 ? n : 63), s);
    if (strpbrk(buf, ".eE") == NULL) {
        errno = 0;
        long long i = strtoll(buf, NULL, 10);
        if (errno == 0) {
            v->isint = true;
            v->i = i;
            v->num = (double)i;
            return;
        }
    }
    v->num = strtod(buf, NULL);
}

/* The value's text for comparisons: numbers in their shortest form. */
static void as_text(value *v, const char **s, size_t *n)
{
    switch (v->type) {
    case V_NULL: *s = "null"; *n = 4; return;
    case V_BOOL: *s = v->b ? "true" : "false"; *n = strlen(*s); return;
    case V_NUM:
        if (v->isint)
            snprintf(v->numtext, sizeof v->numtext, "%" PRId64, v->i);
        else
            sl_fmt_double(v->num, v->numtext);
        *s = v->numtext;
        *n = strlen(v->numtext);
        return;
    case V_STR: *s = v->s; *n = v->len; return;
    }
}

static bool num_equal(const value *a, const value *b)
{
    if (a->isint && b->isint)
        return a->i == b->i;
    if (a->isint != b->isint) {
        /* an int64 equals a double only if the double is that integer */
        const value *iv = a->isint ? a : b, *dv = a->isint ? b : a;
        double d = dv->num;
        if (d != d || d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
            return false;
        return (int64_t)d == iv->i;
    }
    return a->num == b->num;
}

/* A string that is exactly a number compares with a number as a number
 * (`--var n=1.0` makes vars.n a string, and it should equal 1). */
static bool as_number(const value *v, value *out)
{
    if (v->type == V_NUM) {
        *out = *v;
        return true;
    }
    if (v->type != V_STR || v->len == 0 || number_len(v->s, v->len) != v->len)
        return false;
    number_value(v->s, v->len, out);
    return true;
}

static bool equal(value *a, value *b)
{
    value na, nb;
    if ((a->type == V_NUM || b->type == V_NUM) && as_number(a, &na) && as_number(b, &nb))
        return num_equal(&na, &nb);
    const char *sa = "", *sb = "";
    size_t la = 0, lb = 0;
    as_text(a, &sa, &la);
    as_text(b, &sb, &lb);
    return la == lb && memcmp(sa, sb, la) == 0;
}

static int from_object(const msgpack_object *o, value *v, parser *ps)
{
    memset(v, 0, sizeof *v);
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: v->type = V_NULL; return 0;
    case MSGPACK_OBJECT_BOOLEAN: v->type = V_BOOL; v->b = o->via.boolean; return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        v->type = V_NUM;
        v->num = (double)o->via.u64;
        v->isint = o->via.u64 <= INT64_MAX;
        v->i = v->isint ? (int64_t)o->via.u64 : 0;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        v->type = V_NUM;
        v->num = (double)o->via.i64;
        v->isint = true;
        v->i = o->via.i64;
        return 0;
    case MSGPACK_OBJECT_FLOAT32: v->type = V_NUM; v->num = float32_value((float)o->via.f64); return 0;
    case MSGPACK_OBJECT_FLOAT64: v->type = V_NUM; v->num = o->via.f64; return 0;
    case MSGPACK_OBJECT_STR: v->type = V_STR; v->s = o->via.str.ptr; v->len = o->via.str.size; return 0;
    case MSGPACK_OBJECT_MAP:
    case MSGPACK_OBJECT_ARRAY:
        return sl_err_set(ps->err, SL_EINVAL, "a %s cannot be compared in an expression",
                          o->type == MSGPACK_OBJECT_MAP ? "map" : "list");
    default:
        return sl_err_set(ps->err, SL_EINVAL, "a binary value cannot be compared in an expression");
    }
}

static int reference(parser *ps, const char *text, size_t len, value *v)
{
    sl_ref ref;
    if (sl_ref_parse(text, len, &ref, ps->err) < 0)
        return -1;
    if (ps->visit && ps->visit(ps->arg, &ref, ps->err) < 0)
        return -1;
    if (ps->resolve == NULL || ps->skip > 0) {
        memset(v, 0, sizeof *v);
        return 0;
    }
    msgpack_object o;
    if (ps->resolve(ps->arg, &ref, &o, ps->err) < 0)
        return -1;
    return from_object(&o, v, ps);
}

static int parse_or(parser *ps, value *v);

static int nest(parser *ps)
{
    if (++ps->depth > 32)
        return sl_err_set(ps->err, SL_EINVAL, "expression nested too deeply");
    return 0;
}

static int parse_primary(parser *ps, value *v)
{
    skip_ws(ps);
    memset(v, 0, sizeof *v);
    const char *p = ps->p;
    if (*p == '(') {
        if (nest(ps) < 0)
            return -1;
        ps->p++;
        if (parse_or(ps, v) < 0)
            return -1;
        ps->depth--;
        if (!take(ps, ")"))
            return sl_err_set(ps->err, SL_EINVAL, "expected ')' at '%.20s'", ps->p);
        return 0;
    }
    if (*p == '\'' || *p == '"') {
        const char *q = strchr(p + 1, *p);
        if (q == NULL)
            return sl_err_set(ps->err, SL_EINVAL, "unterminated string at '%.20s'", p);
        v->type = V_STR;
        v->s = p + 1;
        v->len = (size_t)(q - p - 1);
        ps->p = q + 1;
        return 0;
    }
    if (strncmp(p, "${{", 3) == 0) {
        const char *q = strstr(p + 3, "}}");
        if (q == NULL)
            return sl_err_set(ps->err, SL_EINVAL, "'${{' without a closing '}}'");
        ps->p = q + 2;
        return reference(ps, p + 3, (size_t)(q - p - 3), v);
    }
    if (isdigit((unsigned char)*p) || (*p == '-' && isdigit((unsigned char)p[1]))) {
        size_t n = number_len(p, strlen(p));
        if (isalnum((unsigned char)p[n]) || p[n] == '.' || p[n] == '_')
            return sl_err_set(ps->err, SL_EINVAL, "bad number at '%.20s'", p);
        number_value(p, n, v);
        ps->p = p + n;
        return 0;
    }
    size_t n = 0;
    while (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '-' || p[n] == '.')
        n++;
    if (n == 0)
        return sl_err_set(ps->err, SL_EINVAL, *p ? "unexpected '%.20s'" : "expression ends too early%s",
                          *p ? p : "");
    ps->p = p + n;
    if (n == 4 && memcmp(p, "true", 4) == 0) { v->type = V_BOOL; v->b = true; return 0; }
    if (n == 5 && memcmp(p, "false", 5) == 0) { v->type = V_BOOL; return 0; }
    if (n == 4 && memcmp(p, "null", 4) == 0) { v->type = V_NULL; return 0; }
    return reference(ps, p, n, v);
}

static int parse_unary(parser *ps, value *v)
{
    skip_ws(ps);
    if (ps->p[0] != '!' || ps->p[1] == '=')
        return parse_primary(ps, v);
    ps->p++;
    if (nest(ps) < 0 || parse_unary(ps, v) < 0)
        return -1;
    ps->depth--;
    set_bool(v, !truthy(v));
    return 0;
}

static int parse_compare(parser *ps, value *v)
{
    value a, b;
    if (parse_unary(ps, &a) < 0)
        return -1;
    bool eq = take(ps, "==");
    bool ne = !eq && take(ps, "!=");
    if (!eq && !ne) {
        *v = a;
        return 0;
    }
    if (parse_unary(ps, &b) < 0)
        return -1;
    skip_ws(ps);
    if (strncmp(ps->p, "==", 2) == 0 || strncmp(ps->p, "!=", 2) == 0)
        return sl_err_set(ps->err, SL_EINVAL, "comparisons do not chain: use parentheses at '%.20s'",
                          ps->p);
    bool same = equal(&a, &b);
    set_bool(v, eq ? same : !same);
    return 0;
}

/* The right operand of && (when the left is false) or || (when it is true)
 * cannot change the result: parse it without resolving anything. */
static int parse_operand(parser *ps, value *v, bool skip, int (*next)(parser *, value *))
{
    ps->skip += skip;
    int rc = next(ps, v);
    ps->skip -= skip;
    return rc;
}

static int parse_and(parser *ps, value *v)
{
    if (parse_compare(ps, v) < 0)
        return -1;
    while (take(ps, "&&")) {
        value r;
        bool left = truthy(v);
        if (parse_operand(ps, &r, !left, parse_compare) < 0)
            return -1;
        set_bool(v, left && truthy(&r));
    }
    return 0;
}

static int parse_or(parser *ps, value *v)
{
    if (parse_and(ps, v) < 0)
        return -1;
    while (take(ps, "||")) {
        value r;
        bool left = truthy(v);
        if (parse_operand(ps, &r, left, parse_and) < 0)
            return -1;
        set_bool(v, left || truthy(&r));
    }
    return 0;
}

static int parse_expr(const char *s, sl_ref_resolve_fn resolve, sl_ref_visit_fn visit, void *arg,
                      bool *out, sl_err *err)
{
    /* A whole expression wrapped in one ${{ … }} is the expression inside. */
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    while (isspace((unsigned char)*s))
        s++, n--;
    char *inner = NULL;
    if (n >= 5 && strncmp(s, "${{", 3) == 0 && strncmp(s + n - 2, "}}", 2) == 0 &&
        strstr(s + 3, "${{") == NULL) {
        const char *close = strstr(s + 3, "}}");
        if (close == s + n - 2) {
            inner = sl_xstrndup(s + 3, n - 5);
            s = inner;
        }
    }
    parser ps = { s, resolve, visit, arg, err, 0, 0 };
    value v;
    int rc = parse_or(&ps, &v);
    if (rc == 0) {
        skip_ws(&ps);
        if (*ps.p != '\0')
            rc = sl_err_set(err, SL_EINVAL, "unexpected '%.20s' in expression", ps.p);
    }
    if (rc == 0 && out)
        *out = truthy(&v);
    free(inner);
    return rc;
}

int sl_expr_check(const char *s, sl_ref_visit_fn visit, void *arg, sl_err *err)
{
    return parse_expr(s, NULL, visit, arg, NULL, err);
}

int sl_expr_eval(const char *s, sl_ref_resolve_fn resolve, void *arg, bool *out, sl_err *err)
{
    return parse_expr(s, resolve, NULL, arg, out, err);
}
