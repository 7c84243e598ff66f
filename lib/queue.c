/* queue.c: see queue.h.
 *
 * Everything that must move a job between two keys of one queue does it in
 * one step that Redis runs atomically: MULTI/EXEC when the commands are
 * known in advance (dead letter, retry later), a Lua script when they
 * depend on what is read (promote: which members are due; dead requeue:
 * whether the entry still exists).  The keys share the {Q} hash tag, so
 * this holds on Redis Cluster too; sluice:queues does not, and is only ever
 * written in a plain pipeline, before the key it announces. */
#include "queue.h"
#include "luascript.h"
#include "clock.h"
#include "mem.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sl_queue_ensure_group(sl_redis *r, const char *queue, sl_err *err)
{
    char *q[] = { (char *)queue };
    return sl_queue_ensure_groups(r, q, 1, err);
}

/* Commands of one pipelined round trip of sl_queue_ensure_groups: their
 * replies (mostly BUSYGROUP errors) stay small. */
#define ENSURE_GROUPS_CHUNK 1000

int sl_queue_ensure_groups(sl_redis *r, char *const *queues, size_t n, sl_err *err)
{
    for (size_t s = 0; s < n; s += ENSURE_GROUPS_CHUNK) {
        size_t m = n - s < ENSURE_GROUPS_CHUNK ? n - s : ENSURE_GROUPS_CHUNK;
        for (size_t i = 0; i < m; i++) {
            char key[SL_KEY_MAX];
            sl_queue_key(key, queues[s + i], "jobs");
            const char *argv[] = { "XGROUP", "CREATE", key, SL_GROUP, "0", "MKSTREAM" };
            if (sl_redis_append(r, 6, argv, NULL, err) < 0)
                return -1;
        }
        int rc = 0;
        for (size_t i = 0; i < m; i++) {
            redisReply *rep = sl_redis_reply(r, err);
            if (rep == NULL)
                return -1;   /* the connection is broken: no reply left to read */
            if (rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "BUSYGROUP") == NULL && rc == 0)
                rc = sl_err_set(err, SL_EREDIS, "redis %s: XGROUP CREATE %s: %s", sl_redis_address(r),
                                queues[s + i], rep->str);
            freeReplyObject(rep);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* What the last command of a write is to read_replies. */
enum last_reply {
    LAST_NONE,    /* not sent */
    LAST_CHECKED, /* sent; an error fails the write */
    LAST_HINT,    /* sent; an error is ignored (the note in sluice:due: without
                     it the job is promoted by the slower full pass) */
};

/* Reads the replies of a write of what[0], what[1] (the job), what[2]
 * (WAIT, if waited) and what[3] (as last says), keys where[]: the first
 * error wins; all replies are read whatever happens, so the connection
 * stays in step. */
static int read_replies(sl_redis *r, const char *const *what, const char *const *where, bool waited,
                        enum last_reply last, sl_err *err)
{
    int rc = 0;
    for (int i = 0; i < 4; i++) {
        if ((i == 2 && !waited) || (i == 3 && last == LAST_NONE))
            continue;
        redisReply *rep = sl_redis_reply(r, err);
        if (rep == NULL)
            return -1;
        if (rc == 0 && i == 2)
            rc = sl_redis_wait_result(r, rep, err);
        else if (rep->type == REDIS_REPLY_ERROR && rc == 0 && !(i == 3 && last == LAST_HINT))
            rc = sl_err_set(err, SL_EREDIS, "redis %s: %s %s: %s", sl_redis_address(r), what[i],
                            where[i], rep->str);
        freeReplyObject(rep);
    }
    return rc;
}

/* XADD of data to queue's stream after SADD to sluice:queues, and, for a
 * job of known kind, the enqueued counter (metrics.h), in one round trip. */
static int enqueue_bytes(sl_redis *r, const char *queue, const char *kind, const char *data,
                         size_t len, sl_err *err)
{
    if (!sl_envelope_queue_valid(queue))
        return sl_err_set(err, SL_EINVAL, "invalid queue name '%.80s'", queue);
    char key[SL_KEY_MAX], stats[SL_KEY_MAX], field[96];
    sl_queue_key(key, queue, "jobs");
    /* SADD first: a queue that holds entries is always discoverable. */
    const char *sadd[] = { "SADD", SL_QUEUES_KEY, queue };
    const char *xadd[] = { "XADD", key, "*", "job", data };
    size_t xadd_len[] = { 4, strlen(key), 1, 3, len };
    const char *incr[] = { "HINCRBY", stats, field, "1" };
    if (kind)
        sl_metrics_enqueue_field(queue, kind, stats, sizeof stats, field, sizeof field);
    int waits;
    if (sl_redis_append(r, 3, sadd, NULL, err) < 0 ||
        sl_redis_append(r, 5, xadd, xadd_len, err) < 0 ||
        (waits = sl_redis_append_wait(r, err)) < 0 ||
        (kind && sl_redis_append(r, 4, incr, NULL, err) < 0))
        return -1;
    const char *what[] = { "SADD", "XADD", "WAIT", "HINCRBY" };
    const char *where[] = { SL_QUEUES_KEY, key, "", stats };
    return read_replies(r, what, where, waits == 1, kind ? LAST_CHECKED : LAST_NONE, err);
}

int sl_queue_enqueue_raw(sl_redis *r, const char *queue, const char *data, size_t len,
                         sl_err *err)
{
    return enqueue_bytes(r, queue, NULL, data, len, err);
}

int sl_queue_enqueue(sl_redis *r, const sl_job *job, sl_err *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = sl_envelope_encode(job, &sb, err);
    if (rc == 0)
        rc = enqueue_bytes(r, job->queue, job->kind, sb.data, sb.size, err);
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

/* The field READ_BOUNDED puts in place of a `job` field too large to fetch:
 * its value is the job's length in bytes. */
#define OVERSIZED_FIELD "sluice:oversized"

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
        if (f->type == REDIS_REPLY_STRING && f->len == sizeof OVERSIZED_FIELD - 1 &&
            memcmp(f->str, OVERSIZED_FIELD, f->len) == 0 && v->type == REDIS_REPLY_STRING) {
            e->oversize = (size_t)strtoull(v->str, NULL, 10);
            return;
        }
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
    return sl_queue_ack_after(r, 0, entries, n, err);
}

int sl_queue_ack_after(sl_redis *r, size_t extra, sl_entry *const *entries, size_t n, sl_err *err)
{
    if (n == 0 && extra == 0)
        return 0;
    const char **xack = sl_xcalloc(n + 3, sizeof *xack);
    const char **xdel = sl_xcalloc(n + 2, sizeof *xdel);
    bool *done = sl_xcalloc(n, sizeof *done);
    size_t sent = extra;
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
            rc = sl_err_set(err, SL_EREDIS, "redis %s: %s: %s", sl_redis_address(r),
                            i < extra ? "command before XACK" : "XACK/XDEL", rep->str);
        freeReplyObject(rep);
    }
    free(xack);
    free(xdel);
    free(done);
    return rc;
}

/* One command of a transaction, in sl_redis_command's argv form. */
typedef struct tx_cmd {
    int argc;
    const char **argv;
    const size_t *lens;  /* NULL: strlen of each argv */
} tx_cmd;

/* Runs cmds[0..n) as one MULTI/EXEC transaction in one pipelined round
 * trip.  Fails (naming `what`) if a command was refused when queued, if
 * the transaction was aborted, or if a command failed inside it (such as
 * WRONGTYPE: Redis runs the others regardless, so the caller must know).
 * On success *exec, if not NULL, receives EXEC's reply (caller frees). */
static int transaction(sl_redis *r, const tx_cmd *cmds, size_t n, const char *what,
                       redisReply **exec, sl_err *err)
{
    const char *multi[] = { "MULTI" }, *exec_cmd[] = { "EXEC" };
    if (sl_redis_append(r, 1, multi, NULL, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (sl_redis_append(r, cmds[i].argc, cmds[i].argv, cmds[i].lens, err) < 0)
            return -1;
    }
    if (sl_redis_append(r, 1, exec_cmd, NULL, err) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n + 2; i++) {
        sl_err e;
        redisReply *rep = sl_redis_reply(r, &e);
        if (rep == NULL) {
            if (err)
                *err = e;
            return -1;
        }
        bool last = i == n + 1;
        const char *why = NULL;
        if (rep->type == REDIS_REPLY_ERROR)
            why = rep->str;
        else if (last && rep->type != REDIS_REPLY_ARRAY)
            why = "transaction aborted";
        for (size_t k = 0; last && why == NULL && k < rep->elements; k++) {
            if (rep->element[k]->type == REDIS_REPLY_ERROR)
                why = rep->element[k]->str;
        }
        if (rc == 0 && why)
            rc = sl_err_set(err, SL_EREDIS, "redis %s: %s: %s", sl_redis_address(r), what, why);
        if (last && rc == 0 && exec)
            *exec = rep;
        else
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

int sl_queue_pending_counts(sl_redis *r, char *const *queues, size_t n, long long *pending, sl_err *err)
{
    for (size_t i = 0; i < n; i++) {
        char key[SL_KEY_MAX];
        sl_queue_key(key, queues[i], "jobs");
        const char *argv[] = { "XPENDING", key, SL_GROUP };
        if (sl_redis_append(r, 3, argv, NULL, err) < 0)
            return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *rep = sl_redis_reply(r, err);
        if (rep == NULL)
            return -1;   /* the connection is broken: no reply left to read */
        pending[i] = 0;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 && rep->element[0]->type == REDIS_REPLY_INTEGER)
            pending[i] = rep->element[0]->integer;
        else if (rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "NOGROUP") == NULL && rc == 0)
            rc = sl_err_set(err, SL_EREDIS, "XPENDING %s: %s", queues[i], rep->str);
        freeReplyObject(rep);
    }
    return rc;
}

int sl_queue_entries_exist(sl_redis *r, const char *const *queues, const char *const *stream_ids,
                           size_t n, bool *exists, sl_err *err)
{
    for (size_t i = 0; i < n; i++) {
        char key[SL_KEY_MAX];
        sl_queue_key(key, queues[i], "jobs");
        const char *argv[] = { "XRANGE", key, stream_ids[i], stream_ids[i], "COUNT", "1" };
        if (sl_redis_append(r, 6, argv, NULL, err) < 0)
            return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        sl_err e;
        redisReply *rep = sl_redis_reply(r, &e);
        if (rep == NULL) {
            if (err)
                *err = e;
            return -1;
        }
        if (rep->type == REDIS_REPLY_ERROR && rc == 0)
            rc = sl_err_set(err, SL_EREDIS, "redis %s: XRANGE of %s entry %s: %s", sl_redis_address(r),
                            queues[i], stream_ids[i], rep->str);
        exists[i] = rep->type == REDIS_REPLY_ARRAY && rep->elements > 0;
        freeReplyObject(rep);
    }
    return rc;
}

/* ---- Lua scripts ------------------------------------------------------------ */

/* The scripts below run through lib/luascript.h (by SHA, sent in full only
 * on NOSCRIPT; test_queue.c checks each SHA).  Every key a script touches
 * is passed in KEYS and shares the queue's {Q} hash tag, so they also run
 * on Redis Cluster (except PROMOTE_NOTED, which also writes sluice:due). */
typedef sl_lua lua_script;

/* The body PROMOTE and PROMOTE_NOTED share: one queue's due jobs, given
 * `delayed`, `jobs` and `stats`, into its stream. */
#define PROMOTE_ONE_QUEUE \
    "  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n" \
    "  local again = 0\n" \
    "  for _, member in ipairs(due) do\n" \
    "    redis.call('XADD', jobs, '*', 'job', member)\n" \
    "    redis.call('ZREM', delayed, member)\n" \
    "    local ok, env = pcall(cmsgpack.unpack, member)\n" \
    "    if ok and type(env) == 'table' and type(env.attempt) == 'number' and env.attempt > 1 then\n" \
    "      again = again + 1\n" \
    "    end\n" \
    "  end\n" \
    "  if again > 0 then redis.call('HINCRBY', stats, 'readded', again) end\n" \
    "  total = total + #due\n"

/* For each queue, KEYS[3q+1] delayed set, KEYS[3q+2] job stream, KEYS[3q+3]
 * stats hash; ARGV[1] now (Unix ms), ARGV[2] limit per queue.  Several
 * queues in one call, so that housekeeping costs one round trip however
 * many queues a worker reads (on Redis Cluster one queue per call: keys of
 * one script share a slot).  XADD before ZREM: if the script were cut
 * short between the two, the job would be in both (it runs at least once),
 * never in neither.  A member whose attempt is above 1 is a retry, not a
 * new job: it is counted in the hash's `readded` (SL_READDED_FIELD) in the
 * same step as its XADD, so that entries-added - readded counts enqueues. */
static const lua_script PROMOTE = {
    "c899ef5534268e9921200c60ee01461cb21102a2",
    "local total = 0\n"
    "for q = 0, #KEYS / 3 - 1 do\n"
    "  local delayed, jobs, stats = KEYS[3 * q + 1], KEYS[3 * q + 2], KEYS[3 * q + 3]\n"
    PROMOTE_ONE_QUEUE
    "end\n"
    "return total\n",
};

/* KEYS[1] SL_DUE_KEY, then (delayed, jobs, stats) of each queue; ARGV[1]
 * now (Unix ms), ARGV[2] limit per queue, ARGV[3..] the queues' names.
 * PROMOTE, then each queue's entry in the index moved to its next job's
 * time, or removed when its delayed set is empty: in the same step, so a
 * producer's ZADD LT of an earlier time is never lost.  The index is on
 * another slot than the queues: on one Redis only (a Redis Cluster uses
 * PROMOTE, one queue per call). */
static const lua_script PROMOTE_NOTED = {
    "436b454c434cd08be8cad74a30678274e4ea7b9a",
    "local total = 0\n"
    "for q = 0, (#KEYS - 1) / 3 - 1 do\n"
    "  local delayed, jobs, stats = KEYS[3 * q + 2], KEYS[3 * q + 3], KEYS[3 * q + 4]\n"
    PROMOTE_ONE_QUEUE
    "  local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')\n"
    "  if first[2] then\n"
    "    redis.call('ZADD', KEYS[1], first[2], ARGV[q + 3])\n"
    "  else\n"
    "    redis.call('ZREM', KEYS[1], ARGV[q + 3])\n"
    "  end\n"
    "end\n"
    "return total\n",
};

/* KEYS[1] SL_DUE_KEY, KEYS[1 + i] the delayed set of queue ARGV[i]: each
 * queue whose delayed set is gone leaves the index (nothing of it can be
 * due).  Checked and removed in one step, so a note written together with
 * a new delayed job is never taken away.  Returns the entries removed. */
static const lua_script DUE_PRUNE = {
    "2302f7be42841cfc7e8eacd79222339a1a60c02e",
    "local n = 0\n"
    "for i = 1, #ARGV do\n"
    "  if redis.call('EXISTS', KEYS[i + 1]) == 0 then\n"
    "    n = n + redis.call('ZREM', KEYS[1], ARGV[i])\n"
    "  end\n"
    "end\n"
    "return n\n",
};

/* KEYS[1] a job stream; ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry
 * ids.  Renews the lease (XCLAIM ... 0 ... JUSTID: idle time reset, no
 * delivery counted) of each entry still pending for that consumer, and
 * leaves alone one that another consumer holds now: checked and renewed
 * in one step, so a renewal never takes an entry back from whoever
 * reclaimed or took it over.  Returns the entries renewed. */
static const lua_script RENEW = {
    "2ae6f990d0902297a10d2c54afec9673a1c4ca5a",
    "local n = 0\n"
    "for i = 3, #ARGV do\n"
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)\n"
    "  if p[1] and p[1][2] == ARGV[2] then\n"
    "    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n",
};

/* KEYS[1..n] job streams in priority order; ARGV[1] group, ARGV[2]
 * consumer, ARGV[3] count, ARGV[4] largest `job` value returned.
 * XREADGROUP (not blocking) of new entries, stream after stream, until
 * count are taken: one round trip whatever the number of queues.  Returns
 * {index of the stream in KEYS, entries} pairs.  A `job` field longer than
 * ARGV[4] is replaced, in the reply only, by OVERSIZED_FIELD and its
 * length: its bytes never leave Redis. */
static const lua_script READ_BOUNDED = {
    "d1f261333130655a2c1f9b0fc0cdf4487d639ab5",
    "local want = tonumber(ARGV[3])\n"
    "local max = tonumber(ARGV[4])\n"
    "local out = {}\n"
    "for k = 1, #KEYS do\n"
    "  if want <= 0 then break end\n"
    "  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want, 'STREAMS', KEYS[k], '>')\n"
    "  if r then\n"
    "    local entries = r[1][2]\n"
    "    for _, e in ipairs(entries) do\n"
    "      local f = e[2]\n"
    "      if f then\n"
    "        for i = 1, #f, 2 do\n"
    "          if f[i] == 'job' and #f[i + 1] > max then\n"
    "            e[2] = {'sluice:oversized', tostring(#f[i + 1])}\n"
    "            break\n"
    "          end\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "    want = want - #entries\n"
    "    out[#out + 1] = {k, entries}\n"
    "  end\n"
    "end\n"
    "return out\n",
};

/* KEYS[1] job stream, KEYS[2] dead letter; ARGV[1] entry id, ARGV[2]
 * error, ARGV[3] failed_at, ARGV[4] group.  sl_queue_dead_letter for an
 * entry whose bytes the worker never fetched: moved within Redis.
 * Returns 0 (only acknowledged) if the entry is gone. */
static const lua_script DEAD_IN_PLACE = {
    "93581a51b657c30774deb292e523ea7b1eeabce3",
    "local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])\n"
    "if #e == 0 then redis.call('XACK', KEYS[1], ARGV[4], ARGV[1]) return 0 end\n"
    "local job = ''\n"
    "local f = e[1][2]\n"
    "for i = 1, #f, 2 do if f[i] == 'job' then job = f[i + 1] end end\n"
    "redis.call('XADD', KEYS[2], '*', 'job', job, 'error', ARGV[2], 'failed_at', ARGV[3])\n"
    "redis.call('XACK', KEYS[1], ARGV[4], ARGV[1])\n"
    "redis.call('XDEL', KEYS[1], ARGV[1])\n"
    "return 1\n",
};

/* KEYS[1] dead letter, KEYS[2] job stream, KEYS[3] stats hash; ARGV[1]
 * dead entry id, ARGV[2] envelope.  Returns 0 (nothing done) if the dead
 * entry is gone.  The XADD is counted as `readded` (see PROMOTE). */
static const lua_script REQUEUE = {
    "3552cc0159b8b1bc814b446fff238a4cf58262e1",
    "if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return 0 end\n"
    "redis.call('XADD', KEYS[2], '*', 'job', ARGV[2])\n"
    "redis.call('XDEL', KEYS[1], ARGV[1])\n"
    "redis.call('HINCRBY', KEYS[3], 'readded', 1)\n"
    "return 1\n",
};


int sl_queue_dead_letter(sl_redis *r, const sl_entry *e, const char *job_id, const char *error,
                         sl_err *err)
{
    char jobs[SL_KEY_MAX], dead[SL_KEY_MAX], failed_at[24], what[SL_KEY_MAX + 16];
    sl_queue_key(jobs, e->queue, "jobs");
    sl_queue_key(dead, e->queue, "dead");
    snprintf(failed_at, sizeof failed_at, "%lld", (long long)sl_now_ms());
    snprintf(what, sizeof what, "dead-letter %s", dead);
    if (e->data == NULL && e->oversize > 0) {
        const char *keys[] = { jobs, dead }, *args[] = { e->stream_id, error, failed_at, SL_GROUP };
        redisReply *rep = sl_lua_run(r, &DEAD_IN_PLACE, 2, keys, 4, args, NULL, err);
        if (rep == NULL)
            return sl_err_wrap(err, "%s", what);
        freeReplyObject(rep);
        return 0;
    }
    /* `id` last: readers that know only the first three fields are unaffected. */
    const char *xadd[] = { "XADD", dead, "*", "job", e->data ? e->data : "", "error", error,
                           "failed_at", failed_at, "id", job_id ? job_id : "" };
    size_t xadd_len[] = { 4, strlen(dead), 1, 3, e->data ? e->len : 0, 5, strlen(error), 9,
                          strlen(failed_at), 2, job_id ? strlen(job_id) : 0 };
    const char *xack[] = { "XACK", jobs, SL_GROUP, e->stream_id };
    const char *xdel[] = { "XDEL", jobs, e->stream_id };
    const tx_cmd cmds[] = { { job_id ? 11 : 9, xadd, xadd_len }, { 4, xack, NULL }, { 3, xdel, NULL } };
    return transaction(r, cmds, 3, what, NULL, err);
}

/* True for a complete stream entry id, "ms-seq" (both decimal).  A bare
 * "ms" would mean different ranges to XRANGE and XDEL. */
static bool stream_id_valid(const char *id)
{
    size_t ms = strspn(id, "0123456789");
    if (ms == 0 || ms > 20 || id[ms] != '-')
        return false;
    size_t seq = strspn(id + ms + 1, "0123456789");
    return seq > 0 && seq <= 20 && id[ms + 1 + seq] == '\0';
}

/* ---- retries and delays ----------------------------------------------------- */

int sl_queue_schedule(sl_redis *r, const char *queue, const char *data, size_t len,
                      int64_t due_ms, sl_err *err)
{
    if (!sl_envelope_queue_valid(queue))
        return sl_err_set(err, SL_EINVAL, "invalid queue name '%.80s'", queue);
    if (due_ms < 0)
        return sl_err_set(err, SL_EINVAL, "schedule: due time %lld is before 1970", (long long)due_ms);
    char key[SL_KEY_MAX], score[24];
    sl_queue_key(key, queue, "delayed");
    snprintf(score, sizeof score, "%lld", (long long)due_ms);
    /* As sl_queue_enqueue_raw: registered before it can exist. */
    const char *sadd[] = { "SADD", SL_QUEUES_KEY, queue };
    const char *zadd[] = { "ZADD", key, score, data };
    size_t zadd_len[] = { 4, strlen(key), strlen(score), len };
    const char *due[] = { "ZADD", SL_DUE_KEY, "LT", score, queue };
    int waits;
    if (sl_redis_append(r, 3, sadd, NULL, err) < 0 ||
        sl_redis_append(r, 4, zadd, zadd_len, err) < 0 ||
        (waits = sl_redis_append_wait(r, err)) < 0 ||
        sl_redis_append(r, 5, due, NULL, err) < 0)
        return -1;
    const char *what[] = { "SADD", "ZADD", "WAIT", "ZADD" };
    const char *where[] = { SL_QUEUES_KEY, key, "", SL_DUE_KEY };
    return read_replies(r, what, where, waits == 1, LAST_HINT, err);
}

/* Tells the index that queue has a delayed job due at score (ZADD LT: an
 * earlier time already there stays). */
static int note_due(sl_redis *r, const char *queue, const char *score, sl_err *err)
{
    const char *argv[] = { "ZADD", SL_DUE_KEY, "LT", score, queue };
    redisReply *rep = sl_redis_command(r, 5, argv, NULL, err);
    if (rep == NULL)
        return sl_err_wrap(err, "redis %s: ZADD %s", sl_redis_address(r), SL_DUE_KEY);
    freeReplyObject(rep);
    return 0;
}

int sl_queue_retry_later(sl_redis *r, const sl_entry *e, const char *data, size_t len,
                         int64_t due_ms, sl_err *err)
{
    if (due_ms < 0)
        return sl_err_set(err, SL_EINVAL, "retry: due time %lld is before 1970", (long long)due_ms);
    char jobs[SL_KEY_MAX], delayed[SL_KEY_MAX], score[24], what[SL_KEY_MAX + 16];
    sl_queue_key(jobs, e->queue, "jobs");
    sl_queue_key(delayed, e->queue, "delayed");
    snprintf(score, sizeof score, "%lld", (long long)due_ms);
    snprintf(what, sizeof what, "retry later %s", delayed);
    const char *zadd[] = { "ZADD", delayed, score, data };
    size_t zadd_len[] = { 4, strlen(delayed), strlen(score), len };
    const char *xack[] = { "XACK", jobs, SL_GROUP, e->stream_id };
    const char *xdel[] = { "XDEL", jobs, e->stream_id };
    const tx_cmd cmds[] = { { 4, zadd, zadd_len }, { 4, xack, NULL }, { 3, xdel, NULL } };
    if (transaction(r, cmds, 3, what, NULL, err) < 0)
        return -1;
    /* The retry is in place: without its note it is promoted by the
     * slower full pass (sl_queue_due), so only a lost connection
     * is worth reporting. */
    if (note_due(r, e->queue, score, err) < 0 && sl_redis_broken(r))
        return -1;
    return 0;
}

int sl_queue_promote_many(sl_redis *r, char *const *queues, size_t n, int64_t now_ms, int limit, sl_err *err)
{
    if (limit < 1)
        return sl_err_set(err, SL_EINVAL, "promote: limit must be at least 1, got %d", limit);
    if (n == 0)
        return 0;
    char (*keys)[SL_KEY_MAX] = sl_xcalloc(3 * n, sizeof *keys);
    const char **kp = sl_xcalloc(3 * n, sizeof *kp);
    for (size_t i = 0; i < n; i++) {
        sl_queue_key(keys[3 * i], queues[i], "delayed");
        sl_queue_key(keys[3 * i + 1], queues[i], "jobs");
        sl_queue_key(keys[3 * i + 2], queues[i], "stats");
        kp[3 * i] = keys[3 * i], kp[3 * i + 1] = keys[3 * i + 1], kp[3 * i + 2] = keys[3 * i + 2];
    }
    char now[24], lim[16];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *args[] = { now, lim };
    int moved = -1;
    redisReply *rep = sl_lua_run(r, &PROMOTE, (int)(3 * n), kp, 2, args, NULL, err);
    if (rep == NULL) {
        sl_err_wrap(err, "promote %s%s", keys[0], n > 1 ? " and others" : "");
    } else {
        moved = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : 0;
        freeReplyObject(rep);
    }
    free(kp);
    free(keys);
    return moved;
}

int sl_queue_due(sl_redis *r, int64_t now_ms, int max, char ***queues, size_t *n, sl_err *err)
{
    *queues = NULL;
    *n = 0;
    char now[24], most[16];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(most, sizeof most, "%d", max);
    const char *argv[] = { "ZRANGEBYSCORE", SL_DUE_KEY, "-inf", now, "LIMIT", "0", most };
    redisReply *rep = sl_redis_command(r, 7, argv, NULL, err);
    if (rep == NULL)
        return -1;
    /* A member that is no queue name (written by hand or by a hostile
     * producer) can never be promoted: it leaves the index at once. */
    const char **bad = NULL;
    size_t *bad_lens = NULL, nbad = 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0) {
        *queues = sl_xcalloc(rep->elements, sizeof **queues);
        for (size_t i = 0; i < rep->elements; i++) {
            const redisReply *e = rep->element[i];
            if (e->type != REDIS_REPLY_STRING)
                continue;
            if (e->len == strlen(e->str) && sl_envelope_queue_valid(e->str)) {
                (*queues)[(*n)++] = sl_xstrdup(e->str);
            } else {
                if (bad == NULL) {   /* rare: allocated only when one shows up */
                    bad = sl_xcalloc(rep->elements + 2, sizeof *bad);
                    bad_lens = sl_xcalloc(rep->elements + 2, sizeof *bad_lens);
                }
                bad[2 + nbad] = e->str;
                bad_lens[2 + nbad++] = e->len;
            }
        }
    }
    int rc = 0;
    if (nbad > 0) {
        bad[0] = "ZREM", bad_lens[0] = 4;
        bad[1] = SL_DUE_KEY, bad_lens[1] = strlen(SL_DUE_KEY);
        redisReply *z = sl_redis_command(r, (int)(nbad + 2), bad, bad_lens, err);
        if (z == NULL)
            rc = sl_err_wrap(err, "redis %s: ZREM %s", sl_redis_address(r), SL_DUE_KEY);
        else
            freeReplyObject(z);
    }
    free(bad);
    free(bad_lens);
    freeReplyObject(rep);
    if (rc < 0) {
        for (size_t i = 0; i < *n; i++)
            free((*queues)[i]);
        free(*queues);
        *queues = NULL;
        *n = 0;
    }
    return rc;
}

int sl_queue_due_prune(sl_redis *r, char *const *queues, size_t n, sl_err *err)
{
    if (n == 0)
        return 0;
    char (*keys)[SL_KEY_MAX] = sl_xcalloc(n, sizeof *keys);
    const char **kp = sl_xcalloc(n + 1, sizeof *kp);
    kp[0] = SL_DUE_KEY;
    for (size_t i = 0; i < n; i++) {
        sl_queue_key(keys[i], queues[i], "delayed");
        kp[1 + i] = keys[i];
    }
    int removed = -1;
    redisReply *rep = sl_lua_run(r, &DUE_PRUNE, (int)(n + 1), kp, (int)n, (const char *const *)queues, NULL, err);
    if (rep == NULL) {
        sl_err_wrap(err, "prune %s", SL_DUE_KEY);
    } else {
        removed = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : 0;
        freeReplyObject(rep);
    }
    free(kp);
    free(keys);
    return removed;
}

int sl_queue_promote_noted(sl_redis *r, char *const *queues, size_t n, int64_t now_ms, int limit, sl_err *err)
{
    if (limit < 1)
        return sl_err_set(err, SL_EINVAL, "promote: limit must be at least 1, got %d", limit);
    if (n == 0)
        return 0;
    char (*keys)[SL_KEY_MAX] = sl_xcalloc(3 * n, sizeof *keys);
    const char **kp = sl_xcalloc(3 * n + 1, sizeof *kp);
    const char **args = sl_xcalloc(n + 2, sizeof *args);
    char now[24], lim[16];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(lim, sizeof lim, "%d", limit);
    kp[0] = SL_DUE_KEY;
    args[0] = now, args[1] = lim;
    for (size_t i = 0; i < n; i++) {
        sl_queue_key(keys[3 * i], queues[i], "delayed");
        sl_queue_key(keys[3 * i + 1], queues[i], "jobs");
        sl_queue_key(keys[3 * i + 2], queues[i], "stats");
        for (int k = 0; k < 3; k++)
            kp[1 + 3 * i + (size_t)k] = keys[3 * i + (size_t)k];
        args[2 + i] = queues[i];
    }
    int moved = -1;
    redisReply *rep = sl_lua_run(r, &PROMOTE_NOTED, (int)(3 * n + 1), kp, (int)(n + 2), args, NULL, err);
    if (rep == NULL) {
        sl_err_wrap(err, "promote %s%s", queues[0], n > 1 ? " and others" : "");
    } else {
        moved = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : 0;
        freeReplyObject(rep);
    }
    free(args);
    free(kp);
    free(keys);
    return moved;
}

int sl_queue_promote(sl_redis *r, const char *queue, int64_t now_ms, int limit, sl_err *err)
{
    char *q[] = { (char *)queue };
    return sl_queue_promote_many(r, q, 1, now_ms, limit, err);
}

int sl_queue_read_many(sl_redis *r, const char *consumer, char *const *queues, size_t n, int count,
                       size_t max_bytes, sl_batch *out, sl_err *err)
{
    if (n == 0 || count < 1)
        return 0;
    char (*keys)[SL_KEY_MAX] = sl_xcalloc(n, sizeof *keys);
    const char **kp = sl_xcalloc(n, sizeof *kp);
    for (size_t i = 0; i < n; i++) {
        sl_queue_key(keys[i], queues[i], "jobs");
        kp[i] = keys[i];
    }
    char countbuf[16], maxbuf[24];
    snprintf(countbuf, sizeof countbuf, "%d", count);
    snprintf(maxbuf, sizeof maxbuf, "%zu", max_bytes);
    const char *args[] = { SL_GROUP, consumer, countbuf, maxbuf };
    int got = -1;
    redisReply *rep = sl_lua_run(r, &READ_BOUNDED, (int)n, kp, 4, args, NULL, err);
    if (rep == NULL) {
        sl_err_wrap(err, "read %s%s", keys[0], n > 1 ? " and others" : "");
        goto out;
    }
    got = 0;
    for (size_t s = 0; rep->type == REDIS_REPLY_ARRAY && s < rep->elements; s++) {
        const redisReply *stream = rep->element[s];
        if (stream->type != REDIS_REPLY_ARRAY || stream->elements < 2 ||
            stream->element[0]->type != REDIS_REPLY_INTEGER || stream->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        long long k = stream->element[0]->integer;
        if (k < 1 || (size_t)k > n)
            continue;
        const redisReply *items = stream->element[1];
        for (size_t i = 0; i < items->elements; i++) {
            entry_from_reply(batch_push(out), queues[k - 1], items->element[i]);
            got++;
        }
    }
    freeReplyObject(rep);
out:
    free(kp);
    free(keys);
    return got;
}

int sl_queue_read_bounded(sl_redis *r, const char *consumer, const char *queue, int count,
                          size_t max_bytes, sl_batch *out, sl_err *err)
{
    char *q[] = { (char *)queue };
    return sl_queue_read_many(r, consumer, q, 1, count, max_bytes, out, err);
}

/* ---- recovery ------------------------------------------------------------- */

/* XAUTOCLAIM's COUNT: it examines at most ten times as many PEL entries per
 * call, so a long PEL takes several calls (we loop on the cursor). */
#define RECLAIM_WINDOW 100

/* Drops the entries of b from index `from` on, freeing their data. */
static void batch_truncate(sl_batch *b, size_t from)
{
    for (size_t i = from; i < b->n; i++)
        free(b->items[i].data);
    if (from < b->n)
        b->n = from;
}

/* Acknowledges ids (pending entries whose body is gone). */
static int ack_ids(sl_redis *r, const char *key, const char *const *ids, size_t n, sl_err *err)
{
    if (n == 0)
        return 0;
    const char **argv = sl_xcalloc(n + 3, sizeof *argv);
    argv[0] = "XACK", argv[1] = key, argv[2] = SL_GROUP;
    memcpy(argv + 3, ids, n * sizeof *ids);
    redisReply *rep = sl_redis_command(r, (int)(n + 3), argv, NULL, err);
    free(argv);
    if (rep == NULL)
        return -1;
    freeReplyObject(rep);
    return 0;
}

/* One XAUTOCLAIM call from *cursor: appends live entries to out, XACKs the
 * ids whose entry is gone, and advances *cursor.  Redis 7 lists those ids
 * in the reply's third element (having dropped them from the PEL already:
 * the XACK is then a no-op, kept for servers that do not); an entry whose
 * field list is nil is treated the same way, and a bare nil in place of an
 * entry (Redis 6.2: its id is not given) is skipped. */
static int autoclaim_once(sl_redis *r, const char *consumer, const char *queue, const char *key,
                          const char *idle, char cursor[48], int count, sl_batch *out, int *claimed,
                          sl_err *err)
{
    char countbuf[16];
    snprintf(countbuf, sizeof countbuf, "%d", count);
    const char *argv[] = { "XAUTOCLAIM", key, SL_GROUP, consumer, idle, cursor, "COUNT", countbuf };
    redisReply *rep = sl_redis_command(r, 8, argv, NULL, err);
    if (rep == NULL)
        return -1;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return sl_err_set(err, SL_EREDIS, "redis %s: XAUTOCLAIM %s: unexpected reply",
                          sl_redis_address(r), key);
    }
    const redisReply *entries = rep->element[1];
    const redisReply *deleted = rep->elements > 2 && rep->element[2]->type == REDIS_REPLY_ARRAY
                                ? rep->element[2] : NULL;
    const char **gone = sl_xcalloc(entries->elements + (deleted ? deleted->elements : 0) + 1,
                                   sizeof *gone);
    size_t ngone = 0;
    for (size_t i = 0; deleted && i < deleted->elements; i++) {
        if (deleted->element[i]->type == REDIS_REPLY_STRING)
            gone[ngone++] = deleted->element[i]->str;
    }
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *item = entries->element[i];
        if (item->type != REDIS_REPLY_ARRAY || item->elements < 2 ||
            item->element[0]->type != REDIS_REPLY_STRING)
            continue;
        if (item->element[1]->type != REDIS_REPLY_ARRAY) {
            gone[ngone++] = item->element[0]->str;
            continue;
        }
        entry_from_reply(batch_push(out), queue, item);
        (*claimed)++;
    }
    snprintf(cursor, 48, "%s", rep->element[0]->str);
    int rc = ack_ids(r, key, gone, ngone, err);
    free(gone);
    freeReplyObject(rep);
    return rc;
}

/* Sets deliveries of b->items[from..] from the PEL (one XPENDING per id,
 * pipelined: a range query could be cut short by other entries the
 * consumer holds).  An entry no longer pending for consumer has been taken
 * by someone else since: it is dropped. */
static int fill_deliveries(sl_redis *r, const char *consumer, const char *key, sl_batch *b,
                           size_t from, sl_err *err)
{
    size_t sent = 0;
    for (size_t i = from; i < b->n; i++) {
        const char *argv[] = { "XPENDING", key, SL_GROUP, b->items[i].stream_id,
                               b->items[i].stream_id, "1", consumer };
        if (sl_redis_append(r, 7, argv, NULL, err) < 0)
            return -1;
        sent++;
    }
    int rc = 0;
    for (size_t i = from; i < from + sent; i++) {
        sl_err e;
        redisReply *rep = sl_redis_reply(r, &e);
        if (rep == NULL) {
            if (err)
                *err = e;
            return -1;
        }
        sl_entry *en = &b->items[i];
        en->deliveries = -1;
        if (rep->type == REDIS_REPLY_ERROR) {
            if (rc == 0)
                rc = sl_err_set(err, SL_EREDIS, "redis %s: XPENDING %s: %s", sl_redis_address(r),
                                key, rep->str);
        } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
                   rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements >= 4 &&
                   rep->element[0]->element[3]->type == REDIS_REPLY_INTEGER) {
            en->deliveries = rep->element[0]->element[3]->integer;
        }
        freeReplyObject(rep);
    }
    if (rc < 0)
        return -1;
    size_t keep = from;
    for (size_t i = from; i < b->n; i++) {
        if (b->items[i].deliveries < 0)
            free(b->items[i].data);
        else
            b->items[keep++] = b->items[i];
    }
    b->n = keep;
    return 0;
}

int sl_queue_reclaim(sl_redis *r, const char *consumer, const char *queue, int64_t min_idle_ms,
                     int max, sl_batch *out, sl_err *err)
{
    if (max < 1 || min_idle_ms < 0)
        return sl_err_set(err, SL_EINVAL, "reclaim: need max >= 1 and min_idle_ms >= 0");
    char key[SL_KEY_MAX], idle[24], cursor[48] = "0-0";
    sl_queue_key(key, queue, "jobs");
    snprintf(idle, sizeof idle, "%lld", (long long)min_idle_ms);
    size_t first = out->n;
    int claimed = 0;
    do {
        int window = max - claimed < RECLAIM_WINDOW ? max - claimed : RECLAIM_WINDOW;
        sl_err e;
        if (autoclaim_once(r, consumer, queue, key, idle, cursor, window, out, &claimed, &e) < 0) {
            batch_truncate(out, first);
            if (!sl_redis_broken(r) && strstr(e.msg, "NOGROUP"))
                return 0;   /* no group yet: nothing can be pending */
            if (err)
                *err = e;
            return -1;
        }
    } while (strcmp(cursor, "0-0") != 0 && claimed < max);
    /* What we could not finish stays pending to consumer, and is reclaimed
     * again once idle: dropping it from *out loses nothing. */
    if (fill_deliveries(r, consumer, key, out, first, err) < 0) {
        batch_truncate(out, first);
        return -1;
    }
    for (size_t i = first; i < out->n; i++)
        out->items[i].lapsed = true;
    return (int)(out->n - first);
}

int sl_queue_take_over(sl_redis *r, const char *consumer, const char *queue, const char *from,
                       int max, sl_batch *out, sl_err *err)
{
    if (max < 1)
        return sl_err_set(err, SL_EINVAL, "take over: need max >= 1");
    char key[SL_KEY_MAX], count[24];
    sl_queue_key(key, queue, "jobs");
    snprintf(count, sizeof count, "%d", max);
    const char *pending[] = { "XPENDING", key, SL_GROUP, "-", "+", count, from };
    sl_err e;
    redisReply *rep = sl_redis_command(r, 7, pending, NULL, &e);
    if (rep == NULL) {
        if (!sl_redis_broken(r) && strstr(e.msg, "NOGROUP"))
            return 0;   /* no group yet: nothing can be pending */
        if (err)
            *err = e;
        return -1;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
        freeReplyObject(rep);
        return 0;
    }
    /* XCLAIM key group consumer 0 id...: the ids whose entry is gone come
     * back as nil and are acknowledged. */
    size_t n = rep->elements;
    const char **argv = sl_xcalloc(n + 5, sizeof *argv);
    argv[0] = "XCLAIM", argv[1] = key, argv[2] = SL_GROUP, argv[3] = consumer, argv[4] = "0";
    size_t nids = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *p = rep->element[i];
        if (p->type == REDIS_REPLY_ARRAY && p->elements >= 1 && p->element[0]->type == REDIS_REPLY_STRING)
            argv[5 + nids++] = p->element[0]->str;
    }
    int rc = 0;
    size_t first = out->n;
    redisReply *claim = nids ? sl_redis_command(r, (int)(nids + 5), argv, NULL, err) : NULL;
    if (nids && claim == NULL) {
        rc = -1;
    } else if (claim && claim->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < claim->elements; i++) {
            const redisReply *item = claim->element[i];
            if (item->type == REDIS_REPLY_ARRAY && item->elements >= 2 &&
                item->element[1]->type == REDIS_REPLY_ARRAY)
                entry_from_reply(batch_push(out), queue, item);
        }
    }
    freeReplyObject(claim);
    /* What was listed but not claimed alive is gone from the stream. */
    if (rc == 0 && out->n - first < nids) {
        const char **gone = sl_xcalloc(nids, sizeof *gone);
        size_t ngone = 0;
        for (size_t k = 0; k < nids; k++) {
            bool alive = false;
            for (size_t i = first; i < out->n && !alive; i++)
                alive = strcmp(out->items[i].stream_id, argv[5 + k]) == 0;
            if (!alive)
                gone[ngone++] = argv[5 + k];
        }
        rc = ack_ids(r, key, gone, ngone, err);
        free(gone);
    }
    free(argv);
    freeReplyObject(rep);
    if (rc == 0 && fill_deliveries(r, consumer, key, out, first, err) < 0)
        rc = -1;
    if (rc < 0) {
        batch_truncate(out, first);
        return -1;
    }
    return (int)(out->n - first);
}

int sl_queue_release(sl_redis *r, const sl_entry *e, sl_err *err)
{
    char jobs[SL_KEY_MAX], stats[SL_KEY_MAX], what[SL_KEY_MAX + 16];
    sl_queue_key(jobs, e->queue, "jobs");
    sl_queue_key(stats, e->queue, "stats");
    snprintf(what, sizeof what, "release to %s", jobs);
    const char *xadd[] = { "XADD", jobs, "*", "job", e->data ? e->data : "" };
    size_t xadd_len[] = { 4, strlen(jobs), 1, 3, e->data ? e->len : 0 };
    const char *xack[] = { "XACK", jobs, SL_GROUP, e->stream_id };
    const char *xdel[] = { "XDEL", jobs, e->stream_id };
    /* A job handed back is not a new one: counted as re-added (PROMOTE). */
    const char *incr[] = { "HINCRBY", stats, SL_READDED_FIELD, "1" };
    const tx_cmd cmds[] = { { 5, xadd, xadd_len }, { 4, xack, NULL }, { 3, xdel, NULL }, { 4, incr, NULL } };
    return transaction(r, cmds, 4, what, NULL, err);
}

int sl_queue_renew(sl_redis *r, const char *consumer, const char *queue,
                   const char *const *stream_ids, size_t n, sl_err *err)
{
    if (n == 0)
        return 0;
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    const char *keys[] = { key };
    const char **args = sl_xcalloc(n + 2, sizeof *args);
    args[0] = SL_GROUP, args[1] = consumer;
    memcpy(args + 2, stream_ids, n * sizeof *stream_ids);
    redisReply *rep = sl_lua_run(r, &RENEW, 1, keys, (int)(n + 2), args, NULL, err);
    free(args);
    if (rep == NULL)
        return -1;
    int renewed = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : 0;
    freeReplyObject(rep);
    return renewed;
}

/* ---- operator controls ------------------------------------------------------ */

int sl_queue_set_paused(sl_redis *r, const char *queue, bool paused, sl_err *err)
{
    if (!sl_envelope_queue_valid(queue))
        return sl_err_set(err, SL_EINVAL, "invalid queue name '%.80s'", queue);
    const char *argv[] = { paused ? "SADD" : "SREM", SL_PAUSED_KEY, queue };
    redisReply *rep = sl_redis_command(r, 3, argv, NULL, err);
    if (rep == NULL)
        return -1;
    freeReplyObject(rep);
    return 0;
}

int sl_queue_paused(sl_redis *r, char *const *queues, size_t n, bool *paused, sl_err *err)
{
    if (n == 0)
        return 0;
    const char **argv = sl_xcalloc(n + 2, sizeof *argv);
    argv[0] = "SMISMEMBER", argv[1] = SL_PAUSED_KEY;
    for (size_t i = 0; i < n; i++)
        argv[2 + i] = queues[i];
    redisReply *rep = sl_redis_command(r, (int)(n + 2), argv, NULL, err);
    free(argv);
    if (rep == NULL)
        return -1;
    int rc = 0;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n)
        rc = sl_err_set(err, SL_EREDIS, "redis %s: SMISMEMBER %s: unexpected reply",
                        sl_redis_address(r), SL_PAUSED_KEY);
    for (size_t i = 0; rc == 0 && i < n; i++)
        paused[i] = rep->element[i]->type == REDIS_REPLY_INTEGER && rep->element[i]->integer == 1;
    freeReplyObject(rep);
    return rc;
}

int sl_queue_eviction_policy(sl_redis *r, char *policy, size_t n, sl_err *err)
{
    const char *argv[] = { "CONFIG", "GET", "maxmemory-policy" };
    sl_err e;
    redisReply *rep = sl_redis_command(r, 3, argv, NULL, &e);
    if (rep == NULL) {
        if (sl_redis_broken(r)) {
            if (err)
                *err = e;
            return -1;
        }
        /* CONFIG renamed or denied (managed Redis, ACLs): we cannot tell. */
        snprintf(policy, n, "unknown");
        return 0;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 &&
        rep->element[1]->type == REDIS_REPLY_STRING)
        snprintf(policy, n, "%s", rep->element[1]->str);
    else
        snprintf(policy, n, "unknown");
    freeReplyObject(rep);
    return 0;
}

int sl_queue_dead_requeue(sl_redis *r, const char *queue, const char *dead_id,
                          const char *data, size_t len, sl_err *err)
{
    if (!sl_envelope_queue_valid(queue))
        return sl_err_set(err, SL_EINVAL, "invalid queue name '%.80s'", queue);
    if (!stream_id_valid(dead_id))
        return sl_err_set(err, SL_EINVAL, "invalid dead-letter entry id '%.60s' (expected MS-SEQ, "
                          "as `sluice dead list` prints it)", dead_id);
    char dead[SL_KEY_MAX], jobs[SL_KEY_MAX], stats[SL_KEY_MAX];
    sl_queue_key(dead, queue, "dead");
    sl_queue_key(jobs, queue, "jobs");
    sl_queue_key(stats, queue, "stats");
    const char *keys[] = { dead, jobs, stats }, *args[] = { dead_id, data };
    size_t lens[] = { strlen(dead_id), len };
    redisReply *rep = sl_lua_run(r, &REQUEUE, 3, keys, 2, args, lens, err);
    if (rep == NULL)
        return sl_err_wrap(err, "requeue %s entry %s", dead, dead_id);
    long long done = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);
    if (done != 1)
        return sl_err_set(err, SL_ENOTFOUND, "dead letter of queue '%s' has no entry %s", queue,
                          dead_id);
    return 0;
}

int sl_queue_dead_purge(sl_redis *r, const char *queue, int64_t cutoff_ms, long long *removed,
                        sl_err *err)
{
    *removed = 0;
    if (!sl_envelope_queue_valid(queue))
        return sl_err_set(err, SL_EINVAL, "invalid queue name '%.80s'", queue);
    if (cutoff_ms < 0)
        return sl_err_set(err, SL_EINVAL, "purge: cutoff %lld is before 1970", (long long)cutoff_ms);
    char dead[SL_KEY_MAX], cutoff[24], what[SL_KEY_MAX + 16];
    sl_queue_key(dead, queue, "dead");
    snprintf(cutoff, sizeof cutoff, "%lld", (long long)cutoff_ms);
    snprintf(what, sizeof what, "purge %s", dead);
    /* Trimming is safe here, unlike on a job stream: the dead letter has no
     * consumer group, so no entry of it is ever pending.  An entry's id is
     * the time it was dead-lettered (XADD *), which is what MINID compares. */
    const char *xlen[] = { "XLEN", dead };
    const char *del[] = { "DEL", dead };
    const char *xtrim[] = { "XTRIM", dead, "MINID", "=", cutoff };
    /* XLEN and DEL together, so that the count is what DEL removed. */
    const tx_cmd all[] = { { 2, xlen, NULL }, { 2, del, NULL } };
    const tx_cmd older[] = { { 5, xtrim, NULL } };
    redisReply *exec = NULL;
    if (transaction(r, cutoff_ms == 0 ? all : older, cutoff_ms == 0 ? 2 : 1, what, &exec, err) < 0)
        return -1;
    /* XTRIM answers how many entries it deleted; for DEL, XLEN counted them. */
    const redisReply *count = exec->elements > 0 ? exec->element[0] : NULL;
    if (count && count->type == REDIS_REPLY_INTEGER)
        *removed = count->integer;
    freeReplyObject(exec);
    return 0;
}
