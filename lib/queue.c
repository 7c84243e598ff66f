/* queue.c: see queue.h. */
#include "queue.h"
#include "clock.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl_queue_key(char buf[SL_KEY_MAX], const char *queue, const char *suffix)
{
    snprintf(buf, SL_KEY_MAX, "sluice:{%s}:%s", queue, suffix);
}

int sl_queue_ensure_group(sl_redis *r, const char *queue, sl_err *err)
{
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    const char *argv[] = { "XGROUP", "CREATE", key, SL_GROUP, "0", "MKSTREAM" };
    sl_err e;
    redisReply *rep = sl_redis_command(r, 6, argv, NULL, &e);
    if (rep) {
        freeReplyObject(rep);
        return 0;
    }
    if (!sl_redis_broken(r) && strstr(e.msg, "BUSYGROUP"))
        return 0;
    if (err)
        *err = e;
    return -1;
}

int sl_queue_enqueue_raw(sl_redis *r, const char *queue, const char *data, size_t len,
                         sl_err *err)
{
    if (!sl_envelope_queue_valid(queue))
        return sl_err_set(err, SL_EINVAL, "invalid queue name '%.80s'", queue);
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    /* SADD first: a queue that holds entries is always discoverable. */
    const char *sadd[] = { "SADD", SL_QUEUES_KEY, queue };
    const char *xadd[] = { "XADD", key, "*", "job", data };
    size_t xadd_len[] = { 4, strlen(key), 1, 3, len };
    if (sl_redis_append(r, 3, sadd, NULL, err) < 0 ||
        sl_redis_append(r, 5, xadd, xadd_len, err) < 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        redisReply *rep = sl_redis_reply(r, err);
        if (rep == NULL)
            return -1;
        if (rep->type == REDIS_REPLY_ERROR && rc == 0)
            rc = sl_err_set(err, SL_EREDIS, "redis %s: %s %s: %s", sl_redis_address(r),
                            i == 0 ? "SADD" : "XADD", i == 0 ? SL_QUEUES_KEY : key, rep->str);
        freeReplyObject(rep);
    }
    return rc;
}

int sl_queue_enqueue(sl_redis *r, const sl_job *job, sl_err *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = sl_envelope_encode(job, &sb, err);
    if (rc == 0)
        rc = sl_queue_enqueue_raw(r, job->queue, sb.data, sb.size, err);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static sl_entry *batch_push(sl_batch *b)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->items = sl_xrealloc(b->items, b->cap * sizeof *b->items);
    }
    sl_entry *e = &b->items[b->n++];
    memset(e, 0, sizeof *e);
    return e;
}

void sl_batch_clear(sl_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->items[i].data);
    b->n = 0;
}

void sl_batch_free(sl_batch *b)
{
    sl_batch_clear(b);
    free(b->items);
    b->items = NULL;
    b->cap = 0;
}

/* Fills e from one stream entry reply: [id, [field, value, ...]] (the field
 * list is nil for ids whose entry was deleted). */
static void entry_from_reply(sl_entry *e, const char *queue, const redisReply *item)
{
    snprintf(e->queue, sizeof e->queue, "%s", queue);
    if (item->type != REDIS_REPLY_ARRAY || item->elements < 2)
        return;
    const redisReply *id = item->element[0];
    const redisReply *fields = item->element[1];
    if (id->type == REDIS_REPLY_STRING)
        snprintf(e->stream_id, sizeof e->stream_id, "%s", id->str);
    if (fields->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];
        if (f->type == REDIS_REPLY_STRING && f->len == 3 && memcmp(f->str, "job", 3) == 0 &&
            v->type == REDIS_REPLY_STRING) {
            e->data = sl_xmalloc(v->len + 1);
            memcpy(e->data, v->str, v->len);
            e->data[v->len] = '\0';
            e->len = v->len;
            return;
        }
    }
}

int sl_queue_read(sl_redis *r, const char *consumer, char *const *queues, size_t nqueues,
                  int count, int block_ms, sl_batch *out, sl_err *err)
{
    size_t argc = 7 + 2 * nqueues + (block_ms > 0 ? 2 : 0);
    const char **argv = sl_xcalloc(argc, sizeof *argv);
    char (*keys)[SL_KEY_MAX] = sl_xcalloc(nqueues, sizeof *keys);
    char countbuf[16], blockbuf[16];
    snprintf(countbuf, sizeof countbuf, "%d", count);
    snprintf(blockbuf, sizeof blockbuf, "%d", block_ms);
    size_t a = 0;
    argv[a++] = "XREADGROUP";
    argv[a++] = "GROUP";
    argv[a++] = SL_GROUP;
    argv[a++] = consumer;
    argv[a++] = "COUNT";
    argv[a++] = countbuf;
    if (block_ms > 0) {
        argv[a++] = "BLOCK";
        argv[a++] = blockbuf;
    }
    argv[a++] = "STREAMS";
    for (size_t i = 0; i < nqueues; i++) {
        sl_queue_key(keys[i], queues[i], "jobs");
        argv[a++] = keys[i];
    }
    for (size_t i = 0; i < nqueues; i++)
        argv[a++] = ">";
    int got = -1;
    redisReply *rep = sl_redis_command_blocking(r, block_ms, (int)a, argv, NULL, err);
    if (rep == NULL)
        goto done;
    got = 0;
    if (rep->type == REDIS_REPLY_ARRAY) {
        for (size_t s = 0; s < rep->elements; s++) {
            const redisReply *stream = rep->element[s];
            if (stream->type != REDIS_REPLY_ARRAY || stream->elements < 2)
                continue;
            const redisReply *name = stream->element[0], *items = stream->element[1];
            const char *queue = NULL;
            for (size_t i = 0; i < nqueues; i++) {
                if (name->type == REDIS_REPLY_STRING && strcmp(name->str, keys[i]) == 0)
                    queue = queues[i];
            }
            if (queue == NULL || items->type != REDIS_REPLY_ARRAY)
                continue;
            for (size_t i = 0; i < items->elements; i++) {
                entry_from_reply(batch_push(out), queue, items->element[i]);
                got++;
            }
        }
    }
    freeReplyObject(rep);
done:
    free(argv);
    free(keys);
    return got;
}

int sl_queue_ack(sl_redis *r, sl_entry *const *entries, size_t n, sl_err *err)
{
    if (n == 0)
        return 0;
    const char **xack = sl_xcalloc(n + 3, sizeof *xack);
    const char **xdel = sl_xcalloc(n + 2, sizeof *xdel);
    bool *done = sl_xcalloc(n, sizeof *done);
    size_t sent = 0;
    int rc = 0;
    /* One XACK and one XDEL per distinct queue, all pipelined. */
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        char key[SL_KEY_MAX];
        sl_queue_key(key, entries[i]->queue, "jobs");
        size_t ids = 0;
        for (size_t j = i; j < n; j++) {
            if (!done[j] && strcmp(entries[j]->queue, entries[i]->queue) == 0) {
                xack[3 + ids] = xdel[2 + ids] = entries[j]->stream_id;
                ids++;
                done[j] = true;
            }
        }
        xack[0] = "XACK", xack[1] = key, xack[2] = SL_GROUP;
        xdel[0] = "XDEL", xdel[1] = key;
        if (sl_redis_append(r, (int)(3 + ids), xack, NULL, err) < 0 ||
            sl_redis_append(r, (int)(2 + ids), xdel, NULL, err) < 0) {
            rc = -1;
            break;
        }
        sent += 2;
    }
    for (size_t i = 0; i < sent && !sl_redis_broken(r); i++) {
        sl_err e;
        redisReply *rep = sl_redis_reply(r, &e);
        if (rep == NULL) {
            if (rc == 0 && err)
                *err = e;
            rc = -1;
            break;
        }
        if (rep->type == REDIS_REPLY_ERROR && rc == 0)
            rc = sl_err_set(err, SL_EREDIS, "redis %s: XACK/XDEL: %s", sl_redis_address(r), rep->str);
        freeReplyObject(rep);
    }
    free(xack);
    free(xdel);
    free(done);
    return rc;
}

int sl_queue_dead_letter(sl_redis *r, const sl_entry *e, const char *error, sl_err *err)
{
    char jobs[SL_KEY_MAX], dead[SL_KEY_MAX], failed_at[24];
    sl_queue_key(jobs, e->queue, "jobs");
    sl_queue_key(dead, e->queue, "dead");
    snprintf(failed_at, sizeof failed_at, "%lld", (long long)sl_now_ms());
    const char *multi[] = { "MULTI" };
    const char *xadd[] = { "XADD", dead, "*", "job", e->data ? e->data : "", "error", error,
                           "failed_at", failed_at };
    size_t xadd_len[] = { 4, strlen(dead), 1, 3, e->data ? e->len : 0, 5, strlen(error), 9,
                          strlen(failed_at) };
    const char *xack[] = { "XACK", jobs, SL_GROUP, e->stream_id };
    const char *xdel[] = { "XDEL", jobs, e->stream_id };
    const char *exec[] = { "EXEC" };
    if (sl_redis_append(r, 1, multi, NULL, err) < 0 ||
        sl_redis_append(r, 9, xadd, xadd_len, err) < 0 ||
        sl_redis_append(r, 4, xack, NULL, err) < 0 ||
        sl_redis_append(r, 3, xdel, NULL, err) < 0 ||
        sl_redis_append(r, 1, exec, NULL, err) < 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < 5; i++) {
        sl_err e2;
        redisReply *rep = sl_redis_reply(r, &e2);
        if (rep == NULL) {
            if (err)
                *err = e2;
            return -1;
        }
        if (rc == 0 && (rep->type == REDIS_REPLY_ERROR || (i == 4 && rep->type != REDIS_REPLY_ARRAY)))
            rc = sl_err_set(err, SL_EREDIS, "redis %s: dead-letter %s: %s", sl_redis_address(r), dead,
                            rep->type == REDIS_REPLY_ERROR ? rep->str : "transaction aborted");
        freeReplyObject(rep);
    }
    return rc;
}

int sl_queue_depth(sl_redis *r, const char *queue, long long *length, long long *pending,
                   sl_err *err)
{
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    const char *xlen[] = { "XLEN", key };
    redisReply *rep = sl_redis_command(r, 2, xlen, NULL, err);
    if (rep == NULL)
        return -1;
    *length = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);
    *pending = 0;
    const char *xpending[] = { "XPENDING", key, SL_GROUP };
    sl_err e;
    rep = sl_redis_command(r, 3, xpending, NULL, &e);
    if (rep == NULL) {
        if (strstr(e.msg, "NOGROUP"))
            return 0;   /* no worker has created the group yet: nothing pending */
        if (err)
            *err = e;
        return -1;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER)
        *pending = rep->element[0]->integer;
    freeReplyObject(rep);
    return 0;
}
