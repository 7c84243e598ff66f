/* test_envelope.c: wire format v1 encode/decode (lib/envelope.c).
 *
 * Most tests hand-build envelopes with msgpack-c's packer, the way a
 * third-party producer would, rather than going through our encoder, so the
 * decoder is checked against the contract and not against itself. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "json.h"

/* One entry of a hand-built envelope map. */
typedef struct {
    const char *key;
    char type;       /* i int64, u uint64, s str, S str of n bytes, b bin, n nil, t true,
                        f float, a [1], m the args map {"k":"v"}, M empty map */
    int64_t i;       /* value for i/u; byte count for S */
    const char *s;   /* value for s/S/b */
} kv;

/* -Wextra wants every member spelled out; these keep the tables short. */
#define KV_INT(k, v) { k, 'i', v, NULL }
#define KV_UINT(k, v) { k, 'u', (int64_t)(v), NULL }
#define KV_STR(k, v) { k, 's', 0, v }
#define KV_OF(k, t) { k, t, 0, NULL }

#define BASE_N 7
static const kv base[BASE_N] = {
    { "v", 'i', 1, NULL },
    { "id", 's', 0, "job-1" },
    { "kind", 's', 0, "deploy" },
    { "args", 'm', 0, NULL },
    { "queue", 's', 0, "default" },
    { "attempt", 'i', 1, NULL },
    { "enqueued_at", 'i', 1700000000000, NULL },
};

static const char *const required[] = { "v", "id", "kind", "args", "queue", "attempt",
                                        "enqueued_at" };
static const char *const all_fields[] = { "v", "id", "kind", "args", "queue", "attempt",
                                          "max_attempts", "timeout_ms", "enqueued_at", "run",
                                          "step", "unique_key" };
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_entries(msgpack_sbuffer *sb, const kv *e, size_t n)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n);
    for (size_t i = 0; i < n; i++) {
        pack_str(&pk, e[i].key, strlen(e[i].key));
        switch (e[i].type) {
        case 'i': msgpack_pack_int64(&pk, e[i].i); break;
        case 'u': msgpack_pack_uint64(&pk, (uint64_t)e[i].i); break;
        case 's': pack_str(&pk, e[i].s, strlen(e[i].s)); break;
        case 'S': pack_str(&pk, e[i].s, (size_t)e[i].i); break;
        case 'b': msgpack_pack_bin(&pk, strlen(e[i].s)); msgpack_pack_bin_body(&pk, e[i].s, strlen(e[i].s)); break;
        case 'n': msgpack_pack_nil(&pk); break;
        case 't': msgpack_pack_true(&pk); break;
        case 'f': msgpack_pack_double(&pk, 1.5); break;
        case 'a': msgpack_pack_array(&pk, 1); msgpack_pack_int64(&pk, 1); break;
        case 'm': msgpack_pack_map(&pk, 1); pack_str(&pk, "k", 1); pack_str(&pk, "v", 1); break;
        case 'M': msgpack_pack_map(&pk, 0); break;
        default: cr_assert_fail("bad kv type %c", e[i].type);
        }
    }
}

/* Packs the base envelope without the entry named drop (may be NULL), with
 * entries of over replacing same-named base entries or else appended. */
static void build(msgpack_sbuffer *sb, const char *drop, const kv *over, size_t nover)
{
    kv list[BASE_N + 16];
    size_t n = 0;
    for (size_t i = 0; i < BASE_N; i++) {
        if (drop && strcmp(base[i].key, drop) == 0)
            continue;
        list[n] = base[i];
        for (size_t j = 0; j < nover; j++)
            if (strcmp(over[j].key, base[i].key) == 0)
                list[n] = over[j];
        n++;
    }
    for (size_t j = 0; j < nover; j++) {
        bool replaced = false;
        for (size_t i = 0; i < BASE_N; i++)
            replaced |= strcmp(over[j].key, base[i].key) == 0 && !(drop && strcmp(drop, base[i].key) == 0);
        if (!replaced)
            list[n++] = over[j];
    }
    msgpack_sbuffer_init(sb);
    pack_entries(sb, list, n);
}

/* Asserts data[0..len) decodes. */
static void decode_ok(const char *data, size_t len, sl_job *job)
{
    sl_err err = { 0 };
    cr_assert_eq(sl_envelope_decode(data, len, job, &err), 0, "rejected: %s", err.msg);
}

/* Asserts data[0..len) is rejected with SL_EDECODE, *job left empty, and a
 * message containing each of the (up to two) given strings. */
static void decode_fails(const char *data, size_t len, const char *want1, const char *want2)
{
    sl_job job;
    memset(&job, 0x5a, sizeof job);
    sl_err err = { 0 };
    cr_assert_eq(sl_envelope_decode(data, len, &job, &err), -1, "accepted, want \"%s\"", want1);
    cr_assert_eq(err.code, SL_EDECODE);
    cr_assert(strstr(err.msg, want1) != NULL, "\"%s\" lacks \"%s\"", err.msg, want1);
    if (want2)
        cr_assert(strstr(err.msg, want2) != NULL, "\"%s\" lacks \"%s\"", err.msg, want2);
    sl_job empty;
    memset(&empty, 0, sizeof empty);
    cr_assert_eq(memcmp(&job, &empty, sizeof job), 0, "job not left empty");
}

static void build_fails(const char *drop, const kv *over, size_t nover, const char *want1,
                        const char *want2)
{
    msgpack_sbuffer sb;
    build(&sb, drop, over, nover);
    decode_fails(sb.data, sb.size, want1, want2);
    msgpack_sbuffer_destroy(&sb);
}

/* A job with every field set, its args packed into args_sb. */
static sl_job full_job(msgpack_sbuffer *args_sb)
{
    msgpack_sbuffer_init(args_sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, args_sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "target", 6);
    pack_str(&pk, "staging", 7);
    pack_str(&pk, "n", 1);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int64(&pk, -7);
    msgpack_pack_double(&pk, 2.5);
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, "x", 1);
    msgpack_pack_nil(&pk);
    sl_job job = {
        .id = "0190f5c4-7b6e-7cc3-9b2e-1f0e6d2a9c11", .kind = "deploy", .queue = "deploys",
        .args = args_sb->data, .args_len = args_sb->size, .attempt = 2, .max_attempts = 5,
        .timeout_ms = 600000, .enqueued_at = 1722470400123, .run = "run-42",
        .step = "staging", .unique_key = "release:shop:1.2.0 \xc3\xa9",
    };
    return job;
}

/* Number of keys in the top-level map of an encoded envelope. */
static uint32_t key_count(const msgpack_sbuffer *sb)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&up, sb->data, sb->size, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(up.data.type, MSGPACK_OBJECT_MAP);
    uint32_t n = up.data.via.map.size;
    msgpack_unpacked_destroy(&up);
    return n;
}

/* ---- round trips ----------------------------------------------------------- */

Test(envelope, round_trip_all_fields)
{
    msgpack_sbuffer args_sb, sb;
    sl_job in = full_job(&args_sb);
    msgpack_sbuffer_init(&sb);
    sl_err err = { 0 };
    cr_assert_eq(sl_envelope_encode(&in, &sb, &err), 0, "%s", err.msg);
    cr_assert_eq(key_count(&sb), 12);

    sl_job out;
    decode_ok(sb.data, sb.size, &out);
    cr_assert_str_eq(out.id, in.id);
    cr_assert_str_eq(out.kind, in.kind);
    cr_assert_str_eq(out.queue, in.queue);
    cr_assert_eq(out.args_len, in.args_len);
    cr_assert_eq(memcmp(out.args, in.args, in.args_len), 0);
    cr_assert_eq(out.attempt, 2);
    cr_assert_eq(out.max_attempts, 5);
    cr_assert_eq(out.timeout_ms, 600000);
    cr_assert_eq(out.enqueued_at, 1722470400123);
    cr_assert_str_eq(out.run, "run-42");
    cr_assert_str_eq(out.step, "staging");
    cr_assert_str_eq(out.unique_key, in.unique_key);

    /* Re-encoding the decoded job gives the same bytes. */
    msgpack_sbuffer again;
    msgpack_sbuffer_init(&again);
    cr_assert_eq(sl_envelope_encode(&out, &again, &err), 0, "%s", err.msg);
    cr_assert_eq(again.size, sb.size);
    cr_assert_eq(memcmp(again.data, sb.data, sb.size), 0);

    sl_job_clear(&out);
    cr_assert_null(out.id);
    cr_assert_null(out.args);
    sl_job_clear(&out); /* twice is fine */
    sl_job_clear(NULL);
    msgpack_sbuffer_destroy(&again);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&args_sb);
}

Test(envelope, round_trip_optional_unset)
{
    sl_job in = { .id = "job-1", .kind = "noop", .queue = "default", .attempt = 1,
                  .enqueued_at = 0 };
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    sl_err err = { 0 };
    cr_assert_eq(sl_envelope_encode(&in, &sb, &err), 0, "%s", err.msg);
    cr_assert_eq(key_count(&sb), 7, "optional keys must be left out when unset");

    sl_job out;
    decode_ok(sb.data, sb.size, &out);
    cr_assert_str_eq(out.id, "job-1");
    cr_assert_str_eq(out.kind, "noop");
    cr_assert_str_eq(out.queue, "default");
    cr_assert_eq(out.attempt, 1);
    cr_assert_eq(out.enqueued_at, 0);
    cr_assert_eq(out.max_attempts, 0);
    cr_assert_eq(out.timeout_ms, 0);
    cr_assert_null(out.run);
    cr_assert_null(out.step);
    cr_assert_null(out.unique_key);
    /* NULL args went out as an empty map. */
    cr_assert_eq(out.args_len, 1);
    cr_assert_eq((unsigned char)out.args[0], 0x80);
    sl_job_clear(&out);
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, each_optional_field_alone)
{
    for (int f = 0; f < 5; f++) {
        sl_job in = { .id = "j", .kind = "k", .queue = "q", .attempt = 1, .enqueued_at = 5 };
        if (f == 0) in.max_attempts = 3;
        if (f == 1) in.timeout_ms = 1;
        if (f == 2) in.run = "";
        if (f == 3) in.step = "s";
        if (f == 4) in.unique_key = "u";
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        sl_err err = { 0 };
        cr_assert_eq(sl_envelope_encode(&in, &sb, &err), 0, "%s", err.msg);
        cr_assert_eq(key_count(&sb), 8);
        sl_job out;
        decode_ok(sb.data, sb.size, &out);
        cr_assert_eq(out.max_attempts, in.max_attempts);
        cr_assert_eq(out.timeout_ms, in.timeout_ms);
        cr_assert_eq(out.run == NULL, in.run == NULL);
        cr_assert_eq(out.step == NULL, in.step == NULL);
        cr_assert_eq(out.unique_key == NULL, in.unique_key == NULL);
        sl_job_clear(&out);
        msgpack_sbuffer_destroy(&sb);
    }
}

Test(envelope, hand_built_envelope_decodes)
{
    msgpack_sbuffer sb;
    build(&sb, NULL, NULL, 0);
    sl_job job;
    decode_ok(sb.data, sb.size, &job);
    cr_assert_str_eq(job.id, "job-1");
    cr_assert_str_eq(job.kind, "deploy");
    cr_assert_str_eq(job.queue, "default");
    cr_assert_eq(job.attempt, 1);
    cr_assert_eq(job.enqueued_at, 1700000000000);
    cr_assert_eq(job.args_len, 5);
    cr_assert_eq(memcmp(job.args, "\x81\xa1k\xa1v", 5), 0);
    sl_job_clear(&job);
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, args_bytes_kept_exactly)
{
    /* Non-canonical encodings inside args (a uint32 holding 1, a str8 holding
     * "k") must come out byte for byte, not re-encoded. */
    const char prefix[] = "\x87\xa1v\x01\xa2id\xa1j\xa4kind\xa1k\xa5queue\xa1q"
                          "\xa7" "attempt\x01\xab" "enqueued_at\x00\xa4" "args";
    const char args[] = "\x81\xd9\x01k\xce\x00\x00\x00\x01";
    char buf[128];
    size_t n = sizeof prefix - 1;
    memcpy(buf, prefix, n);
    memcpy(buf + n, args, sizeof args - 1);
    n += sizeof args - 1;
    sl_job job;
    decode_ok(buf, n, &job);
    cr_assert_eq(job.args_len, sizeof args - 1);
    cr_assert_eq(memcmp(job.args, args, sizeof args - 1), 0);
    sl_job_clear(&job);
}

/* ---- required fields, types, ranges -------------------------------------- */

Test(envelope, each_required_field_missing)
{
    for (size_t i = 0; i < COUNT(required); i++) {
        char want[64];
        snprintf(want, sizeof want, "field '%s'", required[i]);
        build_fails(required[i], NULL, 0, want, "missing");
    }
}

Test(envelope, each_field_wrong_type)
{
    for (size_t i = 0; i < COUNT(all_fields); i++) {
        const char *f = all_fields[i];
        bool is_int = !strcmp(f, "v") || !strcmp(f, "attempt") || !strcmp(f, "max_attempts") ||
                      !strcmp(f, "timeout_ms") || !strcmp(f, "enqueued_at");
        bool is_map = !strcmp(f, "args");
        char want[64];
        snprintf(want, sizeof want, "field '%s'", f);
        /* Every wrong type for the field, named in the message. */
        const struct { char type; const char *name; } wrong[] = {
            { 's', "str" }, { 'i', "integer" }, { 'f', "float" }, { 'a', "array" },
            { 'M', "map" }, { 't', "bool" }, { 'b', "bin" },
        };
        for (size_t w = 0; w < COUNT(wrong); w++) {
            if ((is_int && wrong[w].type == 'i') || (is_map && wrong[w].type == 'M') ||
                (!is_int && !is_map && wrong[w].type == 's'))
                continue;
            kv over = { f, wrong[w].type, 3, "text" };
            char got[32];
            snprintf(got, sizeof got, "got %s", wrong[w].name);
            build_fails(NULL, &over, 1, want, got);
            build_fails(NULL, &over, 1, want,
                        is_int ? "expected integer" : is_map ? "expected map" : "expected str");
        }
    }
}

Test(envelope, exact_type_message)
{
    kv over = { "attempt", 's', 0, "1" };
    msgpack_sbuffer sb;
    build(&sb, NULL, &over, 1);
    sl_job job;
    sl_err err = { 0 };
    cr_assert_eq(sl_envelope_decode(sb.data, sb.size, &job, &err), -1);
    cr_assert_str_eq(err.msg, "field 'attempt': expected integer, got str");
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, nil_optional_is_absent)
{
    kv over[] = { KV_OF("max_attempts", 'n'), KV_OF("timeout_ms", 'n'), KV_OF("run", 'n'),
                  KV_OF("step", 'n'), KV_OF("unique_key", 'n') };
    msgpack_sbuffer sb;
    build(&sb, NULL, over, COUNT(over));
    sl_job job;
    decode_ok(sb.data, sb.size, &job);
    cr_assert_eq(job.max_attempts, 0);
    cr_assert_eq(job.timeout_ms, 0);
    cr_assert_null(job.run);
    cr_assert_null(job.step);
    cr_assert_null(job.unique_key);
    sl_job_clear(&job);
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, nil_required_is_rejected)
{
    for (size_t i = 0; i < COUNT(required); i++) {
        kv over = KV_OF(required[i], 'n');
        char want[64];
        snprintf(want, sizeof want, "field '%s'", required[i]);
        build_fails(NULL, &over, 1, want, "got nil");
    }
}

Test(envelope, optional_fields_decoded)
{
    kv over[] = { KV_INT("max_attempts", 3), KV_UINT("timeout_ms", 1500),
                  { "run", 's', 0, "r1" }, { "step", 's', 0, "build" },
                  { "unique_key", 's', 0, "k:1" } };
    msgpack_sbuffer sb;
    build(&sb, NULL, over, COUNT(over));
    sl_job job;
    decode_ok(sb.data, sb.size, &job);
    cr_assert_eq(job.max_attempts, 3);
    cr_assert_eq(job.timeout_ms, 1500);
    cr_assert_str_eq(job.run, "r1");
    cr_assert_str_eq(job.step, "build");
    cr_assert_str_eq(job.unique_key, "k:1");
    sl_job_clear(&job);
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, unknown_keys_ignored)
{
    kv over[] = { KV_INT("priority", 5), KV_OF("trace", 'm'), KV_OF("x-new", 'a'),
                  KV_OF("", 'n'), { "attempts", 's', 0, "typo of attempt" } };
    msgpack_sbuffer sb;
    build(&sb, NULL, over, COUNT(over));
    sl_job job;
    decode_ok(sb.data, sb.size, &job);
    cr_assert_str_eq(job.id, "job-1");
    cr_assert_eq(job.attempt, 1);
    sl_job_clear(&job);
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, version)
{
    kv v2 = KV_INT("v", 2);
    build_fails(NULL, &v2, 1, "field 'v': unsupported wire format version 2", NULL);
    kv v0 = KV_INT("v", 0);
    build_fails(NULL, &v0, 1, "field 'v': unsupported wire format version 0", NULL);
    kv vneg = KV_INT("v", -1);
    build_fails(NULL, &vneg, 1, "unsupported wire format version -1", NULL);
    kv vs = { "v", 's', 0, "1" };
    build_fails(NULL, &vs, 1, "field 'v': expected integer, got str", NULL);

    /* The version is checked before anything else: a v2 envelope that lacks
     * v1 fields is reported as v2, not as a missing field. */
    kv only_v2 = KV_INT("v", 2);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_entries(&sb, &only_v2, 1);
    decode_fails(sb.data, sb.size, "unsupported wire format version 2", NULL);
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, integer_ranges)
{
    kv a0 = KV_INT("attempt", 0);
    build_fails(NULL, &a0, 1, "field 'attempt'", ">= 1");
    kv aneg = KV_INT("attempt", -3);
    build_fails(NULL, &aneg, 1, "field 'attempt'", ">= 1");
    kv abig = KV_UINT("attempt", UINT64_MAX);
    build_fails(NULL, &abig, 1, "field 'attempt'", "out of range");
    kv m0 = KV_INT("max_attempts", 0);
    build_fails(NULL, &m0, 1, "field 'max_attempts'", ">= 1");
    kv t0 = KV_INT("timeout_ms", 0);
    build_fails(NULL, &t0, 1, "field 'timeout_ms'", ">= 1");
    kv eneg = KV_INT("enqueued_at", -1);
    build_fails(NULL, &eneg, 1, "field 'enqueued_at'", ">= 0");

    /* Any integer encoding is accepted: int8 holding 5, uint64 holding 7,
     * INT64_MAX as the upper bound. */
    kv ok[] = { KV_UINT("attempt", 7), KV_UINT("enqueued_at", INT64_MAX) };
    msgpack_sbuffer sb;
    build(&sb, NULL, ok, COUNT(ok));
    sl_job job;
    decode_ok(sb.data, sb.size, &job);
    cr_assert_eq(job.attempt, 7);
    cr_assert_eq(job.enqueued_at, INT64_MAX);
    sl_job_clear(&job);
    msgpack_sbuffer_destroy(&sb);

    const char int8_attempt[] = "\x87\xa1v\xd0\x01\xa2id\xa1j\xa4kind\xa1k\xa5queue\xa1q"
                                "\xa7" "attempt\xd0\x05\xab" "enqueued_at\xcf\0\0\0\0\0\0\0\0"
                                "\xa4" "args\x80";
    decode_ok(int8_attempt, sizeof int8_attempt - 1, &job);
    cr_assert_eq(job.attempt, 5);
    sl_job_clear(&job);
}

Test(envelope, names_validated)
{
    kv q = { "queue", 's', 0, "a b" };
    msgpack_sbuffer sb;
    build(&sb, NULL, &q, 1);
    sl_job job;
    sl_err err = { 0 };
    cr_assert_eq(sl_envelope_decode(sb.data, sb.size, &job, &err), -1);
    cr_assert_eq(strncmp(err.msg, "field 'queue': invalid queue name \"a b\" (want ", 46), 0,
                 "%s", err.msg);
    msgpack_sbuffer_destroy(&sb);

    kv qb = { "queue", 's', 0, "{q}" };
    build_fails(NULL, &qb, 1, "field 'queue': invalid queue name \"{q}\"", NULL);
    kv qe = { "queue", 's', 0, "" };
    build_fails(NULL, &qe, 1, "field 'queue'", "invalid queue name");
    kv k = { "kind", 's', 0, "Deploy" };
    build_fails(NULL, &k, 1, "field 'kind': invalid kind name \"Deploy\"", NULL);
    kv id = { "id", 's', 0, "a/b" };
    build_fails(NULL, &id, 1, "field 'id': invalid job id \"a/b\"", NULL);
    kv ide = { "id", 's', 0, "" };
    build_fails(NULL, &ide, 1, "field 'id'", "invalid job id");
}

Test(envelope, bad_values_quoted_safely)
{
    /* Quotes, backslashes and control bytes are escaped; long values are cut. */
    kv q = { "queue", 's', 0, "a\"b\\c\x01\n" };
    build_fails(NULL, &q, 1, "invalid queue name \"a\\\"b\\\\c\\x01\\x0a\"", NULL);

    char longid[400];
    memset(longid, 'z', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    longid[0] = '/';
    kv id = { "id", 's', 0, longid };
    msgpack_sbuffer sb;
    build(&sb, NULL, &id, 1);
    sl_job job;
    sl_err err = { 0 };
    cr_assert_eq(sl_envelope_decode(sb.data, sb.size, &job, &err), -1);
    cr_assert(strstr(err.msg, "\"/zzzz") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "\"...") != NULL, "%s", err.msg);
    cr_assert_lt(strlen(err.msg), 200);
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, nul_bytes_rejected)
{
    const char *strs[] = { "id", "kind", "queue", "run", "step", "unique_key" };
    for (size_t i = 0; i < COUNT(strs); i++) {
        kv over = { strs[i], 'S', 3, "a\0b" };
        char want[64];
        snprintf(want, sizeof want, "field '%s': contains a NUL byte", strs[i]);
        build_fails(NULL, &over, 1, want, NULL);
    }
}

Test(envelope, invalid_utf8_rejected)
{
    const char *strs[] = { "run", "step", "unique_key" };
    for (size_t i = 0; i < COUNT(strs); i++) {
        kv over = { strs[i], 's', 0, "caf\xe9" };
        char want[64];
        snprintf(want, sizeof want, "field '%s': not valid UTF-8", strs[i]);
        build_fails(NULL, &over, 1, want, NULL);
    }
    kv ok = { "unique_key", 's', 0, "caf\xc3\xa9" };
    msgpack_sbuffer sb;
    build(&sb, NULL, &ok, 1);
    sl_job job;
    decode_ok(sb.data, sb.size, &job);
    sl_job_clear(&job);
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, duplicate_keys_rejected)
{
    kv dup_known[BASE_N + 1];
    memcpy(dup_known, base, sizeof base);
    dup_known[BASE_N] = (kv)KV_INT("attempt", 2);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_entries(&sb, dup_known, BASE_N + 1);
    decode_fails(sb.data, sb.size, "field 'attempt': duplicate key", NULL);
    msgpack_sbuffer_destroy(&sb);

    kv dup_unknown[BASE_N + 3];
    memcpy(dup_unknown, base, sizeof base);
    dup_unknown[BASE_N] = (kv)KV_INT("x", 1);
    dup_unknown[BASE_N + 1] = (kv)KV_INT("y", 1);
    dup_unknown[BASE_N + 2] = (kv)KV_OF("x", 'n');
    msgpack_sbuffer_init(&sb);
    pack_entries(&sb, dup_unknown, BASE_N + 3);
    decode_fails(sb.data, sb.size, "duplicate key \"x\"", NULL);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- malformed MessagePack ---------------------------------------------- */

Test(envelope, not_a_map)
{
    decode_fails("", 0, "empty envelope", NULL);
    decode_fails("\x91\x01", 2, "expected map, got array", NULL);
    decode_fails("\xa3job", 4, "expected map, got str", NULL);
    decode_fails("\xc0", 1, "expected map, got nil", NULL);
    decode_fails("\xc1", 1, "invalid MessagePack", NULL);
    decode_fails("{\"v\":1}", 7, "expected map, got 7 bytes", NULL); /* JSON is not MessagePack */
    decode_fails("\x81\xa1v\x01\x01", 5, "trailing bytes", NULL);
}

Test(envelope, non_string_key)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_entries(&sb, base, BASE_N);
    sb.data[0] = (char)(0x80 | (BASE_N + 1)); /* one more entry: 1 => true */
    msgpack_pack_int64(&pk, 1);
    msgpack_pack_true(&pk);
    decode_fails(sb.data, sb.size, "key #8: expected str, got integer", NULL);
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, trailing_bytes)
{
    msgpack_sbuffer sb;
    build(&sb, NULL, NULL, 0);
    msgpack_sbuffer_write(&sb, "\xc0", 1);
    decode_fails(sb.data, sb.size, "trailing bytes after envelope", NULL);
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, every_truncation_rejected)
{
    msgpack_sbuffer args_sb, sb;
    sl_job in = full_job(&args_sb);
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(sl_envelope_encode(&in, &sb, NULL), 0);
    for (size_t n = 0; n < sb.size; n++) {
        /* A fresh heap copy of exactly n bytes, so ASan sees any overread. */
        char *cut = malloc(n ? n : 1);
        memcpy(cut, sb.data, n);
        sl_job job;
        sl_err err = { 0 };
        cr_assert_eq(sl_envelope_decode(cut, n, &job, &err), -1, "prefix of %zu accepted", n);
        cr_assert_eq(err.code, SL_EDECODE);
        cr_assert_null(job.id);
        free(cut);
    }
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&args_sb);
}

Test(envelope, huge_declared_sizes)
{
    /* Containers and strings that claim far more than the bytes present are
     * rejected before anything is allocated for them. */
    decode_fails("\xdf\xff\xff\xff\xff", 5, "truncated", NULL);
    decode_fails("\xdd\xff\xff\xff\xff", 5, "truncated", NULL);
    decode_fails("\x81\xa1x\xdd\xff\xff\xff\xff\x01", 10, "truncated", NULL);
    decode_fails("\x81\xa1x\xdf\x7f\xff\xff\xff\x01\x01", 11, "truncated", NULL);
    decode_fails("\x81\xa1x\xdb\xff\xff\xff\xff", 8, "truncated", NULL);
    decode_fails("\x81\xa1x\xc6\xff\xff\xff\xf0", 8, "truncated", NULL);
    decode_fails("\x81\xa1x\xc9\xff\xff\xff\xf0\x01", 9, "truncated", NULL);
}

/* An envelope whose args hold `levels` containers: the args map itself and
 * levels - 1 nested one-element arrays inside it. */
static void build_deep_args(msgpack_sbuffer *sb, int levels)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    /* The base entries but args, under a header counting args too. */
    kv list[BASE_N];
    size_t n = 0;
    for (size_t i = 0; i < BASE_N; i++)
        if (strcmp(base[i].key, "args") != 0)
            list[n++] = base[i];
    pack_entries(sb, list, n);
    sb->data[0] = (char)(0x80 | BASE_N);
    pack_str(&pk, "args", 4);
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, "a", 1);
    for (int i = 1; i < levels; i++)
        msgpack_pack_array(&pk, 1);
    msgpack_pack_nil(&pk);
}

Test(envelope, nesting_limit)
{
    /* msgpack-c unpacks at most 32 nested containers; the envelope map is
     * one of them, leaving 31 for args.  The encoder enforces the same. */
    msgpack_sbuffer sb;
    build_deep_args(&sb, 31);
    sl_job job;
    decode_ok(sb.data, sb.size, &job);
    msgpack_sbuffer re;
    msgpack_sbuffer_init(&re);
    sl_err err = { 0 };
    cr_assert_eq(sl_envelope_encode(&job, &re, &err), 0, "%s", err.msg);
    sl_job_clear(&job);
    msgpack_sbuffer_destroy(&re);
    msgpack_sbuffer_destroy(&sb);

    build_deep_args(&sb, 32);
    decode_fails(sb.data, sb.size, "nested deeper than 32", NULL);
    msgpack_sbuffer_destroy(&sb);

    /* The same 32-level args handed to the encoder directly. */
    char args[40];
    args[0] = (char)0x81;
    args[1] = (char)0xa1;
    args[2] = 'a';
    memset(args + 3, 0x91, 31);
    args[34] = (char)0xc0;
    sl_job deep = { .id = "j", .kind = "k", .queue = "q", .attempt = 1,
                    .args = args, .args_len = 35 };
    msgpack_sbuffer_init(&re);
    cr_assert_eq(sl_envelope_encode(&deep, &re, &err), -1);
    cr_assert(strstr(err.msg, "field 'args': nested deeper than 31") != NULL, "%s", err.msg);
    deep.args_len = 34; /* 31 levels: the last array now holds nil */
    args[33] = (char)0xc0;
    cr_assert_eq(sl_envelope_encode(&deep, &re, &err), 0, "%s", err.msg);
    msgpack_sbuffer_destroy(&re);
}

/* xorshift64: deterministic, so a failure reproduces. */
static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Decodes data; if it is accepted, it must re-encode and decode the same. */
static void decode_anything(const char *data, size_t len)
{
    sl_job job;
    sl_err err = { 0 };
    if (sl_envelope_decode(data, len, &job, &err) < 0) {
        cr_assert_eq(err.code, SL_EDECODE);
        cr_assert_null(job.id);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(sl_envelope_encode(&job, &sb, &err), 0, "decoded but not encodable: %s", err.msg);
    sl_job again;
    decode_ok(sb.data, sb.size, &again);
    cr_assert_str_eq(again.id, job.id);
    cr_assert_eq(again.args_len, job.args_len);
    sl_job_clear(&again);
    sl_job_clear(&job);
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, random_bytes_never_crash)
{
    uint64_t x = 0x2545f4914f6cdd1du;
    for (int iter = 0; iter < 100000; iter++) {
        size_t n = next_rand(&x) % 64;
        char *buf = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)(next_rand(&x) >> 24);
        /* Often start with a map header, so the decoder gets further. */
        if (n > 0 && iter % 2)
            buf[0] = (char)(0x80 | (buf[0] & 0x0f));
        decode_anything(buf, n);
        free(buf);
    }
}

Test(envelope, mutated_envelopes_never_crash)
{
    msgpack_sbuffer args_sb, sb;
    sl_job in = full_job(&args_sb);
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(sl_envelope_encode(&in, &sb, NULL), 0);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int iter = 0; iter < 100000; iter++) {
        char *buf = malloc(sb.size);
        memcpy(buf, sb.data, sb.size);
        int flips = 1 + (int)(next_rand(&x) % 4);
        for (int k = 0; k < flips; k++)
            buf[next_rand(&x) % sb.size] = (char)(next_rand(&x) >> 24);
        size_t n = iter % 3 ? sb.size : (size_t)(next_rand(&x) % sb.size);
        decode_anything(buf, n);
        free(buf);
    }
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&args_sb);
}

/* ---- encode validation ----------------------------------------------------- */

static void encode_fails(const sl_job *job, const char *want1, const char *want2)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, "keep", 4);
    sl_err err = { 0 };
    cr_assert_eq(sl_envelope_encode(job, &sb, &err), -1, "accepted, want \"%s\"", want1);
    cr_assert_eq(err.code, SL_EINVAL);
    cr_assert(strstr(err.msg, want1) != NULL, "\"%s\" lacks \"%s\"", err.msg, want1);
    if (want2)
        cr_assert(strstr(err.msg, want2) != NULL, "\"%s\" lacks \"%s\"", err.msg, want2);
    cr_assert_eq(sb.size, 4, "output changed on failure");
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, encode_validates)
{
    const sl_job good = { .id = "j", .kind = "k", .queue = "q", .attempt = 1 };
    sl_job j;

    j = good, j.id = NULL;
    encode_fails(&j, "field 'id': missing", NULL);
    j = good, j.id = "has space";
    encode_fails(&j, "field 'id'", "invalid job id");
    j = good, j.kind = NULL;
    encode_fails(&j, "field 'kind': missing", NULL);
    j = good, j.kind = "UPPER";
    encode_fails(&j, "field 'kind'", "invalid kind name");
    j = good, j.queue = NULL;
    encode_fails(&j, "field 'queue': missing", NULL);
    j = good, j.queue = "a{b}";
    encode_fails(&j, "field 'queue'", "invalid queue name");
    j = good, j.attempt = 0;
    encode_fails(&j, "field 'attempt'", ">= 1");
    j = good, j.max_attempts = -1;
    encode_fails(&j, "field 'max_attempts'", NULL);
    j = good, j.timeout_ms = -5;
    encode_fails(&j, "field 'timeout_ms'", NULL);
    j = good, j.enqueued_at = -1;
    encode_fails(&j, "field 'enqueued_at'", NULL);
    j = good, j.unique_key = "\xff";
    encode_fails(&j, "field 'unique_key': not valid UTF-8", NULL);
    j = good, j.run = "\xc3";
    encode_fails(&j, "field 'run'", NULL);
    j = good, j.step = "\xed\xa0\x80";
    encode_fails(&j, "field 'step'", NULL);
}

Test(envelope, encode_checks_args)
{
    sl_job j = { .id = "j", .kind = "k", .queue = "q", .attempt = 1 };
    j.args = "\x91\x01", j.args_len = 2;
    encode_fails(&j, "field 'args': expected map, got array", NULL);
    j.args = "\x80\x80", j.args_len = 2;
    encode_fails(&j, "field 'args'", "trailing bytes");
    j.args = "\x81\xa1k", j.args_len = 3;
    encode_fails(&j, "field 'args'", "not valid MessagePack");
    j.args = "\xdf\xff\xff\xff\xff", j.args_len = 5;
    encode_fails(&j, "field 'args'", "not valid MessagePack");
    j.args = "\xc1", j.args_len = 1;
    encode_fails(&j, "field 'args'", "not valid MessagePack");

    /* Non-NULL args of length 0 mean an empty map, like NULL. */
    j.args = "", j.args_len = 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(sl_envelope_encode(&j, &sb, NULL), 0);
    sl_job out;
    decode_ok(sb.data, sb.size, &out);
    cr_assert_eq(out.args_len, 1);
    sl_job_clear(&out);
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, encode_appends)
{
    sl_job j = { .id = "j", .kind = "k", .queue = "q", .attempt = 1 };
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(sl_envelope_encode(&j, &sb, NULL), 0);
    size_t one = sb.size;
    cr_assert_eq(sl_envelope_encode(&j, &sb, NULL), 0);
    cr_assert_eq(sb.size, 2 * one);
    cr_assert_eq(memcmp(sb.data, sb.data + one, one), 0);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- name rules ------------------------------------------------------------ */

Test(envelope, queue_names)
{
    char longest[SL_NAME_MAX + 2];
    memset(longest, 'Q', SL_NAME_MAX);
    longest[SL_NAME_MAX] = '\0';
    cr_assert(sl_envelope_queue_valid(longest));
    longest[SL_NAME_MAX] = 'Q';
    longest[SL_NAME_MAX + 1] = '\0';
    cr_assert_not(sl_envelope_queue_valid(longest));

    const char *ok[] = { "default", "Deploys", "a", "q_1.x-y", "0" };
    for (size_t i = 0; i < COUNT(ok); i++)
        cr_assert(sl_envelope_queue_valid(ok[i]), "%s", ok[i]);
    const char *bad[] = { "", "a b", "{q}", "q}", "a:b", "a/b", "caf\xc3\xa9", "a*", "\n" };
    for (size_t i = 0; i < COUNT(bad); i++)
        cr_assert_not(sl_envelope_queue_valid(bad[i]), "%s", bad[i]);
    cr_assert_not(sl_envelope_queue_valid(NULL));
}

Test(envelope, kind_names)
{
    char longest[SL_NAME_MAX + 2];
    memset(longest, 'k', SL_NAME_MAX);
    longest[SL_NAME_MAX] = '\0';
    cr_assert(sl_envelope_kind_valid(longest));
    longest[SL_NAME_MAX] = 'k';
    longest[SL_NAME_MAX + 1] = '\0';
    cr_assert_not(sl_envelope_kind_valid(longest));

    const char *ok[] = { "deploy", "noop", "my_kind.v2", "a-b", "0" };
    for (size_t i = 0; i < COUNT(ok); i++)
        cr_assert(sl_envelope_kind_valid(ok[i]), "%s", ok[i]);
    const char *bad[] = { "", "Deploy", "a b", "a:b", "{k}", "a/b" };
    for (size_t i = 0; i < COUNT(bad); i++)
        cr_assert_not(sl_envelope_kind_valid(bad[i]), "%s", bad[i]);
    cr_assert_not(sl_envelope_kind_valid(NULL));
}

/* The optional retry_* keys: decoded, re-encoded, and checked strictly. */
Test(envelope, retry_fields)
{
    const kv over[] = { { "retry_backoff", 's', 0, "fixed" }, { "retry_initial_ms", 'i', 250, NULL },
                        { "retry_max_ms", 'i', 60000, NULL } };
    msgpack_sbuffer sb;
    build(&sb, NULL, over, COUNT(over));
    sl_job job;
    decode_ok(sb.data, sb.size, &job);
    cr_assert_eq(job.retry_backoff, SL_BACKOFF_FIXED);
    cr_assert_eq(job.retry_initial_ms, 250);
    cr_assert_eq(job.retry_max_ms, 60000);
    msgpack_sbuffer again;
    msgpack_sbuffer_init(&again);
    sl_err err = { 0 };
    job.retry_backoff = SL_BACKOFF_EXPONENTIAL;
    cr_assert_eq(sl_envelope_encode(&job, &again, &err), 0, "%s", err.msg);
    sl_job back;
    decode_ok(again.data, again.size, &back);
    cr_assert_eq(back.retry_backoff, SL_BACKOFF_EXPONENTIAL);
    cr_assert_eq(back.retry_initial_ms, 250);
    cr_assert_eq(back.retry_max_ms, 60000);
    sl_job_clear(&back);
    sl_job_clear(&job);
    msgpack_sbuffer_destroy(&again);
    msgpack_sbuffer_destroy(&sb);

    const kv bad_backoff[] = { { "retry_backoff", 's', 0, "linear" } };
    build_fails(NULL, bad_backoff, 1, "retry_backoff", "\"linear\"");
    const kv bad_type[] = { { "retry_backoff", 'i', 1, NULL } };
    build_fails(NULL, bad_type, 1, "retry_backoff", NULL);
    const kv zero[] = { { "retry_initial_ms", 'i', 0, NULL } };
    build_fails(NULL, zero, 1, "retry_initial_ms", NULL);
    const kv as_str[] = { { "retry_max_ms", 's', 0, "60000" } };
    build_fails(NULL, as_str, 1, "retry_max_ms", NULL);
}

/* ---- args: what the handler reads is what PostgreSQL stores -------------- */

/* The base envelope with args = the raw MessagePack bytes args[0..n). */
static void build_raw_args(msgpack_sbuffer *sb, const char *args, size_t n)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    kv list[BASE_N];
    size_t k = 0;
    for (size_t i = 0; i < BASE_N; i++)
        if (strcmp(base[i].key, "args") != 0)
            list[k++] = base[i];
    pack_entries(sb, list, k);
    sb->data[0] = (char)(0x80 | BASE_N);
    pack_str(&pk, "args", 4);
    msgpack_sbuffer_write(sb, args, n);
}

/* Asserts the envelope with these args is refused with exactly want, and
 * that the encoder refuses the same args with the same message. */
static void args_refused(const char *args, size_t n, const char *want)
{
    msgpack_sbuffer sb;
    build_raw_args(&sb, args, n);
    sl_job job;
    sl_err err = { 0 };
    cr_assert_eq(sl_envelope_decode(sb.data, sb.size, &job, &err), -1, "accepted, want \"%s\"", want);
    cr_assert_eq(err.code, SL_EDECODE);
    cr_assert_str_eq(err.msg, want);
    cr_assert_null(job.id);
    cr_assert_null(job.args);
    msgpack_sbuffer_destroy(&sb);

    sl_job j = { .id = "j", .kind = "k", .queue = "q", .attempt = 1, .args = (char *)args,
                 .args_len = n };
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(sl_envelope_encode(&j, &sb, &err), -1, "encoder accepted, want \"%s\"", want);
    cr_assert_eq(err.code, SL_EINVAL);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

#define ARGS_REFUSED(lit, want) args_refused(lit, sizeof lit - 1, want)

Test(envelope, args_nul_refused_in_keys_and_values_at_any_depth)
{
    const char *value = "field 'args': a string holds U+0000 (PostgreSQL cannot store it)";
    const char *key = "field 'args': a key holds U+0000 (PostgreSQL cannot store it)";
    ARGS_REFUSED("\x81\xa1s\xa3" "a\0b", value);                         /* {"s":"a\0b"} */
    ARGS_REFUSED("\x81\xa3" "k\0k" "\x01", key);                         /* {"k\0k":1} */
    ARGS_REFUSED("\x81\xa1" "a" "\x91\x81\xa1" "b" "\x92\xa1x\xa1\0", value); /* {"a":[{"b":["x","\0"]}]} */
    ARGS_REFUSED("\x81\xa1" "a" "\x81\xa1\0\xc0", key);                  /* {"a":{"\0":nil}} */
}

Test(envelope, args_duplicate_keys_refused)
{
    /* {"target":"staging","target":"prod"}: the handler would read staging,
     * jsonb would store prod. */
    ARGS_REFUSED("\x82\xa6target\xa7staging\xa6target\xa4prod",
                 "field 'args': duplicate key \"target\" in a map");
    ARGS_REFUSED("\x81\xa1" "a" "\x92\x01\x82\xa1x\x01\xa1x\x02",
                 "field 'args': duplicate key \"x\" in a map");
    /* Different maps may share keys. */
    msgpack_sbuffer sb;
    const char ok[] = "\x82\xa1" "a" "\x81\xa1x\x01\xa1" "b" "\x81\xa1x\x02";
    build_raw_args(&sb, ok, sizeof ok - 1);
    sl_job job;
    decode_ok(sb.data, sb.size, &job);
    sl_job_clear(&job);
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, args_invalid_utf8_refused)
{
    /* Stored args used to hold U+FFFD where the handler saw the raw byte. */
    ARGS_REFUSED("\x81\xa1s\xa4" "caf\xe9", "field 'args': a string is not valid UTF-8");
    ARGS_REFUSED("\x81\xa2\xc0\xaf\x01", "field 'args': a key is not valid UTF-8");   /* overlong */
    ARGS_REFUSED("\x81\xa1" "a" "\x91\xa3\xed\xa0\x80", "field 'args': a string is not valid UTF-8"); /* surrogate */
    /* The envelope's own strings: id, kind and queue allow ASCII only. */
    kv bad_id = { "id", 's', 0, "caf\xe9" };
    build_fails(NULL, &bad_id, 1, "field 'id': invalid job id \"caf\\xe9\"", NULL);
    kv bad_kind = { "kind", 's', 0, "d\xc3\xa9ploy" };
    build_fails(NULL, &bad_kind, 1, "field 'kind': invalid kind name \"d\\xc3\\xa9ploy\"", NULL);
    kv bad_queue = { "queue", 's', 0, "q\xff" };
    build_fails(NULL, &bad_queue, 1, "field 'queue': invalid queue name \"q\\xff\"", NULL);
}

Test(envelope, args_non_string_keys_refused)
{
    ARGS_REFUSED("\x81\x01\xa1" "a", "field 'args': map key #1 is of type integer; object keys must be strings");
    ARGS_REFUSED("\x82\xa1s\x01\xc0\x01", "field 'args': map key #2 is of type nil; object keys must be strings");
    ARGS_REFUSED("\x81\xa1" "a" "\x81\xc4\x01" "f" "\x01",
                 "field 'args': map key #1 is of type bin; object keys must be strings");
}

/* The fuzzer's find: args whose maps are used as map keys 30 levels deep.
 * Converting them to JSON re-escaped each level, doubling the output
 * (6.4 GB from 115 bytes).  Refused at decoding now, in time linear in
 * the input. */
Test(envelope, args_with_maps_as_keys_refused)
{
    char args[128];
    size_t n = 0;
    for (int i = 0; i < 30; i++)
        args[n++] = (char)0x81;
    args[n++] = (char)0xa1;
    args[n++] = '"';
    for (int i = 0; i < 30; i++) {
        args[n++] = (char)0xa2;
        args[n++] = '\\';
        args[n++] = '"';
    }
    args_refused(args, n, "field 'args': map key #1 is of type map; object keys must be strings");
}

Test(envelope, args_values_json_cannot_hold_refused)
{
    ARGS_REFUSED("\x81\xa1" "e" "\xd4\x01\x01", "field 'args': JSON cannot hold a MessagePack ext value (type 1)");
    ARGS_REFUSED("\x81\xa1" "f" "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", "field 'args': JSON cannot hold NaN");
}

Test(envelope, args_nesting_limit_is_sl_json_max_depth)
{
    /* SL_JSON_MAX_DEPTH levels are accepted; one more is refused with a
     * message that names the limit for args. */
    msgpack_sbuffer sb;
    build_deep_args(&sb, SL_JSON_MAX_DEPTH);
    sl_job job;
    decode_ok(sb.data, sb.size, &job);
    sl_job_clear(&job);
    msgpack_sbuffer_destroy(&sb);
    build_deep_args(&sb, SL_JSON_MAX_DEPTH + 1);
    sl_err err = { 0 };
    cr_assert_eq(sl_envelope_decode(sb.data, sb.size, &job, &err), -1);
    cr_assert_str_eq(err.msg, "MessagePack nested deeper than 32 levels (args may nest at most 31)");
    msgpack_sbuffer_destroy(&sb);
}

/* msgpack-c gives empty strings a NULL pointer: no NULL + 0, no memchr or
 * memcpy on NULL (UndefinedBehaviorSanitizer). */
Test(envelope, empty_strings_decode_without_undefined_behaviour)
{
    const char args[] = "\x82\xa0\xa0\xa1" "a" "\x91\xa0";   /* {"":"","a":[""]} */
    msgpack_sbuffer sb;
    build_raw_args(&sb, args, sizeof args - 1);
    sl_job job;
    decode_ok(sb.data, sb.size, &job);
    cr_assert_eq(job.args_len, sizeof args - 1);
    sl_job_clear(&job);
    msgpack_sbuffer_destroy(&sb);
    kv empty_id = { "id", 's', 0, "" };
    build_fails(NULL, &empty_id, 1, "field 'id': invalid job id \"\"", NULL);
    kv empty_run = { "run", 's', 0, "" };
    build(&sb, NULL, &empty_run, 1);
    decode_ok(sb.data, sb.size, &job);
    cr_assert_str_eq(job.run, "");
    sl_job_clear(&job);
    msgpack_sbuffer_destroy(&sb);
}

Test(envelope, sig_is_64_bytes_of_bin_and_round_trips)
{
    char sig[65];
    for (int i = 0; i < 64; i++)
        sig[i] = (char)('A' + i % 26);
    sig[64] = '\0';
    kv ok[] = { { "sig", 'b', 0, sig } };
    msgpack_sbuffer sb;
    build(&sb, NULL, ok, 1);
    sl_job job;
    decode_ok(sb.data, sb.size, &job);
    msgpack_sbuffer_destroy(&sb);
    cr_assert_eq(job.sig_len, 64);
    cr_assert_eq(memcmp(job.sig, sig, 64), 0);
    /* the worker's retry and `dead retry` re-encode the job: sig travels */
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    sl_err err;
    job.attempt = 2;
    cr_assert_eq(sl_envelope_encode(&job, &out, &err), 0, "%s", err.msg);
    sl_job again;
    decode_ok(out.data, out.size, &again);
    cr_assert_eq(again.sig_len, 64);
    cr_assert_eq(memcmp(again.sig, sig, 64), 0);
    cr_assert_eq(again.attempt, 2);
    msgpack_sbuffer_destroy(&out);
    sl_job_clear(&again);
    sl_job_clear(&job);

    kv as_str[] = { KV_STR("sig", sig) };
    build_fails(NULL, as_str, 1, "field 'sig': expected bin, got str", NULL);
    kv short_sig[] = { { "sig", 'b', 0, "twelve bytes" } };
    build_fails(NULL, short_sig, 1, "field 'sig': expected 64 bytes, got 12", NULL);
    kv nil_sig[] = { KV_OF("sig", 'n') };
    build(&sb, NULL, nil_sig, 1);
    decode_ok(sb.data, sb.size, &job);
    cr_assert_null(job.sig, "nil means absent");
    sl_job_clear(&job);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- microsecond enqueue time ------------------------------------------------ */

/* enqueued_at_us is optional: a producer that writes milliseconds only is
 * read as the start of its millisecond; one that writes both round-trips;
 * the two must tell the same millisecond. */
Test(envelope, enqueued_at_us_optional_and_consistent)
{
    sl_job ms_only;
    msgpack_sbuffer sb;
    build(&sb, NULL, NULL, 0);
    decode_ok(sb.data, sb.size, &ms_only);
    cr_assert_eq(ms_only.enqueued_at_us, 0);
    cr_assert_eq(sl_job_enqueued_us(&ms_only), 1700000000000LL * 1000);
    sl_job_clear(&ms_only);
    msgpack_sbuffer_destroy(&sb);

    const kv both[] = { KV_INT("enqueued_at_us", 1700000000000417LL) };
    build(&sb, NULL, both, 1);
    sl_job us;
    decode_ok(sb.data, sb.size, &us);
    cr_assert_eq(us.enqueued_at, 1700000000000LL);
    cr_assert_eq(us.enqueued_at_us, 1700000000000417LL);
    cr_assert_eq(sl_job_enqueued_us(&us), 1700000000000417LL);
    msgpack_sbuffer again;
    msgpack_sbuffer_init(&again);
    sl_err err = { 0 };
    cr_assert_eq(sl_envelope_encode(&us, &again, &err), 0, "%s", err.msg);
    cr_assert_eq(key_count(&again), 8);
    sl_job back;
    decode_ok(again.data, again.size, &back);
    cr_assert_eq(back.enqueued_at_us, 1700000000000417LL);
    sl_job_clear(&back);
    sl_job_clear(&us);
    msgpack_sbuffer_destroy(&again);
    msgpack_sbuffer_destroy(&sb);

    const kv other_ms[] = { KV_INT("enqueued_at_us", 1700000000001000LL) };
    build_fails(NULL, other_ms, 1, "field 'enqueued_at_us'", "within the millisecond");
    const kv negative[] = { KV_INT("enqueued_at_us", -5) };
    build_fails(NULL, negative, 1, "field 'enqueued_at_us'", ">= 0");
    const kv text[] = { KV_STR("enqueued_at_us", "now") };
    build_fails(NULL, text, 1, "field 'enqueued_at_us'", "expected integer");

    sl_job stamped = { .id = "j", .kind = "k", .queue = "q", .attempt = 1 };
    sl_job_stamp_now(&stamped);
    cr_assert_gt(stamped.enqueued_at_us, 0);
    cr_assert_eq(stamped.enqueued_at_us / 1000, stamped.enqueued_at);
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(sl_envelope_encode(&stamped, &sb, &err), 0, "%s", err.msg);
    msgpack_sbuffer_destroy(&sb);
}
