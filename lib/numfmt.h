/* numfmt.h: the one way sluice turns a double into text.
 *
 * Shortest round trip: the fewest significant digits (1..17) that read back
 * as the same double, so 0.1 prints as "0.1", not "0.10000000000000001", and
 * every printed number parses to the value it came from.  Used wherever a
 * number leaves the process as text: JSON, templates, environment
 * variables, expressions, the Prometheus exposition. */
#ifndef SL_NUMFMT_H
#define SL_NUMFMT_H

#include <stddef.h>

/* Longest text sl_fmt_double writes, with its NUL ("-1.2345678901234567e-308"). */
#define SL_NUMFMT_MAX 32

/* Writes v into buf (SL_NUMFMT_MAX bytes) and returns buf.  Integral values
 * print without a decimal point or exponent up to 2^53 ("3", "-42");
 * others in %g style.  NaN and infinities print as "NaN", "Infinity",
 * "-Infinity" (callers that emit JSON must refuse them first). */
char *sl_fmt_double(double v, char buf[SL_NUMFMT_MAX]);

#endif
