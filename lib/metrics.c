/* metrics.c: see metrics.h.
 *
 * The accumulator is a short list of (queue, field, delta) rows searched
 * linearly: a batch touches a handful of distinct fields (its queues times
 * its kinds, plus a few histogram buckets), so a hash table would cost
 * more than it saves. */
#include "metrics.h"
#include "mem.h"
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int64_t BOUNDS_MS[SL_METRICS_BUCKETS - 1] = {
    1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
};

static const char *const COUNTER_NAMES[SL_M_NCOUNTERS] = {
    "enqueued", "processed", "failed", "retried", "dead", "timed_out",
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

typedef struct row {
    char key[SL_KEY_MAX];    /* sluice:{Q}:stats */
    char field[96];          /* e.g. processed:noop, wait:3 */
    long long delta;
} row;

struct sl_metrics {
    row *rows;
    size_t n, cap;
};

sl_metrics *sl_metrics_new(void)
{
    return sl_xcalloc(1, sizeof(sl_metrics));
}

void sl_metrics_free(sl_metrics *m)
{
    if (m == NULL)
        return;
    free(m->rows);
    free(m);
}

static void add(sl_metrics *m, const char *queue, const char *field, long long delta)
{
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "stats");
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->rows[i].field, field) == 0 && strcmp(m->rows[i].key, key) == 0) {
            m->rows[i].delta += delta;
            return;
        }
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 32;
        m->rows = sl_xrealloc(m->rows, m->cap * sizeof *m->rows);
    }
    row *r = &m->rows[m->n++];
    memcpy(r->key, key, sizeof key);
    snprintf(r->field, sizeof r->field, "%s", field);
    r->delta = delta;
}

void sl_metrics_count(sl_metrics *m, const char *queue, const char *kind, sl_metrics_counter c)
{
    if (m == NULL || queue == NULL)
        return;
    char field[96];
    snprintf(field, sizeof field, "%s:%s", sl_metrics_counter_name(c), kind ? kind : "");
    add(m, queue, field, 1);
}

static void observe(sl_metrics *m, const char *queue, const char *name, int64_t ms)
{
    char field[96];
    if (ms < 0)
        ms = 0;   /* clocks of different hosts disagree: count it as no wait */
    snprintf(field, sizeof field, "%s:%d", name, sl_metrics_bucket_of(ms));
    add(m, queue, field, 1);
    snprintf(field, sizeof field, "%s:sum_ms", name);
    add(m, queue, field, ms);
    snprintf(field, sizeof field, "%s:count", name);
    add(m, queue, field, 1);
}

void sl_metrics_ran(sl_metrics *m, const char *queue, int64_t enqueued_ms, int64_t started_ms,
                    double run_ms)
{
    if (m == NULL || queue == NULL)
        return;
    if (enqueued_ms > 0)
        observe(m, queue, "wait", started_ms - enqueued_ms);
    observe(m, queue, "run", (int64_t)(run_ms + 0.5));
}

bool sl_metrics_empty(const sl_metrics *m)
{
    return m == NULL || m->n == 0;
}

int sl_metrics_append(const sl_metrics *m, sl_redis *r, sl_err *err)
{
    if (m == NULL)
        return 0;
    int sent = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (m->rows[i].delta == 0)
            continue;   /* e.g. the run-time sum of a batch of sub-ms jobs */
        char delta[24];
        snprintf(delta, sizeof delta, "%lld", m->rows[i].delta);
        const char *argv[] = { "HINCRBY", m->rows[i].key, m->rows[i].field, delta };
        if (sl_redis_append(r, 4, argv, NULL, err) < 0)
            return -1;
        sent++;
    }
    return sent;
}

void sl_metrics_reset(sl_metrics *m)
{
    if (m)
        m->n = 0;
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
        if (colon == NULL)
            continue;
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
