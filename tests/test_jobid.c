/* test_jobid.c: UUIDv7 generation and client id validation (lib/jobid.c). */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobid.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* uppercase is not allowed either */
}

/* Asserts id is a canonical lowercase UUIDv7 and returns its timestamp. */
static uint64_t check_uuidv7(const char *id)
{
    cr_assert_eq(strlen(id), 36, "%s", id);
    uint64_t ts = 0;
    int nibble = 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            cr_assert_eq(id[i], '-', "%s: no hyphen at %d", id, i);
            continue;
        }
        int v = hexval(id[i]);
        cr_assert_geq(v, 0, "%s: bad hex digit at %d", id, i);
        if (nibble < 12)
            ts = ts << 4 | (uint64_t)v;
        nibble++;
    }
    cr_assert_eq(id[14], '7', "%s: version nibble", id);
    cr_assert(strchr("89ab", id[19]) != NULL, "%s: variant bits", id);
    return ts;
}

Test(jobid, format)
{
    char id[37];
    memset(id, 'Z', sizeof id);
    sl_jobid_new(id);
    cr_assert_eq(id[36], '\0');
    check_uuidv7(id);
    cr_assert(sl_jobid_valid(id));
}

Test(jobid, timestamp_is_unix_ms)
{
    /* Not a timing check: only that the 48 bits hold Unix milliseconds (a
     * day of slack either way), not seconds or garbage. */
    char id[37];
    sl_jobid_new(id);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t got = (int64_t)check_uuidv7(id);
    cr_assert_lt(llabs(got - now), 86400000LL, "id %s, now %lld", id, (long long)now);
}

Test(jobid, strictly_increasing_and_unique)
{
    enum { N = 10000 };
    static char ids[N][37];
    for (int i = 0; i < N; i++) {
        sl_jobid_new(ids[i]);
        check_uuidv7(ids[i]);
    }
    /* Strictly increasing implies unique; many of these share a millisecond,
     * which is what the counter in rand_a is for. */
    for (int i = 1; i < N; i++)
        cr_assert_lt(strcmp(ids[i - 1], ids[i]), 0, "ids[%d]=%s !< ids[%d]=%s", i - 1,
                     ids[i - 1], i, ids[i]);
}

Test(jobid, random_tail_differs)
{
    /* rand_b is fresh for every id, so two ids never share their last 64 bits
     * (with overwhelming probability): this is what keeps ids from different
     * processes apart. */
    char a[37], b[37];
    sl_jobid_new(a);
    sl_jobid_new(b);
    cr_assert_neq(strcmp(a + 19, b + 19), 0, "%s / %s", a, b);
}

Test(jobid, valid_client_ids)
{
    const char *ok[] = {
        "a", "0", "order-123", "order-123:retry.2", "A_b.C-d:e", "0190f5c4-7b6e-7cc3-9b2e-1f0e6d2a9c11",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_assert(sl_jobid_valid(ok[i]), "\"%s\" should be valid", ok[i]);

    char longest[SL_JOBID_MAX + 2];
    memset(longest, 'x', SL_JOBID_MAX);
    longest[SL_JOBID_MAX] = '\0';
    cr_assert(sl_jobid_valid(longest));
    longest[SL_JOBID_MAX] = 'x';
    longest[SL_JOBID_MAX + 1] = '\0';
    cr_assert_not(sl_jobid_valid(longest), "129 bytes accepted");
}

Test(jobid, invalid_client_ids)
{
    const char *bad[] = {
        "", "a b", "a/b", "a\\b", "{x}", "a\nb", "a\tb", "caf\xc3\xa9", "a%20b", "a?b", "a#b",
        "\"q\"", "a'b", "a*b", "a@b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(sl_jobid_valid(bad[i]), "\"%s\" should be invalid", bad[i]);
    cr_assert_not(sl_jobid_valid(NULL));
}
