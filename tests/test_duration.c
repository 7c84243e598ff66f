/* test_duration.c: parsing and formatting of human durations (lib/duration.c). */
#include <criterion/criterion.h>

#include <stdint.h>
#include <string.h>

#include "duration.h"

static int64_t parse_ok(const char *text)
{
    int64_t ms = -1;
    sl_err err = { 0 };
    cr_assert_eq(sl_duration_parse(text, &ms, &err), 0, "\"%s\" rejected: %s", text, err.msg);
    return ms;
}

/* Asserts text is rejected with a message that quotes it and contains why. */
static void parse_bad(const char *text, const char *why)
{
    int64_t ms = 12345;
    sl_err err = { 0 };
    cr_assert_eq(sl_duration_parse(text, &ms, &err), -1, "\"%s\" accepted as %lld", text,
                 (long long)ms);
    cr_assert_eq(err.code, SL_EINVAL);
    cr_assert_eq(ms, 12345, "output written on failure");
    cr_assert(strstr(err.msg, why) != NULL, "\"%s\": message \"%s\" lacks \"%s\"", text, err.msg, why);
}

Test(duration, single_units)
{
    cr_assert_eq(parse_ok("1500ms"), 1500);
    cr_assert_eq(parse_ok("0ms"), 0);
    cr_assert_eq(parse_ok("0s"), 0);
    cr_assert_eq(parse_ok("45s"), 45000);
    cr_assert_eq(parse_ok("10m"), 600000);
    cr_assert_eq(parse_ok("24h"), 86400000);
    cr_assert_eq(parse_ok("2d"), 172800000);
    cr_assert_eq(parse_ok("007s"), 7000);
}

Test(duration, combined_groups)
{
    cr_assert_eq(parse_ok("1h30m"), 5400000);
    cr_assert_eq(parse_ok("1m30s"), 90000);
    cr_assert_eq(parse_ok("1s500ms"), 1500);
    cr_assert_eq(parse_ok("1d2h3m4s5ms"), 86400000LL + 2 * 3600000 + 3 * 60000 + 4000 + 5);
    cr_assert_eq(parse_ok("2d12h"), 216000000);
}

Test(duration, limits)
{
    cr_assert_eq(parse_ok("9223372036854775807ms"), INT64_MAX);
    cr_assert_eq(parse_ok("106751991167d"), 106751991167LL * 86400000);
    cr_assert_eq(parse_ok("106751991167d7h12m55s807ms"), INT64_MAX);
}

Test(duration, overflow)
{
    parse_bad("9223372036854775808ms", "too large");
    parse_bad("106751991168d", "too large");
    parse_bad("106751991167d7h12m55s808ms", "too large");
    parse_bad("99999999999999999999999s", "too large");
    parse_bad("9223372036854775807s", "too large");
}

Test(duration, syntax_errors)
{
    parse_bad("", "empty");
    parse_bad("10", "missing unit");
    parse_bad("1h30", "missing unit");
    parse_bad("h", "expected a digit");
    parse_bad("1x", "unknown unit \"x\"");
    parse_bad("5sec", "unknown unit \"sec\"");
    parse_bad("5H", "unknown unit \"H\"");
    parse_bad("1h 30m", "expected a digit at byte 2");
    parse_bad(" 1h", "expected a digit at byte 0");
    parse_bad("1h ", "expected a digit at byte 2");
    parse_bad("-1s", "expected a digit");
    parse_bad("+1s", "expected a digit");
    parse_bad("1.5h", "missing unit");
    parse_bad("1hh", "unknown unit \"hh\"");
}

Test(duration, unit_order)
{
    parse_bad("30s1m", "largest to smallest");
    parse_bad("1m1m", "largest to smallest");
    parse_bad("1ms1s", "largest to smallest");
}

Test(duration, message_quotes_text)
{
    sl_err err = { 0 };
    int64_t ms;
    cr_assert_eq(sl_duration_parse("1q", &ms, &err), -1);
    cr_assert(strstr(err.msg, "\"1q\"") != NULL, "%s", err.msg);

    /* A long or binary value is cut and made printable. */
    char text[200];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    text[0] = '\n';
    cr_assert_eq(sl_duration_parse(text, &ms, &err), -1);
    cr_assert(strstr(err.msg, "?xxx") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "...") != NULL, "%s", err.msg);
    cr_assert(strchr(err.msg, '\n') == NULL, "%s", err.msg);
    cr_assert_lt(strlen(err.msg), 160);
}

Test(duration, null_text)
{
    int64_t ms;
    sl_err err = { 0 };
    cr_assert_eq(sl_duration_parse(NULL, &ms, &err), -1);
    cr_assert_eq(err.code, SL_EINVAL);
}

static void format_is(int64_t ms, const char *want)
{
    char buf[64];
    sl_duration_format(ms, buf, sizeof buf);
    cr_assert_str_eq(buf, want, "format(%lld)", (long long)ms);
}

Test(duration, format)
{
    format_is(0, "0s");
    format_is(1, "1ms");
    format_is(250, "250ms");
    format_is(1000, "1s");
    format_is(1500, "1s500ms");
    format_is(60000, "1m");
    format_is(90000, "1m30s");
    format_is(5400000, "1h30m");
    format_is(86400000, "1d");
    format_is(86400000 + 1, "1d1ms");
    format_is(INT64_MAX, "106751991167d7h12m55s807ms");
    format_is(-1500, "-1s500ms");
    format_is(INT64_MIN, "-106751991167d7h12m55s808ms");
}

Test(duration, format_parse_round_trip)
{
    const int64_t values[] = {
        0, 1, 999, 1000, 1001, 59999, 60000, 3599999, 3600000, 86399999, 86400000,
        123456789012, INT64_MAX - 1, INT64_MAX,
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char buf[64];
        sl_duration_format(values[i], buf, sizeof buf);
        cr_assert_eq(parse_ok(buf), values[i], "\"%s\"", buf);
    }
}

Test(duration, format_truncates_safely)
{
    char buf[6];
    memset(buf, '#', sizeof buf);
    sl_duration_format(5400001, buf, sizeof buf); /* "1h30m1ms" */
    cr_assert_str_eq(buf, "1h30m");

    char one[1] = { '#' };
    sl_duration_format(1500, one, sizeof one);
    cr_assert_eq(one[0], '\0');

    sl_duration_format(1500, NULL, 0); /* must not write */
}
