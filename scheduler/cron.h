/* cron.h: 5-field cron expressions, evaluated in UTC.
 *
 *   minute hour day-of-month month day-of-week
 *
 * Each field is `*` or a comma list of N, A-B, with an optional /STEP on
 * `*`, a range or a single value (N/STEP means N to the field's maximum).
 * Months may be jan..dec, days of the week sun..sat (0 and 7 are Sunday),
 * names case-insensitive.  Shorthands: @yearly (@annually), @monthly,
 * @weekly, @daily (@midnight), @hourly.  As in Vixie cron, when both
 * day-of-month and day-of-week are restricted (neither starts with `*`), a
 * day matches if either matches. */
#ifndef SL_CRON_H
#define SL_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

typedef struct sl_cron {
    uint64_t minute;   /* bit i: minute i matches */
    uint32_t hour;
    uint32_t dom;      /* bits 1..31 */
    uint16_t month;    /* bits 1..12 */
    uint8_t dow;       /* bits 0..6, Sunday = 0 */
    bool dom_star;     /* field started with '*' */
    bool dow_star;
} sl_cron;

/* Parses text into *out.  Returns -1 with err (SL_EINVAL, naming the field
 * and the bad part) on a syntax or range error, or when the expression can
 * never fire (e.g. "0 0 30 2 *"). */
int sl_cron_parse(const char *text, sl_cron *out, sl_err *err);

/* The first fire time strictly after after_ms (Unix ms), in Unix ms, on a
 * whole minute.  Returns -1 if there is none within ~5 years. */
int64_t sl_cron_next(const sl_cron *c, int64_t after_ms);

#endif
