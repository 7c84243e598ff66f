/* fuzz/cron.c: cron expressions (scheduler/cron.c), as pipelines' `cron:`
 * triggers hold them.  A schedule that parses fires strictly later, on a
 * whole minute, or never (-1). */
#include "fuzz.h"

#include "cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    sl_cron c;
    sl_err err;
    if (sl_cron_parse(text, &c, &err) == 0) {
        const int64_t after = 1767225600000 + 12345; /* 2026-01-01 00:00:12.345 UTC */
        int64_t next = sl_cron_next(&c, after);
        FUZZ_ASSERT(next == -1 || (next > after && next % 60000 == 0), "next %lld", (long long)next);
    } else {
        FUZZ_ASSERT(err.code == SL_EINVAL && err.msg[0], "code %d", err.code);
    }
    free(text);
    return 0;
}
