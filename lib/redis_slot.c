/* redis_slot.c: see redis_slot.h.
 *
 * CRC16 is computed bit by bit (keys are short: no table needed); the
 * key-position table lists commands by name, compared case-insensitively. */
#include "redis_slot.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

uint16_t sl_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint16_t)(unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

int sl_redis_keyslot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(open + 1, '}', len - from);
        if (close && close > open + 1)    /* "{}" is no tag: hash the whole key */
            return sl_crc16(open + 1, (size_t)(close - open - 1)) & (SL_REDIS_SLOTS - 1);
    }
    return sl_crc16(key, len) & (SL_REDIS_SLOTS - 1);
}

/* Where a command's keys are. */
enum key_rule {
    KEYS_NONE,      /* no key */
    KEYS_FIRST,     /* argv[1] */
    KEYS_SECOND,    /* argv[2] (XGROUP CREATE key, XINFO STREAM key) */
    KEYS_ALL,       /* argv[1..argc) (DEL, EXISTS, MGET) */
    KEYS_NUMKEYS,   /* argv[2] = n, keys argv[3..3+n) (EVAL, EVALSHA) */
    KEYS_STREAMS,   /* after STREAMS, the first half of the rest (XREAD) */
};

static const struct {
    const char *name;
    enum key_rule rule;
} rules[] = {
    { "PING", KEYS_NONE },        { "ECHO", KEYS_NONE },       { "CONFIG", KEYS_NONE },
    { "SCAN", KEYS_NONE },        { "SELECT", KEYS_NONE },     { "INFO", KEYS_NONE },
    { "TIME", KEYS_NONE },        { "CLUSTER", KEYS_NONE },    { "ROLE", KEYS_NONE },
    { "SCRIPT", KEYS_NONE },      { "MULTI", KEYS_NONE },      { "EXEC", KEYS_NONE },
    { "DISCARD", KEYS_NONE },     { "ASKING", KEYS_NONE },     { "AUTH", KEYS_NONE },
    { "CLIENT", KEYS_NONE },      { "WAIT", KEYS_NONE },       { "DBSIZE", KEYS_NONE },
    { "FLUSHDB", KEYS_NONE },     { "FLUSHALL", KEYS_NONE },   { "HELLO", KEYS_NONE },
    { "READONLY", KEYS_NONE },    { "READWRITE", KEYS_NONE },  { "SENTINEL", KEYS_NONE },
    { "KEYS", KEYS_NONE },        { "DEBUG", KEYS_NONE },      { "UNWATCH", KEYS_NONE },
    { "XGROUP", KEYS_SECOND },    { "XINFO", KEYS_SECOND },
    { "DEL", KEYS_ALL },          { "UNLINK", KEYS_ALL },      { "EXISTS", KEYS_ALL },
    { "MGET", KEYS_ALL },         { "TOUCH", KEYS_ALL },       { "WATCH", KEYS_ALL },
    { "EVAL", KEYS_NUMKEYS },     { "EVALSHA", KEYS_NUMKEYS }, { "EVAL_RO", KEYS_NUMKEYS },
    { "EVALSHA_RO", KEYS_NUMKEYS }, { "FCALL", KEYS_NUMKEYS }, { "FCALL_RO", KEYS_NUMKEYS },
    { "XREAD", KEYS_STREAMS },    { "XREADGROUP", KEYS_STREAMS },
};

static bool arg_is(const char *arg, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(arg, word, len) == 0;
}

static enum key_rule rule_of(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (arg_is(name, len, rules[i].name))
            return rules[i].rule;
    return KEYS_FIRST;
}

/* The range [*from, *to) of argv holding keys (stepping by one). */
static void key_range(int argc, const char *const *argv, const size_t *lens, int *from, int *to)
{
    *from = *to = 0;
    if (argc < 1)
        return;
    size_t len0 = lens ? lens[0] : strlen(argv[0]);
    switch (rule_of(argv[0], len0)) {
    case KEYS_NONE:
        return;
    case KEYS_FIRST:
        if (argc >= 2)
            *from = 1, *to = 2;
        return;
    case KEYS_SECOND:
        if (argc >= 3)
            *from = 2, *to = 3;
        return;
    case KEYS_ALL:
        *from = 1, *to = argc;
        return;
    case KEYS_NUMKEYS: {
        if (argc < 3)
            return;
        char nbuf[16];
        size_t nl = lens ? lens[2] : strlen(argv[2]);
        if (nl >= sizeof nbuf)
            return;
        memcpy(nbuf, argv[2], nl);
        nbuf[nl] = '\0';
        long n = 0;
        if (sscanf(nbuf, "%ld", &n) != 1 || n < 0 || n > argc - 3)
            return;
        *from = 3, *to = 3 + (int)n;
        return;
    }
    case KEYS_STREAMS:
        for (int i = 1; i < argc; i++) {
            if (arg_is(argv[i], lens ? lens[i] : strlen(argv[i]), "STREAMS")) {
                int rest = argc - i - 1;
                *from = i + 1, *to = i + 1 + rest / 2;
                return;
            }
        }
        return;
    }
}

int sl_redis_command_slot(int argc, const char *const *argv, const size_t *lens, sl_err *err)
{
    int from, to;
    key_range(argc, argv, lens, &from, &to);
    int slot = -1, first = -1;
    for (int i = from; i < to; i++) {
        size_t len = lens ? lens[i] : strlen(argv[i]);
        int s = sl_redis_keyslot(argv[i], len);
        if (slot < 0) {
            slot = s, first = i;
        } else if (s != slot) {
            size_t l0 = lens ? lens[0] : strlen(argv[0]);
            size_t lf = lens ? lens[first] : strlen(argv[first]);
            sl_err_set(err, SL_EINVAL,
                       "%.*s: keys in different Redis Cluster slots: %.*s (slot %d) and %.*s "
                       "(slot %d)", (int)(l0 > 32 ? 32 : l0), argv[0], (int)(lf > 200 ? 200 : lf),
                       argv[first], slot, (int)(len > 200 ? 200 : len), argv[i], s);
            return -2;
        }
    }
    return slot;
}
