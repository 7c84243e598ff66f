/* fuzz/redis_url.c: the Redis URL parser (lib/redis.c), as redis.url and
 * SLUICE_REDIS_URL give it; sl_redis_url_check parses without connecting. */
#include "fuzz.h"

#include "redis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    sl_err err;
    if (sl_redis_url_check(text, &err) < 0)
        FUZZ_ASSERT(err.code == SL_EINVAL && err.msg[0], "code %d", err.code);
    free(text);
    return 0;
}
