/* jobid.c: UUIDv7 job ids (RFC 9562) and the check on client-supplied ids.
 *
 * Layout of the 128 bits, most significant first:
 *
 *   unix_ts_ms 48 | ver 4 (=7) | rand_a 12 | var 2 (=10) | rand_b 62
 *
 * rand_a is used as a counter (RFC 9562 section 6.2, method 1, "fixed
 * bit-length dedicated counter"): on a new millisecond it is seeded with 11
 * random bits, leaving the top bit clear so the counter has room to grow; in
 * the same millisecond (or if the wall clock steps backwards) it is
 * incremented instead.  When it would wrap, the timestamp is advanced by one
 * ms beyond the real clock (section 6.2 allows "borrowing" from the
 * future) and the counter is reseeded.  So ids made by one process are
 * strictly increasing as strings, however fast they are made and whatever
 * the wall clock does; rand_b (fresh from getrandom(2) every time) keeps ids
 * made by different processes, which share no state, unique.
 *
 * That ordering needs memory of the last id made, hence the one piece of
 * static state below.  It is guarded by a mutex because libsluice is also a
 * client library that threaded programs link.  A forked child inherits a
 * copy; that is harmless, since rand_b differs per id.
 */
#include "jobid.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static struct {
    pthread_mutex_t lock;
    uint64_t last_ms;   /* timestamp of the last id made */
    uint32_t counter;   /* its rand_a, 12 bits */
} state = { PTHREAD_MUTEX_INITIALIZER, 0, 0 };

/* Fills buf with random bytes or aborts: without randomness we cannot make
 * ids that are safe to hand out, and limping on would risk collisions. */
static void random_bytes(unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "sluice: getrandom: %s\n", strerror(errno));
            abort();
        }
        got += (size_t)r;
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) < 0) {
        fprintf(stderr, "sluice: clock_gettime(CLOCK_REALTIME): %s\n", strerror(errno));
        abort();
    }
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sl_jobid_new(char out[37])
{
    unsigned char rnd[10]; /* 2 bytes to seed the counter, 8 for rand_b */
    random_bytes(rnd, sizeof rnd);
    uint32_t seed = ((uint32_t)rnd[0] << 8 | rnd[1]) & 0x7ff;
    uint64_t now = now_ms();

    pthread_mutex_lock(&state.lock);
    if (now > state.last_ms) {
        state.last_ms = now;
        state.counter = seed;
    } else if (++state.counter > 0xfff) {
        state.last_ms++;
        state.counter = seed;
    }
    uint64_t ms = state.last_ms & 0xffffffffffffu;
    uint32_t ctr = state.counter;
    pthread_mutex_unlock(&state.lock);

    unsigned char b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (8 * (5 - i)));
    b[6] = (unsigned char)(0x70 | (ctr >> 8));
    b[7] = (unsigned char)(ctr & 0xff);
    memcpy(b + 8, rnd + 2, 8);
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));

    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0f];
    }
    out[o] = '\0';
}

bool sl_jobid_valid(const char *id)
{
    if (id == NULL)
        return false;
    size_t n = strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-");
    return n >= 1 && n <= SL_JOBID_MAX && id[n] == '\0';
}
