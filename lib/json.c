/* json.c: strict JSON -> MessagePack, and MessagePack -> JSON (see json.h).
 *
 * Parsing runs the same recursive-descent parser twice over the text.
 * MessagePack writes a container's element count before its elements, and a
 * streaming packer cannot go back to patch it, so the first pass (no packer)
 * validates everything and records each container's count in the order the
 * containers open; the second pass packs, taking the counts from that list
 * in the same order.  Every error is therefore found before a single byte
 * reaches the caller's packer, and no tree is built.
 *
 * Duplicate keys are found in the first pass: each object collects its
 * decoded keys (with their byte offsets) and sorts them when it closes, so
 * the check costs O(k log k) for k keys whatever a hostile text holds.
 *
 * The writer recurses over msgpack_object.  It refuses everything the
 * parser refuses (deeper than SL_JSON_MAX_DEPTH, U+0000, invalid UTF-8,
 * duplicate keys) so whatever it writes can be read back, and refuses
 * non-string keys rather than writing a key's JSON text as a string: that
 * re-escaped each level of keys nested in keys, doubling the output per
 * level.  Every byte of input is written once, so the output is linear.
 * Floats are printed with the fewest digits that read back to the same
 * value, always with a '.' or exponent so they stay floats on the way back.
 *
 * Number conversion uses strtod/printf and so assumes the C locale for
 * LC_NUMERIC, which sluice never changes.
 */
#include "json.h"
#include "base64.h"
#include "utf8.h"
#include "mem.h"
#include "numfmt.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH SL_JSON_MAX_DEPTH
#define STR_(x) #x
#define STR(x) STR_(x)
#define DEPTH_TEXT STR(SL_JSON_MAX_DEPTH)  /* "31", for messages */


/* ---- parser -------------------------------------------------------------- */

typedef struct parser {
    const unsigned char *s; /* the text */
    size_t len;             /* its length */
    size_t pos;             /* next byte to read */
    msgpack_packer *pk;     /* NULL during the validating first pass */
    size_t *counts;         /* element count per container, in opening order */
    size_t ncounts;         /* entries used in counts (first pass) */
    size_t cap;             /* entries allocated in counts */
    size_t next;            /* next entry of counts to use (second pass) */
    sl_buf str;             /* the string being decoded */
    sl_err *err;
} parser;

static int fail(parser *ps, size_t at, const char *what)
{
    return sl_err_set(ps->err, SL_EINVAL, "JSON at byte %zu: %s", at, what);
}

/* A pack call failed: only possible when the packer's writer does. */
static int fail_pack(parser *ps)
{
    return sl_err_set(ps->err, SL_EINVAL, "JSON at byte %zu: writing MessagePack failed", ps->pos);
}

static void skip_ws(parser *ps)
{
    while (ps->pos < ps->len) {
        unsigned char c = ps->s[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        ps->pos++;
    }
}

static bool at(parser *ps, char c)
{
    return ps->pos < ps->len && ps->s[ps->pos] == (unsigned char)c;
}

static bool is_digit_at(parser *ps)
{
    return ps->pos < ps->len && ps->s[ps->pos] >= '0' && ps->s[ps->pos] <= '9';
}

static int hex4(parser *ps, size_t p, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (p + i >= ps->len)
            return fail(ps, p + i, "expected 4 hex digits after \\u");
        unsigned char c = ps->s[p + i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10u;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10u;
        else
            return fail(ps, p + i, "expected 4 hex digits after \\u");
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static void put_utf8(sl_buf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    }
    sl_buf_append(b, u, n);
}

/* Decodes the escape at ps->pos (a backslash) into ps->str. */
static int parse_escape(parser *ps)
{
    size_t p = ps->pos;
    if (p + 1 >= ps->len)
        return fail(ps, ps->len, "expected '\"' before the end of input");
    char c = (char)ps->s[p + 1];
    const char *simple = strchr("\"\\/bfnrt", c);
    if (c != '\0' && simple != NULL) {
        static const char decoded[] = "\"\\/\b\f\n\r\t";
        sl_buf_putc(&ps->str, decoded[simple - "\"\\/bfnrt"]);
        ps->pos = p + 2;
        return 0;
    }
    if (c != 'u')
        return fail(ps, p + 1, "expected an escape character: one of \" \\ / b f n r t u");
    unsigned cp;
    if (hex4(ps, p + 2, &cp) < 0)
        return -1;
    p += 6;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return fail(ps, p - 6, "unpaired low surrogate (expected a high surrogate first)");
    if (cp >= 0xd800 && cp <= 0xdbff) {
        unsigned lo;
        if (p + 1 >= ps->len || ps->s[p] != '\\' || ps->s[p + 1] != 'u')
            return fail(ps, p, "expected a low surrogate \\uDC00-\\uDFFF after a high surrogate");
        if (hex4(ps, p + 2, &lo) < 0)
            return -1;
        if (lo < 0xdc00 || lo > 0xdfff)
            return fail(ps, p, "expected a low surrogate \\uDC00-\\uDFFF after a high surrogate");
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        p += 6;
    }
    if (cp == 0)
        return fail(ps, p - 6, "\\u0000 (U+0000) is not allowed in a string (PostgreSQL cannot store it)");
    put_utf8(&ps->str, cp);
    ps->pos = p;
    return 0;
}

/* Decodes the string starting at ps->pos (a '"') into ps->str. */
static int parse_string(parser *ps)
{
    sl_buf_reset(&ps->str);
    ps->pos++;
    for (;;) {
        size_t run = ps->pos;
        while (ps->pos < ps->len) {
            unsigned char c = ps->s[ps->pos];
            if (c == '"' || c == '\\' || c < 0x20)
                break;
            if (c < 0x80) {
                ps->pos++;
                continue;
            }
            size_t k = sl_utf8_seq(ps->s + ps->pos, ps->len - ps->pos);
            if (k == 0)
                return fail(ps, ps->pos, "invalid UTF-8 in string");
            ps->pos += k;
        }
        sl_buf_append(&ps->str, ps->s + run, ps->pos - run);
        if (ps->pos >= ps->len)
            return fail(ps, ps->len, "expected '\"' before the end of input");
        unsigned char c = ps->s[ps->pos];
        if (c == '"') {
            ps->pos++;
            return 0;
        }
        if (c < 0x20)
            return fail(ps, ps->pos, "expected no raw control characters in a string (escape them)");
        if (parse_escape(ps) < 0)
            return -1;
    }
}

static int pack_string(parser *ps)
{
    if (ps->pk == NULL)
        return 0;
    if (msgpack_pack_str(ps->pk, ps->str.len) < 0 ||
        msgpack_pack_str_body(ps->pk, sl_buf_str(&ps->str), ps->str.len) < 0)
        return fail_pack(ps);
    return 0;
}

static int parse_number(parser *ps)
{
    size_t start = ps->pos;
    bool neg = at(ps, '-'), is_float = false;
    if (neg)
        ps->pos++;
    if (!is_digit_at(ps))
        return fail(ps, ps->pos, "expected a digit");
    if (at(ps, '0')) {
        ps->pos++;
        if (is_digit_at(ps))
            return fail(ps, ps->pos, "expected no leading zeros in a number");
    } else {
        while (is_digit_at(ps))
            ps->pos++;
    }
    size_t int_end = ps->pos;
    if (at(ps, '.')) {
        ps->pos++;
        if (!is_digit_at(ps))
            return fail(ps, ps->pos, "expected a digit after '.'");
        while (is_digit_at(ps))
            ps->pos++;
        is_float = true;
    }
    if (at(ps, 'e') || at(ps, 'E')) {
        ps->pos++;
        if (at(ps, '+') || at(ps, '-'))
            ps->pos++;
        if (!is_digit_at(ps))
            return fail(ps, ps->pos, "expected a digit in the exponent");
        while (is_digit_at(ps))
            ps->pos++;
        is_float = true;
    }

    if (!is_float) {
        uint64_t mag = 0;
        bool overflow = false;
        for (size_t i = start + neg; i < int_end && !overflow; i++) {
            unsigned d = ps->s[i] - '0';
            if (mag > (UINT64_MAX - d) / 10)
                overflow = true;
            else
                mag = mag * 10 + d;
        }
        /* Integers that fit int64 (or, if positive, uint64) stay integers;
         * bigger ones fall through to float64, as JavaScript would read them. */
        if (!overflow && (!neg || mag <= (uint64_t)INT64_MAX + 1)) {
            int r = 0;
            if (ps->pk == NULL)
                return 0;
            if (neg)
                r = msgpack_pack_int64(ps->pk, mag == (uint64_t)INT64_MAX + 1
                                                   ? INT64_MIN : -(int64_t)mag);
            else
                r = msgpack_pack_uint64(ps->pk, mag);
            return r < 0 ? fail_pack(ps) : 0;
        }
    }

    char small[64];
    size_t n = ps->pos - start;
    char *copy = n < sizeof small ? small : sl_xmalloc(n + 1);
    memcpy(copy, ps->s + start, n);
    copy[n] = '\0';
    double v = strtod(copy, NULL);
    if (copy != small)
        free(copy);
    if (isinf(v))
        return fail(ps, start, "number out of float64 range");
    if (ps->pk && msgpack_pack_double(ps->pk, v) < 0)
        return fail_pack(ps);
    return 0;
}

static int parse_literal(parser *ps)
{
    static const char *const words[] = { "true", "false", "null" };
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if (ps->len - ps->pos >= n && memcmp(ps->s + ps->pos, words[i], n) == 0) {
            ps->pos += n;
            if (ps->pk == NULL)
                return 0;
            int r = i == 0 ? msgpack_pack_true(ps->pk)
                  : i == 1 ? msgpack_pack_false(ps->pk) : msgpack_pack_nil(ps->pk);
            return r < 0 ? fail_pack(ps) : 0;
        }
    }
    return fail(ps, ps->pos, "expected a value");
}

/* Opens a container: in the first pass allocates its counter, in the second
 * returns the count the first pass recorded.  Returns the counter index. */
static size_t container_open(parser *ps, size_t *count)
{
    if (ps->pk == NULL) {
        if (ps->ncounts == ps->cap) {
            ps->cap = ps->cap ? ps->cap * 2 : 16;
            ps->counts = sl_xrealloc(ps->counts, ps->cap * sizeof *ps->counts);
        }
        ps->counts[ps->ncounts] = 0;
        *count = 0;
        return ps->ncounts++;
    }
    *count = ps->counts[ps->next];
    return ps->next++;
}

/* Counts one more element in container idx (first pass only). */
static int container_add(parser *ps, size_t idx)
{
    if (ps->pk == NULL && ++ps->counts[idx] > UINT32_MAX)
        return fail(ps, ps->pos, "more than 4294967295 elements in one array or object");
    return 0;
}

static int parse_value(parser *ps, int depth);

static int parse_array(parser *ps, int depth)
{
    size_t count, idx = container_open(ps, &count);
    if (ps->pk && msgpack_pack_array(ps->pk, count) < 0)
        return fail_pack(ps);
    ps->pos++;
    skip_ws(ps);
    if (at(ps, ']')) {
        ps->pos++;
        return 0;
    }
    for (;;) {
        if (parse_value(ps, depth) < 0 || container_add(ps, idx) < 0)
            return -1;
        skip_ws(ps);
        if (at(ps, ',')) {
            ps->pos++;
        } else if (at(ps, ']')) {
            ps->pos++;
            return 0;
        } else {
            return fail(ps, ps->pos, "expected ',' or ']'");
        }
    }
}

/* The keys of one object, collected in the first pass to find duplicates. */
typedef struct keyset {
    sl_buf text;          /* the decoded keys, one after another */
    struct key {
        size_t off, len;  /* in text */
        size_t at;        /* byte offset of the key in the JSON text */
    } *keys;
    size_t n, cap;
} keyset;

static void keyset_add(keyset *ks, const sl_buf *key, size_t at)
{
    if (ks->n == ks->cap) {
        ks->cap = ks->cap ? ks->cap * 2 : 8;
        ks->keys = sl_xrealloc(ks->keys, ks->cap * sizeof *ks->keys);
    }
    ks->keys[ks->n++] = (struct key){ .off = ks->text.len, .len = key->len, .at = at };
    sl_buf_append(&ks->text, sl_buf_str(key), key->len);
}

/* Orders keys by text, then by position (qsort_r with the keyset's text). */
static int cmp_keys(const void *a, const void *b, void *text)
{
    const char *sort_text = text;
    const struct key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int d = n ? memcmp(sort_text + x->off, sort_text + y->off, n) : 0;
    if (d == 0 && x->len != y->len)
        d = x->len < y->len ? -1 : 1;
    if (d == 0)
        d = x->at < y->at ? -1 : x->at > y->at;
    return d;
}

/* Fails at the second occurrence of a key that appears twice. */
static int keyset_check(parser *ps, keyset *ks)
{
    if (ks->n < 2)
        return 0;
    const char *sort_text = sl_buf_str(&ks->text);
    qsort_r(ks->keys, ks->n, sizeof *ks->keys, cmp_keys, (void *)sort_text);
    size_t dup = SIZE_MAX;
    for (size_t i = 1; i < ks->n; i++) {
        const struct key *x = &ks->keys[i - 1], *y = &ks->keys[i];
        if (x->len == y->len && (x->len == 0 || memcmp(sort_text + x->off, sort_text + y->off, x->len) == 0) &&
            (dup == SIZE_MAX || y->at < ks->keys[dup].at))
            dup = i;
    }
    if (dup == SIZE_MAX)
        return 0;
    sl_buf q = SL_BUF_INIT;
    const struct key *k = &ks->keys[dup];
    sl_json_put_string(&q, sl_buf_str(&ks->text) + k->off, k->len < 40 ? k->len : 40);
    sl_err_set(ps->err, SL_EINVAL, "JSON at byte %zu: duplicate key %s%s in an object", k->at,
               sl_buf_str(&q), k->len > 40 ? "..." : "");
    sl_buf_free(&q);
    return -1;
}

static int parse_object(parser *ps, int depth)
{
    size_t count, idx = container_open(ps, &count);
    keyset ks = { .text = SL_BUF_INIT };
    int rc = -1;
    if (ps->pk && msgpack_pack_map(ps->pk, count) < 0) {
        fail_pack(ps);
        goto out;
    }
    ps->pos++;
    skip_ws(ps);
    if (at(ps, '}')) {
        ps->pos++;
        rc = 0;
        goto out;
    }
    for (;;) {
        skip_ws(ps);
        if (!at(ps, '"')) {
            fail(ps, ps->pos, "expected a string key");
            goto out;
        }
        size_t key_at = ps->pos;
        if (parse_string(ps) < 0 || pack_string(ps) < 0)
            goto out;
        if (ps->pk == NULL)
            keyset_add(&ks, &ps->str, key_at);
        skip_ws(ps);
        if (!at(ps, ':')) {
            fail(ps, ps->pos, "expected ':'");
            goto out;
        }
        ps->pos++;
        if (parse_value(ps, depth) < 0 || container_add(ps, idx) < 0)
            goto out;
        skip_ws(ps);
        if (at(ps, ',')) {
            ps->pos++;
        } else if (at(ps, '}')) {
            ps->pos++;
            rc = keyset_check(ps, &ks);
            goto out;
        } else {
            fail(ps, ps->pos, "expected ',' or '}'");
            goto out;
        }
    }
out:
    sl_buf_free(&ks.text);
    free(ks.keys);
    return rc;
}

/* depth is the number of containers around this value. */
static int parse_value(parser *ps, int depth)
{
    skip_ws(ps);
    if (ps->pos >= ps->len)
        return fail(ps, ps->pos, "expected a value");
    switch (ps->s[ps->pos]) {
    case '[':
    case '{':
        if (depth >= MAX_DEPTH)
            return fail(ps, ps->pos, "expected at most " DEPTH_TEXT " levels of nesting");
        return ps->s[ps->pos] == '[' ? parse_array(ps, depth + 1) : parse_object(ps, depth + 1);
    case '"':
        return parse_string(ps) < 0 ? -1 : pack_string(ps);
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return parse_number(ps);
    default:
        return parse_literal(ps);
    }
}

/* First pass over the whole text: validates it and records the counts. */
static int validate(parser *ps)
{
    int rc = parse_value(ps, 0);
    if (rc == 0) {
        skip_ws(ps);
        if (ps->pos != ps->len)
            rc = fail(ps, ps->pos, "expected the end of input after the value");
    }
    return rc;
}

int sl_json_to_msgpack(const char *text, size_t len, msgpack_packer *pk, sl_err *err)
{
    parser ps = { .s = (const unsigned char *)text, .len = len, .err = err };
    int rc = validate(&ps);
    if (rc == 0) {
        ps.pos = 0;
        ps.pk = pk;
        rc = parse_value(&ps, 0);
    }
    free(ps.counts);
    sl_buf_free(&ps.str);
    return rc;
}

int sl_json_check(const char *text, size_t len, sl_err *err)
{
    parser ps = { .s = (const unsigned char *)text, .len = len, .err = err };
    int rc = validate(&ps);
    free(ps.counts);
    sl_buf_free(&ps.str);
    return rc;
}

/* ---- writer -------------------------------------------------------------- */

/* Shortest round trip (sl_fmt_double; float32 values to float precision),
 * always with a '.' or an exponent so the value stays a float. */
static void put_float(sl_buf *out, double v, bool single)
{
    char tmp[SL_NUMFMT_MAX];
    if (single) {
        for (int prec = 6; prec <= 9; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, v);
            if ((float)strtod(tmp, NULL) == (float)v)
                break;
        }
    } else {
        sl_fmt_double(v, tmp);
    }
    sl_buf_puts(out, tmp);
    if (strpbrk(tmp, ".eE") == NULL)
        sl_buf_puts(out, ".0");
}

/* Quotes up to 40 bytes of a key for an error message. */
static const char *quote_key(char *buf, size_t n, const char *s, size_t len)
{
    sl_buf q = SL_BUF_INIT;
    sl_json_put_string(&q, s, len < 40 ? len : 40);
    snprintf(buf, n, "%s%s", sl_buf_str(&q), len > 40 ? "..." : "");
    sl_buf_free(&q);
    return buf;
}

/* A string the parser would accept: valid UTF-8 without NUL.  what: "string"
 * or "key". */
static int check_text(const char *s, size_t n, const char *what, sl_err *err)
{
    if (n > 0 && memchr(s, '\0', n) != NULL)
        return sl_err_set(err, SL_EINVAL, "JSON: a %s holds U+0000 (PostgreSQL cannot store it)", what);
    if (!sl_utf8_valid(s, n))
        return sl_err_set(err, SL_EINVAL, "JSON: a %s is not valid UTF-8", what);
    return 0;
}

static int cmp_str_obj(const void *a, const void *b)
{
    const msgpack_object *x = *(const msgpack_object *const *)a;
    const msgpack_object *y = *(const msgpack_object *const *)b;
    if (x->via.str.size != y->via.str.size)
        return x->via.str.size < y->via.str.size ? -1 : 1;
    return x->via.str.size ? memcmp(x->via.str.ptr, y->via.str.ptr, x->via.str.size) : 0;
}

/* Checks a map's keys: strings the parser would accept, no two equal.
 * Sorting keeps it O(k log k) however many keys a hostile producer sends. */
static int check_keys(const msgpack_object_map *m, sl_err *err)
{
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return sl_err_set(err, SL_EINVAL, "JSON: map key #%" PRIu32 " is of type %s; "
                              "object keys must be strings", i + 1, sl_json_type_name(k));
        if (check_text(k->via.str.ptr, k->via.str.size, "key", err) < 0)
            return -1;
    }
    if (m->size < 2)
        return 0;
    const msgpack_object **keys = sl_xmalloc(m->size * sizeof *keys);
    for (uint32_t i = 0; i < m->size; i++)
        keys[i] = &m->ptr[i].key;
    qsort(keys, m->size, sizeof *keys, cmp_str_obj);
    int rc = 0;
    for (uint32_t i = 1; i < m->size && rc == 0; i++) {
        if (cmp_str_obj(&keys[i - 1], &keys[i]) == 0) {
            char q[200];
            rc = sl_err_set(err, SL_EINVAL, "JSON: duplicate key %s in a map",
                            quote_key(q, sizeof q, keys[i]->via.str.ptr, keys[i]->via.str.size));
        }
    }
    free(keys);
    return rc;
}

/* Writes o to out, or only checks it when out is NULL.  depth is the number
 * of containers around o. */
static int write_value(const msgpack_object *o, sl_buf *out, sl_err *err, int depth)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        if (out)
            sl_buf_puts(out, "null");
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        if (out)
            sl_buf_puts(out, o->via.boolean ? "true" : "false");
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (out)
            sl_buf_printf(out, "%" PRIu64, o->via.u64);
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        if (out)
            sl_buf_printf(out, "%" PRId64, o->via.i64);
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64))
            return sl_err_set(err, SL_EINVAL, "JSON cannot hold %s",
                              isnan(o->via.f64) ? "NaN" : "Infinity");
        if (out)
            put_float(out, o->via.f64, o->type == MSGPACK_OBJECT_FLOAT32);
        return 0;
    case MSGPACK_OBJECT_STR:
        if (check_text(o->via.str.ptr, o->via.str.size, "string", err) < 0)
            return -1;
        if (out)
            sl_json_put_string(out, o->via.str.ptr, o->via.str.size);
        return 0;
    case MSGPACK_OBJECT_BIN:
        if (out) {
            sl_buf_putc(out, '"');
            sl_base64_append(out, o->via.bin.ptr, o->via.bin.size, SL_BASE64);
            sl_buf_putc(out, '"');
        }
        return 0;
    case MSGPACK_OBJECT_EXT:
        return sl_err_set(err, SL_EINVAL, "JSON cannot hold a MessagePack ext value (type %d)",
                          o->via.ext.type);
    case MSGPACK_OBJECT_ARRAY:
    case MSGPACK_OBJECT_MAP:
        break;
    default:
        return sl_err_set(err, SL_EINVAL, "unknown MessagePack type %d", (int)o->type);
    }

    if (depth >= MAX_DEPTH)
        return sl_err_set(err, SL_EINVAL, "JSON: nested deeper than %d levels", MAX_DEPTH);
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        if (out)
            sl_buf_putc(out, '[');
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i && out)
                sl_buf_putc(out, ',');
            if (write_value(&o->via.array.ptr[i], out, err, depth + 1) < 0)
                return -1;
        }
        if (out)
            sl_buf_putc(out, ']');
        return 0;
    }
    if (check_keys(&o->via.map, err) < 0)
        return -1;
    if (out)
        sl_buf_putc(out, '{');
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (out) {
            if (i)
                sl_buf_putc(out, ',');
            sl_json_put_string(out, k->via.str.ptr, k->via.str.size);
            sl_buf_putc(out, ':');
        }
        if (write_value(&o->via.map.ptr[i].val, out, err, depth + 1) < 0)
            return -1;
    }
    if (out)
        sl_buf_putc(out, '}');
    return 0;
}

int sl_json_from_msgpack(const msgpack_object *o, sl_buf *out, sl_err *err)
{
    size_t start = out->len;
    if (write_value(o, out, err, 0) == 0)
        return 0;
    /* Leave out as it was: no half-written value. */
    out->len = start;
    if (out->data)
        out->data[start] = '\0';
    return -1;
}

int sl_json_check_msgpack(const msgpack_object *o, sl_err *err)
{
    return write_value(o, NULL, err, 0);
}

void sl_json_put_string(sl_buf *out, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0;
    if (n == 0) {
        sl_buf_puts(out, "\"\""); /* s may be NULL: msgpack-c's empty strings are */
        return;
    }
    sl_buf_putc(out, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        size_t k = c >= 0x80 ? sl_utf8_seq(u + i, n - i) : 0;
        if (k > 0) {
            i += k;
            continue;
        }
        sl_buf_append(out, s + run, i - run);
        switch (c) {
        case '"': sl_buf_puts(out, "\\\""); break;
        case '\\': sl_buf_puts(out, "\\\\"); break;
        case '\b': sl_buf_puts(out, "\\b"); break;
        case '\f': sl_buf_puts(out, "\\f"); break;
        case '\n': sl_buf_puts(out, "\\n"); break;
        case '\r': sl_buf_puts(out, "\\r"); break;
        case '\t': sl_buf_puts(out, "\\t"); break;
        default:
            if (c < 0x20)
                sl_buf_printf(out, "\\u%04x", c);
            else
                sl_buf_puts(out, "\xef\xbf\xbd"); /* U+FFFD for a byte that is not UTF-8 */
        }
        run = ++i;
    }
    sl_buf_append(out, s + run, n - run);
    sl_buf_putc(out, '"');
}

const char *sl_json_type_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "float";
    case MSGPACK_OBJECT_STR: return "str";
    case MSGPACK_OBJECT_BIN: return "bin";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    default: return "ext";
    }
}
