/* limiter.c: see limiter.h. */
#include "limiter.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define ENTRIES 4096

typedef struct entry {
    char addr[64];           /* "" when unused */
    int64_t seen_ms;         /* last request */
    double tokens;           /* request bucket */
    int64_t refilled_ms;
    int failures;            /* failed authentications since window_ms */
    int64_t window_ms;
    int64_t locked_until_ms;
} entry;

struct sl_limiter {
    const sl_api_config *cfg;
    pthread_mutex_t mu;
    entry *e;   /* ENTRIES */
};

sl_limiter *sl_limiter_new(const sl_api_config *cfg)
{
    sl_limiter *l = sl_xcalloc(1, sizeof *l);
    l->cfg = cfg;
    pthread_mutex_init(&l->mu, NULL);
    l->e = sl_xcalloc(ENTRIES, sizeof *l->e);
    return l;
}

void sl_limiter_free(sl_limiter *l)
{
    if (l == NULL)
        return;
    pthread_mutex_destroy(&l->mu);
    free(l->e);
    free(l);
}

/* The entry of addr, made if new (replacing the stalest of its probe
 * window).  Under mu. */
static entry *find(sl_limiter *l, const char *addr, int64_t now_ms)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (const char *p = addr; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    entry *oldest = NULL;
    for (int i = 0; i < 16; i++) {
        entry *e = &l->e[(h + (uint32_t)i) % ENTRIES];
        if (strcmp(e->addr, addr) == 0)
            return e;
        if (oldest == NULL || (oldest->addr[0] != '\0' && (e->addr[0] == '\0' || e->seen_ms < oldest->seen_ms)))
            oldest = e;   /* prefer an unused entry, else the stalest */
    }
    memset(oldest, 0, sizeof *oldest);
    snprintf(oldest->addr, sizeof oldest->addr, "%s", addr);
    oldest->tokens = l->cfg->rate_burst;
    oldest->refilled_ms = now_ms;
    oldest->seen_ms = now_ms;
    return oldest;
}

bool sl_limiter_request(sl_limiter *l, const char *addr, int64_t now_ms, int *retry_s)
{
    pthread_mutex_lock(&l->mu);
    entry *e = find(l, addr, now_ms);
    e->seen_ms = now_ms;
    e->tokens += (double)(now_ms - e->refilled_ms) * l->cfg->rate_limit / 1000.0;
    if (e->tokens > l->cfg->rate_burst)
        e->tokens = l->cfg->rate_burst;
    e->refilled_ms = now_ms;
    bool ok = e->tokens >= 1.0;
    if (ok)
        e->tokens -= 1.0;
    *retry_s = ok ? 0 : 1 + (int)((1.0 - e->tokens) / l->cfg->rate_limit);
    pthread_mutex_unlock(&l->mu);
    return ok;
}

bool sl_limiter_locked(sl_limiter *l, const char *addr, int64_t now_ms, int *retry_s)
{
    pthread_mutex_lock(&l->mu);
    entry *e = find(l, addr, now_ms);
    bool locked = now_ms < e->locked_until_ms;
    *retry_s = locked ? (int)((e->locked_until_ms - now_ms + 999) / 1000) : 0;
    pthread_mutex_unlock(&l->mu);
    return locked;
}

void sl_limiter_auth_failed(sl_limiter *l, const char *addr, int64_t now_ms)
{
    pthread_mutex_lock(&l->mu);
    entry *e = find(l, addr, now_ms);
    if (now_ms - e->window_ms > l->cfg->auth_lockout_ms) {
        e->window_ms = now_ms;
        e->failures = 0;
    }
    if (++e->failures >= l->cfg->auth_failures) {
        e->locked_until_ms = now_ms + l->cfg->auth_lockout_ms;
        e->failures = 0;
        e->window_ms = now_ms;
    }
    pthread_mutex_unlock(&l->mu);
}
