/* rate.h: a rate, "COUNT/s", "COUNT/m" or "COUNT/h", as the configuration
 * writes it (queues.NAME.rate); enforced by lib/ratelimit.h. */
#ifndef SL_RATE_H
#define SL_RATE_H

#include "err.h"

#define SL_RATE_MAX 1000000000LL   /* largest count of a rate */

typedef struct sl_rate {
    long long count;      /* tokens per period, 1..SL_RATE_MAX; 0: no limit */
    long long period_ms;  /* 1000 (/s), 60000 (/m) or 3600000 (/h) */
} sl_rate;

/* Parses "COUNT/s", "COUNT/m" or "COUNT/h" (COUNT a decimal integer, 1 to
 * SL_RATE_MAX, no sign or spaces).  0, or -1 with err (SL_EINVAL) naming
 * what is wrong. */
int sl_rate_parse(const char *text, sl_rate *out, sl_err *err);

#endif
