/* consumer.c: see consumer.h.
 *
 * Order of effects for one batch, which is what makes delivery safe:
 *   1. XREADGROUP: entries become pending for this consumer;
 *   2. decode; look up which ids already have a committed result;
 *   3. run the others;
 *   4. record all outcomes in one PostgreSQL transaction;
 *   5. XACK + XDEL the entries (pipelined), dead-letter the bad ones.
 * A crash before 4 leaves the entries pending (redelivered, run again); a
 * crash between 4 and 5 leaves them pending with a committed result (on
 * redelivery step 2 acknowledges them without running).  So a result is
 * committed exactly once and no entry is acknowledged before its result is. */
#include "consumer.h"
#include "args.h"
#include "clock.h"
#include "json.h"
#include "kind.h"
#include "log.h"
#include "mem.h"
#include "queue.h"
#include "registry.h"
#include "store.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define REDIS_TIMEOUT_MS 5000
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000

static volatile sig_atomic_t stop_requested;

static void on_term(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_quit(int sig)
{
    (void)sig;
    _exit(0);
}

/* What happens to one entry of the batch. */
typedef enum action {
    ACT_ACK,   /* result recorded (or already was): acknowledge and delete */
    ACT_DEAD,  /* move to the dead letter with `error` */
} action;

typedef struct item {
    sl_entry *entry;      /* the stream entry (owned by the batch) */
    sl_job job;           /* decoded envelope; id NULL when undecodable */
    action act;
    bool record;          /* write an outcome row to PostgreSQL */
    char status[16];      /* outcome status when record */
    char *args_json;      /* owned */
    char *outputs;        /* owned, NULL for none */
    char *error;          /* owned, NULL on success */
    int64_t started_ms, finished_ms;
} item;

typedef struct consumer {
    const sl_config *cfg;
    char name[128];       /* consumer name in the group and `worker` column: host:pid */
    sl_redis *redis;
    sl_store *store;
    bool redis_down;      /* an outage is in progress (logged once) */
    bool store_down;
    sl_batch batch;
    item *items;
    size_t items_cap;
} consumer;

static int64_t backoff_next(int64_t cur)
{
    return cur < RETRY_MAX_MS / 2 ? cur * 2 : RETRY_MAX_MS;
}

/* Connects to Redis and creates the groups, retrying with capped backoff
 * until it works or a stop is requested.  Returns 0 when connected. */
static int ensure_redis(consumer *c)
{
    if (c->redis && !sl_redis_broken(c->redis))
        return 0;
    int64_t delay = RETRY_MIN_MS;
    while (!stop_requested) {
        sl_redis_free(c->redis);
        sl_err err;
        c->redis = sl_redis_connect(c->cfg->redis_url, REDIS_TIMEOUT_MS, &err);
        if (c->redis) {
            size_t i;
            for (i = 0; i < c->cfg->worker.nqueues; i++) {
                if (sl_queue_ensure_group(c->redis, c->cfg->worker.queues[i], &err) < 0)
                    break;
            }
            if (i == c->cfg->worker.nqueues) {
                if (c->redis_down)
                    SL_INFO("redis.recovered", "");
                c->redis_down = false;
                return 0;
            }
        }
        if (!c->redis_down) {
            char q[600];
            SL_ERROR("redis.unavailable", "error=%s retry=backoff", sl_log_quote(q, sizeof q, err.msg));
        }
        c->redis_down = true;
        sl_sleep_ms(delay);
        delay = backoff_next(delay);
    }
    return -1;
}

/* Connects to PostgreSQL, retrying like ensure_redis.  even_if_stopping
 * keeps trying after a stop request (a finished batch is being held). */
static int ensure_store(consumer *c, bool even_if_stopping, bool *fatal)
{
    if (c->store && !sl_store_broken(c->store))
        return 0;
    int64_t delay = RETRY_MIN_MS;
    while (!stop_requested || even_if_stopping) {
        sl_store_free(c->store);
        sl_err err;
        c->store = sl_store_connect(c->cfg->database_url, &err);
        if (c->store && sl_store_check_schema(c->store, &err) == 0) {
            if (c->store_down)
                SL_INFO("postgres.recovered", "");
            c->store_down = false;
            return 0;
        }
        char q[600];
        if (c->store && !sl_store_broken(c->store)) {
            /* Connected, but the schema is wrong: restarting will not help. */
            SL_ERROR("postgres.schema", "error=%s", sl_log_quote(q, sizeof q, err.msg));
            *fatal = true;
            return -1;
        }
        if (!c->store_down)
            SL_ERROR("postgres.unavailable", "error=%s retry=backoff", sl_log_quote(q, sizeof q, err.msg));
        c->store_down = true;
        sl_sleep_ms(delay);
        delay = backoff_next(delay);
    }
    return -1;
}

static void item_clear(item *it)
{
    sl_job_clear(&it->job);
    free(it->args_json);
    free(it->outputs);
    free(it->error);
    memset(it, 0, sizeof *it);
}

static void set_dead(item *it, bool record, const char *fmt, const char *detail)
{
    it->act = ACT_DEAD;
    it->record = record;
    snprintf(it->status, sizeof it->status, "dead");
    free(it->error);
    it->error = sl_xasprintf(fmt, detail);
}

/* Decodes entry into it; on failure marks it for the dead letter. */
static void decode_item(item *it)
{
    sl_entry *e = it->entry;
    sl_err err;
    if (e->data == NULL) {
        set_dead(it, false, "%s", "stream entry has no 'job' field");
        return;
    }
    if (sl_envelope_decode(e->data, e->len, &it->job, &err) < 0) {
        set_dead(it, false, "undecodable envelope: %s", err.msg);
        return;
    }
    if (strcmp(it->job.queue, e->queue) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "'%s' but the entry is in queue '%s'", it->job.queue, e->queue);
        set_dead(it, false, "field 'queue' says %s", msg);
        sl_job_clear(&it->job);
        return;
    }
    /* The args as JSON, for the job row. */
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    sl_buf json = SL_BUF_INIT;
    if (msgpack_unpack_next(&up, it->job.args, it->job.args_len, &off) != MSGPACK_UNPACK_SUCCESS ||
        sl_json_from_msgpack(&up.data, &json, &err) < 0) {
        it->args_json = sl_xstrdup("{}");
        set_dead(it, true, "field 'args': %s", "cannot be represented as JSON");
    } else {
        it->args_json = sl_buf_detach(&json);
    }
    sl_buf_free(&json);
    msgpack_unpacked_destroy(&up);
    if (it->act != ACT_DEAD && sl_registry_find(it->job.kind) == NULL)
        set_dead(it, true, "unknown kind '%s'", it->job.kind);
}

/* Runs the job of a decoded item and fills its outcome. */
static void run_item(consumer *c, item *it)
{
    const sl_kind *kind = sl_registry_find(it->job.kind);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_next(&up, it->job.args, it->job.args_len, &off); /* checked by decode_item */
    sl_buf outputs = SL_BUF_INIT;
    sl_job_ctx ctx = { .job = &it->job, .args = &up.data, .cfg = c->cfg, .outputs = &outputs };
    sl_err err;
    sl_err_clear(&err);
    sl_log_set_job(it->job.id, it->job.kind);
    it->started_ms = sl_now_ms();
    double t0 = sl_monotonic_sec();
    int rc = kind->run(&ctx, &err);
    double ms = (sl_monotonic_sec() - t0) * 1000.0;
    it->finished_ms = sl_now_ms();
    it->record = true;
    it->act = ACT_ACK;
    if (rc == 0) {
        snprintf(it->status, sizeof it->status, "succeeded");
        it->outputs = outputs.len ? sl_buf_detach(&outputs) : NULL;
        SL_DEBUG("job.succeeded", "queue=%s attempt=%lld ms=%.2f", it->job.queue,
                 (long long)it->job.attempt, ms);
    } else {
        snprintf(it->status, sizeof it->status, "failed");
        it->error = sl_xstrdup(err.msg[0] ? err.msg : "failed without a message");
        char q[600];
        SL_INFO("job.failed", "queue=%s attempt=%lld ms=%.2f error=%s", it->job.queue,
                (long long)it->job.attempt, ms, sl_log_quote(q, sizeof q, it->error));
    }
    sl_log_set_job(NULL, NULL);
    sl_buf_free(&outputs);
    msgpack_unpacked_destroy(&up);
}

static void fill_outcome(const item *it, sl_outcome *o)
{
    o->job = &it->job;
    o->status = it->status;
    o->args_json = it->args_json;
    o->outputs = it->outputs;
    o->error = it->error;
    o->started_ms = it->started_ms;
    o->finished_ms = it->finished_ms ? it->finished_ms : sl_now_ms();
}

/* Records the outcomes of the batch.  Holds on through a PostgreSQL outage
 * (reconnecting with backoff, even during a graceful stop) because the jobs
 * have run: dropping their results would run them again.  If the batch is
 * refused for a reason that is not an outage (a value PostgreSQL will not
 * store), each outcome is tried alone and the ones still refused go to the
 * dead letter with the reason.  Returns -1 only if it must give up (fatal). */
static int record_batch(consumer *c, size_t n, bool *fatal)
{
    sl_outcome *outs = sl_xcalloc(n ? n : 1, sizeof *outs);
    size_t *which = sl_xcalloc(n ? n : 1, sizeof *which);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (c->items[i].record) {
            fill_outcome(&c->items[i], &outs[m]);
            which[m++] = i;
        }
    }
    int rc = 0;
    int64_t delay = RETRY_MIN_MS;
    while (m > 0) {
        if (ensure_store(c, true, fatal) < 0) {
            rc = -1;
            break;
        }
        sl_err err;
        if (sl_store_record(c->store, c->name, outs, m, &err) == 0)
            break;
        char q[600];
        if (sl_store_broken(c->store)) {
            if (!c->store_down)
                SL_ERROR("postgres.unavailable", "error=%s holding=%zu", sl_log_quote(q, sizeof q, err.msg), m);
            c->store_down = true;
            sl_sleep_ms(delay);
            delay = backoff_next(delay);
            continue;
        }
        /* Refused, not unreachable: find the outcome(s) PostgreSQL rejects. */
        SL_WARN("postgres.batch_refused", "error=%s", sl_log_quote(q, sizeof q, err.msg));
        for (size_t k = 0; k < m; k++) {
            if (sl_store_record(c->store, c->name, &outs[k], 1, &err) == 0 || sl_store_broken(c->store))
                continue;
            item *it = &c->items[which[k]];
            set_dead(it, false, "result could not be stored: %s", err.msg);
        }
        if (sl_store_broken(c->store))
            continue; /* lost the connection midway: the loop retries the whole batch (idempotent) */
        break;
    }
    free(outs);
    free(which);
    return rc;
}

/* Acknowledges what was recorded and dead-letters the rest. */
static int finish_batch(consumer *c, size_t n)
{
    sl_entry **acks = sl_xcalloc(n ? n : 1, sizeof *acks);
    size_t nacks = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        item *it = &c->items[i];
        if (it->act == ACT_ACK) {
            acks[nacks++] = it->entry;
            continue;
        }
        sl_err err;
        char q[600];
        SL_WARN("job.dead_lettered", "queue=%s entry=%s job=%s error=%s", it->entry->queue,
                it->entry->stream_id, it->job.id ? it->job.id : "-",
                sl_log_quote(q, sizeof q, it->error));
        if (sl_queue_dead_letter(c->redis, it->entry, it->error, &err) < 0) {
            SL_ERROR("redis.dead_letter_failed", "error=%s", sl_log_quote(q, sizeof q, err.msg));
            rc = -1;
        }
    }
    sl_err err;
    if (nacks && sl_queue_ack(c->redis, acks, nacks, &err) < 0) {
        char q[600];
        SL_ERROR("redis.ack_failed", "entries=%zu error=%s", nacks, sl_log_quote(q, sizeof q, err.msg));
        rc = -1;
    }
    free(acks);
    return rc;
}

/* Interim: which ids already have a final row (replaced by the retry-aware consumer). */
static int sl_store_filter_done_compat(sl_store *s, const char **ids, size_t n, bool *done, sl_err *err)
{
    sl_job *jobs = sl_xcalloc(n ? n : 1, sizeof *jobs);
    const sl_job **ptrs = sl_xcalloc(n ? n : 1, sizeof *ptrs);
    sl_prior *prior = sl_xcalloc(n ? n : 1, sizeof *prior);
    for (size_t i = 0; i < n; i++) {
        jobs[i].id = (char *)ids[i];
        jobs[i].attempt = 1;
        ptrs[i] = &jobs[i];
    }
    int rc = sl_store_prior(s, ptrs, n, prior, err);
    for (size_t i = 0; i < n; i++)
        done[i] = rc == 0 && prior[i].kind != SL_PRIOR_NONE;
    free(jobs);
    free(ptrs);
    free(prior);
    return rc;
}

/* Processes the batch in c->batch.  Returns -1 on a fatal error. */
static int process_batch(consumer *c)
{
    size_t n = c->batch.n;
    if (n > c->items_cap) {
        c->items = sl_xrealloc(c->items, n * sizeof *c->items);
        c->items_cap = n;
    }
    memset(c->items, 0, n * sizeof *c->items);
    const char **ids = sl_xcalloc(n, sizeof *ids);
    size_t *idx = sl_xcalloc(n, sizeof *idx);
    bool *done = sl_xcalloc(n, sizeof *done);
    size_t nids = 0;
    for (size_t i = 0; i < n; i++) {
        c->items[i].entry = &c->batch.items[i];
        decode_item(&c->items[i]);
        if (c->items[i].job.id && c->items[i].act == ACT_ACK) {
            ids[nids] = c->items[i].job.id;
            idx[nids++] = i;
        }
    }
    bool fatal = false;
    int rc = 0;
    /* Redeliveries of jobs whose result is committed are acknowledged, not run. */
    for (;;) {
        sl_err err;
        if (ensure_store(c, true, &fatal) < 0) {
            rc = -1;
            goto out;
        }
        if (sl_store_filter_done_compat(c->store, ids, nids, done, &err) == 0)
            break;
        char q[600];
        SL_ERROR("postgres.unavailable", "error=%s", sl_log_quote(q, sizeof q, err.msg));
        c->store_down = true;
        sl_sleep_ms(RETRY_MIN_MS);
    }
    for (size_t k = 0; k < nids; k++) {
        item *it = &c->items[idx[k]];
        if (done[k])
            SL_INFO("job.already_done", "job=%s queue=%s", it->job.id, it->job.queue);
        else
            run_item(c, it);
    }
    if (record_batch(c, n, &fatal) < 0 || fatal) {
        rc = -1;
        goto out;
    }
    if (ensure_redis(c) == 0)
        finish_batch(c, n);
out:
    for (size_t i = 0; i < n; i++)
        item_clear(&c->items[i]);
    free(ids);
    free(idx);
    free(done);
    return fatal ? -1 : rc;
}

int sl_consumer_main(const sl_config *cfg, int slot_index, sl_slot *slot_board, int master_fd)
{
    (void)slot_board;
    (void)master_fd;
    int slot = slot_index;
    pid_t master = getppid();
    /* Follow a dead master: TERM (graceful) if it goes away. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
        SL_WARN("worker.pdeathsig_failed", "error=\"%s\"", strerror(errno));
    if (getppid() != master)
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_quit;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    consumer c;
    memset(&c, 0, sizeof c);
    c.cfg = cfg;
    char host[64];
    if (gethostname(host, sizeof host) < 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(c.name, sizeof c.name, "%s:%ld", host, (long)getpid());

    int status = 0;
    bool fatal = false;
    if (ensure_store(&c, false, &fatal) < 0) {
        status = fatal ? SL_EXIT_FATAL : 0;
        goto out;
    }
    SL_INFO("worker.ready", "slot=%d consumer=%s", slot, c.name);
    while (!stop_requested) {
        if (ensure_redis(&c) < 0)
            break;
        sl_err err;
        sl_batch_clear(&c.batch);
        int got = sl_queue_read(c.redis, c.name, cfg->worker.queues, cfg->worker.nqueues,
                                cfg->worker.batch, cfg->worker.block_ms, &c.batch, &err);
        if (got < 0) {
            if (!sl_redis_broken(c.redis)) {
                char q[600];
                SL_ERROR("redis.read_failed", "error=%s", sl_log_quote(q, sizeof q, err.msg));
                sl_sleep_ms(RETRY_MAX_MS);
            } else if (!c.redis_down) {
                char q[600];
                SL_ERROR("redis.unavailable", "error=%s retry=backoff", sl_log_quote(q, sizeof q, err.msg));
                c.redis_down = true;
            }
            continue;
        }
        if (got > 0 && process_batch(&c) < 0) {
            status = SL_EXIT_FATAL;
            break;
        }
    }
out:
    SL_INFO("worker.stopping", "slot=%d", slot);
    sl_batch_free(&c.batch);
    free(c.items);
    sl_redis_free(c.redis);
    sl_store_free(c.store);
    return status;
}
