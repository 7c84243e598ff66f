/* duration.c: human durations ("1h30m") <-> milliseconds.
 *
 * The grammar is deliberately narrow: groups of <digits><unit>, units in
 * strictly decreasing size, no spaces, signs or fractions.  "1m30m" or
 * "30s1m" are almost certainly typos in a config file, so they are errors
 * rather than being summed.  Arithmetic is checked, so a value that does not
 * fit int64 milliseconds is an error instead of wrapping.
 */
#include "duration.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const struct unit {
    const char *name;
    int64_t ms;
} units[] = {  /* largest first: the order groups must come in */
    { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 },
};
#define NUNITS (sizeof units / sizeof units[0])

/* Copies text into q for an error message: at most 40 bytes, anything not
 * printable ASCII replaced by '?', "..." appended when cut. */
static const char *quote(char q[48], const char *text)
{
    size_t i;
    for (i = 0; text[i] && i < 40; i++)
        q[i] = (text[i] >= 0x20 && text[i] < 0x7f) ? text[i] : '?';
    if (text[i])
        memcpy(q + i, "...", 3), i += 3;
    q[i] = '\0';
    return q;
}

int sl_duration_parse(const char *text, int64_t *ms_out, sl_err *err)
{
    char q[48];
    if (text == NULL || *text == '\0')
        return sl_err_set(err, SL_EINVAL, "invalid duration \"\": empty");
    const char *p = text;
    size_t next_unit = 0; /* index of the largest unit still allowed */
    int64_t total = 0;
    while (*p) {
        if (*p < '0' || *p > '9')
            return sl_err_set(err, SL_EINVAL, "invalid duration \"%s\": expected a digit at byte %td",
                              quote(q, text), p - text);
        int64_t n = 0;
        bool overflow = false;
        while (*p >= '0' && *p <= '9') {
            if (n > (INT64_MAX - (*p - '0')) / 10)
                overflow = true;
            else
                n = n * 10 + (*p - '0');
            p++;
        }
        const char *u = p;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
            p++;
        size_t ulen = (size_t)(p - u);
        if (ulen == 0)
            return sl_err_set(err, SL_EINVAL,
                              "invalid duration \"%s\": missing unit after %.*s (use ms, s, m, h or d)",
                              quote(q, text), (int)(u - text > 20 ? 20 : u - text), text);
        size_t k;
        for (k = 0; k < NUNITS; k++)
            if (strlen(units[k].name) == ulen && memcmp(units[k].name, u, ulen) == 0)
                break;
        if (k == NUNITS)
            return sl_err_set(err, SL_EINVAL,
                              "invalid duration \"%s\": unknown unit \"%.*s\" (use ms, s, m, h or d)",
                              quote(q, text), (int)(ulen > 8 ? 8 : ulen), u);
        if (k < next_unit)
            return sl_err_set(err, SL_EINVAL,
                              "invalid duration \"%s\": units must go from largest to smallest, "
                              "each at most once",
                              quote(q, text));
        next_unit = k + 1;
        if (overflow || n > (INT64_MAX - total) / units[k].ms)
            return sl_err_set(err, SL_EINVAL, "invalid duration \"%s\": too large",
                              quote(q, text));
        total += n * units[k].ms;
    }
    *ms_out = total;
    return 0;
}

void sl_duration_format(int64_t ms, char *buf, size_t n)
{
    if (n == 0)
        return;
    if (ms == 0) {
        snprintf(buf, n, "0s");
        return;
    }
    /* Work on the magnitude as unsigned so INT64_MIN formats too. */
    uint64_t left = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    size_t o = 0;
    buf[0] = '\0';
    if (ms < 0)
        o += (size_t)snprintf(buf, n, "-");
    for (size_t k = 0; k < NUNITS && left > 0; k++) {
        uint64_t q = left / (uint64_t)units[k].ms;
        left %= (uint64_t)units[k].ms;
        if (q == 0)
            continue;
        if (o < n)
            o += (size_t)snprintf(buf + o, n - o, "%" PRIu64 "%s", q, units[k].name);
    }
}
