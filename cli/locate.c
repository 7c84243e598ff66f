/* locate.c: see locate.h.
 *
 * Order: the worker registry (running), then per queue its stream (queued
 * or claimed: XPENDING of the found entry tells), its delayed set, its dead
 * letter.  The most advanced place found wins (running over claimed over
 * queued over delayed over dead), since an id may be in two places at
 * once (a duplicate enqueue; a dead job enqueued again). */
#include "locate.h"
#include "args.h"
#include "mem.h"
#include "queue.h"
#include "snapshot.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *locate_state_name(locate_state s)
{
    static const char *const names[] = { "unknown", "dead", "delayed", "queued", "claimed", "running" };
    return s <= LOC_RUNNING ? names[s] : "?";
}

/* The envelope's id (lenient: only the map and its `id` are looked at, so
 * an envelope that fails validation for another reason still names its
 * job) and attempt.  True if data holds a map whose id is `id`. */
static bool envelope_names(const char *data, size_t len, const char *id, long long *attempt)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    bool match = false;
    if (msgpack_unpack_next(&up, data, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object *v = sl_args_get(&up.data, "id");
        match = v && v->type == MSGPACK_OBJECT_STR && v->via.str.size == strlen(id) &&
                memcmp(v->via.str.ptr, id, v->via.str.size) == 0;
        const msgpack_object *a = sl_args_get(&up.data, "attempt");
        if (match && attempt)
            *attempt = a && a->type == MSGPACK_OBJECT_POSITIVE_INTEGER && a->via.u64 < (1ULL << 62)
                       ? (long long)a->via.u64 : -1;
    }
    msgpack_unpacked_destroy(&up);
    return match;
}

static const redisReply *field_of(const redisReply *fields, const char *name)
{
    for (size_t i = 0; fields->type == REDIS_REPLY_ARRAY && i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];
        if (f->type == REDIS_REPLY_STRING && strcmp(f->str, name) == 0 && v->type == REDIS_REPLY_STRING)
            return v;
    }
    return NULL;
}

/* True if a stream entry's fields name the job: its `id` field (dead
 * letters keep it beside an undecodable envelope), else its envelope. */
static bool entry_names(const redisReply *fields, const char *id, long long *attempt)
{
    const redisReply *idf = field_of(fields, "id"), *job = field_of(fields, "job");
    *attempt = -1;
    if (job && memmem(job->str, job->len, id, strlen(id)) && envelope_names(job->str, job->len, id, attempt))
        return true;
    return idf && idf->len == strlen(id) && memcmp(idf->str, id, idf->len) == 0;
}

/* The Unix ms in a UUIDv7 id, or 0 if id is not one. */
static int64_t uuid7_ms(const char *id)
{
    if (strlen(id) != 36 || id[8] != '-' || id[13] != '-' || id[14] != '7' || id[18] != '-' || id[23] != '-')
        return 0;
    int64_t ms = 0;
    for (int i = 0; i < 13; i++) {
        if (i == 8)
            continue;
        if (!isxdigit((unsigned char)id[i]))
            return 0;
        ms = ms * 16 + (isdigit((unsigned char)id[i]) ? id[i] - '0' : (tolower((unsigned char)id[i]) - 'a' + 10));
    }
    return ms;
}

typedef struct scan {
    sl_redis *r;
    const char *id;
    long limit;
    locate_result *out;
} scan;

/* Reads stream key from id start ("-", or "MS-0" for a UUIDv7 id) in
 * pages of LOCATE_PAGE, at most s->limit entries; calls found() on each
 * entry that names the job, which returns true to stop.  Returns -1 with
 * err on a Redis failure. */
static int scan_stream(scan *s, const char *key, const char *start, const char *queue,
                       bool (*found)(scan *, const char *queue, const redisReply *entry, long long attempt),
                       sl_err *err)
{
    char from[64], count[16];
    snprintf(from, sizeof from, "%s", start);
    long read = 0;
    for (;;) {
        long page = s->limit - read < LOCATE_PAGE ? s->limit - read : LOCATE_PAGE;
        snprintf(count, sizeof count, "%ld", page);
        const char *argv[] = { "XRANGE", key, from, "+", "COUNT", count };
        redisReply *rep = sl_redis_command(s->r, 6, argv, NULL, err);
        if (rep == NULL)
            return -1;
        size_t n = rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
        bool stop = false;
        for (size_t i = 0; i < n && !stop; i++) {
            const redisReply *e = rep->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING)
                continue;
            snprintf(from, sizeof from, "(%s", e->element[0]->str);
            read++;
            long long attempt;
            if (entry_names(e->element[1], s->id, &attempt))
                stop = found(s, queue, e, attempt);
        }
        freeReplyObject(rep);
        s->out->scanned += (long long)n;
        if (stop || (long)n < page)
            return 0;
        if (read >= s->limit) {
            /* Cut short only if there is more to read. */
            const char *more[] = { "XRANGE", key, from, "+", "COUNT", "1" };
            rep = sl_redis_command(s->r, 6, more, NULL, err);
            if (rep == NULL)
                return -1;
            if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0)
                s->out->complete = false;
            freeReplyObject(rep);
            return 0;
        }
    }
}

static int64_t entry_ms(const char *entry_id)
{
    return strtoll(entry_id, NULL, 10);
}

static bool found_in_stream(scan *s, const char *queue, const redisReply *e, long long attempt)
{
    locate_result *o = s->out;
    if (o->state >= LOC_QUEUED)
        return true;
    o->state = LOC_QUEUED;
    snprintf(o->queue, sizeof o->queue, "%s", queue);
    snprintf(o->entry, sizeof o->entry, "%s", e->element[0]->str);
    o->since_ms = entry_ms(o->entry);
    o->attempt = attempt;
    return true;
}

static bool found_in_dead(scan *s, const char *queue, const redisReply *e, long long attempt)
{
    locate_result *o = s->out;
    if (o->state > LOC_DEAD)
        return true;
    /* Keep reading: the newest dead-letter entry for the job is the one to show. */
    o->state = LOC_DEAD;
    snprintf(o->queue, sizeof o->queue, "%s", queue);
    snprintf(o->entry, sizeof o->entry, "%s", e->element[0]->str);
    o->attempt = attempt;
    const redisReply *why = field_of(e->element[1], "error"), *at = field_of(e->element[1], "failed_at");
    snprintf(o->error, sizeof o->error, "%s", why ? why->str : "");
    o->failed_at_ms = at ? strtoll(at->str, NULL, 10) : entry_ms(o->entry);
    return false;
}

/* XPENDING of the found entry: claimed by whom, delivered how often. */
static int check_pending(scan *s, const char *key, sl_err *err)
{
    locate_result *o = s->out;
    const char *argv[] = { "XPENDING", key, SL_GROUP, o->entry, o->entry, "1" };
    sl_err e;
    redisReply *rep = sl_redis_command(s->r, 6, argv, NULL, &e);
    if (rep == NULL) {
        if (!sl_redis_broken(s->r) && strstr(e.msg, "NOGROUP"))
            return 0;   /* no worker ever read the queue */
        if (err)
            *err = e;
        return -1;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 && rep->element[0]->type == REDIS_REPLY_ARRAY &&
        rep->element[0]->elements >= 4 && rep->element[0]->element[1]->type == REDIS_REPLY_STRING) {
        const redisReply *p = rep->element[0];
        o->state = LOC_CLAIMED;
        snprintf(o->consumer, sizeof o->consumer, "%s", p->element[1]->str);
        o->deliveries = p->element[3]->type == REDIS_REPLY_INTEGER ? p->element[3]->integer : -1;
    }
    freeReplyObject(rep);
    return 0;
}

/* Pages through the delayed set by rank (ZRANGE … WITHSCORES). */
static int scan_delayed(scan *s, const char *key, const char *queue, sl_err *err)
{
    for (long from = 0;; from += LOCATE_PAGE) {
        char a[24], b[24];
        snprintf(a, sizeof a, "%ld", from);
        long page = s->limit - from < LOCATE_PAGE ? s->limit - from : LOCATE_PAGE;
        snprintf(b, sizeof b, "%ld", from + page - 1);
        const char *argv[] = { "ZRANGE", key, a, b, "WITHSCORES" };
        redisReply *rep = sl_redis_command(s->r, 5, argv, NULL, err);
        if (rep == NULL)
            return -1;
        size_t n = rep->type == REDIS_REPLY_ARRAY ? rep->elements / 2 : 0;
        bool stop = false;
        for (size_t i = 0; i < n && !stop; i++) {
            const redisReply *m = rep->element[2 * i], *score = rep->element[2 * i + 1];
            long long attempt = -1;
            if (m->type == REDIS_REPLY_STRING && memmem(m->str, m->len, s->id, strlen(s->id)) &&
                envelope_names(m->str, m->len, s->id, &attempt)) {
                locate_result *o = s->out;
                o->state = LOC_DELAYED;
                snprintf(o->queue, sizeof o->queue, "%s", queue);
                o->attempt = attempt;
                o->due_ms = score->type == REDIS_REPLY_STRING ? strtoll(score->str, NULL, 10) : 0;
                stop = true;
            }
        }
        freeReplyObject(rep);
        s->out->scanned += (long long)n;
        if (stop || (long)n < page)
            return 0;
        if (from + page >= s->limit) {
            /* Cut short only if there is more to read. */
            const char *zcard[] = { "ZCARD", key };
            rep = sl_redis_command(s->r, 2, zcard, NULL, err);
            if (rep == NULL)
                return -1;
            if (rep->type == REDIS_REPLY_INTEGER && rep->integer > from + page)
                s->out->complete = false;
            freeReplyObject(rep);
            return 0;
        }
    }
}

/* A worker process whose current job is id, from the registry. */
static int find_running(scan *s, sl_err *err)
{
    /* The registry only: an empty (not NULL) list of queues to read. */
    static char *const no_queues[1] = { NULL };
    snap sn;
    if (snap_take(s->r, NULL, no_queues, 0, &sn, err) < 0)
        return -1;
    for (size_t i = 0; i < sn.nworkers; i++) {
        const snap_worker *w = &sn.workers[i];
        if (w->master || strcmp(w->job, s->id) != 0)
            continue;
        locate_result *o = s->out;
        o->state = LOC_RUNNING;
        snprintf(o->queue, sizeof o->queue, "%s", w->queue);
        snprintf(o->host, sizeof o->host, "%s", w->host);
        o->pid = w->pid;
        o->master_pid = w->master_pid;
        o->running_ms = w->job_ms;
        break;
    }
    snap_clear(&sn);
    return 0;
}

int locate_job(sl_redis *r, const char *id, char *const *queues, size_t nqueues, long limit,
               bool only_dead, locate_result *out, sl_err *err)
{
    memset(out, 0, sizeof *out);
    out->attempt = out->pid = out->master_pid = out->running_ms = out->deliveries = -1;
    out->complete = true;
    scan s = { r, id, limit > 0 ? limit : LOCATE_LIMIT, out };
    if (!only_dead && find_running(&s, err) < 0)
        return -1;
    /* Entries for the job are no older than its UUIDv7 time, give or take
     * the producer's clock: start ten minutes before it. */
    int64_t t = uuid7_ms(id);
    char start[48] = "-";
    if (t > 600000)
        snprintf(start, sizeof start, "%lld-0", (long long)(t - 600000));
    for (size_t q = 0; q < nqueues; q++) {
        char jobs[SL_KEY_MAX], delayed[SL_KEY_MAX], dead[SL_KEY_MAX];
        sl_queue_key(jobs, queues[q], "jobs");
        sl_queue_key(delayed, queues[q], "delayed");
        sl_queue_key(dead, queues[q], "dead");
        if (!only_dead && out->state < LOC_QUEUED) {
            if (scan_stream(&s, jobs, start, queues[q], found_in_stream, err) < 0)
                return -1;
            if (out->state == LOC_QUEUED && check_pending(&s, jobs, err) < 0)
                return -1;
        }
        if (!only_dead && out->state < LOC_DELAYED && scan_delayed(&s, delayed, queues[q], err) < 0)
            return -1;
        if (out->state <= LOC_DEAD && scan_stream(&s, dead, start, queues[q], found_in_dead, err) < 0)
            return -1;
    }
    return 0;
}
