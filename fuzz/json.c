/* fuzz/json.c: the JSON parser (lib/json.c) on any text, as `sluice
 * enqueue --json`, the C library and HTTP bodies feed it.  What parses
 * must unpack (the nesting limit fits msgpack-c's), write back as JSON,
 * and parse again to the same MessagePack bytes; sl_json_check must agree
 * with the parser. */
#include "fuzz.h"

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    sl_err err;
    int rc = sl_json_to_msgpack(text, size, &pk, &err);
    sl_err cerr;
    FUZZ_ASSERT(sl_json_check(text, size, &cerr) == rc, "sl_json_check disagrees (%d)", rc);
    if (rc < 0) {
        FUZZ_ASSERT(sb.size == 0, "packed %zu bytes before failing", sb.size);
        FUZZ_ASSERT(strcmp(err.msg, cerr.msg) == 0, "messages differ: %s / %s", err.msg, cerr.msg);
        msgpack_sbuffer_destroy(&sb);
        return 0;
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    FUZZ_ASSERT(msgpack_unpack_next(&up, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS,
                "parsed JSON does not unpack");
    FUZZ_ASSERT(off == sb.size, "more than one value packed");
    sl_buf out = SL_BUF_INIT;
    FUZZ_ASSERT(sl_json_from_msgpack(&up.data, &out, &err) == 0, "cannot write back: %s", err.msg);
    msgpack_sbuffer sb2;
    msgpack_sbuffer_init(&sb2);
    msgpack_packer pk2;
    msgpack_packer_init(&pk2, &sb2, msgpack_sbuffer_write);
    FUZZ_ASSERT(sl_json_to_msgpack(out.data, out.len, &pk2, &err) == 0, "written JSON refused: %s",
                err.msg);
    FUZZ_ASSERT(sb2.size == sb.size && memcmp(sb2.data, sb.data, sb.size) == 0,
                "round trip changed the value: %s", sl_buf_str(&out));
    msgpack_sbuffer_destroy(&sb2);
    sl_buf_free(&out);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
