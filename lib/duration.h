/* duration.h: human durations as used in configuration and pipelines.
 *
 * Syntax: one or more <integer><unit> groups, unit one of ms, s, m, h, d
 * ("1500ms", "10m", "1h30m", "2d").  A bare integer is rejected: the unit
 * is always explicit.  Groups go from the largest unit to the smallest, each
 * unit at most once ("1m30s", not "30s1m" or "1m1m"); no spaces, signs or
 * fractions. */
#ifndef SL_DURATION_H
#define SL_DURATION_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Parses text into milliseconds (>= 0).  Returns -1 with err (SL_EINVAL,
 * message quoting the text and saying what is wrong) on bad syntax or on
 * overflow. */
int sl_duration_parse(const char *text, int64_t *ms_out, sl_err *err);

/* Formats ms as an exact duration that sl_duration_parse reads back: largest
 * units first, zero groups left out ("1h30m", "1s500ms", "250ms", "0s").
 * Negative values get a leading '-' (which the parser rejects).  Output is
 * cut to fit n bytes and always NUL-terminated when n > 0. */
void sl_duration_format(int64_t ms, char *buf, size_t n);

#endif
