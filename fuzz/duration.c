/* fuzz/duration.c: durations (lib/duration.c), as configuration and
 * pipelines write them.  What parses formats back to a text that parses
 * to the same value. */
#include "fuzz.h"

#include "duration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    int64_t ms, again;
    sl_err err;
    if (sl_duration_parse(text, &ms, &err) == 0) {
        FUZZ_ASSERT(ms >= 0, "negative %lld", (long long)ms);
        char buf[64];
        sl_duration_format(ms, buf, sizeof buf);
        FUZZ_ASSERT(sl_duration_parse(buf, &again, &err) == 0 && again == ms, "%s -> %lld -> %s",
                    text, (long long)ms, buf);
    }
    free(text);
    return 0;
}
