/* expr.c: see expr.h.
 *
 * One recursive-descent parser serves both sl_expr_check (which only
 * visits references, so validation needs no values) and sl_expr_eval: the
 * parser carries a resolver or a visitor and each primary either looks its
 * value up or just reports it. */
#include "expr.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mem.h"

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

/* Appends o as text: a string as it is, anything else as JSON. */
static int put_text(sl_buf *out, const msgpack_object *o, sl_err *err)
{
    if (o->type == MSGPACK_OBJECT_STR) {
        sl_buf_append(out, o->via.str.ptr, o->via.str.size);
        return 0;
    }
    return sl_json_from_msgpack(o, out, err);
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

/* ---- expressions ---------------------------------------------------------- */

typedef enum { V_NULL, V_BOOL, V_NUM, V_STR } vtype;

typedef struct value {
    vtype type;
    bool b;
    double num;
    const char *s;   /* V_STR: not NUL-terminated */
    size_t len;
    char numtext[40];
} value;

typedef struct parser {
    const char *p;
    sl_ref_resolve_fn resolve;   /* NULL: check only */
    sl_ref_visit_fn visit;
    void *arg;
    sl_err *err;
    int depth;
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

/* The value's text for comparisons. */
static void as_text(value *v, const char **s, size_t *n)
{
    switch (v->type) {
    case V_NULL: *s = "null"; *n = 4; return;
    case V_BOOL: *s = v->b ? "true" : "false"; *n = strlen(*s); return;
    case V_NUM:
        snprintf(v->numtext, sizeof v->numtext, "%.17g", v->num);
        *s = v->numtext;
        *n = strlen(v->numtext);
        return;
    case V_STR: *s = v->s; *n = v->len; return;
    }
}

static bool equal(value *a, value *b)
{
    if (a->type == V_NUM && b->type == V_NUM)
        return a->num == b->num;
    const char *sa = "", *sb = "";
    size_t na = 0, nb = 0;
    as_text(a, &sa, &na);
    as_text(b, &sb, &nb);
    return na == nb && memcmp(sa, sb, na) == 0;
}

static int from_object(const msgpack_object *o, value *v, parser *ps)
{
    memset(v, 0, sizeof *v);
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: v->type = V_NULL; return 0;
    case MSGPACK_OBJECT_BOOLEAN: v->type = V_BOOL; v->b = o->via.boolean; return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: v->type = V_NUM; v->num = (double)o->via.u64; return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: v->type = V_NUM; v->num = (double)o->via.i64; return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: v->type = V_NUM; v->num = o->via.f64; return 0;
    case MSGPACK_OBJECT_STR: v->type = V_STR; v->s = o->via.str.ptr; v->len = o->via.str.size; return 0;
    default:
        return sl_err_set(ps->err, SL_EINVAL, "a %s cannot be compared in an expression",
                          o->type == MSGPACK_OBJECT_MAP ? "map" : "list");
    }
}

static int reference(parser *ps, const char *text, size_t len, value *v)
{
    sl_ref ref;
    if (sl_ref_parse(text, len, &ref, ps->err) < 0)
        return -1;
    if (ps->visit && ps->visit(ps->arg, &ref, ps->err) < 0)
        return -1;
    if (ps->resolve == NULL) {
        memset(v, 0, sizeof *v);
        return 0;
    }
    msgpack_object o;
    if (ps->resolve(ps->arg, &ref, &o, ps->err) < 0)
        return -1;
    return from_object(&o, v, ps);
}

static int parse_or(parser *ps, value *v);

static int parse_primary(parser *ps, value *v)
{
    skip_ws(ps);
    memset(v, 0, sizeof *v);
    const char *p = ps->p;
    if (*p == '(') {
        if (++ps->depth > 32)
            return sl_err_set(ps->err, SL_EINVAL, "expression nested too deeply");
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
        char *end;
        v->type = V_NUM;
        v->num = strtod(p, &end);
        ps->p = end;
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
    if (ps->p[0] == '!' && ps->p[1] != '=') {
        ps->p++;
        if (++ps->depth > 32)
            return sl_err_set(ps->err, SL_EINVAL, "expression nested too deeply");
        if (parse_unary(ps, v) < 0)
            return -1;
        ps->depth--;
        bool t = truthy(v);
        memset(v, 0, sizeof *v);
        v->type = V_BOOL;
        v->b = !t;
        return 0;
    }
    value a;
    if (parse_primary(ps, &a) < 0)
        return -1;
    bool eq = take(ps, "==");
    bool ne = !eq && take(ps, "!=");
    if (!eq && !ne) {
        *v = a;
        return 0;
    }
    value b;
    if (parse_primary(ps, &b) < 0)
        return -1;
    bool same = equal(&a, &b);
    memset(v, 0, sizeof *v);
    v->type = V_BOOL;
    v->b = eq ? same : !same;
    return 0;
}

static int parse_and(parser *ps, value *v)
{
    if (parse_unary(ps, v) < 0)
        return -1;
    while (take(ps, "&&")) {
        value r;
        if (parse_unary(ps, &r) < 0)
            return -1;
        bool t = truthy(v) && truthy(&r);
        memset(v, 0, sizeof *v);
        v->type = V_BOOL;
        v->b = t;
    }
    return 0;
}

static int parse_or(parser *ps, value *v)
{
    if (parse_and(ps, v) < 0)
        return -1;
    while (take(ps, "||")) {
        value r;
        if (parse_and(ps, &r) < 0)
            return -1;
        bool t = truthy(v) || truthy(&r);
        memset(v, 0, sizeof *v);
        v->type = V_BOOL;
        v->b = t;
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
    parser ps = { s, resolve, visit, arg, err, 0 };
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
