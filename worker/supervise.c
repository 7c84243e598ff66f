/* supervise.c: see supervise.h. */
#include "supervise.h"
#include "buf.h"
#include "clock.h"
#include "config_worker.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "queue.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REDIS_TIMEOUT_MS 1000   /* connect and command timeout of the master's connection */
#define RECONNECT_MIN_MS 200    /* first delay after a failure, doubling ... */
#define RECONNECT_MAX_MS 10000  /* ... up to this */
#define REGISTRY_SOON_MS 200    /* a changed pool is published at most this late */

/* The entries a child held when it died, renewed under its consumer name
 * until its replacement has taken them over. */
typedef struct handover {
    char consumer[128];
    size_t n;
    sl_held_entry *entries;
} handover;

struct sl_supervisor {
    sl_redis *redis;        /* NULL while disconnected */
    char *url;              /* the URL redis was opened with (owned) */
    bool down;              /* an outage is in progress (logged once) */
    int64_t retry_at;       /* monotonic ms of the next connection attempt */
    int64_t retry_delay;    /* current backoff */
    int64_t renew_at;       /* monotonic ms of the next lease renewal */
    int64_t registry_at;    /* monotonic ms of the next registry write */
    int64_t cancel_at;      /* monotonic ms of the next look for cancellations */
    char signalled[SL_SUPERVISOR_SLOTS_MAX][SL_JOBID_MAX + 1]; /* job each slot was told to cancel */
    char host[256];
    char key[320];          /* sluice:worker:<host>:<pid> */
    sl_slot *snap;          /* scratch copy of one slot (too large for the stack) */
    const char *ids[SL_SCOREBOARD_BATCH_MAX]; /* scratch for one renewal */
    bool grouped[SL_SCOREBOARD_BATCH_MAX];
    handover *handovers[SL_SUPERVISOR_SLOTS_MAX]; /* what a dead child of each slot held */
};

sl_supervisor *sl_supervisor_new(void)
{
    sl_supervisor *s = sl_xcalloc(1, sizeof *s);
    if (gethostname(s->host, sizeof s->host) < 0)
        snprintf(s->host, sizeof s->host, "localhost");
    s->host[sizeof s->host - 1] = '\0';
    snprintf(s->key, sizeof s->key, SL_WORKER_KEY_PREFIX "%s:%ld", s->host, (long)getpid());
    s->snap = sl_xmalloc(sizeof *s->snap);
    s->retry_delay = RECONNECT_MIN_MS;
    return s;
}

static void drop_handover(sl_supervisor *s, int slot)
{
    if (s->handovers[slot] == NULL)
        return;
    free(s->handovers[slot]->entries);
    free(s->handovers[slot]);
    s->handovers[slot] = NULL;
}

void sl_supervisor_handover(sl_supervisor *s, int slot, const sl_slot *dead)
{
    if (slot < 0 || slot >= SL_SUPERVISOR_SLOTS_MAX || dead->held == 0 || dead->consumer[0] == '\0')
        return;   /* nothing held: a handover kept from an earlier death stays */
    drop_handover(s, slot);
    handover *h = sl_xcalloc(1, sizeof *h);
    snprintf(h->consumer, sizeof h->consumer, "%.*s", (int)sizeof h->consumer - 1, dead->consumer);
    h->n = dead->held <= SL_SCOREBOARD_BATCH_MAX ? dead->held : SL_SCOREBOARD_BATCH_MAX;
    h->entries = sl_xcalloc(h->n, sizeof *h->entries);
    memcpy(h->entries, dead->entries, h->n * sizeof *h->entries);
    s->handovers[slot] = h;
}

void sl_supervisor_free(sl_supervisor *s)
{
    if (s == NULL)
        return;
    sl_redis_free(s->redis);
    free(s->url);
    free(s->snap);
    for (int i = 0; i < SL_SUPERVISOR_SLOTS_MAX; i++)
        drop_handover(s, i);
    free(s);
}

void sl_supervisor_forget(const sl_supervisor *s)
{
    if (s->redis)
        sl_redis_close_fds(s->redis);
}

void sl_supervisor_pool_changed(sl_supervisor *s)
{
    int64_t soon = sl_monotonic_ms() + REGISTRY_SOON_MS;
    if (s->registry_at > soon)
        s->registry_at = soon;
}

static void drop_connection(sl_supervisor *s, const char *why)
{
    if (!s->down) {
        char q[600];
        SL_ERROR("redis.unavailable", "user=master error=%s retry=backoff",
                 sl_log_quote(q, sizeof q, why));
    }
    s->down = true;
    sl_redis_free(s->redis);
    s->redis = NULL;
    s->retry_at = sl_monotonic_ms() + s->retry_delay;
    s->retry_delay = s->retry_delay < RECONNECT_MAX_MS / 2 ? s->retry_delay * 2 : RECONNECT_MAX_MS;
}

/* Returns the connection, opening it if it is due; NULL while down. */
static sl_redis *connection(sl_supervisor *s, const sl_config *cfg, bool even_if_backing_off)
{
    if (s->redis && (sl_redis_broken(s->redis) || strcmp(s->url, cfg->redis_url) != 0)) {
        sl_redis_free(s->redis); /* broken, or the URL changed on reload */
        s->redis = NULL;
    }
    if (s->redis)
        return s->redis;
    if (!even_if_backing_off && sl_monotonic_ms() < s->retry_at)
        return NULL;
    sl_err err;
    s->redis = sl_redis_connect(cfg->redis_url, REDIS_TIMEOUT_MS, &err);
    if (s->redis == NULL) {
        drop_connection(s, err.msg);
        return NULL;
    }
    free(s->url);
    s->url = sl_xstrdup(cfg->redis_url);
    if (s->down)
        SL_INFO("redis.recovered", "user=master");
    s->down = false;
    s->retry_delay = RECONNECT_MIN_MS;
    return s->redis;
}

/* After a failed command: a broken connection is dropped (and reopened
 * later); an error reply is only logged. */
static void command_failed(sl_supervisor *s, const char *event, const sl_err *err)
{
    if (s->redis && sl_redis_broken(s->redis)) {
        drop_connection(s, err->msg);
        return;
    }
    char q[600];
    SL_WARN(event, "error=%s", sl_log_quote(q, sizeof q, err->msg));
}

/* Reads slot i into s->snap; false unless it holds a consistent picture of
 * the live child pid. */
static bool snapshot(sl_supervisor *s, const sl_pool_view *v, int i)
{
    if (v->pids[i] == 0 || !sl_slot_read(sl_scoreboard_slot(v->board, i), s->snap))
        return false;
    s->snap->consumer[sizeof s->snap->consumer - 1] = '\0';
    s->snap->job_id[sizeof s->snap->job_id - 1] = '\0';
    s->snap->job_kind[sizeof s->snap->job_kind - 1] = '\0';
    s->snap->job_queue[sizeof s->snap->job_queue - 1] = '\0';
    return s->snap->pid == v->pids[i];
}

/* Renews entries[0..n) held by consumer, one call per queue. */
static void renew_entries(sl_supervisor *s, sl_redis *r, int slot, const char *consumer,
                          sl_held_entry *entries, size_t n)
{
    memset(s->grouped, 0, n * sizeof s->grouped[0]);
    for (size_t k = 0; k < n; k++) {
        entries[k].queue[sizeof entries[k].queue - 1] = '\0';
        entries[k].stream_id[sizeof entries[k].stream_id - 1] = '\0';
    }
    for (size_t k = 0; k < n && s->redis; k++) {
        if (s->grouped[k])
            continue;
        const char *queue = entries[k].queue;
        size_t m = 0;
        for (size_t j = k; j < n; j++) {
            if (!s->grouped[j] && strcmp(entries[j].queue, queue) == 0) {
                s->grouped[j] = true;
                s->ids[m++] = entries[j].stream_id;
            }
        }
        if (!sl_envelope_queue_valid(queue) || consumer[0] == '\0')
            continue; /* not a slot a well-behaved child wrote */
        sl_err err;
        int renewed = sl_queue_renew(r, consumer, queue, s->ids, m, &err);
        if (renewed < 0)
            command_failed(s, "lease.renew_failed", &err);
        else
            SL_DEBUG("lease.renewed", "slot=%d consumer=%s queue=%s entries=%d of=%zu", slot, consumer, queue,
                     renewed, m);
    }
}

/* Renews what the handover of slot i lists, under every name that may
 * hold it now: the dead child's, and those its slot's journal names (a
 * replacement that took the entries over, or began to, and died before
 * listing them as its own).  The renewal checks the owner, so the names
 * that do not hold an entry leave it alone. */
static void renew_handover(sl_supervisor *s, sl_redis *r, const sl_pool_view *v, int i)
{
    handover *h = s->handovers[i];
    const sl_journal *j = &sl_scoreboard_slot(v->board, i)->journal;
    char names[3][128];
    snprintf(names[0], sizeof names[0], "%s", h->consumer);
    memcpy(names[1], j->consumer, sizeof names[1]);
    memcpy(names[2], j->successor, sizeof names[2]);
    for (int k = 0; k < 3; k++) {
        names[k][sizeof names[k] - 1] = '\0';
        bool seen = names[k][0] == '\0';
        for (int e = 0; e < k && !seen; e++)
            seen = strcmp(names[e], names[k]) == 0;
        if (!seen)
            renew_entries(s, r, i, names[k], h->entries, h->n);
    }
}

/* Renews the entries the child in s->snap holds. */
static void renew_child(sl_supervisor *s, sl_redis *r, int slot)
{
    renew_entries(s, r, slot, s->snap->consumer, s->snap->entries, s->snap->held);
}

/* Renews the leases of what running children hold, and of what a child
 * that died mid-batch held until its replacement has taken it over: while
 * its slot is empty (from the slot, or from the handover the master noted
 * before it reset the slot for a replacement that died too before taking
 * over) and while the replacement starts (from the handover).  Otherwise another
 * worker could reclaim those entries after the visibility timeout,
 * without the dead child's journal (scoreboard.h), and record its jobs as
 * lost.  Only for slots that will be refilled (below the pool's size). */
static void renew_leases(sl_supervisor *s, const sl_pool_view *v, sl_redis *r)
{
    for (int i = 0; i < v->nslots && s->redis; i++) {
        if (v->pids[i] == 0) {
            if (i >= v->processes || strcmp(v->state, "stopping") == 0)
                continue;
            if (sl_slot_read(sl_scoreboard_slot(v->board, i), s->snap) && s->snap->held > 0) {
                s->snap->consumer[sizeof s->snap->consumer - 1] = '\0';
                renew_child(s, r, i);
            } else if (i < SL_SUPERVISOR_SLOTS_MAX && s->handovers[i]) {
                /* its replacement died too before taking over */
                renew_handover(s, r, v, i);
            }
            continue;
        }
        bool read = snapshot(s, v, i);
        if (i < SL_SUPERVISOR_SLOTS_MAX && s->handovers[i] && read) {
            /* While the replacement starts, what its predecessor held is
             * renewed under the dead name until the replacement has taken
             * it over; what it has taken already is left alone (the
             * renewal checks the owner, sl_queue_renew).  Once it runs,
             * its own list names them. */
            if (s->snap->state == SL_CHILD_STARTING) {
                renew_handover(s, r, v, i);
                continue;
            }
            drop_handover(s, i);
        }
        if (!read || s->snap->held == 0)
            continue;
        if (s->snap->state == SL_CHILD_RUNNING || s->snap->state == SL_CHILD_COMMITTING)
            renew_child(s, r, i);
    }
}

/* Signals SIGUSR2 to every child whose running job has a cancellation
 * request flagged in Redis (`sluice cancel`), once per job. */
static void watch_cancels(sl_supervisor *s, const sl_pool_view *v, sl_redis *r)
{
    int slots[SL_SUPERVISOR_SLOTS_MAX];
    pid_t pids[SL_SUPERVISOR_SLOTS_MAX];
    char (*jobs)[SL_JOBID_MAX + 1] = sl_xcalloc(SL_SUPERVISOR_SLOTS_MAX, sizeof *jobs);
    int n = 0;
    sl_err err;
    for (int i = 0; i < v->nslots && i < SL_SUPERVISOR_SLOTS_MAX; i++) {
        if (!snapshot(s, v, i) || s->snap->state != SL_CHILD_RUNNING || !s->snap->job_id[0] ||
            strcmp(s->signalled[i], s->snap->job_id) == 0)
            continue;
        char key[SL_JOBID_MAX + 32];
        snprintf(key, sizeof key, "%s%s", SL_CANCEL_KEY_PREFIX, s->snap->job_id);
        const char *argv[] = { "EXISTS", key };
        if (sl_redis_append(r, 2, argv, NULL, &err) < 0) {
            command_failed(s, "cancel.check_failed", &err);
            goto out;
        }
        slots[n] = i;
        pids[n] = s->snap->pid;
        snprintf(jobs[n], sizeof jobs[n], "%s", s->snap->job_id);
        n++;
    }
    for (int k = 0; k < n; k++) {
        redisReply *rep = sl_redis_reply(r, &err);
        if (rep == NULL) {
            command_failed(s, "cancel.check_failed", &err);
            goto out;
        }
        bool flagged = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
        freeReplyObject(rep);
        if (!flagged)
            continue;
        snprintf(s->signalled[slots[k]], sizeof s->signalled[slots[k]], "%s", jobs[k]);
        if (kill(pids[k], SIGUSR2) == 0)
            SL_INFO("job.cancel_signalled", "job=%s slot=%d child=%ld", jobs[k], slots[k], (long)pids[k]);
    }
out:
    free(jobs);
}

/* Resident set size of pid in KiB, -1 if unknown. */
static long rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/statm", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long size, resident;
    int got = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return got == 2 && page > 0 ? resident * (page / 1024) : -1;
}

static void put_str(sl_buf *b, const char *key, const char *value)
{
    sl_buf_printf(b, "\"%s\":", key);
    if (value && value[0])
        sl_json_put_string(b, value, strlen(value));
    else
        sl_buf_puts(b, "null");
}

static void put_rss(sl_buf *b, pid_t pid)
{
    long kb = rss_kb(pid);
    if (kb >= 0)
        sl_buf_printf(b, "\"rss_kb\":%ld", kb);
    else
        sl_buf_puts(b, "\"rss_kb\":null");
}

static void registry_document(sl_supervisor *s, const sl_pool_view *v, sl_buf *b)
{
    sl_buf_puts(b, "{");
    put_str(b, "host", s->host);
    sl_buf_printf(b, ",\"pid\":%ld,\"role\":\"master\",", (long)getpid());
    put_str(b, "version", SLUICE_VERSION);
    sl_buf_printf(b, ",\"started_at_ms\":%lld,\"updated_at_ms\":%lld,",
                  (long long)v->started_at_ms, (long long)sl_now_ms());
    put_str(b, "state", v->state);
    sl_buf_printf(b, ",\"processes\":%d,", v->processes);
    put_rss(b, getpid());
    sl_buf_puts(b, ",\"queues\":[");
    for (size_t q = 0; q < sl_worker_config_of(v->cfg)->nqueues; q++) {
        if (q)
            sl_buf_putc(b, ',');
        sl_json_put_string(b, sl_worker_config_of(v->cfg)->queues[q], strlen(sl_worker_config_of(v->cfg)->queues[q]));
    }
    sl_buf_puts(b, "],\"children\":[");
    int64_t now = sl_monotonic_ms();
    bool first = true;
    for (int i = 0; i < v->nslots; i++) {
        if (v->pids[i] == 0)
            continue;
        bool known = snapshot(s, v, i);
        const sl_slot *c = s->snap;
        bool in_job = known && c->state == SL_CHILD_RUNNING && c->job_id[0];
        sl_buf_printf(b, "%s{\"slot\":%d,\"pid\":%ld,", first ? "" : ",", i, (long)v->pids[i]);
        first = false;
        put_str(b, "state", known ? sl_child_state_name(c->state) : "starting");
        sl_buf_putc(b, ',');
        put_str(b, "job", in_job ? c->job_id : NULL);
        sl_buf_putc(b, ',');
        put_str(b, "kind", in_job ? c->job_kind : NULL);
        sl_buf_putc(b, ',');
        put_str(b, "queue", in_job ? c->job_queue : NULL);
        if (in_job)
            sl_buf_printf(b, ",\"job_ms\":%lld,", (long long)(now - c->job_started_ms));
        else
            sl_buf_puts(b, ",\"job_ms\":null,");
        sl_buf_printf(b, "\"jobs_done\":%llu,", known ? (unsigned long long)c->jobs_done : 0ULL);
        put_rss(b, v->pids[i]);
        sl_buf_putc(b, '}');
    }
    sl_buf_puts(b, "]}");
}

static void write_registry(sl_supervisor *s, const sl_pool_view *v, sl_redis *r)
{
    sl_buf doc = SL_BUF_INIT;
    registry_document(s, v, &doc);
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", SL_REGISTRY_TTL_S);
    const char *argv[] = { "SET", s->key, doc.data, "EX", ttl };
    size_t lens[] = { 3, strlen(s->key), doc.len, 2, strlen(ttl) };
    /* The queues the pool serves join the queue registry (sluice:queues),
     * so that `sluice stats`, `top`, `metrics` and `dead` show them even if
     * no producer ever registered them (a producer may XADD without the
     * SADD).  Repeated with every document: a deleted set heals itself. */
    size_t nq = sl_worker_config_of(v->cfg)->nqueues;
    const char **sadd = sl_xcalloc(nq + 2, sizeof *sadd);
    sadd[0] = "SADD", sadd[1] = SL_QUEUES_KEY;
    for (size_t q = 0; q < nq; q++)
        sadd[2 + q] = sl_worker_config_of(v->cfg)->queues[q];
    sl_err err;
    int sent = 0;
    if ((nq == 0 || sl_redis_append(r, (int)(nq + 2), sadd, NULL, &err) == 0) &&
        sl_redis_append(r, 5, argv, lens, &err) == 0)
        sent = nq ? 2 : 1;
    else
        command_failed(s, "registry.write_failed", &err);
    for (int i = 0; i < sent; i++) {
        redisReply *rep = sl_redis_reply(r, &err);
        if (rep == NULL) {
            command_failed(s, "registry.write_failed", &err);
            break;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            sl_err_set(&err, SL_EREDIS, "redis %s: %s: %s", sl_redis_address(r),
                       i + 1 < sent ? "SADD " SL_QUEUES_KEY : "SET registry", rep->str);
            command_failed(s, "registry.write_failed", &err);
        }
        freeReplyObject(rep);
    }
    free(sadd);
    sl_buf_free(&doc);
}

int64_t sl_supervisor_tick(sl_supervisor *s, const sl_pool_view *v)
{
    int64_t now = sl_monotonic_ms();
    bool renew_due = now >= s->renew_at, registry_due = now >= s->registry_at;
    bool cancel_due = now >= s->cancel_at;
    if (renew_due || registry_due || cancel_due) {
        sl_redis *r = connection(s, v->cfg, false);
        if (r && renew_due) {
            renew_leases(s, v, r);
            int64_t every = sl_worker_config_of(v->cfg)->visibility_timeout_ms / 3;
            s->renew_at = now + (every > 0 ? every : 1);
        }
        r = s->redis; /* renewal may have dropped it */
        if (r && cancel_due) {
            watch_cancels(s, v, r);
            s->cancel_at = now + SL_CANCEL_EVERY_MS;
        }
        r = s->redis;
        if (r && registry_due) {
            write_registry(s, v, r);
            s->registry_at = now + SL_REGISTRY_EVERY_MS;
        }
    }
    int64_t next = s->renew_at < s->registry_at ? s->renew_at : s->registry_at;
    if (s->cancel_at < next)
        next = s->cancel_at;
    if (s->redis == NULL && s->retry_at > next)
        next = s->retry_at; /* nothing can be done before the next attempt */
    next -= now;
    return next > 10 ? next : 10;
}

void sl_supervisor_unregister(sl_supervisor *s, const sl_config *cfg)
{
    sl_redis *r = connection(s, cfg, true);
    if (r == NULL)
        return; /* the document expires by itself */
    const char *argv[] = { "DEL", s->key };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 2, argv, NULL, &err);
    if (rep == NULL)
        command_failed(s, "registry.delete_failed", &err);
    freeReplyObject(rep);
}
