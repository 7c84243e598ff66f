/* throttle.c: see throttle.h.  One entry per limited queue the child
 * reads; unlimited queues have none and cost nothing. */
#include "throttle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config_worker.h"
#include "log.h"
#include "mem.h"
#include "queue.h"
#include "ratelimit.h"

#define ADMIT_LEASE_MS 60000   /* a slot's lease from admission to its first job */
#define LEASE_MARGIN_MS 5000   /* added to a job's time limit */

typedef struct limited {
    const char *queue;              /* borrowed from the configuration */
    sl_queue_limits limits;
    char rate_key[SL_KEY_MAX], slots_key[SL_KEY_MAX], stats_key[SL_KEY_MAX];
    int64_t wait_until_ms;          /* monotonic; 0: may be asked */
    int64_t throttled_since_ms;     /* monotonic; 0: not throttled */
    bool holding;                   /* holds a concurrency slot */
} limited;

struct sl_throttle {
    limited *items;
    size_t n;
    const sl_config *cfg;
    char holder[128];
};

sl_throttle *sl_throttle_new(const sl_config *cfg, char *const *queues, size_t n, const char *holder)
{
    sl_throttle *t = NULL;
    for (size_t i = 0; i < n; i++) {
        const sl_queue_limits *l = sl_worker_queue_limits(sl_worker_config_of(cfg), queues[i]);
        if (l == NULL)
            continue;
        if (t == NULL) {
            t = sl_xcalloc(1, sizeof *t);
            t->items = sl_xcalloc(n, sizeof *t->items);
            t->cfg = cfg;
            snprintf(t->holder, sizeof t->holder, "%s", holder);
        }
        limited *q = &t->items[t->n++];
        q->queue = queues[i];
        q->limits = *l;
        sl_queue_key(q->rate_key, queues[i], "rate");
        sl_queue_key(q->slots_key, queues[i], "running");
        sl_queue_key(q->stats_key, queues[i], "stats");
    }
    return t;
}

void sl_throttle_free(sl_throttle *t)
{
    if (t == NULL)
        return;
    free(t->items);
    free(t);
}

static limited *find(const sl_throttle *t, const char *queue)
{
    for (size_t i = 0; t && i < t->n; i++) {
        if (strcmp(t->items[i].queue, queue) == 0)
            return &t->items[i];
    }
    return NULL;
}

static void log_failure(const char *what, const char *queue, const sl_err *err)
{
    char q[600];
    SL_WARN("throttle.failed", "queue=%s what=%s error=%s effect=\"read without the limit this time\"", queue,
            what, sl_log_quote(q, sizeof q, err->msg));
}

/* The queue stops waiting: its throttled time goes to its stats hash. */
static void end_throttle(limited *q, sl_redis *r, int64_t now_ms)
{
    if (q->throttled_since_ms == 0)
        return;
    char ms[24];
    snprintf(ms, sizeof ms, "%lld", (long long)(now_ms - q->throttled_since_ms));
    q->throttled_since_ms = 0;
    const char *argv[] = { "HINCRBY", q->stats_key, "throttled_ms", ms };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 4, argv, NULL, &err);
    if (rep == NULL)
        log_failure("count throttled time", q->queue, &err);
    else
        freeReplyObject(rep);
}

static void start_throttle(limited *q, int64_t now_ms, int wait_ms)
{
    q->wait_until_ms = now_ms + wait_ms;
    if (q->throttled_since_ms == 0)
        q->throttled_since_ms = now_ms;
}

bool sl_throttle_waiting(const sl_throttle *t, const char *queue, int64_t now_ms)
{
    const limited *q = find(t, queue);
    return q != NULL && q->wait_until_ms > now_ms;
}

int sl_throttle_admit(sl_throttle *t, sl_redis *r, const char *queue, int want, int64_t now_ms)
{
    limited *q = find(t, queue);
    if (q == NULL || want <= 0)
        return want;
    if (q->wait_until_ms > now_ms)
        return 0;
    sl_err err;
    if (q->limits.concurrency > 0 && !q->holding) {
        bool got = false;
        if (sl_slots_take(r, q->slots_key, q->limits.concurrency, t->holder, ADMIT_LEASE_MS, &got, &err) < 0) {
            log_failure("take a concurrency slot", queue, &err);
            return want;
        }
        if (!got) {
            /* No wake-up when a slot frees: look again after a short while. */
            start_throttle(q, now_ms, sl_worker_config_of(t->cfg)->block_ms < 200 ? sl_worker_config_of(t->cfg)->block_ms : 200);
            return 0;
        }
        q->holding = true;
    }
    if (q->limits.concurrency > 0)
        want = 1;   /* one running job per slot: the rest of the batch would wait behind it */
    int granted = want;
    if (q->limits.rate.count > 0) {
        int wait_ms = 0;
        if (sl_rate_take(r, q->rate_key, &q->limits.rate, want, &granted, &wait_ms, &err) < 0) {
            log_failure("take tokens", queue, &err);
            return want;
        }
        if (granted == 0) {
            start_throttle(q, now_ms, wait_ms);
            if (q->holding && sl_slots_release(r, q->slots_key, t->holder, &err) == 0)
                q->holding = false;
            return 0;
        }
    }
    q->wait_until_ms = 0;
    end_throttle(q, r, now_ms);
    return granted;
}

void sl_throttle_used(sl_throttle *t, sl_redis *r, const char *queue, int admitted, int read)
{
    limited *q = find(t, queue);
    if (q == NULL)
        return;
    sl_err err;
    if (q->limits.rate.count > 0 && admitted > read &&
        sl_rate_give_back(r, q->rate_key, &q->limits.rate, admitted - read, &err) < 0)
        log_failure("give tokens back", queue, &err);
    if (read == 0 && q->holding) {
        if (sl_slots_release(r, q->slots_key, t->holder, &err) < 0)
            log_failure("give a concurrency slot up", queue, &err);
        q->holding = false;
    }
}

void sl_throttle_job_start(sl_throttle *t, sl_redis *r, const char *queue, int64_t timeout_ms)
{
    limited *q = find(t, queue);
    if (q == NULL || !q->holding)
        return;
    bool got;
    sl_err err;
    int64_t lease = timeout_ms + sl_worker_config_of(t->cfg)->timeout_grace_ms + LEASE_MARGIN_MS;
    if (sl_slots_take(r, q->slots_key, q->limits.concurrency, t->holder, lease, &got, &err) < 0)
        log_failure("renew a concurrency slot", queue, &err);
}

void sl_throttle_release(sl_throttle *t, sl_redis *r)
{
    for (size_t i = 0; t && i < t->n; i++) {
        limited *q = &t->items[i];
        if (!q->holding)
            continue;
        sl_err err;
        if (sl_slots_release(r, q->slots_key, t->holder, &err) < 0)
            log_failure("give a concurrency slot up", q->queue, &err);
        q->holding = false;
    }
}

int64_t sl_throttle_limit_wait(sl_redis *r, const char *name, const sl_rate *rate)
{
    char key[400];
    snprintf(key, sizeof key, "sluice:{limit:%.300s}:rate", name);
    int granted = 0, wait_ms = 0;
    sl_err err;
    if (sl_rate_take(r, key, rate, 1, &granted, &wait_ms, &err) < 0) {
        char q[600];
        SL_WARN("throttle.failed", "limit=%s what=\"take a token\" error=%s effect=\"run without the "
                "limit this time\"", name, sl_log_quote(q, sizeof q, err.msg));
        return 0;
    }
    return granted > 0 ? 0 : wait_ms > 0 ? wait_ms : 1;
}

int sl_throttle_next_ms(const sl_throttle *t, int64_t now_ms, int cap_ms)
{
    int64_t next = cap_ms;
    for (size_t i = 0; t && i < t->n; i++) {
        int64_t w = t->items[i].wait_until_ms - now_ms;
        if (t->items[i].wait_until_ms > 0 && w < next)
            next = w < 1 ? 1 : w;
    }
    return (int)next;
}
