/* snapshot.c: see snapshot.h.
 *
 * Replies are read in the order the commands were appended; a command that
 * fails for one queue (XPENDING or XINFO before any worker created the
 * group: NOGROUP / no such key) is not an error, it means "nothing yet".
 * Only a broken connection fails the snapshot. */
#include "snapshot.h"
#include "args.h"
#include "clock.h"
#include "json.h"
#include "mem.h"
#include "numfmt.h"
#include "queue.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PER_QUEUE 11  /* commands per queue in the first round trip */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const snap_queue *)a)->name, ((const snap_queue *)b)->name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_queue(const snap *s, const char *name)
{
    for (size_t i = 0; i < s->nqueues; i++) {
        if (strcmp(s->queues[i].name, name) == 0)
            return true;
    }
    return false;
}

/* The queue names: given, or SMEMBERS sluice:queues and the queues that
 * live pools serve (served[0..nserved)). */
static int list_queues(sl_redis *r, char *const *given, size_t ngiven, char *const *served,
                       size_t nserved, snap *out, sl_err *err)
{
    if (given) {
        out->queues = sl_xcalloc(ngiven ? ngiven : 1, sizeof *out->queues);
        for (size_t i = 0; i < ngiven; i++)
            snprintf(out->queues[out->nqueues++].name, sizeof out->queues[0].name, "%s", given[i]);
        return 0;
    }
    const char *argv[] = { "SMEMBERS", SL_QUEUES_KEY };
    redisReply *rep = sl_redis_command(r, 2, argv, NULL, err);
    if (rep == NULL)
        return -1;
    out->queues = sl_xcalloc(rep->elements + nserved + 1, sizeof *out->queues);
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (e->type == REDIS_REPLY_STRING && sl_envelope_queue_valid(e->str))
            snprintf(out->queues[out->nqueues++].name, sizeof out->queues[0].name, "%s", e->str);
    }
    freeReplyObject(rep);
    for (size_t i = 0; i < nserved; i++) {
        if (sl_envelope_queue_valid(served[i]) && !has_queue(out, served[i]))
            snprintf(out->queues[out->nqueues++].name, sizeof out->queues[0].name, "%s", served[i]);
    }
    return 0;
}

/* XINFO STREAM's entries-added (every XADD ever, Redis >= 7.0), or -1. */
static long long entries_added(const redisReply *rep)
{
    for (size_t k = 0; rep->type == REDIS_REPLY_ARRAY && k + 1 < rep->elements; k += 2) {
        const redisReply *f = rep->element[k];
        if (f->type == REDIS_REPLY_STRING && strcmp(f->str, "entries-added") == 0)
            return rep->element[k + 1]->type == REDIS_REPLY_INTEGER ? rep->element[k + 1]->integer : -1;
    }
    return -1;
}

/* Jobs enqueued to a queue by any producer, from EXEC's reply to
 * [XINFO STREAM jobs, HGET stats readded], read together so that a
 * re-added entry is never seen in one and not the other (the figure
 * only grows).  Before the stream exists: 0. */
static long long enqueued_of(const redisReply *exec)
{
    if (exec->type != REDIS_REPLY_ARRAY || exec->elements != 2)
        return 0;
    long long added = entries_added(exec->element[0]);
    const redisReply *re = exec->element[1];
    long long readded = re->type == REDIS_REPLY_STRING ? strtoll(re->str, NULL, 10) : 0;
    return added > readded ? added - readded : 0;
}

static long long int_reply(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
}

/* The group's last-delivered-id from an XINFO GROUPS reply, into id. */
static void last_delivered(const redisReply *rep, char *id, size_t n)
{
    id[0] = '\0';
    if (rep->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t g = 0; g < rep->elements; g++) {
        const redisReply *grp = rep->element[g];
        if (grp->type != REDIS_REPLY_ARRAY)
            continue;
        bool ours = false;
        const char *last = NULL;
        for (size_t k = 0; k + 1 < grp->elements; k += 2) {
            const redisReply *f = grp->element[k], *v = grp->element[k + 1];
            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(f->str, "name") == 0)
                ours = strcmp(v->str, SL_GROUP) == 0;
            else if (strcmp(f->str, "last-delivered-id") == 0)
                last = v->str;
        }
        if (ours && last) {
            snprintf(id, n, "%s", last);
            return;
        }
    }
}

/* Round 1: the figures of every queue; round 2: the oldest waiting entry. */
static int read_queues(sl_redis *r, snap *out, sl_err *err)
{
    size_t nq = out->nqueues;
    char (*last)[48] = sl_xcalloc(nq ? nq : 1, sizeof *last);
    int rc = -1;
    for (size_t i = 0; i < nq; i++) {
        char jobs[SL_KEY_MAX], delayed[SL_KEY_MAX], dead[SL_KEY_MAX], stats[SL_KEY_MAX];
        const char *q = out->queues[i].name;
        sl_queue_key(jobs, q, "jobs");
        sl_queue_key(delayed, q, "delayed");
        sl_queue_key(dead, q, "dead");
        sl_queue_key(stats, q, "stats");
        const char *xlen[] = { "XLEN", jobs }, *xpending[] = { "XPENDING", jobs, SL_GROUP },
                   *zcard[] = { "ZCARD", delayed }, *dlen[] = { "XLEN", dead },
                   *paused[] = { "SISMEMBER", SL_PAUSED_KEY, q }, *hgetall[] = { "HGETALL", stats },
                   *xinfo[] = { "XINFO", "GROUPS", jobs }, *multi[] = { "MULTI" },
                   *xstream[] = { "XINFO", "STREAM", jobs }, *readded[] = { "HGET", stats, SL_READDED_FIELD },
                   *exec[] = { "EXEC" };
        if (sl_redis_append(r, 2, xlen, NULL, err) < 0 || sl_redis_append(r, 3, xpending, NULL, err) < 0 ||
            sl_redis_append(r, 2, zcard, NULL, err) < 0 || sl_redis_append(r, 2, dlen, NULL, err) < 0 ||
            sl_redis_append(r, 3, paused, NULL, err) < 0 || sl_redis_append(r, 2, hgetall, NULL, err) < 0 ||
            sl_redis_append(r, 3, xinfo, NULL, err) < 0 || sl_redis_append(r, 1, multi, NULL, err) < 0 ||
            sl_redis_append(r, 3, xstream, NULL, err) < 0 || sl_redis_append(r, 3, readded, NULL, err) < 0 ||
            sl_redis_append(r, 1, exec, NULL, err) < 0)
            goto out;
    }
    for (size_t i = 0; i < nq; i++) {
        snap_queue *sq = &out->queues[i];
        for (int k = 0; k < PER_QUEUE; k++) {
            redisReply *rep = sl_redis_reply(r, err);
            if (rep == NULL)
                goto out;
            switch (k) {
            case 0: sq->length = int_reply(rep); break;
            case 1:
                if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0)
                    sq->pending = int_reply(rep->element[0]);
                break;
            case 2: sq->delayed = int_reply(rep); break;
            case 3: sq->dead = int_reply(rep); break;
            case 4: sq->paused = int_reply(rep) == 1; break;
            case 5: sl_metrics_queue_decode(rep, &sq->m); break;
            case 6: last_delivered(rep, last[i], sizeof last[i]); break;
            case 10: sq->enqueued = enqueued_of(rep); break;
            default: break;   /* MULTI's OK, QUEUED twice */
            }
            freeReplyObject(rep);
        }
        sq->depth = sq->length > sq->pending ? sq->length - sq->pending : 0;
        /* The counter that producers using the wire format directly never
         * increment, taken from Redis itself. */
        sq->m.totals[SL_M_ENQUEUED] = sq->enqueued;
    }
    /* Oldest waiting: the first entry after the last one delivered. */
    for (size_t i = 0; i < nq; i++) {
        char jobs[SL_KEY_MAX], from[56];
        sl_queue_key(jobs, out->queues[i].name, "jobs");
        if (last[i][0])
            snprintf(from, sizeof from, "(%s", last[i]);
        else
            snprintf(from, sizeof from, "-");
        const char *xrange[] = { "XRANGE", jobs, from, "+", "COUNT", "1" };
        if (sl_redis_append(r, 6, xrange, NULL, err) < 0)
            goto out;
    }
    for (size_t i = 0; i < nq; i++) {
        redisReply *rep = sl_redis_reply(r, err);
        if (rep == NULL)
            goto out;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
            rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements >= 1 &&
            rep->element[0]->element[0]->type == REDIS_REPLY_STRING)
            out->queues[i].oldest_ms = strtoll(rep->element[0]->element[0]->str, NULL, 10);
        freeReplyObject(rep);
    }
    rc = 0;
out:
    free(last);
    return rc;
}

int snap_registry_docs(sl_redis *r, char ***docs, size_t *n, sl_err *err)
{
    char cursor[32] = "0";
    do {
        const char *scan[] = { "SCAN", cursor, "MATCH", "sluice:worker:*", "COUNT", "200" };
        redisReply *page = sl_redis_command(r, 6, scan, NULL, err);
        if (page == NULL)
            return -1;
        if (page->type != REDIS_REPLY_ARRAY || page->elements != 2 ||
            page->element[0]->type != REDIS_REPLY_STRING || page->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(page);
            return sl_err_set(err, SL_EREDIS, "SCAN: unexpected reply");
        }
        snprintf(cursor, sizeof cursor, "%s", page->element[0]->str);
        redisReply *keys = page->element[1];
        size_t sent = 0;
        for (size_t k = 0; k < keys->elements; k++) {
            if (keys->element[k]->type != REDIS_REPLY_STRING)
                continue;
            const char *get[] = { "GET", keys->element[k]->str };
            size_t lens[] = { 3, keys->element[k]->len };
            if (sl_redis_append(r, 2, get, lens, err) < 0) {
                freeReplyObject(page);
                return -1;
            }
            sent++;
        }
        freeReplyObject(page);
        for (size_t k = 0; k < sent; k++) {
            redisReply *v = sl_redis_reply(r, err);
            if (v == NULL)
                return -1;
            if (v->type == REDIS_REPLY_STRING) {
                *docs = sl_xrealloc(*docs, (*n + 1) * sizeof **docs);
                (*docs)[(*n)++] = sl_xstrndup(v->str, v->len);
            }
            freeReplyObject(v);
        }
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* ---- parsing JSON documents (registry, gates) ------------------------------ */

typedef struct parsed {
    msgpack_sbuffer packed;
    msgpack_unpacked up;
} parsed;

static bool parse_json(parsed *p, const char *text)
{
    msgpack_sbuffer_init(&p->packed);
    msgpack_unpacked_init(&p->up);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p->packed, msgpack_sbuffer_write);
    size_t off = 0;
    return sl_json_to_msgpack(text, strlen(text), &pk, NULL) == 0 &&
           msgpack_unpack_next(&p->up, p->packed.data, p->packed.size, &off) == MSGPACK_UNPACK_SUCCESS;
}

static void parsed_free(parsed *p)
{
    msgpack_sbuffer_destroy(&p->packed);
    msgpack_unpacked_destroy(&p->up);
}

static void str_of(const msgpack_object *o, const char *key, char *buf, size_t n)
{
    const msgpack_object *v = sl_args_get(o, key);
    if (v && v->type == MSGPACK_OBJECT_STR)
        snprintf(buf, n, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    else
        buf[0] = '\0';
}

static long long int_of(const msgpack_object *o, const char *key)
{
    const msgpack_object *v = sl_args_get(o, key);
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return v->via.u64 > INT64_MAX ? INT64_MAX : (long long)v->via.u64;
    if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return v->via.i64;
    if (v && v->type == MSGPACK_OBJECT_FLOAT64)
        return (long long)v->via.f64;
    return -1;
}

static snap_worker *push_worker(snap *s)
{
    s->workers = sl_xrealloc(s->workers, (s->nworkers + 1) * sizeof *s->workers);
    snap_worker *w = &s->workers[s->nworkers++];
    memset(w, 0, sizeof *w);
    return w;
}

/* Appends the names in a registry document's "queues" to *names. */
static void pool_queues(const char *doc, char ***names, size_t *n)
{
    parsed p;
    if (parse_json(&p, doc) && p.up.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object *qs = sl_args_get(&p.up.data, "queues");
        for (uint32_t k = 0; qs && qs->type == MSGPACK_OBJECT_ARRAY && k < qs->via.array.size; k++) {
            const msgpack_object *q = &qs->via.array.ptr[k];
            if (q->type != MSGPACK_OBJECT_STR)
                continue;
            *names = sl_xrealloc(*names, (*n + 1) * sizeof **names);
            (*names)[(*n)++] = sl_xstrndup(q->via.str.ptr, q->via.str.size);
        }
    }
    parsed_free(&p);
}

/* Adds the pool's live processes to the `workers` of each queue it serves
 * (a stopping pool serves nothing any more). */
static void count_serving(snap *s, const msgpack_object *m, long long procs)
{
    char state[16];
    str_of(m, "state", state, sizeof state);
    const msgpack_object *qs = sl_args_get(m, "queues");
    if (strcmp(state, "stopping") == 0 || qs == NULL || qs->type != MSGPACK_OBJECT_ARRAY)
        return;
    for (uint32_t k = 0; k < qs->via.array.size; k++) {
        const msgpack_object *q = &qs->via.array.ptr[k];
        for (size_t i = 0; q->type == MSGPACK_OBJECT_STR && i < s->nqueues; i++) {
            if (strlen(s->queues[i].name) == q->via.str.size &&
                memcmp(s->queues[i].name, q->via.str.ptr, q->via.str.size) == 0)
                s->queues[i].workers += procs;
        }
    }
}

/* Adds the processes of one registry document; false if it is not one
 * (not a JSON object). */
static bool add_pool(snap *s, const char *doc)
{
    parsed p;
    bool ok = parse_json(&p, doc) && p.up.data.type == MSGPACK_OBJECT_MAP;
    if (ok) {
        const msgpack_object *m = &p.up.data;
        const msgpack_object *procs = sl_args_get(m, "children");
        count_serving(s, m, procs && procs->type == MSGPACK_OBJECT_ARRAY ? procs->via.array.size : 0);
        snap_worker *w = push_worker(s);
        str_of(m, "host", w->host, sizeof w->host);
        w->pid = w->master_pid = int_of(m, "pid");
        w->master = true;
        str_of(m, "state", w->state, sizeof w->state);
        w->job_ms = -1;
        w->jobs_done = -1;
        w->rss_kb = int_of(m, "rss_kb");
        const msgpack_object *kids = sl_args_get(m, "children");
        for (uint32_t k = 0; kids && kids->type == MSGPACK_OBJECT_ARRAY && k < kids->via.array.size; k++) {
            const msgpack_object *c = &kids->via.array.ptr[k];
            snap_worker *cw = push_worker(s);
            str_of(m, "host", cw->host, sizeof cw->host);
            cw->master_pid = int_of(m, "pid");
            cw->pid = int_of(c, "pid");
            str_of(c, "state", cw->state, sizeof cw->state);
            str_of(c, "job", cw->job, sizeof cw->job);
            str_of(c, "kind", cw->kind, sizeof cw->kind);
            str_of(c, "queue", cw->queue, sizeof cw->queue);
            cw->job_ms = int_of(c, "job_ms");
            cw->jobs_done = int_of(c, "jobs_done");
            cw->rss_kb = int_of(c, "rss_kb");
        }
    }
    parsed_free(&p);
    return ok;
}

static void add_gates(snap *s, const char *json)
{
    parsed p;
    if (parse_json(&p, json) && p.up.data.type == MSGPACK_OBJECT_ARRAY) {
        const msgpack_object_array *a = &p.up.data.via.array;
        s->gates = sl_xcalloc(a->size ? a->size : 1, sizeof *s->gates);
        for (uint32_t i = 0; i < a->size; i++) {
            snap_gate *g = &s->gates[s->ngates++];
            str_of(&a->ptr[i], "run", g->run, sizeof g->run);
            str_of(&a->ptr[i], "gate", g->gate, sizeof g->gate);
            g->since_ms = int_of(&a->ptr[i], "since_ms");
            g->approvals = int_of(&a->ptr[i], "approvals");
            g->required = int_of(&a->ptr[i], "required");
        }
    }
    parsed_free(&p);
}

int snap_take(sl_redis *r, sl_store *store, char *const *queues, size_t nqueues, snap *out,
              sl_err *err)
{
    memset(out, 0, sizeof *out);
    out->taken_ms = sl_now_ms();
    /* The registry first: the queues live pools serve are shown too. */
    char **served = NULL;
    size_t nserved = 0;
    int rc = snap_registry_docs(r, &out->docs, &out->ndocs, err);
    for (size_t i = 0; rc == 0 && queues == NULL && i < out->ndocs; i++)
        pool_queues(out->docs[i], &served, &nserved);
    if (rc == 0)
        rc = list_queues(r, queues, nqueues, served, nserved, out, err);
    for (size_t i = 0; i < nserved; i++)
        free(served[i]);
    free(served);
    if (rc < 0 || read_queues(r, out, err) < 0) {
        snap_clear(out);
        return -1;
    }
    if (out->nqueues > 1)
        qsort(out->queues, out->nqueues, sizeof *out->queues, by_name);
    if (out->ndocs > 1)
        qsort(out->docs, out->ndocs, sizeof *out->docs, cmp_str);
    /* Only documents that are JSON objects are kept (and later printed
     * as JSON by `stats --json`): anything else in a registry key is not
     * a pool's. */
    size_t kept = 0;
    for (size_t i = 0; i < out->ndocs; i++) {
        if (add_pool(out, out->docs[i]))
            out->docs[kept++] = out->docs[i];
        else
            free(out->docs[i]);
    }
    out->ndocs = kept;
    if (store) {
        sl_buf gates = SL_BUF_INIT;
        sl_err e;
        if (sl_store_open_gates_json(store, &gates, &out->gates_present, &e) < 0)
            snprintf(out->gates_error, sizeof out->gates_error, "%s", e.msg);
        else if (out->gates_present)
            add_gates(out, sl_buf_str(&gates));
        sl_buf_free(&gates);
    }
    return 0;
}

int snap_conn_take(snap_conn *c, char *const *queues, size_t nqueues, snap *out, sl_err *err)
{
    if (c->redis && sl_redis_broken(c->redis)) {
        sl_redis_free(c->redis);
        c->redis = NULL;
    }
    if (c->redis == NULL && (c->redis = sl_redis_connect(c->cfg->redis_url, 5000, err)) == NULL) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    if (c->store && sl_store_broken(c->store)) {
        sl_store_free(c->store);
        c->store = NULL;
    }
    sl_err e;
    if (c->store == NULL)
        c->store = sl_store_connect(c->cfg->database_url, &e);
    int rc = snap_take(c->redis, c->store, queues, nqueues, out, err);
    if (rc == 0 && c->store == NULL)
        snprintf(out->gates_error, sizeof out->gates_error, "%s", e.msg);
    return rc;
}

void snap_conn_close(snap_conn *c)
{
    sl_redis_free(c->redis);
    sl_store_free(c->store);
    c->redis = NULL;
    c->store = NULL;
}

bool snap_queue_unserved(const snap_queue *q)
{
    return q->workers == 0 && (q->depth > 0 || q->delayed > 0);
}

void snap_clear(snap *s)
{
    for (size_t i = 0; i < s->nqueues; i++)
        sl_metrics_queue_clear(&s->queues[i].m);
    free(s->queues);
    for (size_t i = 0; i < s->ndocs; i++)
        free(s->docs[i]);
    free(s->docs);
    free(s->workers);
    free(s->gates);
    memset(s, 0, sizeof *s);
}

/* ---- JSON ------------------------------------------------------------------ */

static void json_histogram(sl_buf *b, const char *name, const sl_histogram *h)
{
    double p50 = sl_histogram_quantile_ms(h, 0.5), p99 = sl_histogram_quantile_ms(h, 0.99);
    sl_buf_printf(b, "\"%s\":{\"count\":%lld,\"sum_ms\":%lld,", name, h->count, h->sum_ms);
    if (p50 < 0)
        sl_buf_puts(b, "\"p50_ms\":null,\"p99_ms\":null,");
    else
        sl_buf_printf(b, "\"p50_ms\":%.1f,\"p99_ms\":%.1f,", p50, p99);
    sl_buf_puts(b, "\"buckets\":[");
    for (int i = 0; i < SL_METRICS_BUCKETS; i++) {
        int64_t le = sl_metrics_bucket_ms(i);
        if (le < 0)
            sl_buf_printf(b, "%s{\"le_ms\":null,\"count\":%lld}", i ? "," : "", h->buckets[i]);
        else
            sl_buf_printf(b, "%s{\"le_ms\":%" PRId64 ",\"count\":%lld}", i ? "," : "", le, h->buckets[i]);
    }
    sl_buf_puts(b, "]}");
}

static void json_counters(sl_buf *b, const long long *counts)
{
    sl_buf_putc(b, '{');
    for (int c = 0; c < SL_M_NCOUNTERS; c++)
        sl_buf_printf(b, "%s\"%s\":%lld", c ? "," : "", sl_metrics_counter_name(c), counts[c]);
    sl_buf_putc(b, '}');
}

void snap_json(const snap *s, sl_buf *b)
{
    sl_buf_printf(b, "{\"taken_at_ms\":%" PRId64 ",\"queues\":[", s->taken_ms);
    for (size_t i = 0; i < s->nqueues; i++) {
        const snap_queue *q = &s->queues[i];
        sl_buf_printf(b, "%s{\"queue\":", i ? "," : "");
        sl_json_put_string(b, q->name, strlen(q->name));
        sl_buf_printf(b, ",\"depth\":%lld,\"pending\":%lld,\"length\":%lld,\"delayed\":%lld,"
                      "\"dead\":%lld,\"paused\":%s,\"workers\":%lld,\"unserved\":%s,", q->depth,
                      q->pending, q->length, q->delayed, q->dead, q->paused ? "true" : "false", q->workers,
                      snap_queue_unserved(q) ? "true" : "false");
        if (q->oldest_ms > 0)
            sl_buf_printf(b, "\"oldest_waiting_ms\":%" PRId64 ",\"oldest_waiting_age_ms\":%" PRId64 ",",
                          q->oldest_ms, s->taken_ms > q->oldest_ms ? s->taken_ms - q->oldest_ms : 0);
        else
            sl_buf_puts(b, "\"oldest_waiting_ms\":null,\"oldest_waiting_age_ms\":null,");
        sl_buf_printf(b, "\"throttled_ms\":%lld,\"totals\":", q->m.throttled_ms);
        json_counters(b, q->m.totals);
        sl_buf_puts(b, ",\"kinds\":{");
        for (size_t k = 0; k < q->m.nkinds; k++) {
            if (k)
                sl_buf_putc(b, ',');
            sl_json_put_string(b, q->m.kinds[k].kind, strlen(q->m.kinds[k].kind));
            sl_buf_putc(b, ':');
            json_counters(b, q->m.kinds[k].counts);
        }
        sl_buf_puts(b, "},");
        json_histogram(b, "wait", &q->m.wait);
        sl_buf_putc(b, ',');
        json_histogram(b, "run", &q->m.run);
        sl_buf_putc(b, '}');
    }
    sl_buf_puts(b, "],\"workers\":[");
    for (size_t i = 0; i < s->ndocs; i++)
        sl_buf_printf(b, "%s%s", i ? "," : "", s->docs[i]);
    sl_buf_puts(b, "],\"gates\":");
    if (!s->gates_present) {
        sl_buf_puts(b, "null");
    } else {
        sl_buf_putc(b, '[');
        for (size_t i = 0; i < s->ngates; i++) {
            const snap_gate *g = &s->gates[i];
            sl_buf_printf(b, "%s{\"run\":", i ? "," : "");
            sl_json_put_string(b, g->run, strlen(g->run));
            sl_buf_puts(b, ",\"gate\":");
            sl_json_put_string(b, g->gate, strlen(g->gate));
            sl_buf_printf(b, ",\"since_ms\":%" PRId64 ",\"approvals\":%lld,\"required\":%lld}",
                          g->since_ms, g->approvals, g->required);
        }
        sl_buf_putc(b, ']');
    }
    sl_buf_puts(b, ",\"gates_error\":");
    if (s->gates_error[0])
        sl_json_put_string(b, s->gates_error, strlen(s->gates_error));
    else
        sl_buf_puts(b, "null");
    sl_buf_puts(b, "}\n");
}

/* ---- Prometheus ------------------------------------------------------------- */

/* Appends a label value, escaped as the text format requires. */
static void label_value(sl_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            sl_buf_printf(b, "\\%c", *v);
        else if (*v == '\n')
            sl_buf_puts(b, "\\n");
        else
            sl_buf_putc(b, *v);
    }
}

static void family(sl_buf *b, const char *name, const char *type, const char *help)
{
    sl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const struct {
    sl_metrics_counter c;
    const char *name;
    const char *help;
} COUNTER_FAMILIES[] = {
    { SL_M_ENQUEUED, "sluice_jobs_enqueued_total", "Jobs enqueued, by any producer (XADDs to the stream minus sluice's own re-adds)." },
    { SL_M_PROCESSED, "sluice_jobs_processed_total", "Job attempts that ran and succeeded." },
    { SL_M_FAILED, "sluice_jobs_failed_total", "Job attempts that failed or timed out." },
    { SL_M_RETRIED, "sluice_jobs_retried_total", "Failed attempts whose next attempt was scheduled." },
    { SL_M_DEAD, "sluice_jobs_dead_lettered_total", "Entries moved to the dead letter." },
    { SL_M_TIMED_OUT, "sluice_jobs_timed_out_total", "Attempts whose worker was killed at the deadline." },
    { SL_M_DEFERRED, "sluice_jobs_deferred_total", "Jobs put back, not run and not failed, to wait for their deploy target's or provisioning endpoint's rate." },
};

static void prom_histogram(sl_buf *b, const snap *s, bool wait)
{
    const char *name = wait ? "sluice_job_wait_seconds" : "sluice_job_run_seconds";
    family(b, name, "histogram", wait ? "Time from enqueue to the start of an attempt."
                                      : "Run time of job attempts.");
    char num[SL_NUMFMT_MAX];
    for (size_t i = 0; i < s->nqueues; i++) {
        const sl_histogram *h = wait ? &s->queues[i].m.wait : &s->queues[i].m.run;
        long long cum = 0;
        for (int k = 0; k < SL_METRICS_BUCKETS; k++) {
            cum += h->buckets[k];
            int64_t le = sl_metrics_bucket_ms(k);
            sl_buf_printf(b, "%s_bucket{queue=\"%s\",le=\"", name, s->queues[i].name);
            if (le < 0)
                sl_buf_puts(b, "+Inf");
            else
                sl_buf_puts(b, sl_fmt_double((double)le / 1000.0, num));
            sl_buf_printf(b, "\"} %lld\n", cum);
        }
        /* _count equals the +Inf bucket by definition. */
        sl_buf_printf(b, "%s_sum{queue=\"%s\"} %s\n", name, s->queues[i].name,
                      sl_fmt_double((double)h->sum_ms / 1000.0, num));
        sl_buf_printf(b, "%s_count{queue=\"%s\"} %lld\n", name, s->queues[i].name, cum);
    }
}

static void prom_gauge(sl_buf *b, const snap *s, const char *name, const char *help, int which)
{
    family(b, name, "gauge", help);
    for (size_t i = 0; i < s->nqueues; i++) {
        const snap_queue *q = &s->queues[i];
        double v = 0;
        switch (which) {
        case 0: v = (double)q->depth; break;
        case 1: v = (double)q->pending; break;
        case 2: v = (double)q->delayed; break;
        case 3: v = (double)q->dead; break;
        case 4: v = q->oldest_ms > 0 && s->taken_ms > q->oldest_ms ? (double)(s->taken_ms - q->oldest_ms) / 1000.0 : 0; break;
        case 5: v = q->paused ? 1 : 0; break;
        case 6: v = (double)q->workers; break;
        }
        char num[SL_NUMFMT_MAX];
        sl_buf_printf(b, "%s{queue=\"%s\"} %s\n", name, q->name, sl_fmt_double(v, num));
    }
}

void snap_prometheus(const snap *s, sl_buf *b)
{
    char num[SL_NUMFMT_MAX];
    for (size_t f = 0; f < sizeof COUNTER_FAMILIES / sizeof COUNTER_FAMILIES[0]; f++) {
        family(b, COUNTER_FAMILIES[f].name, "counter", COUNTER_FAMILIES[f].help);
        if (COUNTER_FAMILIES[f].c == SL_M_ENQUEUED) {
            /* From Redis (snap_take): right for every producer, who need
             * not say the kind, so one series per queue. */
            for (size_t i = 0; i < s->nqueues; i++)
                sl_buf_printf(b, "%s{queue=\"%s\"} %lld\n", COUNTER_FAMILIES[f].name, s->queues[i].name,
                              s->queues[i].enqueued);
            continue;
        }
        for (size_t i = 0; i < s->nqueues; i++) {
            const sl_metrics_queue *m = &s->queues[i].m;
            for (size_t k = 0; k < m->nkinds; k++) {
                /* Workers write only kind names (or "" for undecodable
                 * entries); a field someone else wrote, with bytes a
                 * terminal would obey, is not exposed. */
                if (m->kinds[k].kind[0] && !sl_envelope_kind_valid(m->kinds[k].kind))
                    continue;
                sl_buf_printf(b, "%s{queue=\"%s\",kind=\"", COUNTER_FAMILIES[f].name, s->queues[i].name);
                label_value(b, m->kinds[k].kind);
                sl_buf_printf(b, "\"} %lld\n", m->kinds[k].counts[COUNTER_FAMILIES[f].c]);
            }
        }
    }
    prom_histogram(b, s, true);
    prom_histogram(b, s, false);
    family(b, "sluice_queue_throttled_seconds_total", "counter",
           "Time worker processes held back from the queue by its rate or concurrency limit.");
    for (size_t i = 0; i < s->nqueues; i++)
        sl_buf_printf(b, "sluice_queue_throttled_seconds_total{queue=\"%s\"} %s\n", s->queues[i].name,
                      sl_fmt_double((double)s->queues[i].m.throttled_ms / 1000.0, num));
    prom_gauge(b, s, "sluice_queue_depth", "Jobs waiting in the stream (not yet delivered).", 0);
    prom_gauge(b, s, "sluice_queue_pending", "Jobs delivered to a worker and not yet acknowledged (in flight).", 1);
    prom_gauge(b, s, "sluice_queue_delayed", "Jobs in the delayed set (scheduled or waiting to retry).", 2);
    prom_gauge(b, s, "sluice_queue_dead", "Entries in the dead letter.", 3);
    prom_gauge(b, s, "sluice_queue_oldest_waiting_seconds", "Age of the oldest waiting job (0 when none).", 4);
    prom_gauge(b, s, "sluice_queue_paused", "1 if the queue is paused.", 5);
    prom_gauge(b, s, "sluice_queue_workers", "Worker processes of live pools that serve the queue (0 with jobs waiting: nobody will run them).", 6);

    family(b, "sluice_worker_pools", "gauge", "Worker pools (sluice-worker masters) alive.");
    size_t pools = 0;
    for (size_t i = 0; i < s->nworkers; i++)
        pools += s->workers[i].master;
    sl_buf_printf(b, "sluice_worker_pools %zu\n", pools);
    family(b, "sluice_worker_processes", "gauge", "Worker processes alive, by state.");
    static const char *const states[] = { "starting", "idle", "running", "committing", "stopping" };
    for (size_t st = 0; st < sizeof states / sizeof states[0]; st++) {
        size_t n = 0;
        for (size_t i = 0; i < s->nworkers; i++)
            n += !s->workers[i].master && strcmp(s->workers[i].state, states[st]) == 0;
        sl_buf_printf(b, "sluice_worker_processes{state=\"%s\"} %zu\n", states[st], n);
    }
    family(b, "sluice_gates_open", "gauge", "Approval gates waiting for a decision (0 without the scheduler's tables).");
    sl_buf_printf(b, "sluice_gates_open %zu\n", s->ngates);
}
