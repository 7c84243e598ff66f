/* envelope.c: wire format v1 encode/decode (see envelope.h, docs/wire-format.md).
 *
 * The bytes we decode come from anyone who can write to Redis, so decoding
 * goes in three steps, each making the next one safe:
 *
 *   1. scan() walks the raw MessagePack without building anything and checks
 *      that the bytes hold exactly one complete object, and that no container
 *      declares more elements than there are bytes left to hold them.  That
 *      second check matters: msgpack-c allocates a container's element array
 *      from its declared count before reading the elements, so five hostile
 *      bytes (an array32 header saying 0xffffffff) would otherwise ask for
 *      ~100 GB.  After scan() the whole tree costs at most a small multiple
 *      of len.
 *   2. msgpack_unpack_next() builds the object tree.  It caps nesting at
 *      32 containers and fails beyond that.
 *   3. The top-level map is matched against the field table.  To keep the
 *      producer's exact `args` bytes (not a re-encoding), the top-level
 *      entries are also walked with scan() in step with the unpacked map:
 *      msgpack-c keeps map entries in wire order, so entry i's value span is
 *      known without parsing anything twice.
 *
 * Encoding runs the same validation (check_job) as decoding, so whatever we
 * put on a stream our own workers accept; the args of an encoded job must be
 * one MessagePack map nested no deeper than ARGS_DEPTH_MAX, the most that
 * still fits under msgpack-c's limit once wrapped in the envelope map.
 */
#include "envelope.h"
#include "json.h"
#include "utf8.h"
#include "jobid.h"
#include "mem.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* msgpack-c's unpacker fails on data nested deeper than this many
 * containers (MSGPACK_EMBED_STACK_SIZE, fixed when libmsgpackc was built;
 * the tests pin it).  The envelope map takes one level of it. */
#define UNPACK_DEPTH_MAX 32
#define ARGS_DEPTH_MAX SL_JSON_MAX_DEPTH
_Static_assert(ARGS_DEPTH_MAX <= UNPACK_DEPTH_MAX - 1,
               "args nested SL_JSON_MAX_DEPTH deep must fit in msgpack-c's limit inside the envelope");

/* Longest value quoted in an error message, in input bytes. */
#define QUOTE_MAX 40

enum field {
    F_V, F_ID, F_KIND, F_ARGS, F_QUEUE, F_ATTEMPT, F_MAX_ATTEMPTS, F_TIMEOUT_MS,
    F_ENQUEUED_AT, F_RUN, F_STEP, F_UNIQUE_KEY, F_RETRY_BACKOFF, F_RETRY_INITIAL_MS,
    F_RETRY_MAX_MS, F_SIG, NFIELDS
};

/* Wire names, indexed by enum field; also the order errors are reported in. */
static const char *const field_name[NFIELDS] = {
    "v", "id", "kind", "args", "queue", "attempt", "max_attempts", "timeout_ms",
    "enqueued_at", "run", "step", "unique_key", "retry_backoff", "retry_initial_ms",
    "retry_max_ms", "sig",
};

/* ---- raw MessagePack walking ------------------------------------------- */

enum { SCAN_OK = 0, SCAN_TRUNCATED = -1, SCAN_INVALID = -2 };

/* Advances *off past the one complete MessagePack object starting there.
 * Iterative (a count of objects still owed), so nesting costs no stack.
 * Returns SCAN_TRUNCATED when the bytes end early or a container declares
 * more elements than the remaining bytes could hold, SCAN_INVALID on the
 * reserved byte 0xc1. */
static int scan(const unsigned char *p, size_t len, size_t *off)
{
    size_t o = *off;
    uint64_t owed = 1; /* objects still to read, nested ones included */
    while (owed > 0) {
        if (o >= len)
            return SCAN_TRUNCATED;
        unsigned b = p[o++];
        uint64_t skip = 0;     /* payload bytes after the header */
        uint64_t children = 0; /* objects directly inside this one */
        unsigned lenbytes = 0; /* big-endian length field that follows */
        int per_len = 0;       /* what the length counts: 0 bytes, 1 elements, 2 pairs */
        if (b <= 0x7f || b >= 0xe0) {
            /* positive/negative fixint */
        } else if (b <= 0x8f) {
            children = 2u * (b & 0x0f);
        } else if (b <= 0x9f) {
            children = b & 0x0f;
        } else if (b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc0: case 0xc2: case 0xc3: break;            /* nil, false, true */
            case 0xc1: return SCAN_INVALID;                    /* never used */
            case 0xc4: case 0xd9: lenbytes = 1; break;         /* bin8, str8 */
            case 0xc5: case 0xda: lenbytes = 2; break;         /* bin16, str16 */
            case 0xc6: case 0xdb: lenbytes = 4; break;         /* bin32, str32 */
            case 0xc7: lenbytes = 1; skip = 1; break;          /* ext8 + type */
            case 0xc8: lenbytes = 2; skip = 1; break;          /* ext16 + type */
            case 0xc9: lenbytes = 4; skip = 1; break;          /* ext32 + type */
            case 0xca: skip = 4; break;                        /* float32 */
            case 0xcb: skip = 8; break;                        /* float64 */
            case 0xcc: case 0xd0: skip = 1; break;             /* (u)int8 */
            case 0xcd: case 0xd1: skip = 2; break;             /* (u)int16 */
            case 0xce: case 0xd2: skip = 4; break;             /* (u)int32 */
            case 0xcf: case 0xd3: skip = 8; break;             /* (u)int64 */
            case 0xd4: skip = 2; break;                        /* fixext1 */
            case 0xd5: skip = 3; break;                        /* fixext2 */
            case 0xd6: skip = 5; break;                        /* fixext4 */
            case 0xd7: skip = 9; break;                        /* fixext8 */
            case 0xd8: skip = 17; break;                       /* fixext16 */
            case 0xdc: lenbytes = 2; per_len = 1; break;       /* array16 */
            case 0xdd: lenbytes = 4; per_len = 1; break;       /* array32 */
            case 0xde: lenbytes = 2; per_len = 2; break;       /* map16 */
            case 0xdf: lenbytes = 4; per_len = 2; break;       /* map32 */
            }
        }
        if (lenbytes) {
            if (len - o < lenbytes)
                return SCAN_TRUNCATED;
            uint64_t n = 0;
            for (unsigned i = 0; i < lenbytes; i++)
                n = n << 8 | p[o++];
            if (per_len == 0)
                skip += n;
            else
                children = n * (uint64_t)per_len;
        }
        if (skip > len - o)
            return SCAN_TRUNCATED;
        o += (size_t)skip;
        owed = owed - 1 + children;
        /* Every owed object needs at least one byte. */
        if (owed > len - o)
            return SCAN_TRUNCATED;
    }
    *off = o;
    return SCAN_OK;
}

/* Bytes taken by the map header at p[0] (which scan() has vetted). */
static size_t map_header_len(unsigned char b)
{
    return b == 0xde ? 3 : b == 0xdf ? 5 : 1;
}

/* Turns err, set by sl_json_check_msgpack, into "field 'args': <reason>"
 * with code; returns -1. */
static int args_error(sl_err *err, int code)
{
    if (err == NULL)
        return -1;
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", strncmp(err->msg, "JSON: ", 6) == 0 ? err->msg + 6 : err->msg);
    return sl_err_set(err, code, "field 'args': %s", why);
}

/* ---- text helpers -------------------------------------------------------- */

/* Writes s[0..n) into out as a double-quoted string fit for a one-line
 * error message: printable ASCII kept, everything else as \xNN, cut after
 * QUOTE_MAX input bytes with "..." appended.  Returns out. */
static const char *quote(char *out, size_t outsz, const char *s, size_t n)
{
    size_t o = 0;
    assert(outsz >= 4 * QUOTE_MAX + 8);
    out[o++] = '"';
    for (size_t i = 0; i < n && i < QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", c);
        }
    }
    out[o++] = '"';
    if (n > QUOTE_MAX) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* ---- validation shared by decode and encode ------------------------------ */

/* what names the thing ("queue name"), rule says what is allowed. */
static int check_name(const char *s, int code, enum field f, bool ok, const char *what,
                      const char *rule, sl_err *err)
{
    if (s == NULL)
        return sl_err_set(err, code, "field '%s': missing", field_name[f]);
    if (!ok) {
        char q[4 * QUOTE_MAX + 8];
        return sl_err_set(err, code, "field '%s': invalid %s %s (want %s)", field_name[f], what,
                          quote(q, sizeof q, s, strlen(s)), rule);
    }
    return 0;
}

static int check_min(int64_t v, int64_t min, int code, enum field f, sl_err *err)
{
    if (v < min)
        return sl_err_set(err, code, "field '%s': must be >= %" PRId64 ", got %" PRId64,
                          field_name[f], min, v);
    return 0;
}

static int check_text(const char *s, int code, enum field f, sl_err *err)
{
    if (s != NULL && !sl_utf8_valid(s, strlen(s)))
        return sl_err_set(err, code, "field '%s': not valid UTF-8", field_name[f]);
    return 0;
}

/* The rules both directions share, on the decoded form (0/NULL = absent for
 * optional fields).  code is SL_EDECODE or SL_EINVAL. */
static int check_job(const sl_job *job, int code, sl_err *err)
{
    if (check_name(job->id, code, F_ID, sl_jobid_valid(job->id), "job id",
                   "1..128 bytes of A-Z a-z 0-9 . _ : -", err) < 0 ||
        check_name(job->kind, code, F_KIND, sl_envelope_kind_valid(job->kind), "kind name",
                   "1..64 bytes of a-z 0-9 _ . -", err) < 0 ||
        check_name(job->queue, code, F_QUEUE, sl_envelope_queue_valid(job->queue), "queue name",
                   "1..64 bytes of A-Z a-z 0-9 _ . -", err) < 0 ||
        check_min(job->attempt, 1, code, F_ATTEMPT, err) < 0 ||
        check_min(job->max_attempts, 0, code, F_MAX_ATTEMPTS, err) < 0 ||
        check_min(job->timeout_ms, 0, code, F_TIMEOUT_MS, err) < 0 ||
        check_min(job->enqueued_at, 0, code, F_ENQUEUED_AT, err) < 0 ||
        check_text(job->run, code, F_RUN, err) < 0 ||
        check_text(job->step, code, F_STEP, err) < 0 ||
        check_text(job->unique_key, code, F_UNIQUE_KEY, err) < 0 ||
        check_min(job->retry_initial_ms, 0, code, F_RETRY_INITIAL_MS, err) < 0 ||
        check_min(job->retry_max_ms, 0, code, F_RETRY_MAX_MS, err) < 0)
        return -1;
    if (job->retry_backoff != SL_BACKOFF_DEFAULT && job->retry_backoff != SL_BACKOFF_FIXED &&
        job->retry_backoff != SL_BACKOFF_EXPONENTIAL)
        return sl_err_set(err, code, "field 'retry_backoff': unknown backoff %d", (int)job->retry_backoff);
    return 0;
}

bool sl_envelope_queue_valid(const char *queue)
{
    if (queue == NULL)
        return false;
    size_t n = strspn(queue, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
    return n >= 1 && n <= SL_NAME_MAX && queue[n] == '\0';
}

bool sl_envelope_kind_valid(const char *kind)
{
    if (kind == NULL)
        return false;
    size_t n = strspn(kind, "abcdefghijklmnopqrstuvwxyz0123456789_.-");
    return n >= 1 && n <= SL_NAME_MAX && kind[n] == '\0';
}

/* ---- decode -------------------------------------------------------------- */

static int get_int(const msgpack_object *o, enum field f, int64_t min, int64_t *out, sl_err *err)
{
    int64_t v;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX)
            return sl_err_set(err, SL_EDECODE, "field '%s': %" PRIu64 " is out of range",
                              field_name[f], o->via.u64);
        v = (int64_t)o->via.u64;
    } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        v = o->via.i64;
    } else {
        return sl_err_set(err, SL_EDECODE, "field '%s': expected integer, got %s",
                          field_name[f], sl_json_type_name(o));
    }
    if (check_min(v, min, SL_EDECODE, f, err) < 0)
        return -1;
    *out = v;
    return 0;
}

static int get_str(const msgpack_object *o, enum field f, char **out, sl_err *err)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return sl_err_set(err, SL_EDECODE, "field '%s': expected str, got %s", field_name[f],
                          sl_json_type_name(o));
    if (o->via.str.size > 0 && memchr(o->via.str.ptr, '\0', o->via.str.size))
        return sl_err_set(err, SL_EDECODE, "field '%s': contains a NUL byte", field_name[f]);
    *out = sl_xstrndup(o->via.str.ptr, o->via.str.size);
    return 0;
}

static int cmp_key(const void *a, const void *b)
{
    const msgpack_object *x = *(const msgpack_object *const *)a;
    const msgpack_object *y = *(const msgpack_object *const *)b;
    if (x->via.str.size != y->via.str.size)
        return x->via.str.size < y->via.str.size ? -1 : 1;
    return x->via.str.size ? memcmp(x->via.str.ptr, y->via.str.ptr, x->via.str.size) : 0;
}

/* Fails if two of the n unknown str keys are equal.  Sorting keeps this
 * O(n log n) however many keys a hostile producer sends. */
static int check_unknown_dups(const msgpack_object **keys, size_t n, sl_err *err)
{
    if (n < 2)
        return 0;
    qsort(keys, n, sizeof *keys, cmp_key);
    for (size_t i = 1; i < n; i++) {
        if (cmp_key(&keys[i - 1], &keys[i]) == 0) {
            char q[4 * QUOTE_MAX + 8];
            return sl_err_set(err, SL_EDECODE, "duplicate key %s",
                              quote(q, sizeof q, keys[i]->via.str.ptr, keys[i]->via.str.size));
        }
    }
    return 0;
}

static int field_lookup(const char *s, size_t n)
{
    for (int f = 0; f < NFIELDS; f++)
        if (strlen(field_name[f]) == n && memcmp(field_name[f], s, n) == 0)
            return f;
    return -1;
}

/* Fills job from the fields of the unpacked map, which scan() and msgpack-c
 * have both accepted; p/len are the raw bytes, for the args span. */
static int decode_map(const unsigned char *p, size_t len, const msgpack_object_map *m,
                      sl_job *job, sl_err *err)
{
    const msgpack_object *val[NFIELDS] = { 0 };
    const msgpack_object **unknown = sl_xmalloc((m->size ? m->size : 1) * sizeof *unknown);
    size_t nunknown = 0, args_start = 0, args_end = 0;
    size_t raw = map_header_len(p[0]);
    int rc = -1;

    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        /* Walk the raw entry alongside; cannot fail after the full scan. */
        size_t vstart;
        if (scan(p, len, &raw) != SCAN_OK || (vstart = raw, scan(p, len, &raw)) != SCAN_OK) {
            sl_err_set(err, SL_EDECODE, "internal error: envelope walk out of step");
            goto cleanup;
        }
        if (k->type != MSGPACK_OBJECT_STR) {
            sl_err_set(err, SL_EDECODE, "envelope key #%" PRIu32 ": expected str, got %s",
                       i + 1, sl_json_type_name(k));
            goto cleanup;
        }
        int f = field_lookup(k->via.str.ptr, k->via.str.size);
        if (f < 0) {
            unknown[nunknown++] = k;
            continue;
        }
        if (val[f] != NULL) {
            sl_err_set(err, SL_EDECODE, "field '%s': duplicate key", field_name[f]);
            goto cleanup;
        }
        val[f] = &m->ptr[i].val;
        if (f == F_ARGS) {
            args_start = vstart;
            args_end = raw;
        }
    }
    if (check_unknown_dups(unknown, nunknown, err) < 0)
        goto cleanup;

    /* Optional fields sent as nil count as absent. */
    for (int f = 0; f < NFIELDS; f++) {
        bool optional = f == F_MAX_ATTEMPTS || f == F_TIMEOUT_MS || f == F_RUN ||
                        f == F_STEP || f == F_UNIQUE_KEY || f == F_RETRY_BACKOFF ||
                        f == F_RETRY_INITIAL_MS || f == F_RETRY_MAX_MS || f == F_SIG;
        if (optional && val[f] != NULL && val[f]->type == MSGPACK_OBJECT_NIL)
            val[f] = NULL;
        if (!optional && val[f] == NULL) {
            sl_err_set(err, SL_EDECODE, "field '%s': missing", field_name[f]);
            goto cleanup;
        }
        /* The version comes first: a v2 envelope may lack v1's fields, and
         * "unsupported version" is the useful thing to say about it. */
        if (f == F_V) {
            int64_t v;
            if (get_int(val[F_V], F_V, INT64_MIN, &v, err) < 0)
                goto cleanup;
            if (v != SL_WIRE_VERSION) {
                sl_err_set(err, SL_EDECODE, "field 'v': unsupported wire format version %" PRId64,
                           v);
                goto cleanup;
            }
        }
    }

    if (get_str(val[F_ID], F_ID, &job->id, err) < 0 ||
        get_str(val[F_KIND], F_KIND, &job->kind, err) < 0)
        goto cleanup;
    if (val[F_ARGS]->type != MSGPACK_OBJECT_MAP) {
        sl_err_set(err, SL_EDECODE, "field 'args': expected map, got %s", sl_json_type_name(val[F_ARGS]));
        goto cleanup;
    }
    /* What the handler reads must be what PostgreSQL stores: no NUL, no
     * invalid UTF-8, no duplicate or non-string keys, not too deep. */
    if (sl_json_check_msgpack(val[F_ARGS], err) < 0) {
        args_error(err, SL_EDECODE);
        goto cleanup;
    }
    if (get_str(val[F_QUEUE], F_QUEUE, &job->queue, err) < 0 ||
        get_int(val[F_ATTEMPT], F_ATTEMPT, 1, &job->attempt, err) < 0 ||
        (val[F_MAX_ATTEMPTS] &&
         get_int(val[F_MAX_ATTEMPTS], F_MAX_ATTEMPTS, 1, &job->max_attempts, err) < 0) ||
        (val[F_TIMEOUT_MS] &&
         get_int(val[F_TIMEOUT_MS], F_TIMEOUT_MS, 1, &job->timeout_ms, err) < 0) ||
        get_int(val[F_ENQUEUED_AT], F_ENQUEUED_AT, 0, &job->enqueued_at, err) < 0 ||
        (val[F_RUN] && get_str(val[F_RUN], F_RUN, &job->run, err) < 0) ||
        (val[F_STEP] && get_str(val[F_STEP], F_STEP, &job->step, err) < 0) ||
        (val[F_UNIQUE_KEY] && get_str(val[F_UNIQUE_KEY], F_UNIQUE_KEY, &job->unique_key, err) < 0) ||
        (val[F_RETRY_INITIAL_MS] &&
         get_int(val[F_RETRY_INITIAL_MS], F_RETRY_INITIAL_MS, 1, &job->retry_initial_ms, err) < 0) ||
        (val[F_RETRY_MAX_MS] && get_int(val[F_RETRY_MAX_MS], F_RETRY_MAX_MS, 1, &job->retry_max_ms, err) < 0))
        goto cleanup;
    if (val[F_RETRY_BACKOFF]) {
        char *backoff = NULL;
        if (get_str(val[F_RETRY_BACKOFF], F_RETRY_BACKOFF, &backoff, err) < 0)
            goto cleanup;
        job->retry_backoff = strcmp(backoff, "fixed") == 0         ? SL_BACKOFF_FIXED
                             : strcmp(backoff, "exponential") == 0 ? SL_BACKOFF_EXPONENTIAL
                                                                   : SL_BACKOFF_DEFAULT;
        if (job->retry_backoff == SL_BACKOFF_DEFAULT) {
            sl_err_set(err, SL_EDECODE, "field 'retry_backoff': expected \"fixed\" or \"exponential\", "
                       "got \"%.40s\"", backoff);
            free(backoff);
            goto cleanup;
        }
        free(backoff);
    }
    if (val[F_SIG]) {
        /* 64 bytes of bin: whether they are a valid signature is the
         * worker's question (worker/protect.c), not the decoder's. */
        if (val[F_SIG]->type != MSGPACK_OBJECT_BIN) {
            sl_err_set(err, SL_EDECODE, "field 'sig': expected bin, got %s",
                       sl_json_type_name(val[F_SIG]));
            goto cleanup;
        }
        if (val[F_SIG]->via.bin.size != 64) {
            sl_err_set(err, SL_EDECODE, "field 'sig': expected 64 bytes, got %" PRIu32,
                       val[F_SIG]->via.bin.size);
            goto cleanup;
        }
        job->sig_len = 64;
        job->sig = sl_xmalloc(64);
        memcpy(job->sig, val[F_SIG]->via.bin.ptr, 64);
    }
    if (check_job(job, SL_EDECODE, err) < 0)
        goto cleanup;

    job->args_len = args_end - args_start;
    job->args = sl_xmalloc(job->args_len);
    memcpy(job->args, p + args_start, job->args_len);
    rc = 0;
cleanup:
    free(unknown);
    return rc;
}

int sl_envelope_decode(const char *data, size_t len, sl_job *job, sl_err *err)
{
    memset(job, 0, sizeof *job);
    const unsigned char *p = (const unsigned char *)data;
    size_t end = 0;
    if (len == 0)
        return sl_err_set(err, SL_EDECODE, "empty envelope");
    switch (scan(p, len, &end)) {
    case SCAN_TRUNCATED:
        return sl_err_set(err, SL_EDECODE, "truncated MessagePack data");
    case SCAN_INVALID:
        return sl_err_set(err, SL_EDECODE, "invalid MessagePack data");
    }
    /* Text or other garbage usually parses as a small scalar followed by
     * "trailing bytes"; saying it is not a map is the clearer diagnosis. */
    if (end != len && (p[0] & 0xf0) != 0x80 && p[0] != 0xde && p[0] != 0xdf)
        return sl_err_set(err, SL_EDECODE, "envelope: expected map, got %zu bytes that are not "
                          "one MessagePack map (first byte 0x%02x)", len, p[0]);
    if (end != len)
        return sl_err_set(err, SL_EDECODE, "trailing bytes after envelope (%zu of %zu bytes used)",
                          end, len);

    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc = -1;
    int ur = msgpack_unpack_next(&up, data, len, &off);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
        /* scan() bounded the sizes, so this is msgpack-c's nesting cap. */
        sl_err_set(err, SL_EDECODE, "MessagePack nested deeper than %d levels (args may nest "
                   "at most %d)", UNPACK_DEPTH_MAX, ARGS_DEPTH_MAX);
        goto cleanup;
    }
    if ((ur != MSGPACK_UNPACK_SUCCESS && ur != MSGPACK_UNPACK_EXTRA_BYTES) || off != len) {
        sl_err_set(err, SL_EDECODE, "invalid MessagePack data");
        goto cleanup;
    }
    if (up.data.type != MSGPACK_OBJECT_MAP) {
        sl_err_set(err, SL_EDECODE, "envelope: expected map, got %s", sl_json_type_name(&up.data));
        goto cleanup;
    }
    rc = decode_map(p, len, &up.data.via.map, job, err);
cleanup:
    msgpack_unpacked_destroy(&up);
    if (rc < 0)
        sl_job_clear(job);
    return rc;
}

/* ---- encode -------------------------------------------------------------- */

/* Checks that args[0..len) is exactly one MessagePack map that will survive
 * being nested in the envelope. */
static int check_args(const char *args, size_t len, sl_err *err)
{
    const unsigned char *p = (const unsigned char *)args;
    size_t end = 0;
    if (scan(p, len, &end) != SCAN_OK)
        return sl_err_set(err, SL_EINVAL, "field 'args': not valid MessagePack");
    /* Text or other garbage usually parses as a small scalar followed by
     * "trailing bytes"; saying it is not a map is the clearer diagnosis. */
    if (end != len && (p[0] & 0xf0) != 0x80 && p[0] != 0xde && p[0] != 0xdf)
        return sl_err_set(err, SL_EDECODE, "envelope: expected map, got %zu bytes that are not "
                          "one MessagePack map (first byte 0x%02x)", len, p[0]);
    if (end != len)
        return sl_err_set(err, SL_EINVAL, "field 'args': trailing bytes after the map");

    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc = 0;
    int ur = msgpack_unpack_next(&up, args, len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS && ur != MSGPACK_UNPACK_EXTRA_BYTES)
        rc = sl_err_set(err, SL_EINVAL, "field 'args': not valid MessagePack");
    else if (up.data.type != MSGPACK_OBJECT_MAP)
        rc = sl_err_set(err, SL_EINVAL, "field 'args': expected map, got %s", sl_json_type_name(&up.data));
    else if (sl_json_check_msgpack(&up.data, err) < 0)
        rc = args_error(err, SL_EINVAL);
    msgpack_unpacked_destroy(&up);
    return rc;
}

static int pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s, n);
}

int sl_envelope_encode(const sl_job *job, msgpack_sbuffer *out, sl_err *err)
{
    if (check_job(job, SL_EINVAL, err) < 0)
        return -1;
    bool have_args = job->args != NULL && job->args_len > 0;
    if (have_args && check_args(job->args, job->args_len, err) < 0)
        return -1;

    size_t start = out->size;
    size_t n = 7 + (job->max_attempts > 0) + (job->timeout_ms > 0) + (job->run != NULL) +
               (job->step != NULL) + (job->unique_key != NULL) +
               (job->retry_backoff != SL_BACKOFF_DEFAULT) + (job->retry_initial_ms > 0) +
               (job->retry_max_ms > 0) + (job->sig != NULL);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    /* Each pack call returns 0 or -1 (allocation failure); OR them together. */
    int bad = msgpack_pack_map(&pk, n);
    bad |= pack_str(&pk, "v") | msgpack_pack_int64(&pk, SL_WIRE_VERSION);
    bad |= pack_str(&pk, "id") | pack_str(&pk, job->id);
    bad |= pack_str(&pk, "kind") | pack_str(&pk, job->kind);
    bad |= pack_str(&pk, "queue") | pack_str(&pk, job->queue);
    bad |= pack_str(&pk, "attempt") | msgpack_pack_int64(&pk, job->attempt);
    if (job->max_attempts > 0)
        bad |= pack_str(&pk, "max_attempts") | msgpack_pack_int64(&pk, job->max_attempts);
    if (job->timeout_ms > 0)
        bad |= pack_str(&pk, "timeout_ms") | msgpack_pack_int64(&pk, job->timeout_ms);
    bad |= pack_str(&pk, "enqueued_at") | msgpack_pack_int64(&pk, job->enqueued_at);
    if (job->run)
        bad |= pack_str(&pk, "run") | pack_str(&pk, job->run);
    if (job->step)
        bad |= pack_str(&pk, "step") | pack_str(&pk, job->step);
    if (job->unique_key)
        bad |= pack_str(&pk, "unique_key") | pack_str(&pk, job->unique_key);
    if (job->retry_backoff != SL_BACKOFF_DEFAULT)
        bad |= pack_str(&pk, "retry_backoff") |
               pack_str(&pk, job->retry_backoff == SL_BACKOFF_FIXED ? "fixed" : "exponential");
    if (job->retry_initial_ms > 0)
        bad |= pack_str(&pk, "retry_initial_ms") | msgpack_pack_int64(&pk, job->retry_initial_ms);
    if (job->retry_max_ms > 0)
        bad |= pack_str(&pk, "retry_max_ms") | msgpack_pack_int64(&pk, job->retry_max_ms);
    if (job->sig)
        bad |= pack_str(&pk, "sig") | msgpack_pack_bin(&pk, job->sig_len) |
               msgpack_pack_bin_body(&pk, job->sig, job->sig_len);
    /* args last: the small fields stay at the front of a hex dump. */
    bad |= pack_str(&pk, "args");
    if (have_args)
        bad |= msgpack_sbuffer_write(out, job->args, job->args_len);
    else
        bad |= msgpack_pack_map(&pk, 0);
    if (bad) {
        out->size = start;
        return sl_err_set(err, SL_EINVAL, "envelope: out of memory packing %zu fields", n);
    }
    return 0;
}

void sl_job_clear(sl_job *job)
{
    if (job == NULL)
        return;
    free(job->id);
    free(job->kind);
    free(job->queue);
    free(job->args);
    free(job->run);
    free(job->step);
    free(job->unique_key);
    free(job->sig);
    memset(job, 0, sizeof *job);
}
