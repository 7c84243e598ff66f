/* test_numfmt.c: shortest round-trip formatting of doubles (lib/numfmt.c). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "numfmt.h"

static void expect(double v, const char *want)
{
    char buf[SL_NUMFMT_MAX];
    cr_assert_str_eq(sl_fmt_double(v, buf), want, "%.17g", v);
}

Test(numfmt, shortest_text_for_common_values)
{
    expect(0.1, "0.1");
    expect(0.1 + 0.2, "0.30000000000000004");
    expect(1.5, "1.5");
    expect(-2.25, "-2.25");
    expect(3, "3");
    expect(-42, "-42");
    expect(1e21, "1e+21");
    expect(9007199254740992.0, "9007199254740992");
    expect(0, "0");
    expect(-0.0, "-0");
    expect(NAN, "NaN");
    expect(INFINITY, "Infinity");
    expect(-INFINITY, "-Infinity");
}

Test(numfmt, every_output_reads_back_to_the_same_double)
{
    /* Deterministic pseudo-random bit patterns across the whole range. */
    unsigned long long x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof v);
        if (!isfinite(v))
            continue;
        char buf[SL_NUMFMT_MAX];
        sl_fmt_double(v, buf);
        cr_assert_lt(strlen(buf), (size_t)SL_NUMFMT_MAX);
        cr_assert_eq(strtod(buf, NULL), v, "%s does not read back as %.17g", buf, v);
    }
}
