/* test_json.c: JSON <-> MessagePack (lib/json.c). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* A JSON text packed into MessagePack and unpacked again, for inspection. */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_unpacked up;
} packed;

static void packed_free(packed *p)
{
    msgpack_unpacked_destroy(&p->up);
    msgpack_sbuffer_destroy(&p->sb);
}

/* Parses json (which must be valid) into p. */
static void parse_ok(const char *json, packed *p)
{
    msgpack_sbuffer_init(&p->sb);
    msgpack_unpacked_init(&p->up);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p->sb, msgpack_sbuffer_write);
    sl_err err = { 0 };
    cr_assert_eq(sl_json_to_msgpack(json, strlen(json), &pk, &err), 0, "%s: %s", json, err.msg);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&p->up, p->sb.data, p->sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, p->sb.size, "%s: packed more than one value", json);
}

/* Writes o as JSON; returns a malloc'd string. */
static char *write_ok(const msgpack_object *o)
{
    sl_buf out = SL_BUF_INIT;
    sl_err err = { 0 };
    cr_assert_eq(sl_json_from_msgpack(o, &out, &err), 0, "%s", err.msg);
    return sl_buf_detach(&out);
}

/* JSON -> MessagePack -> JSON gives want. */
static void round_trip(const char *json, const char *want)
{
    packed p;
    parse_ok(json, &p);
    char *got = write_ok(&p.up.data);
    cr_assert_str_eq(got, want, "input %s", json);
    free(got);
    packed_free(&p);
}

/* The JSON text n bytes long (may hold NULs) is rejected, with a message
 * starting "JSON at byte <at>:" and containing why; nothing is packed. */
static void reject_n(const char *json, size_t n, size_t at, const char *why)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    sl_err err = { 0 };
    cr_assert_eq(sl_json_to_msgpack(json, n, &pk, &err), -1, "accepted: %.*s", (int)n, json);
    cr_assert_eq(err.code, SL_EINVAL);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "JSON at byte %zu: ", at);
    cr_assert_eq(strncmp(err.msg, prefix, strlen(prefix)), 0, "%.*s: got \"%s\", want offset %zu",
                 (int)n, json, err.msg, at);
    cr_assert(strstr(err.msg, why) != NULL, "%.*s: \"%s\" lacks \"%s\"", (int)n, json, err.msg, why);
    cr_assert_eq(sb.size, 0, "%.*s: packed %zu bytes before failing", (int)n, json, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void reject(const char *json, size_t at, const char *why)
{
    reject_n(json, strlen(json), at, why);
}

/* ---- parsing and round trips -------------------------------------------- */

Test(json, scalars_round_trip)
{
    round_trip("null", "null");
    round_trip("true", "true");
    round_trip("false", "false");
    round_trip("0", "0");
    round_trip("-0", "0");
    round_trip("42", "42");
    round_trip("-17", "-17");
    round_trip("\"\"", "\"\"");
    round_trip("\"hello\"", "\"hello\"");
    round_trip("  \t\r\n 7 \n", "7");
}

Test(json, containers_round_trip)
{
    round_trip("{}", "{}");
    round_trip("[]", "[]");
    round_trip("{ \"a\" : 1 , \"b\" : [ true , false , null ] }", "{\"a\":1,\"b\":[true,false,null]}");
    round_trip("[1,[2,[3,[4,{}]]],{\"x\":{\"y\":{\"z\":[]}}}]",
               "[1,[2,[3,[4,{}]]],{\"x\":{\"y\":{\"z\":[]}}}]");
    round_trip("{\"target\":\"staging\",\"vars\":{\"name\":\"shop\",\"n\":3}}",
               "{\"target\":\"staging\",\"vars\":{\"name\":\"shop\",\"n\":3}}");
}

Test(json, object_keys_and_order_preserved)
{
    packed p;
    parse_ok("{\"b\":1,\"a\":2,\"\":3}", &p);
    cr_assert_eq(p.up.data.type, MSGPACK_OBJECT_MAP);
    msgpack_object_map *m = &p.up.data.via.map;
    cr_assert_eq(m->size, 3);
    cr_assert_eq(m->ptr[0].key.type, MSGPACK_OBJECT_STR);
    cr_assert_eq(m->ptr[0].key.via.str.size, 1);
    cr_assert_eq(m->ptr[0].key.via.str.ptr[0], 'b');
    cr_assert_eq(m->ptr[2].key.via.str.size, 0);
    cr_assert_eq(m->ptr[1].val.via.u64, 2);
    packed_free(&p);
}

Test(json, escapes)
{
    /* Decoded bytes first, then how the writer spells them. */
    packed p;
    parse_ok("\"q\\\"b\\\\s\\/b\\bf\\fn\\nr\\rt\\t\"", &p);
    cr_assert_eq(p.up.data.type, MSGPACK_OBJECT_STR);
    const char want[] = "q\"b\\s/b\bf\fn\nr\rt\t";
    cr_assert_eq(p.up.data.via.str.size, sizeof want - 1);
    cr_assert_eq(memcmp(p.up.data.via.str.ptr, want, sizeof want - 1), 0);
    char *out = write_ok(&p.up.data);
    cr_assert_str_eq(out, "\"q\\\"b\\\\s/b\\bf\\fn\\nr\\rt\\t\"");
    free(out);
    packed_free(&p);

    round_trip("\"\\u0001\\u001f\\u007f\"", "\"\\u0001\\u001f\x7f\"");
    round_trip("\"\\u0041\\u00e9\"", "\"A\xc3\xa9\"");
}

Test(json, nul_escape_refused_in_values_and_keys_at_any_depth)
{
    /* jsonb cannot store U+0000: refused where it enters, with its offset. */
    const char *why = "\\u0000 (U+0000) is not allowed in a string (PostgreSQL cannot store it)";
    reject("\"a\\u0000b\"", 2, why);
    reject("{\"k\\u0000\": 1}", 3, why);
    reject("[1, {\"a\": [\"x\", \"\\u0000\"]}]", 17, why);
    sl_err err = { 0 };
    cr_assert_eq(sl_json_check("{\"a\":\"\\u0000\"}", 13, &err), -1);
    cr_assert_str_eq(err.msg, "JSON at byte 6: \\u0000 (U+0000) is not allowed in a string "
                     "(PostgreSQL cannot store it)");
    /* Other control characters are fine (jsonb stores them). */
    packed p;
    parse_ok("\"a\\u0001b\"", &p);
    cr_assert_eq(p.up.data.via.str.size, 3);
    packed_free(&p);
}

Test(json, duplicate_keys_refused)
{
    /* The handler would read the first, jsonb would keep the last. */
    reject("{\"target\":\"staging\",\"target\":\"prod\"}", 20,
           "duplicate key \"target\" in an object");
    sl_err err = { 0 };
    const char *t = "{\"target\":\"staging\",\"target\":\"prod\"}";
    cr_assert_eq(sl_json_check(t, strlen(t), &err), -1);
    cr_assert_str_eq(err.msg, "JSON at byte 20: duplicate key \"target\" in an object");
    /* Equal once decoded is equal: an escape does not make a new key. */
    reject("{\"a\":1,\"\\u0061\":2}", 7, "duplicate key \"a\" in an object");
    /* Nested, and the earliest repeat is the one reported. */
    reject("[{\"x\":{\"b\":1,\"c\":2,\"c\":3,\"b\":4}}]", 19, "duplicate key \"c\"");
    /* The same key in different objects is no duplicate. */
    packed p;
    parse_ok("{\"a\":{\"a\":1},\"b\":{\"a\":2},\"\":0,\"c\":[{\"a\":1},{\"a\":2}]}", &p);
    packed_free(&p);
    /* Many keys: found among them all. */
    sl_buf big = SL_BUF_INIT;
    sl_buf_putc(&big, '{');
    for (int i = 0; i < 5000; i++)
        sl_buf_printf(&big, "\"k%d\":%d,", i, i);
    sl_buf_puts(&big, "\"k2500\":0}");
    cr_assert_eq(sl_json_check(big.data, big.len, &err), -1);
    cr_assert(strstr(err.msg, "duplicate key \"k2500\" in an object"), "%s", err.msg);
    sl_buf_free(&big);
}

Test(json, check_accepts_what_to_msgpack_accepts)
{
    sl_err err = { 0 };
    const char *ok = " {\"a\": [1, 2.5, \"\\u00e9\", null, true], \"b\": {}} ";
    cr_assert_eq(sl_json_check(ok, strlen(ok), &err), 0, "%s", err.msg);
    cr_assert_eq(sl_json_check("{} x", 4, &err), -1);
    cr_assert_str_eq(err.msg, "JSON at byte 3: expected the end of input after the value");
    cr_assert_eq(sl_json_check("\"\xff\"", 3, &err), -1);
    cr_assert_str_eq(err.msg, "JSON at byte 1: invalid UTF-8 in string");
}

Test(json, unicode)
{
    /* BMP escape, surrogate pair, and raw UTF-8 of 2, 3 and 4 bytes. */
    packed p;
    parse_ok("\"\\u20ac\\ud83d\\ude00\\uD834\\uDD1E\"", &p);
    const char want[] = "\xe2\x82\xac\xf0\x9f\x98\x80\xf0\x9d\x84\x9e";
    cr_assert_eq(p.up.data.via.str.size, sizeof want - 1);
    cr_assert_eq(memcmp(p.up.data.via.str.ptr, want, sizeof want - 1), 0);
    packed_free(&p);

    round_trip("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    round_trip("{\"\xc3\xa9\":\"\\uffff\"}", "{\"\xc3\xa9\":\"\xef\xbf\xbf\"}");
    round_trip("\"\\udbff\\udfff\"", "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
}

Test(json, integer_ranges)
{
    packed p;

    parse_ok("9223372036854775807", &p);
    cr_assert_eq(p.up.data.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(p.up.data.via.u64, (uint64_t)INT64_MAX);
    packed_free(&p);

    parse_ok("-9223372036854775808", &p);
    cr_assert_eq(p.up.data.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    cr_assert_eq(p.up.data.via.i64, INT64_MIN);
    packed_free(&p);

    parse_ok("18446744073709551615", &p);
    cr_assert_eq(p.up.data.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(p.up.data.via.u64, UINT64_MAX);
    packed_free(&p);

    parse_ok("18446744073709551616", &p);
    cr_assert_eq(p.up.data.type, MSGPACK_OBJECT_FLOAT64);
    cr_assert_eq(p.up.data.via.f64, 18446744073709551616.0);
    packed_free(&p);

    parse_ok("-9223372036854775809", &p);
    cr_assert_eq(p.up.data.type, MSGPACK_OBJECT_FLOAT64);
    cr_assert_eq(p.up.data.via.f64, -9223372036854775809.0);
    packed_free(&p);

    round_trip("[9223372036854775807,-9223372036854775808,18446744073709551615]",
               "[9223372036854775807,-9223372036854775808,18446744073709551615]");
    round_trip("123456789012345678901234567890", "1.2345678901234568e+29");
}

Test(json, floats)
{
    packed p;
    parse_ok("1.5", &p);
    cr_assert_eq(p.up.data.type, MSGPACK_OBJECT_FLOAT64);
    cr_assert_eq(p.up.data.via.f64, 1.5);
    packed_free(&p);

    parse_ok("1e3", &p);
    cr_assert_eq(p.up.data.type, MSGPACK_OBJECT_FLOAT64);
    cr_assert_eq(p.up.data.via.f64, 1000.0);
    packed_free(&p);

    round_trip("1.5", "1.5");
    round_trip("0.1", "0.1");
    round_trip("-2.25", "-2.25");
    round_trip("1.0", "1.0");
    round_trip("1e3", "1000.0");
    round_trip("1E+2", "100.0");
    round_trip("2.5e-3", "0.0025");
    round_trip("1e300", "1e+300");
    round_trip("-0.0", "-0.0");
    round_trip("3.141592653589793", "3.141592653589793");
    round_trip("1e-400", "0.0"); /* underflow is not an error */
}

Test(json, float_shortest_and_exact)
{
    /* Every double written reads back to the same bits. */
    const double values[] = { 0.1, 1.0 / 3, 2.0 / 3, 1e-310, 5e-324, 1.7976931348623157e308,
                              123456.789, -9.87654321e-12 };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        msgpack_object o = { .type = MSGPACK_OBJECT_FLOAT64, .via.f64 = values[i] };
        char *text = write_ok(&o);
        packed p;
        parse_ok(text, &p);
        cr_assert_eq(p.up.data.type, MSGPACK_OBJECT_FLOAT64, "%s", text);
        cr_assert_eq(memcmp(&p.up.data.via.f64, &values[i], sizeof(double)), 0, "%s", text);
        packed_free(&p);
        free(text);
    }
}

Test(json, nesting_limit)
{
    /* SL_JSON_MAX_DEPTH (31) levels parse.  Wrapped in one more map (the
     * envelope around args), msgpack-c still unpacks them: its limit is 32. */
    cr_assert_eq(SL_JSON_MAX_DEPTH, 31);
    char deep[2 * 33 + 1];
    memset(deep, '[', 31);
    memset(deep + 31, ']', 31);
    deep[62] = '\0';
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "args", 4);
    sl_err err = { 0 };
    cr_assert_eq(sl_json_to_msgpack(deep, 62, &pk, &err), 0, "%s", err.msg);
    cr_assert_eq(sb.size, 6 + 31);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);

    memset(deep, '[', 32);
    memset(deep + 32, ']', 32);
    deep[64] = '\0';
    reject(deep, 31, "expected at most 31 levels of nesting");

    char obj[7 * 33 + 2] = "";
    for (int i = 0; i < 32; i++)
        strcat(obj, "{\"a\":");
    reject(obj, 5 * 31, "expected at most 31 levels of nesting");
}

/* ---- malformed input ----------------------------------------------------- */

Test(json, rejects_bad_syntax)
{
    reject("", 0, "expected a value");
    reject("   ", 3, "expected a value");
    reject("[1,]", 3, "expected a value");
    reject("[1 2]", 3, "expected ',' or ']'");
    reject("[1,2", 4, "expected ',' or ']'");
    reject("{\"a\":1,}", 7, "expected a string key");
    reject("{\"a\":1", 6, "expected ',' or '}'");
    reject("{\"a\" 1}", 5, "expected ':'");
    reject("{1:2}", 1, "expected a string key");
    reject("{'a':2}", 1, "expected a string key");
    reject("{\"a\":}", 5, "expected a value");
    reject("1 2", 2, "expected the end of input");
    reject("{} x", 3, "expected the end of input");
    reject("[]]", 2, "expected the end of input");
    reject("tru", 0, "expected a value");
    reject("nul", 0, "expected a value");
    reject("True", 0, "expected a value");
    reject("NaN", 0, "expected a value");
    reject("Infinity", 0, "expected a value");
    reject("undefined", 0, "expected a value");
    reject("[1,/*c*/2]", 3, "expected a value");
    reject("'a'", 0, "expected a value");
}

Test(json, rejects_bad_numbers)
{
    reject("01", 1, "leading zero");
    reject("-01", 2, "leading zero");
    reject("00", 1, "leading zero");
    reject("-", 1, "expected a digit");
    reject("-a", 1, "expected a digit");
    reject("+1", 0, "expected a value");
    reject(".5", 0, "expected a value");
    reject("1.", 2, "expected a digit after '.'");
    reject("1.e5", 2, "expected a digit after '.'");
    reject("1e", 2, "expected a digit in the exponent");
    reject("1e+", 3, "expected a digit in the exponent");
    reject("-Infinity", 1, "expected a digit");
    reject("0x10", 1, "expected the end of input");
    reject("1e400", 0, "out of float64 range");
    reject("[0, -1e999]", 4, "out of float64 range");
}

Test(json, rejects_bad_strings)
{
    reject("\"abc", 4, "expected '\"'");
    reject("\"abc\\", 5, "expected '\"'");
    reject("\"a\x01\"", 2, "control character");
    reject("\"a\tb\"", 2, "control character");
    reject("\"a\nb\"", 2, "control character");
    reject_n("\"a\0b\"", 5, 2, "control character");
    reject("\"\\x41\"", 2, "expected an escape character");
    reject("\"\\'\"", 2, "expected an escape character");
    reject("\"\\u12G4\"", 5, "expected 4 hex digits");
    reject("\"\\u12\"", 5, "expected 4 hex digits");
    reject("\"\\u", 3, "expected 4 hex digits");
}

Test(json, rejects_lone_surrogates)
{
    reject("\"\\ud83d\"", 7, "low surrogate");
    reject("\"\\ud83dx\"", 7, "low surrogate");
    reject("\"\\ud83d\\u0041\"", 7, "low surrogate");
    reject("\"\\ud83d\\ud83d\"", 7, "low surrogate");
    reject("\"\\ud83d\\n\"", 7, "low surrogate");
    reject("\"\\ude00\"", 1, "unpaired low surrogate");
    reject("\"ok\\udfff\\ud800\"", 3, "unpaired low surrogate");
}

Test(json, rejects_invalid_utf8)
{
    reject("\"\xff\"", 1, "invalid UTF-8");
    reject("\"ab\x80\"", 3, "invalid UTF-8");          /* lone continuation */
    reject("\"\xc0\xaf\"", 1, "invalid UTF-8");        /* overlong '/' */
    reject("\"\xe0\x80\xaf\"", 1, "invalid UTF-8");    /* overlong, 3 bytes */
    reject("\"\xed\xa0\x80\"", 1, "invalid UTF-8");    /* UTF-8-encoded surrogate */
    reject("\"\xf4\x90\x80\x80\"", 1, "invalid UTF-8"); /* above U+10FFFF */
    reject("\"\xc3\"", 1, "invalid UTF-8");            /* truncated sequence */
    reject("\"\xe2\x82\"", 1, "invalid UTF-8");
    reject("{\"k\xfe\":1}", 3, "invalid UTF-8");       /* in a key */
}

Test(json, every_truncation_rejected)
{
    const char *doc = "{\"a\":[1,-2.5e3,true,null,\"x\\u00e9\\ud83d\\ude00\"],\"b\":{\"c\":false}}";
    size_t n = strlen(doc);
    for (size_t i = 0; i < n; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        sl_err err = { 0 };
        cr_assert_eq(sl_json_to_msgpack(doc, i, &pk, &err), -1, "prefix of %zu accepted", i);
        cr_assert_eq(strncmp(err.msg, "JSON at byte ", 13), 0, "%s", err.msg);
        cr_assert_eq(sb.size, 0);
        msgpack_sbuffer_destroy(&sb);
    }
}

Test(json, random_bytes_never_crash)
{
    /* Deterministic xorshift; the inputs favour JSON punctuation so the
     * parser gets past the first byte often. */
    uint64_t x = 0x9e3779b97f4a7c15u;
    const char alphabet[] = "{}[]\",:0123456789-+.eE\\u tfnrl \xc3\xa9\xff";
    char buf[48];
    for (int iter = 0; iter < 20000; iter++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = x % sizeof buf;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = (x >> 32) & 1 ? alphabet[x % (sizeof alphabet - 1)] : (char)(x >> 40);
        }
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        sl_err err = { 0 };
        if (sl_json_to_msgpack(buf, n, &pk, &err) == 0) {
            /* Whatever is accepted must pack exactly one value that writes back. */
            msgpack_unpacked up;
            msgpack_unpacked_init(&up);
            size_t off = 0;
            cr_assert_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
            cr_assert_eq(off, sb.size);
            free(write_ok(&up.data));
            msgpack_unpacked_destroy(&up);
        } else {
            cr_assert_eq(strncmp(err.msg, "JSON at byte ", 13), 0, "%s", err.msg);
            cr_assert_eq(sb.size, 0);
        }
        msgpack_sbuffer_destroy(&sb);
    }
}

/* ---- writing MessagePack as JSON ----------------------------------------- */

/* Unpacks the MessagePack bytes mp[0..n) and writes them as JSON. */
static char *mp_to_json(const char *mp, size_t n)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&up, mp, n, &off), MSGPACK_UNPACK_SUCCESS);
    char *s = write_ok(&up.data);
    msgpack_unpacked_destroy(&up);
    return s;
}

static void mp_to_json_fails(const char *mp, size_t n, const char *why)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&up, mp, n, &off), MSGPACK_UNPACK_SUCCESS);
    sl_buf out = SL_BUF_INIT;
    sl_buf_puts(&out, "kept");
    sl_err err = { 0 };
    cr_assert_eq(sl_json_from_msgpack(&up.data, &out, &err), -1);
    cr_assert_eq(err.code, SL_EINVAL);
    cr_assert(strstr(err.msg, why) != NULL, "\"%s\" lacks \"%s\"", err.msg, why);
    cr_assert_str_eq(sl_buf_str(&out), "kept", "output changed on failure");
    cr_assert_eq(out.len, 4);
    sl_buf_free(&out);
    msgpack_unpacked_destroy(&up);
}

Test(json, bin_as_base64)
{
    struct { const char *mp; size_t n; const char *json; } cases[] = {
        { "\xc4\x00", 2, "\"\"" },
        { "\xc4\x01" "f", 3, "\"Zg==\"" },
        { "\xc4\x02" "fo", 4, "\"Zm8=\"" },
        { "\xc4\x03" "foo", 5, "\"Zm9v\"" },
        { "\xc4\x06" "foobar", 8, "\"Zm9vYmFy\"" },
        { "\xc4\x03\xff\xfe\x00", 5, "\"//4A\"" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = mp_to_json(cases[i].mp, cases[i].n);
        cr_assert_str_eq(s, cases[i].json);
        free(s);
    }
}

Test(json, ext_rejected)
{
    mp_to_json_fails("\xd4\x05\x01", 3, "ext");
    mp_to_json_fails("\x91\xc7\x02\x07\x01\x02", 6, "ext"); /* inside an array */
}

Test(json, nan_and_infinity_rejected)
{
    mp_to_json_fails("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 9, "NaN");
    mp_to_json_fails("\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", 9, "Infinity");
    mp_to_json_fails("\x81\xa1x\xcb\xff\xf0\x00\x00\x00\x00\x00\x00", 13, "Infinity");
    mp_to_json_fails("\xca\x7f\xc0\x00\x00", 5, "NaN"); /* float32 */
}

Test(json, float32_written_shortest)
{
    char *s = mp_to_json("\xca\x3d\xcc\xcc\xcd", 5); /* 0.1f */
    cr_assert_str_eq(s, "0.1");
    free(s);
    s = mp_to_json("\xca\x3f\x80\x00\x00", 5); /* 1.0f */
    cr_assert_str_eq(s, "1.0");
    free(s);
}

Test(json, non_string_keys_refused)
{
    /* {"s": 1, 1: "a"}: JSON keys are strings; no key is made of JSON text. */
    mp_to_json_fails("\x82\xa1s\x01\x01\xa1" "a", 7,
                     "JSON: map key #2 is of type integer; object keys must be strings");
    mp_to_json_fails("\x81\xc0\xc3", 3, "JSON: map key #1 is of type nil; object keys must be strings");
    mp_to_json_fails("\x81\x92\x01\x02\x00", 5,
                     "JSON: map key #1 is of type array; object keys must be strings");
    mp_to_json_fails("\x81\xc4\x01" "f" "\x01", 5,
                     "JSON: map key #1 is of type bin; object keys must be strings");
}

/* The fuzzer's find: maps used as keys of maps, 30 levels deep, 115 bytes.
 * Writing a key as its own JSON text re-escaped every level, doubling the
 * output per level (6.4 GB).  Refused now, before writing anything. */
Test(json, maps_as_keys_nested_deep_refused_at_once)
{
    sl_buf mp = SL_BUF_INIT;
    for (int i = 0; i < 30; i++)
        sl_buf_append(&mp, "\x81", 1);          /* {key: ...} whose key is the next map */
    sl_buf_append(&mp, "\xa1\"", 2);              /* innermost key: "\"" */
    for (int i = 0; i < 30; i++)
        sl_buf_append(&mp, "\xa2\\\"", 3);        /* each value: the string \" */
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&up, mp.data, mp.len, &off), MSGPACK_UNPACK_SUCCESS);
    sl_buf out = SL_BUF_INIT;
    sl_err err = { 0 };
    cr_assert_eq(sl_json_from_msgpack(&up.data, &out, &err), -1);
    cr_assert_str_eq(err.msg, "JSON: map key #1 is of type map; object keys must be strings");
    cr_assert_eq(out.len, 0);
    cr_assert_eq(sl_json_check_msgpack(&up.data, &err), -1);
    sl_buf_free(&out);
    msgpack_unpacked_destroy(&up);
    sl_buf_free(&mp);
}

/* The writer's output is linear: at most 6 bytes per input byte (a control
 * character becomes a \u escape) plus number digits. */
Test(json, output_linear_in_input)
{
    sl_buf mp = SL_BUF_INIT;
    /* A map of 1000 keys, each holding 100 control characters in a str8. */
    sl_buf_append(&mp, "\xde\x03\xe8", 3);
    for (int i = 0; i < 1000; i++) {
        char key[8];
        int n = snprintf(key, sizeof key, "%d", i);
        char h = (char)(0xa0 | n);
        sl_buf_append(&mp, &h, 1);
        sl_buf_append(&mp, key, (size_t)n);
        sl_buf_append(&mp, "\xd9\x64", 2);
        for (int k = 0; k < 100; k++)
            sl_buf_putc(&mp, '\x01');
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&up, mp.data, mp.len, &off), MSGPACK_UNPACK_SUCCESS);
    sl_buf out = SL_BUF_INIT;
    sl_err err = { 0 };
    cr_assert_eq(sl_json_from_msgpack(&up.data, &out, &err), 0, "%s", err.msg);
    cr_assert_leq(out.len, 6 * mp.len, "%zu bytes of JSON from %zu of MessagePack", out.len, mp.len);
    cr_assert_geq(out.len, 6 * 100 * 1000);
    sl_buf_free(&out);
    msgpack_unpacked_destroy(&up);
    sl_buf_free(&mp);
}

Test(json, writer_refuses_what_the_parser_refuses)
{
    /* U+0000 in a value, in a key; invalid UTF-8; duplicate keys. */
    mp_to_json_fails("\x81\xa1s\xa3" "a\0b", 7, "JSON: a string holds U+0000 (PostgreSQL cannot store it)");
    mp_to_json_fails("\x81\xa2" "k\0" "\x01", 5, "JSON: a key holds U+0000 (PostgreSQL cannot store it)");
    mp_to_json_fails("\x91\xa2" "a\xff", 4, "JSON: a string is not valid UTF-8");
    mp_to_json_fails("\x81\xa1\xc0\x01", 4, "JSON: a key is not valid UTF-8");
    mp_to_json_fails("\x82\xa6target\xa7staging\xa6target\xa4prod", 29,
                     "JSON: duplicate key \"target\" in a map");
    mp_to_json_fails("\x91\x81\xa1" "a" "\x82\xa0\x01\xa0\x02", 10,
                     "JSON: duplicate key \"\" in a map");
}

/* msgpack-c gives an empty string a NULL pointer: writing it must not
 * compute NULL + 0 (UndefinedBehaviorSanitizer's pointer-overflow check). */
Test(json, empty_string_with_null_pointer)
{
    msgpack_object pair[2];
    pair[0].type = MSGPACK_OBJECT_STR;
    pair[0].via.str.ptr = NULL;
    pair[0].via.str.size = 0;
    pair[1] = pair[0];
    msgpack_object_kv kv = { .key = pair[0], .val = pair[1] };
    msgpack_object map = { .type = MSGPACK_OBJECT_MAP, .via.map = { .size = 1, .ptr = &kv } };
    char *s = write_ok(&map);
    cr_assert_str_eq(s, "{\"\":\"\"}");
    free(s);
    sl_buf out = SL_BUF_INIT;
    sl_json_put_string(&out, NULL, 0);
    cr_assert_str_eq(sl_buf_str(&out), "\"\"");
    sl_buf_free(&out);
    /* And as unpacked by msgpack-c itself. */
    s = mp_to_json("\x81\xa0\xa0", 3);
    cr_assert_str_eq(s, "{\"\":\"\"}");
    free(s);
}

Test(json, writer_depth_limit)
{
    /* msgpack-c itself stops at 32 levels, so build the tree by hand. */
    msgpack_object nodes[33];
    for (int i = 0; i < 32; i++) {
        nodes[i].type = MSGPACK_OBJECT_ARRAY;
        nodes[i].via.array.size = 1;
        nodes[i].via.array.ptr = &nodes[i + 1];
    }
    nodes[32].type = MSGPACK_OBJECT_NIL;
    sl_buf out = SL_BUF_INIT;
    sl_err err = { 0 };
    cr_assert_eq(sl_json_from_msgpack(&nodes[1], &out, &err), 0, "%s", err.msg); /* 31 deep */
    sl_buf_reset(&out);
    cr_assert_eq(sl_json_from_msgpack(&nodes[0], &out, &err), -1); /* 32 deep */
    cr_assert_str_eq(err.msg, "JSON: nested deeper than 31 levels");
    cr_assert_eq(out.len, 0);
    cr_assert_eq(sl_json_check_msgpack(&nodes[0], &err), -1);
    cr_assert_eq(sl_json_check_msgpack(&nodes[1], &err), 0);
    sl_buf_free(&out);
}

Test(json, appends_to_existing_buffer)
{
    packed p;
    parse_ok("[1,\"a\"]", &p);
    sl_buf out = SL_BUF_INIT;
    sl_buf_puts(&out, "args=");
    sl_err err = { 0 };
    cr_assert_eq(sl_json_from_msgpack(&p.up.data, &out, &err), 0);
    cr_assert_str_eq(sl_buf_str(&out), "args=[1,\"a\"]");
    sl_buf_free(&out);
    packed_free(&p);
}

/* ---- sl_json_put_string ---------------------------------------------------- */

static void put_is(const char *s, size_t n, const char *want)
{
    sl_buf out = SL_BUF_INIT;
    sl_json_put_string(&out, s, n);
    cr_assert_str_eq(sl_buf_str(&out), want);
    sl_buf_free(&out);
}

Test(json, put_string_escaping)
{
    put_is("", 0, "\"\"");
    put_is("plain text", 10, "\"plain text\"");
    put_is("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    put_is("\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\"");
    put_is("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\"");
    put_is("a\0b", 3, "\"a\\u0000b\"");
    put_is("</script>", 9, "\"</script>\"");
    put_is("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
}

Test(json, put_string_replaces_invalid_utf8)
{
    put_is("a\xff" "b", 3, "\"a\xef\xbf\xbd" "b\"");
    put_is("\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"");            /* overlong */
    put_is("\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* surrogate */
    put_is("x\xe2\x82", 3, "\"x\xef\xbf\xbd\xef\xbf\xbd\"");           /* truncated at end */
    put_is("\x80\"", 2, "\"\xef\xbf\xbd\\\"\"");
}

Test(json, put_string_output_is_parseable)
{
    /* Whatever bytes go in, the output is JSON the parser accepts, NUL aside. */
    uint64_t x = 12345;
    for (int iter = 0; iter < 2000; iter++) {
        char s[32];
        size_t n = iter % sizeof s;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            s[i] = (char)(x >> 24);
        }
        sl_buf out = SL_BUF_INIT;
        sl_json_put_string(&out, s, n);
        if (memchr(s, '\0', n) != NULL) {
            /* written as \u0000, which the parser then refuses */
            sl_err err = { 0 };
            cr_assert_eq(sl_json_check(out.data, out.len, &err), -1);
            cr_assert(strstr(err.msg, "(U+0000) is not allowed"), "%s", err.msg);
        } else {
            packed p;
            parse_ok(sl_buf_str(&out), &p);
            cr_assert_eq(p.up.data.type, MSGPACK_OBJECT_STR);
            packed_free(&p);
        }
        sl_buf_free(&out);
    }
}
