/* cron.c: see cron.h.
 *
 * Fields are parsed into bit sets; the next fire time is found by walking
 * forward in UTC broken-down time, skipping a whole month, day or hour as
 * soon as that field does not match, so a search takes at most a few
 * thousand steps even for rare schedules. */
#include "cron.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const month_names[] = { "jan", "feb", "mar", "apr", "may", "jun",
                                           "jul", "aug", "sep", "oct", "nov", "dec" };
static const char *const dow_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

typedef struct field_def {
    const char *name;
    int min, max;
    const char *const *names;   /* NULL or names for min.. */
    int nnames;
} field_def;

static const field_def fields[5] = {
    { "minute", 0, 59, NULL, 0 },
    { "hour", 0, 23, NULL, 0 },
    { "day-of-month", 1, 31, NULL, 0 },
    { "month", 1, 12, month_names, 12 },
    { "day-of-week", 0, 7, dow_names, 7 },
};

/* Reads a number or a name at *p. */
static int read_value(const field_def *f, const char **p, int *out)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s) && v < 1000)
            v = v * 10 + (*s++ - '0');
        *out = (int)v;
        *p = s;
        return 0;
    }
    for (int i = 0; i < f->nnames; i++) {
        if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *out = f->min + i;
            *p = s + 3;
            return 0;
        }
    }
    return -1;
}

static int parse_field(const field_def *f, const char *text, uint64_t *bits, bool *star,
                       sl_err *err)
{
    *bits = 0;
    *star = text[0] == '*';
    const char *p = text;
    for (;;) {
        int lo, hi, step = 1;
        const char *part = p;
        if (*p == '*') {
            lo = f->min;
            hi = f->max;
            p++;
        } else {
            if (read_value(f, &p, &lo) < 0)
                return sl_err_set(err, SL_EINVAL, "%s field '%s': bad value at '%s'", f->name, text, part);
            hi = lo;
            if (*p == '-') {
                p++;
                if (read_value(f, &p, &hi) < 0)
                    return sl_err_set(err, SL_EINVAL, "%s field '%s': bad range end at '%s'",
                                      f->name, text, part);
            } else if (*p == '/') {
                hi = f->max;
            }
        }
        if (*p == '/') {
            p++;
            if (!isdigit((unsigned char)*p))
                return sl_err_set(err, SL_EINVAL, "%s field '%s': bad step at '%s'", f->name, text, part);
            step = 0;
            while (isdigit((unsigned char)*p) && step < 1000)
                step = step * 10 + (*p++ - '0');
            if (step < 1)
                return sl_err_set(err, SL_EINVAL, "%s field '%s': step must be at least 1", f->name, text);
        }
        if (lo < f->min || hi > f->max || lo > f->max || hi < f->min)
            return sl_err_set(err, SL_EINVAL, "%s field '%s': value out of range %d-%d",
                              f->name, text, f->min, f->max);
        if (lo > hi)
            return sl_err_set(err, SL_EINVAL, "%s field '%s': range %d-%d runs backwards",
                              f->name, text, lo, hi);
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ull << v;
        if (*p == '\0')
            return 0;
        if (*p != ',')
            return sl_err_set(err, SL_EINVAL, "%s field '%s': unexpected '%c'", f->name, text, *p);
        p++;
    }
}

static const struct { const char *name; const char *expr; } shorthands[] = {
    { "@yearly", "0 0 1 1 *" }, { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" },
    { "@weekly", "0 0 * * 0" }, { "@daily", "0 0 * * *" },   { "@midnight", "0 0 * * *" },
    { "@hourly", "0 * * * *" },
};

int sl_cron_parse(const char *text, sl_cron *out, sl_err *err)
{
    if (text[0] == '@') {
        for (size_t i = 0; i < sizeof shorthands / sizeof shorthands[0]; i++) {
            if (strcasecmp(text, shorthands[i].name) == 0)
                return sl_cron_parse(shorthands[i].expr, out, err);
        }
        return sl_err_set(err, SL_EINVAL, "unknown shorthand '%.40s' (expected @yearly, @annually, "
                          "@monthly, @weekly, @daily, @midnight or @hourly)", text);
    }
    char copy[256];
    if (strlen(text) >= sizeof copy)
        return sl_err_set(err, SL_EINVAL, "expression too long");
    snprintf(copy, sizeof copy, "%s", text);
    char *parts[6];
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (n == 5)
            return sl_err_set(err, SL_EINVAL, "expected 5 fields (minute hour day-of-month month "
                              "day-of-week), got more");
        parts[n++] = tok;
    }
    if (n != 5)
        return sl_err_set(err, SL_EINVAL, "expected 5 fields (minute hour day-of-month month "
                          "day-of-week), got %d", n);
    uint64_t bits[5];
    bool star[5];
    for (int i = 0; i < 5; i++) {
        if (parse_field(&fields[i], parts[i], &bits[i], &star[i], err) < 0)
            return -1;
    }
    sl_cron c = { 0 };
    c.minute = bits[0];
    c.hour = (uint32_t)bits[1];
    c.dom = (uint32_t)bits[2];
    c.month = (uint16_t)bits[3];
    c.dow = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f);  /* 7 is Sunday too */
    c.dom_star = star[2];
    c.dow_star = star[4];
    if (sl_cron_next(&c, 0) < 0 && sl_cron_next(&c, 86400000LL * 365 * 3) < 0)
        return sl_err_set(err, SL_EINVAL, "'%.60s' never fires", text);
    *out = c;
    return 0;
}

static bool day_matches(const sl_cron *c, const struct tm *t)
{
    bool dom = c->dom >> t->tm_mday & 1;
    bool dow = c->dow >> t->tm_wday & 1;
    if (c->dom_star || c->dow_star)
        return dom && dow;
    return dom || dow;
}

int64_t sl_cron_next(const sl_cron *c, int64_t after_ms)
{
    time_t t = (time_t)(after_ms / 1000 / 60 * 60 + 60);   /* next whole minute */
    time_t limit = t + (time_t)86400 * 366 * 5;
    struct tm tm;
    while (t < limit) {
        if (gmtime_r(&t, &tm) == NULL)
            return -1;
        if (!(c->month >> (tm.tm_mon + 1) & 1)) {
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
            t = timegm(&tm);
            continue;
        }
        if (!day_matches(c, &tm)) {
            tm.tm_mday++;
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
            t = timegm(&tm);
            continue;
        }
        if (!(c->hour >> tm.tm_hour & 1)) {
            tm.tm_hour++;
            tm.tm_min = tm.tm_sec = 0;
            t = timegm(&tm);
            continue;
        }
        if (!(c->minute >> tm.tm_min & 1)) {
            t += 60;
            continue;
        }
        return (int64_t)t * 1000;
    }
    return -1;
}
