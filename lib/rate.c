/* rate.c: see rate.h. */
#include "rate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sl_rate_parse(const char *text, sl_rate *out, sl_err *err)
{
    out->count = out->period_ms = 0;
    const char *slash = strchr(text, '/');
    if (slash == NULL || slash == text || slash[1] == '\0' || slash[2] != '\0')
        return sl_err_set(err, SL_EINVAL, "a rate is COUNT/s, COUNT/m or COUNT/h (e.g. 10/s), got '%.40s'", text);
    for (const char *p = text; p < slash; p++) {
        if (*p < '0' || *p > '9')
            return sl_err_set(err, SL_EINVAL, "a rate's count is a whole number, got '%.40s'", text);
    }
    errno = 0;
    long long n = strtoll(text, NULL, 10);
    if (errno != 0 || n < 1 || n > SL_RATE_MAX || slash - text > 10)
        return sl_err_set(err, SL_EINVAL, "a rate's count is 1 to %lld, got '%.40s'", SL_RATE_MAX, text);
    long long period;
    switch (slash[1]) {
    case 's': period = 1000; break;
    case 'm': period = 60000; break;
    case 'h': period = 3600000; break;
    default:
        return sl_err_set(err, SL_EINVAL, "a rate is per s, m or h, got '%.40s'", text);
    }
    out->count = n;
    out->period_ms = period;
    return 0;
}
