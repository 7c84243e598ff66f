/* fuzz/codegen.c: the codegen template renderer (jobs/codegen.c), as a
 * template file and a job's args.vars give it.  Input: the vars as a JSON
 * object, a NUL byte, then the template; without a NUL, the whole input is
 * the template and the vars are a fixed set of every type. */
#include "fuzz.h"

#include "codegen.h"
#include "json.h"

static const char DEFAULT_VARS[] =
    "{\"name\":\"svc\",\"n\":3,\"f\":0.1,\"t\":true,\"no\":false,\"z\":null,\"e\":\"\","
    "\"items\":[{\"k\":\"a\"},{\"k\":\"b\"}],\"list\":[1,2,3],\"map\":{\"a\":{\"b\":\"<&'\\\">\"}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(text, '\0', size);
    const char *vars_json = DEFAULT_VARS;
    size_t vars_len = sizeof DEFAULT_VARS - 1;
    const char *tmpl = text;
    size_t tmpl_len = size;
    if (nul != NULL) {
        vars_json = text;
        vars_len = (size_t)(nul - text);
        tmpl = nul + 1;
        tmpl_len = size - vars_len - 1;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    sl_err err;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    if (sl_json_to_msgpack(vars_json, vars_len, &pk, &err) == 0 &&
        msgpack_unpack_next(&up, sb.data, sb.size, NULL) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_MAP) {
        /* a copy without a terminator, so reading past the end is caught */
        char *copy = sl_xmalloc(tmpl_len ? tmpl_len : 1);
        if (tmpl_len)
            memcpy(copy, tmpl, tmpl_len);
        sl_buf out = SL_BUF_INIT;
        (void)sl_codegen_render("fuzz.tmpl", copy, tmpl_len, &up.data, &out, &err);
        sl_buf_free(&out);
        free(copy);
    }
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
