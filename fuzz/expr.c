/* fuzz/expr.c: the `${{ }}` templates and `if:` expressions
 * (scheduler/expr.c), as pipeline files hold them.  The first byte picks
 * the entry point (check, evaluate, render, render as text, parse a
 * reference); the rest is the text.  References resolve against a fixed
 * set of values of every type. */
#include "fuzz.h"

#include "expr.h"
#include "json.h"

static const char VALUES[] =
    "{\"x\":\"text\",\"n\":3,\"neg\":-7,\"f\":0.1,\"t\":true,\"no\":false,\"z\":null,\"e\":\"\","
    "\"zero\":\"0\",\"list\":[1,\"a\",{\"k\":\"v\"}],\"map\":{\"a\":{\"b\":[1,2]}},"
    "\"quote\":\"'\\\"}}${{\"}";

static msgpack_sbuffer values_sb;
static msgpack_unpacked values;

static const msgpack_object *values_map(void)
{
    static int ready;
    if (!ready) {
        msgpack_sbuffer_init(&values_sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &values_sb, msgpack_sbuffer_write);
        sl_err err;
        FUZZ_ASSERT(sl_json_to_msgpack(VALUES, strlen(VALUES), &pk, &err) == 0, "%s", err.msg);
        msgpack_unpacked_init(&values);
        FUZZ_ASSERT(msgpack_unpack_next(&values, values_sb.data, values_sb.size, NULL) ==
                    MSGPACK_UNPACK_SUCCESS, "values do not unpack");
        ready = 1;
    }
    return &values.data;
}

static int lookup(const char *key, msgpack_object *out, sl_err *err)
{
    const msgpack_object *m = values_map();
    size_t n = strcspn(key, ".");
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0) {
            *out = m->via.map.ptr[i].val;
            return 0;
        }
    }
    return sl_err_set(err, SL_EINVAL, "no value '%s'", key);
}

static int resolve(void *arg, const sl_ref *ref, msgpack_object *out, sl_err *err)
{
    (void)arg;
    static const char succeeded[] = "succeeded", run[] = "run-1";
    switch (ref->kind) {
    case SL_REF_VAR:
        return lookup(ref->id, out, err);
    case SL_REF_STEP_OUTPUT:
    case SL_REF_GATE_INPUT:
        return lookup(ref->key, out, err);
    case SL_REF_STEP_STATUS:
    case SL_REF_RUN_ID:
    case SL_REF_RUN_TRIGGERED_BY:
        out->type = MSGPACK_OBJECT_STR;
        out->via.str.ptr = ref->kind == SL_REF_STEP_STATUS ? succeeded : run;
        out->via.str.size = ref->kind == SL_REF_STEP_STATUS ? sizeof succeeded - 1 : sizeof run - 1;
        return 0;
    }
    return sl_err_set(err, SL_EINVAL, "unknown reference kind");
}

static int visit(void *arg, const sl_ref *ref, sl_err *err)
{
    (void)arg;
    (void)ref;
    (void)err;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    char *text = fuzz_cstr(data + 1, size - 1);
    sl_err err;
    sl_buf out = SL_BUF_INIT;
    bool truth;
    sl_ref ref;
    switch (data[0] % 5) {
    case 0:
        (void)sl_expr_check(text, visit, NULL, &err);
        break;
    case 1:
        if (sl_expr_check(text, visit, NULL, &err) == 0)
            (void)sl_expr_eval(text, resolve, NULL, &truth, &err);
        break;
    case 2:
        if (sl_tmpl_render(text, resolve, NULL, &out, &err) == 0)
            FUZZ_ASSERT(sl_json_check(out.data, out.len, &err) == 0, "rendered JSON refused: %s: %s",
                        err.msg, sl_buf_str(&out));
        break;
    case 3:
        (void)sl_tmpl_render_text(text, resolve, NULL, &out, &err);
        (void)sl_tmpl_refs(text, visit, NULL, &err);
        break;
    default:
        (void)sl_ref_parse(text, strlen(text), &ref, &err);
        break;
    }
    sl_buf_free(&out);
    free(text);
    return 0;
}
