/* metrics.c: see metrics.h.
 *
 * The accumulator keeps numbers, not strings: one row of counters per
 * (queue, kind) and one pair of histograms per queue, searched linearly
 * (a batch touches a handful: its queues times its kinds), and formats
 * the HINCRBY fields once per batch, so counting costs a job a few
 * increments. */
#include "metrics.h"
#include "keys.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int64_t BOUNDS_MS[SL_METRICS_BUCKETS - 1] = {
    1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
};

static const char *const COUNTER_NAMES[SL_M_NCOUNTERS] = {
    "enqueued", "processed", "failed", "retried", "dead", "timed_out", "deferred",
};

int64_t sl_metrics_bucket_ms(int i)
{
    return i >= 0 && i < SL_METRICS_BUCKETS - 1 ? BOUNDS_MS[i] : -1;
}

int sl_metrics_bucket_of(int64_t ms)
{
    for (int i = 0; i < SL_METRICS_BUCKETS - 1; i++) {
        if (ms <= BOUNDS_MS[i])
            return i;
    }
    return SL_METRICS_BUCKETS - 1;
}

const char *sl_metrics_counter_name(sl_metrics_counter c)
{
    return c >= 0 && c < SL_M_NCOUNTERS ? COUNTER_NAMES[c] : "?";
}

/* ---- write side --------------------------------------------------------- */

/* Counters of one (queue, kind) and the histograms of one queue, as
 * numbers: nothing is formatted per job, only once per batch when the
 * increments are appended to the pipeline. */
typedef struct counted {
    char queue[SL_NAME_MAX + 1];
    char kind[SL_NAME_MAX + 1];   /* "" for entries that could not be decoded */
    long long counts[SL_M_NCOUNTERS];
} counted;

typedef struct timing {
    long long buckets[SL_METRICS_BUCKETS];
    long long sum_ms, count;
} timing;

typedef struct timed {
    char queue[SL_NAME_MAX + 1];
    timing wait, run;
} timed;

struct sl_metrics {
    bool (*known)(const char *kind); /* NULL: every kind is known */
    counted *counted;
    size_t ncounted, counted_cap;
    timed *timed;
    size_t ntimed, timed_cap;
};

sl_metrics *sl_metrics_new(void)
{
    return sl_xcalloc(1, sizeof(sl_metrics));
}

void sl_metrics_free(sl_metrics *m)
{
    if (m == NULL)
        return;
    free(m->counted);
    free(m->timed);
    free(m);
}

/* The row of (queue, kind), added if new.  Searched from the end: a batch
 * mostly repeats the row it touched last. */
static counted *counted_row(sl_metrics *m, const char *queue, const char *kind)
{
    for (size_t i = m->ncounted; i-- > 0;) {
        if (strcmp(m->counted[i].kind, kind) == 0 && strcmp(m->counted[i].queue, queue) == 0)
            return &m->counted[i];
    }
    if (m->ncounted == m->counted_cap) {
        m->counted_cap = m->counted_cap ? m->counted_cap * 2 : 8;
        m->counted = sl_xrealloc(m->counted, m->counted_cap * sizeof *m->counted);
    }
    counted *c = &m->counted[m->ncounted++];
    memset(c, 0, sizeof *c);
    snprintf(c->queue, sizeof c->queue, "%s", queue);
    snprintf(c->kind, sizeof c->kind, "%s", kind);
    return c;
}

static timed *timed_row(sl_metrics *m, const char *queue)
{
    for (size_t i = m->ntimed; i-- > 0;) {
        if (strcmp(m->timed[i].queue, queue) == 0)
            return &m->timed[i];
    }
    if (m->ntimed == m->timed_cap) {
        m->timed_cap = m->timed_cap ? m->timed_cap * 2 : 4;
        m->timed = sl_xrealloc(m->timed, m->timed_cap * sizeof *m->timed);
    }
    timed *t = &m->timed[m->ntimed++];
    memset(t, 0, sizeof *t);
    snprintf(t->queue, sizeof t->queue, "%s", queue);
    return t;
}

void sl_metrics_known_kinds(sl_metrics *m, bool (*known)(const char *kind))
{
    if (m)
        m->known = known;
}

void sl_metrics_count(sl_metrics *m, const char *queue, const char *kind, sl_metrics_counter c)
{
    if (m == NULL || queue == NULL || c < 0 || c >= SL_M_NCOUNTERS)
        return;
    if (kind == NULL)
        kind = "";
    else if (m->known && !m->known(kind))
        kind = SL_METRICS_UNKNOWN_KIND;
    counted_row(m, queue, kind)->counts[c]++;
}

static void observe(timing *t, int64_t ms)
{
    if (ms < 0)
        ms = 0;   /* clocks of different hosts disagree: count it as no wait */
    t->buckets[sl_metrics_bucket_of(ms)]++;
    t->sum_ms += ms;
    t->count++;
}

/* observe() of a duration in µs: its bucket from the µs (le: 1,000 µs
 * is in the 1 ms bucket, 1,001 µs in the next), its sum in rounded ms. */
static void observe_us(timing *t, int64_t us)
{
    if (us < 0)
        us = 0;
    int64_t ms = (us + 999) / 1000;  /* ceiling: the bucket whose bound it does not exceed */
    t->buckets[sl_metrics_bucket_of(ms)]++;
    t->sum_ms += (us + 500) / 1000;
    t->count++;
}

void sl_metrics_ran(sl_metrics *m, const char *queue, int64_t enqueued_us, int64_t started_us,
                    double run_ms)
{
    if (m == NULL || queue == NULL)
        return;
    timed *t = timed_row(m, queue);
    if (enqueued_us > 0)
        observe_us(&t->wait, started_us - enqueued_us);
    observe(&t->run, (int64_t)(run_ms + 0.5));
}

bool sl_metrics_empty(const sl_metrics *m)
{
    return m == NULL || (m->ncounted == 0 && m->ntimed == 0);
}

/* Appends HINCRBY key field delta unless delta is 0; counts it in *sent. */
static int hincrby(sl_redis *r, const char *key, const char *field, long long delta, int *sent,
                   sl_err *err)
{
    if (delta == 0)
        return 0;   /* e.g. the run-time sum of a batch of sub-ms jobs */
    char num[24];
    snprintf(num, sizeof num, "%lld", delta);
    const char *argv[] = { "HINCRBY", key, field, num };
    if (sl_redis_append(r, 4, argv, NULL, err) < 0)
        return -1;
    (*sent)++;
    return 0;
}

static int append_timing(sl_redis *r, const char *key, const char *name, const timing *t, int *sent,
                         sl_err *err)
{
    char field[32];
    for (int b = 0; b < SL_METRICS_BUCKETS; b++) {
        snprintf(field, sizeof field, "%s:%d", name, b);
        if (hincrby(r, key, field, t->buckets[b], sent, err) < 0)
            return -1;
    }
    snprintf(field, sizeof field, "%s:sum_ms", name);
    if (hincrby(r, key, field, t->sum_ms, sent, err) < 0)
        return -1;
    snprintf(field, sizeof field, "%s:count", name);
    return hincrby(r, key, field, t->count, sent, err);
}

int sl_metrics_append(const sl_metrics *m, sl_redis *r, sl_err *err)
{
    if (m == NULL)
        return 0;
    int sent = 0;
    char key[SL_KEY_MAX], field[96];
    for (size_t i = 0; i < m->ncounted; i++) {
        const counted *c = &m->counted[i];
        sl_queue_key(key, c->queue, "stats");
        for (int k = 0; k < SL_M_NCOUNTERS; k++) {
            snprintf(field, sizeof field, "%s:%s", COUNTER_NAMES[k], c->kind);
            if (hincrby(r, key, field, c->counts[k], &sent, err) < 0)
                return -1;
        }
    }
    for (size_t i = 0; i < m->ntimed; i++) {
        sl_queue_key(key, m->timed[i].queue, "stats");
        if (append_timing(r, key, "wait", &m->timed[i].wait, &sent, err) < 0 ||
            append_timing(r, key, "run", &m->timed[i].run, &sent, err) < 0)
            return -1;
    }
    return sent;
}

void sl_metrics_reset(sl_metrics *m)
{
    if (m)
        m->ncounted = m->ntimed = 0;
}

void sl_metrics_enqueue_field(const char *queue, const char *kind, char *key, size_t keylen,
                              char *field, size_t fieldlen)
{
    char k[SL_KEY_MAX];
    sl_queue_key(k, queue, "stats");
    snprintf(key, keylen, "%s", k);
    snprintf(field, fieldlen, "%s:%s", COUNTER_NAMES[SL_M_ENQUEUED], kind ? kind : "");
}

/* ---- read side ------------------------------------------------------------ */

static int by_kind(const void *a, const void *b)
{
    return strcmp(((const sl_metrics_kind *)a)->kind, ((const sl_metrics_kind *)b)->kind);
}

static sl_metrics_kind *kind_slot(sl_metrics_queue *q, const char *kind, size_t len)
{
    for (size_t i = 0; i < q->nkinds; i++) {
        if (strlen(q->kinds[i].kind) == len && memcmp(q->kinds[i].kind, kind, len) == 0)
            return &q->kinds[i];
    }
    q->kinds = sl_xrealloc(q->kinds, (q->nkinds + 1) * sizeof *q->kinds);
    sl_metrics_kind *k = &q->kinds[q->nkinds++];
    memset(k, 0, sizeof *k);
    snprintf(k->kind, sizeof k->kind, "%.*s", (int)len, kind);
    return k;
}

/* Applies one histogram field ("3", "sum_ms", "count") to h. */
static void histogram_field(sl_histogram *h, const char *rest, long long v)
{
    if (strcmp(rest, "sum_ms") == 0) {
        h->sum_ms = v;
    } else if (strcmp(rest, "count") == 0) {
        h->count = v;
    } else {
        char *end;
        long i = strtol(rest, &end, 10);
        if (end != rest && *end == '\0' && i >= 0 && i < SL_METRICS_BUCKETS)
            h->buckets[i] = v;
    }
}

void sl_metrics_queue_decode(const redisReply *hgetall, sl_metrics_queue *out)
{
    memset(out, 0, sizeof *out);
    if (hgetall == NULL || hgetall->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < hgetall->elements; i += 2) {
        const redisReply *f = hgetall->element[i], *v = hgetall->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        const char *colon = memchr(f->str, ':', f->len);
        if (colon == NULL) {
            if (f->len == 12 && memcmp(f->str, "throttled_ms", 12) == 0)
                out->throttled_ms = strtoll(v->str, NULL, 10);
            continue;
        }
        size_t plen = (size_t)(colon - f->str);
        const char *rest = colon + 1;
        long long n = strtoll(v->str, NULL, 10);
        if (plen == 4 && memcmp(f->str, "wait", 4) == 0) {
            histogram_field(&out->wait, rest, n);
            continue;
        }
        if (plen == 3 && memcmp(f->str, "run", 3) == 0) {
            histogram_field(&out->run, rest, n);
            continue;
        }
        for (int c = 0; c < SL_M_NCOUNTERS; c++) {
            if (strlen(COUNTER_NAMES[c]) == plen && memcmp(f->str, COUNTER_NAMES[c], plen) == 0) {
                sl_metrics_kind *k = kind_slot(out, rest, f->len - plen - 1);
                k->counts[c] += n;
                out->totals[c] += n;
                break;
            }
        }
    }
    if (out->nkinds > 1)
        qsort(out->kinds, out->nkinds, sizeof *out->kinds, by_kind);
}

void sl_metrics_queue_clear(sl_metrics_queue *q)
{
    free(q->kinds);
    memset(q, 0, sizeof *q);
}

double sl_histogram_quantile_ms(const sl_histogram *h, double q)
{
    long long total = 0;
    for (int i = 0; i < SL_METRICS_BUCKETS; i++)
        total += h->buckets[i];
    if (total <= 0)
        return -1;
    double rank = q * (double)total;
    long long seen = 0;
    for (int i = 0; i < SL_METRICS_BUCKETS; i++) {
        if (h->buckets[i] == 0 || (double)(seen + h->buckets[i]) < rank) {
            seen += h->buckets[i];
            continue;
        }
        if (i == SL_METRICS_BUCKETS - 1)
            return (double)BOUNDS_MS[SL_METRICS_BUCKETS - 2];
        double lo = i == 0 ? 0 : (double)BOUNDS_MS[i - 1];
        double hi = (double)BOUNDS_MS[i];
        return lo + (hi - lo) * (rank - (double)seen) / (double)h->buckets[i];
    }
    return (double)BOUNDS_MS[SL_METRICS_BUCKETS - 2];
}
