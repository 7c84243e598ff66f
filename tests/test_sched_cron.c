/* test_sched_cron.c: cron parsing and next-fire computation
 * (scheduler/cron.c).  Expected times are worked out by hand from the
 * calendar (2026-01-01 is a Thursday, 2028 is the next leap year), not by
 * running the code. */
#include <criterion/criterion.h>

#include <string.h>
#include <time.h>

#include "cron.h"

static int64_t at(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                     .tm_min = mi, .tm_sec = s };
    return (int64_t)timegm(&tm) * 1000;
}

static int64_t next(const char *expr, int64_t after)
{
    sl_cron c;
    sl_err err;
    cr_assert_eq(sl_cron_parse(expr, &c, &err), 0, "%s: %s", expr, err.msg);
    return sl_cron_next(&c, after);
}

#define NEXT(expr, after, want) \
    cr_assert_eq(next(expr, after), want, "%s after %lld", expr, (long long)(after))

Test(cron, steps_and_strictly_after)
{
    NEXT("*/15 * * * *", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 1, 0, 15, 0));
    NEXT("*/15 * * * *", at(2026, 1, 1, 0, 7, 30), at(2026, 1, 1, 0, 15, 0));
    NEXT("* * * * *", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 1, 0, 1, 0));
    NEXT("0 9-17/4 * * *", at(2026, 1, 1, 10, 0, 0), at(2026, 1, 1, 13, 0, 0));
    NEXT("5/20 * * * *", at(2026, 1, 1, 0, 26, 0), at(2026, 1, 1, 0, 45, 0));
}

Test(cron, days_months_and_rollover)
{
    NEXT("0 3 * * *", at(2026, 1, 1, 3, 0, 0), at(2026, 1, 2, 3, 0, 0));
    NEXT("0 12 1,15 * *", at(2026, 1, 1, 12, 0, 0), at(2026, 1, 15, 12, 0, 0));
    NEXT("0 0 1 jan,JUL *", at(2026, 2, 1, 0, 0, 0), at(2026, 7, 1, 0, 0, 0));
    NEXT("0 0 1 1 *", at(2026, 12, 31, 23, 59, 0), at(2027, 1, 1, 0, 0, 0));
    NEXT("0 0 29 feb *", at(2026, 1, 1, 0, 0, 0), at(2028, 2, 29, 0, 0, 0));
    NEXT("59 23 31 * *", at(2026, 2, 1, 0, 0, 0), at(2026, 3, 31, 23, 59, 0));
}

Test(cron, weekdays)
{
    NEXT("30 2 * * mon", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 5, 2, 30, 0));
    NEXT("0 0 * * 7", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 4, 0, 0, 0));
    NEXT("0 0 * * sun", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 4, 0, 0, 0));
    NEXT("0 0 * * 1-5", at(2026, 1, 2, 0, 0, 0), at(2026, 1, 5, 0, 0, 0));
    /* day-of-month and day-of-week both restricted: either matches (Friday the 2nd) */
    NEXT("0 0 13 * fri", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 2, 0, 0, 0));
    /* only day-of-month restricted (the weekday is '*'): the 13th */
    NEXT("0 0 13 * *", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 13, 0, 0, 0));
}

Test(cron, shorthands)
{
    NEXT("@hourly", at(2026, 1, 1, 10, 59, 59), at(2026, 1, 1, 11, 0, 0));
    NEXT("@daily", at(2026, 1, 1, 10, 0, 0), at(2026, 1, 2, 0, 0, 0));
    NEXT("@midnight", at(2026, 1, 1, 10, 0, 0), at(2026, 1, 2, 0, 0, 0));
    NEXT("@weekly", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 4, 0, 0, 0));
    NEXT("@monthly", at(2026, 1, 1, 0, 0, 0), at(2026, 2, 1, 0, 0, 0));
    NEXT("@yearly", at(2026, 1, 1, 0, 0, 0), at(2027, 1, 1, 0, 0, 0));
    NEXT("@annually", at(2026, 3, 1, 0, 0, 0), at(2027, 1, 1, 0, 0, 0));
}

Test(cron, errors)
{
    static const struct { const char *expr, *msg; } bad[] = {
        { "60 * * * *", "minute field '60': value out of range 0-59" },
        { "* 24 * * *", "hour field '24': value out of range 0-23" },
        { "* * 0 * *", "day-of-month field '0': value out of range 1-31" },
        { "* * * 13 *", "month field '13': value out of range 1-12" },
        { "* * * * 8", "day-of-week field '8': value out of range 0-7" },
        { "5-1 * * * *", "range 5-1 runs backwards" },
        { "*/0 * * * *", "step must be at least 1" },
        { "* * * foo *", "month field 'foo': bad value" },
        { "* * * *", "expected 5 fields" },
        { "* * * * * *", "expected 5 fields" },
        { "1,,2 * * * *", "bad value" },
        { "0 0 31 apr *", "never fires" },
        { "@often", "unknown shorthand" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_cron c;
        sl_err err;
        cr_assert_eq(sl_cron_parse(bad[i].expr, &c, &err), -1, "'%s' was accepted", bad[i].expr);
        cr_assert(strstr(err.msg, bad[i].msg), "'%s': got '%s', want '%s'", bad[i].expr, err.msg, bad[i].msg);
    }
}
