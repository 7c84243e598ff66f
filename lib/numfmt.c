/* numfmt.c: shortest round-trip formatting of doubles (see numfmt.h).
 *
 * Tries %.1g, %.2g, … %.17g and keeps the first that strtod reads back to
 * the same bits.  Seventeen significant digits always round-trip an IEEE
 * double, so the loop always ends.  This costs a few snprintf/strtod pairs
 * for numbers with many digits; numbers are rare on the hot path (job
 * envelopes carry integers), so simplicity wins over Ryu-style speed. */
#include "numfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *sl_fmt_double(double v, char buf[SL_NUMFMT_MAX])
{
    if (isnan(v)) {
        memcpy(buf, "NaN", 4);
        return buf;
    }
    if (isinf(v)) {
        strcpy(buf, v < 0 ? "-Infinity" : "Infinity");
        return buf;
    }
    if (v == 0) {
        strcpy(buf, signbit(v) ? "-0" : "0");
        return buf;
    }
    if (fabs(v) <= 9007199254740992.0 && v == trunc(v)) {
        snprintf(buf, SL_NUMFMT_MAX, "%.0f", v);
        return buf;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, SL_NUMFMT_MAX, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}
