/* view.c: see view.h.
 *
 * Layout, for an 80-column terminal (the queue column grows with wider
 * ones):
 *   QUEUE       DEPTH INFL DELAY  DEAD PROC/s FAIL/s  WAIT p50/p99   RUN p50/p99 OLDEST P
 * then the workers (one line per process) and the open gates.  When the
 * height is limited, queues get at least half of it, workers what is left
 * after three lines for gates, and every section says how many lines it
 * could not show. */
#include "view.h"
#include "mem.h"
#include "vis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    char key;
    const char *name;
} SORTS[VIEW_SORT_COUNT] = {
    { 'n', "name" }, { 'd', "depth" }, { 'i', "inflight" }, { 'p', "processed" },
    { 'f', "failed" }, { 'w', "wait" }, { 'o', "oldest" },
};

char view_sort_key(view_sort s) { return s < VIEW_SORT_COUNT ? SORTS[s].key : '?'; }
const char *view_sort_name(view_sort s) { return s < VIEW_SORT_COUNT ? SORTS[s].name : "?"; }

int view_sort_parse(const char *s)
{
    for (int i = 0; i < VIEW_SORT_COUNT; i++) {
        if ((s[0] == SORTS[i].key && s[1] == '\0') || strcmp(s, SORTS[i].name) == 0)
            return i;
    }
    return -1;
}

/* One queue's figures as shown. */
typedef struct qrow {
    const snap_queue *q;
    double proc_rate, fail_rate;  /* per second, -1: unknown */
    double wait50, wait99, run50, run99; /* ms, -1: none */
    long long oldest_ms;          /* age, -1: none */
    long long throttled_ms;       /* held back by its limits since the previous snapshot */
} qrow;

/* Output under construction: lines truncated to the width. */
typedef struct out {
    sl_buf *b;
    int width;
    int lines;
} out;

static void line(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(out *o, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == ' ')
        n--;
    if (o->width > 0 && n > (size_t)o->width)
        n = (size_t)o->width;
    sl_buf_append(o->b, text, n);
    sl_buf_putc(o->b, '\n');
    o->lines++;
}

/* Compact durations, at most 5 characters: 850ms 12.4s 3m05s 2h10m 12d. */
static const char *short_ms(double ms, char *buf, size_t n)
{
    long long v = (long long)ms;
    if (ms < 0)
        snprintf(buf, n, "-");
    else if (ms < 1000)
        snprintf(buf, n, "%lldms", v);
    else if (ms < 10000)
        snprintf(buf, n, "%.1fs", ms / 1000.0);
    else if (ms < 60000)
        snprintf(buf, n, "%llds", v / 1000);
    else if (ms < 3600000)
        snprintf(buf, n, "%lldm%02lld", v / 60000, v / 1000 % 60);
    else if (ms < 86400000)
        snprintf(buf, n, "%lldh%02lld", v / 3600000, v / 60000 % 60);
    else
        snprintf(buf, n, "%lldd", v / 86400000);
    return buf;
}

static const char *pair_ms(double a, double b, char *buf, size_t n)
{
    char x[16], y[16];
    if (a < 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%s/%s", short_ms(a, x, sizeof x), short_ms(b, y, sizeof y));
    return buf;
}

static const char *count(long long v, char *buf, size_t n)
{
    if (v < 0)
        snprintf(buf, n, "-");
    else if (v < 100000)
        snprintf(buf, n, "%lld", v);
    else if (v < 100000000)
        snprintf(buf, n, "%lldk", v / 1000);
    else
        snprintf(buf, n, "%lldM", v / 1000000);
    return buf;
}

static const char *rate(double v, char *buf, size_t n)
{
    if (v < 0)
        snprintf(buf, n, "-");
    else if (v < 10)
        snprintf(buf, n, "%.1f", v);
    else if (v < 100000)
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%.0fk", v / 1000);
    return buf;
}

static const snap_queue *find_queue(const snap *s, const char *name)
{
    for (size_t i = 0; s && i < s->nqueues; i++) {
        if (strcmp(s->queues[i].name, name) == 0)
            return &s->queues[i];
    }
    return NULL;
}

/* h - before, bucket by bucket (counters only grow; a reset reads as 0). */
static sl_histogram delta(const sl_histogram *h, const sl_histogram *before)
{
    sl_histogram d = *h;
    for (int i = 0; before && i < SL_METRICS_BUCKETS; i++)
        d.buckets[i] = h->buckets[i] > before->buckets[i] ? h->buckets[i] - before->buckets[i] : 0;
    return d;
}

static void fill_row(qrow *r, const snap *cur, const snap *prev, const snap_queue *q)
{
    r->q = q;
    const snap_queue *p = find_queue(prev, q->name);
    double secs = prev ? (double)(cur->taken_ms - prev->taken_ms) / 1000.0 : 0;
    if (p && secs > 0) {
        long long dp = q->m.totals[SL_M_PROCESSED] - p->m.totals[SL_M_PROCESSED];
        long long df = q->m.totals[SL_M_FAILED] - p->m.totals[SL_M_FAILED];
        r->proc_rate = dp > 0 ? (double)dp / secs : 0;
        r->fail_rate = df > 0 ? (double)df / secs : 0;
    } else {
        r->proc_rate = r->fail_rate = -1;
    }
    sl_histogram w = delta(&q->m.wait, p ? &p->m.wait : NULL);
    sl_histogram u = delta(&q->m.run, p ? &p->m.run : NULL);
    r->wait50 = sl_histogram_quantile_ms(&w, 0.5);
    r->wait99 = sl_histogram_quantile_ms(&w, 0.99);
    r->run50 = sl_histogram_quantile_ms(&u, 0.5);
    r->run99 = sl_histogram_quantile_ms(&u, 0.99);
    r->oldest_ms = q->oldest_ms > 0 ? (cur->taken_ms > q->oldest_ms ? cur->taken_ms - q->oldest_ms : 0) : -1;
    r->throttled_ms = p ? q->m.throttled_ms - p->m.throttled_ms : 0;
}

/* The last column: P paused, ! jobs waiting and no live worker serves it,
 * T workers were held back by its limits since the previous snapshot. */
static const char *flags(const qrow *r, char buf[4])
{
    snprintf(buf, 4, "%s%s%s", r->q->paused ? "P" : "", snap_queue_unserved(r->q) ? "!" : "",
             r->throttled_ms > 0 ? "T" : "");
    return buf;
}

static int cmp_dbl_desc(double a, double b) { return (a < b) - (a > b); }

static int cmp_rows(const void *x, const void *y, void *arg)
{
    const qrow *a = x, *b = y;
    int c = 0;
    switch (*(const view_sort *)arg) {
    case VIEW_SORT_DEPTH: c = cmp_dbl_desc((double)a->q->depth, (double)b->q->depth); break;
    case VIEW_SORT_PENDING: c = cmp_dbl_desc((double)a->q->pending, (double)b->q->pending); break;
    case VIEW_SORT_PROCESSED: c = cmp_dbl_desc(a->proc_rate, b->proc_rate); break;
    case VIEW_SORT_FAILED: c = cmp_dbl_desc(a->fail_rate, b->fail_rate); break;
    case VIEW_SORT_WAIT: c = cmp_dbl_desc(a->wait99, b->wait99); break;
    case VIEW_SORT_OLDEST: c = cmp_dbl_desc((double)a->oldest_ms, (double)b->oldest_ms); break;
    default: break;
    }
    return c ? c : strcmp(a->q->name, b->q->name);
}

static int budget_left(const view_opts *o, const out *w, int reserve)
{
    if (o->height <= 0)
        return 1 << 30;
    int left = o->height - w->lines - reserve;
    return left > 0 ? left : 0;
}

void view_render(const snap *cur, const snap *prev, const view_opts *o, sl_buf *b)
{
    out w = { b, o->width, 0 };
    qrow *rows = sl_xcalloc(cur->nqueues ? cur->nqueues : 1, sizeof *rows);
    size_t n = 0;
    int namew = 5;
    for (size_t i = 0; i < cur->nqueues; i++) {
        if (o->filter && *o->filter && strstr(cur->queues[i].name, o->filter) == NULL)
            continue;
        fill_row(&rows[n++], cur, prev, &cur->queues[i]);
        int len = (int)strlen(cur->queues[i].name);
        namew = len > namew ? len : namew;
    }
    int maxname = o->width > 0 ? 10 + (o->width > 79 ? o->width - 79 : 0) : 64;
    namew = namew > maxname ? maxname : namew;
    view_sort by = o->sort;
    qsort_r(rows, n, sizeof *rows, cmp_rows, &by);

    /* Queues: at least half the height (the rest for workers and gates). */
    int qmax = o->height > 0 ? (o->height - w.lines) / 2 - 1 : 1 << 30;
    line(&w, "%-*s %5s %4s %5s %5s %6s %6s %11s %11s %5s %s", namew, "QUEUE", "DEPTH", "INFL",
         "DELAY", "DEAD", "PROC/s", "FAIL/s", "WAIT p50/99", "RUN p50/99", "OLDST", "P");
    for (size_t i = 0; i < n; i++) {
        if ((int)i >= qmax - 1 && i + 1 < n) {
            line(&w, "... %zu more queues (filter with /)", n - i);
            break;
        }
        const qrow *r = &rows[i];
        char d[16], p[16], dl[16], dd[16], pr[16], fr[16], wt[24], rt[24], ol[16], fl[4];
        line(&w, "%-*.*s %5s %4s %5s %5s %6s %6s %11s %11s %5s %s", namew, namew, r->q->name,
             count(r->q->depth, d, sizeof d), count(r->q->pending, p, sizeof p),
             count(r->q->delayed, dl, sizeof dl), count(r->q->dead, dd, sizeof dd),
             rate(r->proc_rate, pr, sizeof pr), rate(r->fail_rate, fr, sizeof fr),
             pair_ms(r->wait50, r->wait99, wt, sizeof wt), pair_ms(r->run50, r->run99, rt, sizeof rt),
             short_ms((double)r->oldest_ms, ol, sizeof ol), flags(r, fl));
    }
    /* Jobs that nobody will run: say so under the table. */
    sl_buf lonely = SL_BUF_INIT;
    size_t nlonely = 0;
    for (size_t i = 0; i < n; i++) {
        if (!snap_queue_unserved(rows[i].q))
            continue;
        sl_buf_printf(&lonely, "%s %s (%lld waiting, %lld delayed)", nlonely ? "," : "", rows[i].q->name,
                      rows[i].q->depth, rows[i].q->delayed);
        nlonely++;
    }
    if (nlonely && budget_left(o, &w, 0) > 0)
        line(&w, "! no live worker serves %s:%s", nlonely == 1 ? "this queue" : "these queues",
             sl_buf_str(&lonely));
    sl_buf_free(&lonely);
    if (n == 0)
        line(&w, "(no queues%s%s)", o->filter && *o->filter ? " matching " : "",
             o->filter && *o->filter ? o->filter : "");
    free(rows);

    /* Workers, keeping 3 lines for the gates. */
    size_t pools = 0, procs = 0, running = 0;
    for (size_t i = 0; i < cur->nworkers; i++) {
        pools += cur->workers[i].master;
        procs += !cur->workers[i].master;
        running += !cur->workers[i].master && strcmp(cur->workers[i].state, "running") == 0;
    }
    if (budget_left(o, &w, 0) > 0)
        line(&w, "%s", "");
    if (budget_left(o, &w, 0) > 0)
        line(&w, "WORKERS: %zu pool%s, %zu process%s, %zu running", pools, pools == 1 ? "" : "s",
             procs, procs == 1 ? "" : "es", running);
    if (procs > 0 && budget_left(o, &w, 4) > 0) {
        line(&w, "%-12s %7s %-10s %-10s %-13s %6s %7s %6s", "HOST", "PID", "STATE", "KIND", "JOB", "FOR",
             "DONE", "RSS");
        size_t shown = 0;
        for (size_t i = 0; i < cur->nworkers; i++) {
            const snap_worker *k = &cur->workers[i];
            if (k->master)
                continue;
            if (budget_left(o, &w, 4) <= 1 && shown + 1 < procs) {
                line(&w, "... %zu more processes", procs - shown);
                break;
            }
            char f[16], dn[16], rss[16];
            if (k->rss_kb < 0)
                snprintf(rss, sizeof rss, "-");
            else
                snprintf(rss, sizeof rss, "%.1fM", (double)k->rss_kb / 1024.0);
            /* Registry strings are anyone's who can write to Redis: shown
             * visibly (vis.h), like the gates' names and errors below. */
            line(&w, "%-12.12s %7lld %-10.10s %-10.10s %-13.13s %6s %7s %6s", SL_VIS(k->host), k->pid,
                 SL_VIS(k->state), k->kind[0] ? SL_VIS(k->kind) : "-", k->job[0] ? SL_VIS(k->job) : "-",
                 short_ms((double)k->job_ms, f, sizeof f), count(k->jobs_done, dn, sizeof dn), rss);
            shown++;
        }
    }

    /* Gates. */
    if (budget_left(o, &w, 0) > 0)
        line(&w, "%s", "");
    if (budget_left(o, &w, 0) > 0) {
        if (cur->gates_error[0])
            line(&w, "GATES: unavailable (%s)", SL_VIS(cur->gates_error));
        else if (!cur->gates_present)
            line(&w, "GATES: - (no sluice_gates table: scheduler not installed)");
        else
            line(&w, "GATES: %zu open", cur->ngates);
    }
    for (size_t i = 0; i < cur->ngates && budget_left(o, &w, 0) > 0; i++) {
        const snap_gate *g = &cur->gates[i];
        if (budget_left(o, &w, 0) == 1 && i + 1 < cur->ngates) {
            line(&w, "... %zu more gates", cur->ngates - i);
            break;
        }
        char since[16];
        line(&w, "  %-28.28s %-20.20s waiting %6s  approvals %lld/%lld", SL_VIS(g->run), SL_VIS(g->gate),
             short_ms(g->since_ms > 0 ? (double)(cur->taken_ms - g->since_ms) : -1, since, sizeof since),
             g->approvals, g->required);
    }
}
