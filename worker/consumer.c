/* consumer.c: see consumer.h.
 *
 * Order of effects for one batch, which is what makes delivery safe:
 *   1. XREADGROUP (through a Lua script that leaves oversized `job` fields
 *      in Redis), or XAUTOCLAIM of entries a vanished pool left pending:
 *      the entries become pending for this consumer;
 *   2. decode; claim the jobs in PostgreSQL and learn, in the same
 *      statement, what it already knows of each (its result committed,
 *      recorded dead, this attempt already failed, a cancellation
 *      requested, another entry carrying the job);
 *   3. run the claimed ones, one at a time, telling the master through the
 *      scoreboard which job runs and until when, and journaling each
 *      finished job's outcome in the slot before the next one starts (a
 *      job over its deploy target's or endpoint's rate is not run: its
 *      claim is dropped and the same attempt goes to the delayed set in
 *      step 5, due when the target's next token is);
 *   4. record all outcomes in one PostgreSQL transaction, pipelined
 *      (libpq pipeline mode): first the next batch is read from Redis
 *      without blocking, decoded, listed in the slot beside this one (the
 *      master renews both leases) and its claim sent (read_ahead), then
 *      this batch's record behind it (send_record); the claim commits
 *      without waiting for its WAL to be flushed, so its answer comes back
 *      while the record's commit is still being flushed, and the next
 *      batch runs (step 3, journaled in the other part of the journal)
 *      during that flush; its record is awaited after (await_prev):
 *      committed only when its answer and its Sync's came back clean;
 *   5. settle the entries in Redis: XACK + XDEL (pipelined) the finished
 *      ones, move failed ones with attempts left to the delayed set, and
 *      the dead ones to the dead letter (each a MULTI/EXEC); empty the
 *      batch's part of the journal; only then is a third batch read.
 * A crash before 4's answer leaves the entries pending (those of the next
 * batch too): the replacement child in the same slot takes them over at
 * once, records what either part of the journal says ran (without running
 * it again; recording an outcome whose commit did land changes nothing)
 * and the job that was running (a failed attempt), and runs the rest.  A
 * crash between 4 and 5 leaves them pending with their outcome committed:
 * step 2 of the redelivery finishes step 5 without running anything.  A
 * pipelined record that fails (an outage, a refused batch) is recorded the
 * waiting way (record_batch) as it would be without the pipeline, and a
 * claim that got no answer is made again the waiting way; every waiting
 * call comes after the commit in flight is confirmed.
 * So a result is committed exactly once per job id and attempt, no entry
 * leaves the stream before its outcome is committed, and a job id runs at
 * most once at a time (the claim) and never twice unseen (the journal, and
 * the claim's record of a lost attempt when a whole pool vanished:
 * docs/architecture.md).
 *
 * Between batches the consumer also promotes due delayed jobs into their
 * streams (every PROMOTE_EVERY_MS those of the queues sluice:due names,
 * every PROMOTE_ALL_EVERY_MS every queue's), reclaims entries idle longer than the
 * visibility timeout (every half of it; one at a time, see reclaim_idle),
 * and refreshes which of its queues are paused (every PAUSED_EVERY_MS);
 * a chain of batches read ahead ends whenever one of these is due. */
#include "consumer.h"
#include "clock.h"
#include "config_worker.h"
#include "jobid.h"
#include "json.h"
#include "kind.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "overrun.h"
#include "pace.h"
#include "protect.h"
#include "queue.h"
#include "registry.h"
#include "store.h"
#include "throttle.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define REDIS_TIMEOUT_MS 5000
#define RETRY_MIN_MS 100      /* first delay after a failed connection */
#define RETRY_MAX_MS 5000     /* cap of the doubling delay */
#define READ_BLOCK_MAX_MS 1000/* longest XREADGROUP BLOCK: housekeeping runs between reads */
#define PROMOTE_EVERY_MS 200
#define PROMOTE_LIMIT 1000    /* delayed jobs moved per queue per promotion */
#define PROMOTE_QUEUES_PER_CALL 1000 /* queues whose delayed jobs one script call moves */
#define PROMOTE_ALL_EVERY_MS 5000 /* every queue's delayed set, not only those sluice:due names */
#define PROMOTE_NOTED_MAX 10000   /* due queues read from sluice:due per promotion */
#define PAUSED_EVERY_MS 1000
#define RECLAIM_MIN_EVERY_MS 250
#define SCAN_FIRST 64         /* queues the first read script call of a read is given */
#define SCAN_WINDOW 1024      /* at most this many: each further call is given twice as many */
#define SKIP_MIN 256          /* a drained prefix of the queue list shorter than this is always read */
#define RESCAN_EVERY_MS 100   /* a longer one at least this often (see read_bounded) */
#define RETRY_DELAY_CAP_MS (7 * 86400000LL) /* longest retry delay, whatever the envelope asks */

static volatile sig_atomic_t stop_requested;  /* TERM: finish the batch, then exit */
static volatile sig_atomic_t reopen_requested;/* USR1: reopen the log file */
static volatile sig_atomic_t job_cancelled;   /* USR2: cancel the job running now */

static void on_signal(int sig)
{
    switch (sig) {
    case SIGTERM: stop_requested = 1; break;
    case SIGUSR1: reopen_requested = 1; break;
    case SIGUSR2: job_cancelled = 1; break;
    default: _exit(0);  /* INT, QUIT: fast stop; pending entries are redelivered */
    }
}

/* What happens to one entry of the batch in Redis once outcomes are committed. */
typedef enum action {
    ACT_ACK,    /* finished (or already was): acknowledge and delete */
    ACT_RETRY,  /* failed with attempts left: next attempt into the delayed set */
    ACT_DEAD,   /* into the dead letter with `error` */
    ACT_RELEASE,/* not started before a graceful stop: hand back to the stream */
    ACT_DEFER,  /* over its target's rate: this attempt again into the delayed set, unrun */
} action;

typedef struct item {
    sl_entry *entry;      /* the stream entry (owned by the batch) */
    sl_job job;           /* decoded envelope; id NULL when undecodable */
    char seen_id[SL_JOBID_MAX + 1]; /* the id of an envelope refused undecoded, if readable, else "" */
    action act;
    bool run;             /* run the job (no prior outcome stops it) */
    bool timed_out;       /* its previous worker was killed at the deadline */
    bool died;            /* its previous worker died while running it */
    bool lost;            /* its claim's holder vanished without a result: it may have run */
    bool ran;             /* it has run: its outcome comes from the journal, or from run_item */
    bool flushed;         /* its outcome was committed before the batch's end */
    bool poison;          /* delivered more than max_deliveries times */
    int fail_code;        /* sl_err code of a failed run (whether a retry can help) */
    bool record;          /* write an outcome to PostgreSQL */
    bool settled;         /* its Redis step is done */
    const char *status;   /* job status when record (static string) */
    const char *attempt_status; /* attempt status, NULL: same as status */
    char *args_json;      /* owned */
    char *outputs;        /* owned, NULL for none */
    char *error;          /* owned, NULL on success */
    int64_t started_ms, finished_ms;
    int64_t started_us;   /* Unix µs it started (run_item), 0: started_ms only */
    int64_t retry_due_ms; /* ACT_RETRY, ACT_DEFER: Unix ms the (next) attempt is due */
} item;

typedef struct consumer {
    const sl_config *cfg;
    char name[128];       /* consumer name in the group and `worker` column: host:pid */
    int index;            /* slot number in the pool */
    sl_slot *slot;        /* scoreboard slot, NULL when run alone */
    int master_fd;        /* read end of the master's pipe, -1 if none */
    sl_redis *redis;
    sl_store *store;
    bool redis_down;      /* an outage is in progress (logged once) */
    bool store_down;
    sl_batch batch;       /* the batch in hand */
    item *items;          /* its items (c->batch.n of them) */
    size_t items_cap;
    int part;             /* the journal part (scoreboard.h) of the batch in hand */
    sl_batch ahead;       /* the next batch, read before this one's commit is sent */
    item *ahead_items;    /* its items (c->ahead.n of them) */
    size_t ahead_cap;
    sl_batch prev;        /* the batch before, whose commit is in flight while this one runs */
    item *prev_items;     /* its items (c->prev.n of them) */
    size_t prev_cap;
    bool prev_piped;      /* its record was sent pipelined: its answer is still to read */
    bool innocent;        /* takeover: the predecessor died outside decoding, so no entry
                             of its batch is a poison pill by its delivery count alone */
    bool *paused;         /* per configured queue */
    char **active;        /* configured queues that are not paused (borrowed names) */
    char **served;        /* configured queues, sorted by name (borrowed names) */
    size_t nactive;
    int64_t next_promote_ms, next_reclaim_ms, next_paused_ms; /* monotonic */
    int64_t next_promote_all_ms; /* monotonic: the next pass over every queue's delayed set */
    int64_t next_prune_ms;       /* monotonic: the next look at unserved queues in sluice:due */
    uint64_t rng;         /* xorshift state for retry jitter */
    uint64_t jobs_done;
    sl_metrics *metrics;  /* this batch's counters, sent with its acks; NULL: metrics off */
    sl_protect *protect;  /* protected kinds and targets, the scheduler's keys */
    sl_pace pace;         /* what recent jobs cost: sizes the next read */
    sl_overrun *overrun;  /* hands back a batch's unstarted entries; NULL: none */
    sl_throttle *throttle;/* fleet-wide limits of the queues it reads; NULL: none */
    char **ready;         /* the blocking read's queues (borrowed names) */
    int *admitted;        /* entries each of them may give it */
    bool multi_ok;        /* several queues per script call (false on Redis Cluster) */
    size_t first_ready;   /* active[] index of the first queue the last read found entries in */
    int64_t rescan_at_ms; /* monotonic: when the queues before it must be read again */
} consumer;

static int read_bounded(consumer *c, sl_batch *out, int want, sl_err *err);

/* ---- scoreboard ------------------------------------------------------------ */

static void slot_state(consumer *c, sl_child_state state)
{
    if (c->slot == NULL)
        return;
    sl_slot_write_begin(c->slot);
    c->slot->state = state;
    c->slot->tick_ms = sl_monotonic_ms();
    sl_slot_write_end(c->slot);
}

/* Lists the entries of the batch in hand, of the one read ahead and of
 * the one whose commit is in flight as held (the master renews their
 * leases). */
static void slot_hold(consumer *c, sl_child_state state)
{
    if (c->slot == NULL)
        return;
    size_t n = 0;
    sl_slot_write_begin(c->slot);
    const sl_batch *all[] = { &c->prev, &c->batch, &c->ahead };
    for (size_t b = 0; b < 3; b++) {
        for (size_t i = 0; i < all[b]->n && n < SL_SCOREBOARD_BATCH_MAX; i++, n++) {
            snprintf(c->slot->entries[n].queue, sizeof c->slot->entries[n].queue, "%s",
                     all[b]->items[i].queue);
            snprintf(c->slot->entries[n].stream_id, sizeof c->slot->entries[n].stream_id, "%s",
                     all[b]->items[i].stream_id);
        }
    }
    c->slot->held = n;
    c->slot->state = state;
    c->slot->tick_ms = sl_monotonic_ms();
    sl_slot_write_end(c->slot);
}

static void slot_job(consumer *c, const item *it, int64_t deadline_ms)
{
    if (c->slot == NULL)
        return;
    sl_slot *s = c->slot;
    sl_slot_write_begin(s);
    int64_t now = sl_monotonic_ms();
    if (it) {
        snprintf(s->job_id, sizeof s->job_id, "%s", it->job.id);
        snprintf(s->job_kind, sizeof s->job_kind, "%s", it->job.kind);
        snprintf(s->job_queue, sizeof s->job_queue, "%s", it->job.queue);
        snprintf(s->job_entry, sizeof s->job_entry, "%s", it->entry->stream_id);
        s->job_attempt = it->job.attempt;
        s->job_started_ms = now;
        s->job_deadline_ms = deadline_ms;
        s->state = SL_CHILD_RUNNING;
    } else {
        s->job_id[0] = s->job_kind[0] = s->job_queue[0] = s->job_entry[0] = '\0';
        s->job_attempt = s->job_started_ms = s->job_deadline_ms = 0;
        s->jobs_done = c->jobs_done;
    }
    s->tick_ms = now;
    sl_slot_write_end(s);
}

/* ---- connections ------------------------------------------------------------ */

static int64_t backoff_next(int64_t cur)
{
    return cur < RETRY_MAX_MS / 2 ? cur * 2 : RETRY_MAX_MS;
}

static bool master_gone(const consumer *c)
{
    if (c->master_fd < 0)
        return false;
    struct pollfd p = { .fd = c->master_fd, .events = POLLIN };
    return poll(&p, 1, 0) > 0;  /* the master never writes: readable = EOF = gone */
}

static void note_redis_down(consumer *c, const char *why)
{
    if (!c->redis_down) {
        char q[600];
        SL_ERROR("redis.unavailable", "error=%s retry=backoff", sl_log_quote(q, sizeof q, why));
    }
    c->redis_down = true;
}

/* Connects to Redis and creates the groups, retrying with capped backoff.
 * even_if_stopping keeps trying after a stop request (a committed batch
 * is being settled).  Returns 0 when connected. */
static int ensure_redis(consumer *c, bool even_if_stopping)
{
    if (c->redis && !sl_redis_broken(c->redis))
        return 0;
    int64_t delay = RETRY_MIN_MS;
    while (!stop_requested || even_if_stopping) {
        sl_redis_free(c->redis);
        sl_err err;
        c->redis = sl_redis_connect(c->cfg->redis_url, REDIS_TIMEOUT_MS, &err);
        if (c->redis) {
            const sl_worker_config *wc = sl_worker_config_of(c->cfg);
            if (sl_queue_ensure_groups(c->redis, wc->queues, wc->nqueues, &err) == 0) {
                if (c->redis_down)
                    SL_INFO("redis.recovered", "");
                c->redis_down = false;
                return 0;
            }
        }
        note_redis_down(c, err.msg);
        sl_sleep_ms(delay);
        delay = backoff_next(delay);
        if (master_gone(c))
            break;
    }
    return -1;
}

/* Connects to PostgreSQL, retrying like ensure_redis.  Sets *fatal if the
 * schema does not match this build (restarting cannot fix that). */
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
            SL_ERROR("postgres.schema", "error=%s", sl_log_quote(q, sizeof q, err.msg));
            *fatal = true;
            return -1;
        }
        if (!c->store_down)
            SL_ERROR("postgres.unavailable", "error=%s retry=backoff", sl_log_quote(q, sizeof q, err.msg));
        c->store_down = true;
        sl_sleep_ms(delay);
        delay = backoff_next(delay);
        if (master_gone(c))
            break;
    }
    return -1;
}

/* ---- items ---------------------------------------------------------------- */

static void item_clear(item *it)
{
    sl_job_clear(&it->job);
    free(it->args_json);
    free(it->outputs);
    free(it->error);
    memset(it, 0, sizeof *it);
}

static void set_error(item *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(item *it, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(it->error);
    it->error = sl_xstrdup(msg);
}

/* Marks it for the dead letter without running it; record writes the job
 * row too (when the envelope decoded). */
static void refuse(item *it, bool record)
{
    it->act = ACT_DEAD;
    it->run = false;
    it->record = record && it->job.id != NULL;
    it->status = "dead";
    it->attempt_status = "dead";
}

/* The job id of envelope bytes that did not decode, if they are a map
 * with a valid `id` string: the dead letter and the log keep it. */
static void peek_id(const sl_entry *e, char out[SL_JOBID_MAX + 1])
{
    out[0] = '\0';
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&up, e->data, e->len, &off);
    if ((ur == MSGPACK_UNPACK_SUCCESS || ur == MSGPACK_UNPACK_EXTRA_BYTES) &&
        up.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &up.data.via.map;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
            if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 2 && memcmp(k->via.str.ptr, "id", 2) == 0 &&
                v->type == MSGPACK_OBJECT_STR && v->via.str.size > 0 && v->via.str.size <= SL_JOBID_MAX) {
                memcpy(out, v->via.str.ptr, v->via.str.size);
                out[v->via.str.size] = '\0';
                if (!sl_jobid_valid(out))
                    out[0] = '\0';
                break;
            }
        }
    }
    msgpack_unpacked_destroy(&up);
}

/* Decodes entry into it and decides whether it may run. */
static void decode_item(consumer *c, item *it)
{
    sl_entry *e = it->entry;
    sl_err err;
    it->act = ACT_ACK;
    if (e->data == NULL && e->oversize > 0) {
        set_error(it, "envelope is %zu bytes, over worker.max_payload (%d bytes); not read",
                  e->oversize, sl_worker_config_of(c->cfg)->max_payload);
        refuse(it, false);
        return;
    }
    if (e->data == NULL) {
        set_error(it, "stream entry has no 'job' field");
        refuse(it, false);
        return;
    }
    if (e->len > (size_t)sl_worker_config_of(c->cfg)->max_payload) {
        set_error(it, "envelope is %zu bytes, over worker.max_payload (%d bytes); not decoded",
                  e->len, sl_worker_config_of(c->cfg)->max_payload);
        refuse(it, false);
        return;
    }
    if (sl_envelope_decode(e->data, e->len, &it->job, &err) < 0) {
        set_error(it, "undecodable envelope: %s", err.msg);
        peek_id(e, it->seen_id);
        refuse(it, false);
        return;
    }
    if (strcmp(it->job.queue, e->queue) != 0) {
        set_error(it, "field 'queue' says '%s' but the entry is in queue '%s'", it->job.queue, e->queue);
        snprintf(it->seen_id, sizeof it->seen_id, "%s", it->job.id);
        sl_job_clear(&it->job);
        refuse(it, false);
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
        set_error(it, "field 'args': cannot be represented as JSON");
        refuse(it, true);
    } else {
        it->args_json = sl_buf_detach(&json);
    }
    sl_buf_free(&json);
    msgpack_unpacked_destroy(&up);
    if (it->act == ACT_DEAD)
        return;
    if (sl_registry_find(it->job.kind) == NULL) {
        set_error(it, "unknown kind '%s'", it->job.kind);
        refuse(it, true);
        return;
    }
    char why[512];
    if (!sl_protect_admit(c->protect, &it->job, why, sizeof why)) {
        set_error(it, "%s", why);
        refuse(it, false);   /* no row: the refused job must not take the real job's id */
        return;
    }
    if (e->deliveries > sl_worker_config_of(c->cfg)->max_deliveries && !c->innocent) {
        set_error(it, "delivered %lld times without a result (worker.max_deliveries is %d): "
                  "it keeps killing its worker", (long long)e->deliveries, sl_worker_config_of(c->cfg)->max_deliveries);
        refuse(it, true);
        it->poison = true;
        return;
    }
    it->run = true;
}

static int64_t max_attempts(const consumer *c, const sl_job *job)
{
    return job->max_attempts > 0 ? job->max_attempts : sl_worker_config_of(c->cfg)->max_attempts;
}

static int64_t job_timeout_ms(const consumer *c, const sl_job *job)
{
    return sl_worker_job_timeout_ms(sl_worker_config_of(c->cfg), job->queue, job->timeout_ms);
}

/* Delay before the attempt after `job`'s: its envelope's retry_* fields,
 * else the configuration's.  Exponential (the default): retry_initial
 * doubled per attempt, capped at retry_max, with "equal jitter" (half
 * fixed, half random) so that jobs failing together do not come back
 * together.  Fixed: retry_initial every time. */
static int64_t retry_delay_ms(consumer *c, const sl_job *job)
{
    int64_t initial = job->retry_initial_ms > 0 ? job->retry_initial_ms : sl_worker_config_of(c->cfg)->retry_initial_ms;
    int64_t max = job->retry_max_ms > 0 ? job->retry_max_ms : sl_worker_config_of(c->cfg)->retry_max_ms;
    /* A producer's values are capped, so that doubling and adding the
     * result to the clock cannot overflow. */
    if (initial > RETRY_DELAY_CAP_MS)
        initial = RETRY_DELAY_CAP_MS;
    if (max > RETRY_DELAY_CAP_MS)
        max = RETRY_DELAY_CAP_MS;
    if (job->retry_backoff == SL_BACKOFF_FIXED)
        return initial;
    int64_t base = initial;
    for (int64_t i = 1; i < job->attempt && base < max; i++)
        base *= 2;
    if (base > max)
        base = max;
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    int64_t half = base / 2;
    return half + (int64_t)(c->rng % (uint64_t)(half + 1));
}

/* After a failed attempt: retry if attempts remain and the failure is one
 * retrying can fix, else dead. */
static void after_failure(consumer *c, item *it, int code)
{
    it->attempt_status = it->timed_out ? "timed_out" : "failed";
    it->fail_code = code;
    bool permanent = code == SL_EINVAL || code == SL_EPERMANENT;
    if (!permanent && it->job.attempt < max_attempts(c, &it->job)) {
        it->act = ACT_RETRY;
        it->status = "retrying";
        it->retry_due_ms = sl_now_ms() + retry_delay_ms(c, &it->job);
    } else {
        it->act = ACT_DEAD;
        it->status = "dead";
    }
}

/* The ms a job must wait for its deploy target's or endpoint's rate
 * (sl_kind.limit, throttle.h), 0 when it may start now. */
static int64_t limit_wait_ms(consumer *c, const item *it)
{
    const sl_kind *kind = sl_registry_find(it->job.kind);
    if (kind == NULL || kind->limit == NULL || c->redis == NULL)
        return 0;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int64_t wait = 0;
    if (msgpack_unpack_next(&up, it->job.args, it->job.args_len, &off) == MSGPACK_UNPACK_SUCCESS) {
        sl_job_ctx ctx = { .job = &it->job, .args = &up.data, .cfg = c->cfg };
        char name[256];
        sl_rate rate;
        if (kind->limit(&ctx, name, sizeof name, &rate))
            wait = sl_throttle_limit_wait(c->redis, name, &rate);
        if (wait > 0)
            SL_DEBUG("job.deferred", "job=%s queue=%s limit=%s wait_ms=%lld", it->job.id, it->job.queue,
                     name, (long long)wait);
    }
    msgpack_unpacked_destroy(&up);
    return wait;
}

/* Puts a job over its rate back for wait ms: not run, not recorded, its
 * claim dropped (unclaim_released) and the same attempt into the delayed
 * set when the batch settles. */
static void defer_item(consumer *c, item *it, int64_t wait)
{
    it->act = ACT_DEFER;
    it->record = false;
    it->retry_due_ms = sl_now_ms() + wait;
    sl_metrics_count(c->metrics, it->job.queue, it->job.kind, SL_M_DEFERRED);
}

/* Runs the job of a decoded item and fills its outcome. */
static void run_item(consumer *c, item *it)
{
    const sl_kind *kind = sl_registry_find(it->job.kind);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&up, it->job.args, it->job.args_len, &off);
    (void)ur; /* checked by decode_item */
    sl_buf outputs = SL_BUF_INIT;
    job_cancelled = 0;
    sl_job_ctx ctx = { .job = &it->job, .args = &up.data, .cfg = c->cfg, .outputs = &outputs,
                       .cancelled = &job_cancelled, .timeout_ms = job_timeout_ms(c, &it->job) };
    sl_err err;
    sl_err_clear(&err);
    sl_log_set_job(it->job.id, it->job.kind);
    int64_t t0 = sl_monotonic_ms();
    sl_throttle_job_start(c->throttle, c->redis, it->entry->queue, job_timeout_ms(c, &it->job));
    slot_job(c, it, t0 + job_timeout_ms(c, &it->job) + sl_worker_config_of(c->cfg)->timeout_grace_ms);
    it->started_us = sl_now_us();
    it->started_ms = it->started_us / 1000;
    double s0 = sl_monotonic_sec();
    int rc = kind->run(&ctx, &err);
    double ms = (sl_monotonic_sec() - s0) * 1000.0;
    it->finished_ms = sl_now_ms();
    sl_pace_job(&c->pace, ms);
    c->jobs_done++;
    slot_job(c, NULL, 0);
    it->record = true;
    char q[600];
    /* Outputs PostgreSQL cannot store would lose the result: a failure. */
    if (rc == 0 && outputs.len > 0 && sl_json_check(outputs.data, outputs.len, &err) < 0) {
        rc = sl_err_wrap(&err, "the job ran but its outputs cannot be stored");
        err.code = SL_EPERMANENT;
    }
    if (job_cancelled) {
        it->act = ACT_ACK;
        it->status = it->attempt_status = "cancelled";
        set_error(it, "cancelled by request while running%s%s", rc == 0 ? "" : ": ",
                  rc == 0 ? "" : err.msg);
        SL_INFO("job.cancelled", "queue=%s attempt=%lld ms=%.2f", it->job.queue,
                (long long)it->job.attempt, ms);
    } else if (rc == 0) {
        it->act = ACT_ACK;
        it->status = "succeeded";
        it->outputs = outputs.len ? sl_buf_detach(&outputs) : NULL;
        SL_DEBUG("job.succeeded", "queue=%s attempt=%lld ms=%.2f", it->job.queue,
                 (long long)it->job.attempt, ms);
    } else {
        set_error(it, "%s", err.msg[0] ? err.msg : "failed without a message");
        after_failure(c, it, err.code);
        SL_INFO("job.failed", "queue=%s attempt=%lld of=%lld ms=%.2f next=%s error=%s", it->job.queue,
                (long long)it->job.attempt, (long long)max_attempts(c, &it->job), ms,
                it->act == ACT_RETRY ? "retry" : "dead", sl_log_quote(q, sizeof q, it->error));
    }
    sl_metrics_ran(c->metrics, it->job.queue, sl_job_enqueued_us(&it->job), it->started_us, ms);
    if (!job_cancelled)
        sl_metrics_count(c->metrics, it->job.queue, it->job.kind, rc == 0 ? SL_M_PROCESSED : SL_M_FAILED);
    sl_log_set_job(NULL, NULL);
    sl_buf_free(&outputs);
    msgpack_unpacked_destroy(&up);
}

/* Acts on what PostgreSQL knows of one item (prior, from sl_store_claim). */
static void apply_prior(consumer *c, item *it, const sl_prior *p)
{
    char q[600];
    switch (p->kind) {
    case SL_PRIOR_NONE:
        /* Claimed.  A redelivery of an entry whose lease lapsed, claimed by
         * another consumer: that consumer may have started the job before
         * it vanished (its journal went with its pool).  Record the attempt
         * as lost rather than run it a second time unseen. */
        if (it->run && p->redelivery && it->entry->lapsed &&
            p->holder_consumer[0] && strcmp(p->holder_consumer, c->name) != 0) {
            it->run = it->poison = false;
            it->lost = true;
            set_error(it, "lost: worker %s claimed this attempt and stopped without a result "
                      "(its lease lapsed); it may have run", p->holder_consumer);
        }
        /* A protected job's later attempt runs only after its earlier
         * ones are on record (the signature does not cover the attempt). */
        char why[512];
        if (it->run && !sl_protect_admit_attempt(c->protect, &it->job, p->has_row, p->attempts, why,
                                                 sizeof why)) {
            it->act = ACT_DEAD;
            set_error(it, "%s", why);
            break;
        }
        return;
    case SL_PRIOR_OTHER_JOB:
        /* Not this job's result: neither skip as done nor overwrite it. */
        it->act = ACT_DEAD;
        set_error(it, "job id already used by a different job (%s): not run", p->error);
        break;
    case SL_PRIOR_FINAL:
        SL_INFO("job.already_done", "job=%s queue=%s attempt=%lld", it->job.id, it->job.queue,
                (long long)it->job.attempt);
        it->act = ACT_ACK;
        break;
    case SL_PRIOR_DEAD:
        it->act = ACT_DEAD;
        set_error(it, "%s", p->error[0] ? p->error : "recorded dead");
        break;
    case SL_PRIOR_RETRYING:
        /* This attempt's failure is committed; only its retry is missing. */
        it->act = ACT_RETRY;
        it->retry_due_ms = sl_now_ms() + retry_delay_ms(c, &it->job);
        break;
    case SL_PRIOR_CANCELLED:
        it->run = it->timed_out = it->died = it->lost = it->poison = it->ran = false;
        it->act = ACT_ACK;
        it->record = true;
        it->status = it->attempt_status = "cancelled";
        it->finished_ms = sl_now_ms();
        set_error(it, "cancelled by request before it started");
        SL_INFO("job.cancelled", "job=%s queue=%s before=start", it->job.id, it->job.queue);
        return;
    case SL_PRIOR_DUPLICATE:
        SL_WARN("job.duplicate", "job=%s queue=%s entry=%s attempt=%lld action=ack reason=%s", it->job.id,
                it->job.queue, it->entry->stream_id, (long long)it->job.attempt,
                sl_log_quote(q, sizeof q, p->error));
        it->act = ACT_ACK;
        break;
    case SL_PRIOR_HELD:
        SL_WARN("job.duplicate", "job=%s queue=%s entry=%s attempt=%lld action=ack held_by=%s/%s "
                "reason=\"another entry carries this job\"", it->job.id, it->job.queue,
                it->entry->stream_id, (long long)it->job.attempt, p->holder_queue,
                p->holder_entry[0] ? p->holder_entry : "?");
        it->act = ACT_ACK;
        break;
    }
    it->run = it->timed_out = it->died = it->lost = it->poison = it->ran = it->record = false;
}

static int await_prev(consumer *c, bool *fatal);

/* sl_store_claim, holding on through a PostgreSQL outage, once the commit
 * in flight, if any, is confirmed (await_prev: a waiting call needs the
 * connection to itself).  Returns -1 when it must give up (a stop, a
 * fatal schema error). */
static int claim_retry(consumer *c, const sl_claim_req *reqs, size_t m, const char *steal_queue,
                       const char *steal_entry, sl_prior *prior, bool *fatal)
{
    if (m > 0 && await_prev(c, fatal) < 0)
        return -1;
    while (m > 0) {
        sl_err err;
        if (ensure_store(c, true, fatal) < 0)
            return -1;
        if (sl_store_claim(c->store, c->name, reqs, m, steal_queue, steal_entry, prior, &err) == 0)
            return 0;
        char q[600];
        if (!c->store_down)
            SL_ERROR("postgres.unavailable", "error=%s holding=%zu", sl_log_quote(q, sizeof q, err.msg), m);
        c->store_down = true;
        sl_sleep_ms(RETRY_MIN_MS);
    }
    return 0;
}

/* A job claimed by another entry that has no result: if that entry still
 * exists it carries the job (this copy is acknowledged, run nothing);
 * if it is gone without a result, its claim is taken over here, and the
 * attempt it claimed is recorded as lost (it may have run). */
static int resolve_held(consumer *c, item **held, sl_claim_req *reqs, sl_prior *prior, size_t m, bool *fatal)
{
    const char **queues = sl_xcalloc(m, sizeof *queues), **ids = sl_xcalloc(m, sizeof *ids);
    bool *exists = sl_xcalloc(m, sizeof *exists);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        if (prior[i].holder_entry[0] == '\0')
            continue;
        queues[k] = prior[i].holder_queue;
        ids[k++] = prior[i].holder_entry;
    }
    int rc = 0;
    sl_err err;
    while (k > 0 && sl_queue_entries_exist(c->redis, queues, ids, k, exists, &err) < 0) {
        if (!sl_redis_broken(c->redis) || ensure_redis(c, true) < 0) {
            char q[600];
            SL_ERROR("redis.held_check_failed", "error=%s", sl_log_quote(q, sizeof q, err.msg));
            for (size_t i = 0; i < k; i++)
                exists[i] = true;  /* when in doubt, run nothing */
            break;
        }
    }
    k = 0;
    for (size_t i = 0; i < m && rc == 0; i++) {
        bool alive = prior[i].holder_entry[0] == '\0' || exists[k++];
        if (alive) {
            apply_prior(c, held[i], &prior[i]);
            continue;
        }
        sl_prior fresh;
        char hq[SL_NAME_MAX + 1], he[48];
        snprintf(hq, sizeof hq, "%s", prior[i].holder_queue);
        snprintf(he, sizeof he, "%s", prior[i].holder_entry);
        rc = claim_retry(c, &reqs[i], 1, hq, he, &fresh, fatal);
        if (rc < 0)
            break;
        if (fresh.kind == SL_PRIOR_NONE) {
            item *it = held[i];
            it->run = it->poison = false;
            it->lost = true;
            set_error(it, "lost: the stream entry %s/%s that claimed attempt %lld is gone without a "
                      "result; it may have run", hq, he, (long long)it->job.attempt);
            SL_WARN("job.claim_orphaned", "job=%s queue=%s entry=%s holder=%s/%s", it->job.id,
                    it->job.queue, it->entry->stream_id, hq, he);
        } else {
            apply_prior(c, held[i], &fresh);
        }
    }
    free(queues);
    free(ids);
    free(exists);
    return rc;
}

/* The claim of a batch: the jobs to claim, and what PostgreSQL answered. */
typedef struct claim_set {
    sl_claim_req *reqs;   /* owned array; borrows the items' jobs and entries */
    item **its;           /* owned array: the item of each request */
    sl_prior *prior;      /* owned array: the answers */
    size_t m;             /* requests */
    bool sent;            /* queued behind a pipelined record (sl_store_claim_send) */
    bool answered;        /* prior holds PostgreSQL's answer */
    bool second_look_due; /* answered with a record behind it: no second look made (store.h) */
} claim_set;

/* Lists the items of items[0..n) that claim: those that may run, and the
 * ones with an outcome to record. */
static void claim_collect(claim_set *cs, item *items, size_t n)
{
    memset(cs, 0, sizeof *cs);
    cs->reqs = sl_xcalloc(n ? n : 1, sizeof *cs->reqs);
    cs->its = sl_xcalloc(n ? n : 1, sizeof *cs->its);
    cs->prior = sl_xcalloc(n ? n : 1, sizeof *cs->prior);
    for (size_t i = 0; i < n; i++) {
        item *it = &items[i];
        /* Refused jobs that get a row (unknown kind, ...) claim too: a
         * later copy of the id is then known for a copy, not dead-lettered
         * again. */
        if (it->run || it->timed_out || it->died || it->poison || it->ran || (it->record && it->job.id)) {
            cs->reqs[cs->m] = (sl_claim_req){ .job = &it->job, .entry = it->entry->stream_id };
            cs->its[cs->m++] = it;
        }
    }
}

static void claim_set_free(claim_set *cs)
{
    free(cs->reqs);
    free(cs->its);
    free(cs->prior);
    memset(cs, 0, sizeof *cs);
}

/* Claims what cs lists unless PostgreSQL has answered already (holding on
 * through an outage), applies the answers, then resolves the jobs claimed
 * by other entries.  The waiting calls this may need come after the
 * commit in flight, if any, is confirmed (await_prev).  Returns -1 on a
 * fatal error. */
static int claim_finish(consumer *c, claim_set *cs, bool *fatal)
{
    /* A claim lost to a claimer it could not see yet: held, holder unnamed. */
    bool unseen = false;
    for (size_t k = 0; cs->second_look_due && k < cs->m && !unseen; k++)
        unseen = cs->prior[k].kind == SL_PRIOR_HELD && cs->prior[k].holder_entry[0] == '\0';
    int rc = 0;
    if (unseen) {
        /* The second look a claim answered in a pipeline could not make. */
        sl_err err;
        rc = await_prev(c, fatal);
        if (rc == 0 && sl_store_claim_recheck(c->store, c->name, cs->reqs, cs->m, cs->prior, &err) < 0)
            cs->answered = false;
    }
    if (rc == 0 && !cs->answered)
        rc = claim_retry(c, cs->reqs, cs->m, NULL, NULL, cs->prior, fatal);
    /* The held ones first into the front of the arrays, for resolve_held. */
    size_t h = 0;
    for (size_t k = 0; rc == 0 && k < cs->m; k++) {
        item *it = cs->its[k];
        if (cs->prior[k].kind != SL_PRIOR_HELD || it->ran || it->died || it->timed_out) {
            apply_prior(c, it, &cs->prior[k]);
            continue;
        }
        cs->reqs[h] = cs->reqs[k];
        cs->its[h] = it;
        cs->prior[h++] = cs->prior[k];
    }
    if (rc == 0 && h > 0)
        rc = resolve_held(c, cs->its, cs->reqs, cs->prior, h, fatal);
    return rc;
}

/* Claims the batch's jobs in PostgreSQL and applies what it knows of them
 * (sl_store_claim: one round trip), then resolves the jobs claimed by
 * other entries.  Holds on through an outage.  Returns -1 on a fatal
 * error. */
static int claim_batch(consumer *c, size_t n, bool *fatal)
{
    claim_set cs;
    claim_collect(&cs, c->items, n);
    int rc = claim_finish(c, &cs, fatal);
    claim_set_free(&cs);
    return rc;
}

static void fill_outcome(const item *it, sl_outcome *o)
{
    o->job = &it->job;
    o->status = it->status;
    o->attempt_status = it->attempt_status;
    o->args_json = it->args_json;
    o->outputs = it->outputs;
    o->error = it->error;
    o->started_ms = it->started_ms;
    o->started_us = it->started_us;
    o->finished_ms = it->finished_ms ? it->finished_ms : sl_now_ms();
}

/* Records the outcomes of items[0..n).  Holds on through a PostgreSQL outage
 * (reconnecting with backoff, even during a graceful stop) because the jobs
 * have run: dropping their results would run them again.  If the batch is
 * refused for a reason that is not an outage (a value PostgreSQL will not
 * store), each outcome is tried alone and the ones still refused go to the
 * dead letter with the reason.  Returns -1 only if it must give up. */
static int record_batch(consumer *c, item *items, size_t n, bool *fatal)
{
    sl_outcome *outs = sl_xcalloc(n ? n : 1, sizeof *outs);
    size_t *which = sl_xcalloc(n ? n : 1, sizeof *which);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].record && !items[i].flushed) {
            fill_outcome(&items[i], &outs[m]);
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
            item *it = &items[which[k]];
            set_error(it, "result could not be stored: %s", err.msg);
            it->act = ACT_DEAD;
        }
        if (sl_store_broken(c->store))
            continue; /* lost the connection midway: retry the whole batch (idempotent) */
        break;
    }
    for (size_t k = 0; rc == 0 && k < m; k++)
        items[which[k]].flushed = true;
    free(outs);
    free(which);
    return rc;
}

/* The envelope of the job's next attempt. */
static int next_attempt(const item *it, msgpack_sbuffer *sb, sl_err *err)
{
    sl_job next = it->job;
    next.attempt = it->job.attempt + 1;
    return sl_envelope_encode(&next, sb, err);
}

/* One item's Redis step, except plain acknowledgements (batched). */
static int settle_one(consumer *c, item *it, sl_err *err)
{
    char q[600];
    switch (it->act) {
    case ACT_ACK:
        return 0;
    case ACT_DEAD: {
        const char *id = it->job.id ? it->job.id : it->seen_id[0] ? it->seen_id : NULL;
        SL_WARN("job.dead_lettered", "job=%s queue=%s entry=%s error=%s", id ? id : "-",
                it->entry->queue, it->entry->stream_id, sl_log_quote(q, sizeof q, it->error));
        return sl_queue_dead_letter(c->redis, it->entry, id, it->error ? it->error : "dead", err);
    }
    case ACT_RELEASE:
        return sl_queue_release(c->redis, it->entry, err);
    case ACT_DEFER: {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        int rc = sl_envelope_encode(&it->job, &sb, err);
        if (rc == 0)
            rc = sl_queue_retry_later(c->redis, it->entry, sb.data, sb.size, it->retry_due_ms, err);
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    case ACT_RETRY: {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        int rc = next_attempt(it, &sb, err);
        if (rc == 0)
            rc = sl_queue_retry_later(c->redis, it->entry, sb.data, sb.size, it->retry_due_ms, err);
        msgpack_sbuffer_destroy(&sb);
        if (rc == 0)
            SL_DEBUG("job.retry_scheduled", "job=%s queue=%s attempt=%lld due_ms=%lld", it->job.id,
                     it->job.queue, (long long)it->job.attempt + 1,
                     (long long)(it->retry_due_ms - sl_now_ms()));
        return rc;
    }
    }
    return 0;
}

/* Settles items[0..n) in Redis: acknowledgements in one pipelined round
 * trip, the rest one transaction each.  Retries through a Redis outage,
 * even during a graceful stop (the outcomes are committed; what is not
 * settled stays pending and is settled by whoever is delivered it next). */
static void settle_batch(consumer *c, item *items, size_t n)
{
    sl_entry **acks = sl_xcalloc(n ? n : 1, sizeof *acks);
    int64_t delay = RETRY_MIN_MS;
    for (;;) {
        if (ensure_redis(c, true) < 0)
            break;
        size_t nacks = 0;
        bool broken = false;
        for (size_t i = 0; i < n && !broken; i++) {
            item *it = &items[i];
            if (it->settled)
                continue;
            if (it->act == ACT_ACK) {
                acks[nacks++] = it->entry;
                continue;
            }
            sl_err err;
            if (settle_one(c, it, &err) == 0) {
                it->settled = true;
                if (it->act == ACT_RETRY || it->act == ACT_DEAD)
                    sl_metrics_count(c->metrics, it->entry->queue, it->job.kind,
                                     it->act == ACT_RETRY ? SL_M_RETRIED : SL_M_DEAD);
            } else if (sl_redis_broken(c->redis)) {
                broken = true;
            } else {
                /* Refused by Redis (not an outage): leave it pending; it is
                 * reclaimed after the visibility timeout and settled then. */
                char q[600];
                SL_ERROR("redis.settle_failed", "entry=%s queue=%s error=%s", it->entry->stream_id,
                         it->entry->queue, sl_log_quote(q, sizeof q, err.msg));
                it->settled = true;
            }
        }
        sl_err err;
        if (!broken && (nacks || !sl_metrics_empty(c->metrics))) {
            /* The batch's counters travel in the acknowledgements' round trip. */
            int extra = sl_metrics_append(c->metrics, c->redis, &err);
            if (extra >= 0 && sl_queue_ack_after(c->redis, (size_t)extra, acks, nacks, &err) == 0) {
                sl_metrics_reset(c->metrics);
                for (size_t i = 0; i < n; i++)
                    items[i].settled = items[i].settled || items[i].act == ACT_ACK;
            } else if (sl_redis_broken(c->redis)) {
                broken = true;
            } else {
                char q[600];
                SL_ERROR("redis.ack_failed", "entries=%zu error=%s", nacks, sl_log_quote(q, sizeof q, err.msg));
                sl_metrics_reset(c->metrics); /* refused, not lost: do not resend them forever */
                break;
            }
        }
        if (!broken)
            break;
        note_redis_down(c, "connection lost while settling a committed batch");
        sl_sleep_ms(delay);
        delay = backoff_next(delay);
        if (master_gone(c))
            break;
    }
    free(acks);
}

/* Orders by job id; among items of one id, one that has run (its outcome
 * known) first, then by position. */
static int cmp_item_id(const void *a, const void *b)
{
    const item *x = *(const item *const *)a, *y = *(const item *const *)b;
    int d = strcmp(x->job.id, y->job.id);
    if (d)
        return d;
    int rx = !(x->ran || x->died || x->timed_out), ry = !(y->ran || y->died || y->timed_out);
    return rx != ry ? rx - ry : (x > y) - (x < y);
}

/* Two entries of one batch carrying the same job id (a producer enqueued
 * an id twice): only the first runs and is recorded; the others are
 * acknowledged as duplicates (or dead-lettered without a record if they
 * were refused anyway).  One row per job id, and one upsert per id per
 * statement, which PostgreSQL requires. */
static void drop_duplicates(item *items, size_t n)
{
    item **sorted = sl_xcalloc(n ? n : 1, sizeof *sorted);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].job.id)
            sorted[m++] = &items[i];
    }
    qsort(sorted, m, sizeof *sorted, cmp_item_id);
    for (size_t k = 1; k < m; k++) {
        item *it = sorted[k];
        if (strcmp(it->job.id, sorted[k - 1]->job.id) != 0)
            continue;
        SL_WARN("job.duplicate", "job=%s queue=%s entry=%s action=ack reason=\"same id twice in one batch\"",
                it->job.id, it->entry->queue, it->entry->stream_id);
        it->record = it->run = it->poison = it->timed_out = it->died = it->ran = false;
        if (it->act != ACT_DEAD)
            it->act = ACT_ACK;
    }
    free(sorted);
}

/* ---- the journal (scoreboard.h) ------------------------------------------------ */

static sl_journal *journal(consumer *c)
{
    return c->slot ? &c->slot->journal : NULL;
}

/* The part of the journal that describes the batch in hand. */
static sl_journal_part *journal_part(consumer *c)
{
    return c->slot ? &c->slot->journal.part[c->part] : NULL;
}

/* A batch's part is emptied: nothing of it is left to record. */
static void journal_reset_part(consumer *c, int part)
{
    sl_journal *j = journal(c);
    if (j == NULL)
        return;
    sl_journal_part *jp = &j->part[part];
    __atomic_store_n(&jp->running, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&jp->n, 0, __ATOMIC_RELEASE);
    jp->ntexts = 0;
}

/* Nothing is left to record of any batch. */
static void journal_reset(consumer *c)
{
    for (int p = 0; p < SL_JOURNAL_PARTS; p++)
        journal_reset_part(c, p);
}

/* Names the job about to start, before it starts. */
static void journal_start(consumer *c, const item *it)
{
    sl_journal_part *jp = journal_part(c);
    if (jp == NULL)
        return;
    snprintf(jp->run_queue, sizeof jp->run_queue, "%s", it->entry->queue);
    snprintf(jp->run_stream_id, sizeof jp->run_stream_id, "%s", it->entry->stream_id);
    __atomic_store_n(&jp->running, 1, __ATOMIC_RELEASE);
}

/* Appends an entry for it with status st.  False if it does not fit (the
 * part or its texts are full, or the outputs too long): the caller
 * commits first. */
static bool journal_put(sl_journal_part *jp, const item *it, sl_journal_status st)
{
    uint64_t n = __atomic_load_n(&jp->n, __ATOMIC_ACQUIRE);
    size_t olen = it->outputs ? strlen(it->outputs) : 0;
    bool text = olen > 0 || (it->error && it->error[0]);
    /* The last entry stays free: a replacement writes there the job that
     * was running when this child died. */
    if (n >= SL_JOURNAL_MAX - 1 || olen > SL_JOURNAL_OUTPUT_MAX || (text && jp->ntexts >= SL_JOURNAL_TEXTS))
        return false;
    sl_journal_entry *e = &jp->e[n];
    snprintf(e->queue, sizeof e->queue, "%s", it->entry->queue);
    snprintf(e->stream_id, sizeof e->stream_id, "%s", it->entry->stream_id);
    e->attempt = it->job.attempt;
    e->status = st;
    e->code = it->fail_code;
    e->started_ms = it->started_ms;
    e->finished_ms = it->finished_ms;
    e->text = -1;
    if (text) {
        sl_journal_text *t = &jp->t[jp->ntexts];
        e->text = (int)jp->ntexts++;
        snprintf(t->error, sizeof t->error, "%s", it->error ? it->error : "");
        t->outputs_len = olen;
        if (olen)
            memcpy(t->outputs, it->outputs, olen);
    }
    __atomic_store_n(&jp->n, n + 1, __ATOMIC_RELEASE);
    return true;
}

/* Journals the outcome of the job that just ran.  When it does not fit,
 * commits every outcome the batch has so far instead (one round trip,
 * after the commit in flight, if any, is confirmed), so that the next job
 * never starts with an unkept outcome behind it.  Returns -1 on a fatal
 * error. */
static int journal_finish(consumer *c, item *it, size_t n, bool *fatal)
{
    sl_journal_part *jp = journal_part(c);
    if (jp == NULL)
        return 0;
    sl_journal_status st = strcmp(it->status, "succeeded") == 0 ? SL_JOURNAL_SUCCEEDED
                         : strcmp(it->status, "cancelled") == 0 ? SL_JOURNAL_CANCELLED
                         : SL_JOURNAL_FAILED;
    int rc = 0;
    if (!journal_put(jp, it, st)) {
        SL_DEBUG("journal.flush", "job=%s entries=%llu", it->job.id,
                 (unsigned long long)__atomic_load_n(&jp->n, __ATOMIC_ACQUIRE));
        if (await_prev(c, fatal) < 0 || record_batch(c, c->items, n, fatal) < 0 || *fatal)
            rc = -1;
        else
            journal_reset_part(c, c->part);
    }
    __atomic_store_n(&jp->running, 0, __ATOMIC_RELEASE);
    return rc;
}

/* journal_apply (below) for one part of the journal. */
static void journal_apply_part(consumer *c, sl_journal_part *j, size_t n)
{
    uint64_t jn = __atomic_load_n(&j->n, __ATOMIC_ACQUIRE);
    for (uint64_t k = 0; k < jn && k < SL_JOURNAL_MAX; k++) {
        const sl_journal_entry *e = &j->e[k];
        for (size_t i = 0; i < n; i++) {
            item *it = &c->items[i];
            if (it->job.id == NULL || !(it->run || it->poison) || it->job.attempt != e->attempt ||
                strcmp(it->entry->stream_id, e->stream_id) != 0 || strcmp(it->entry->queue, e->queue) != 0)
                continue;
            /* What the journal says wins over the delivery count: it knows. */
            it->run = it->poison = false;
            it->act = ACT_ACK;
            it->record = false;
            it->attempt_status = NULL;
            free(it->error);
            it->error = NULL;
            it->finished_ms = e->finished_ms;
            it->started_ms = e->started_ms;
            if (e->status == SL_JOURNAL_DIED || e->status == SL_JOURNAL_TIMED_OUT) {
                it->died = e->status == SL_JOURNAL_DIED;
                it->timed_out = e->status == SL_JOURNAL_TIMED_OUT;
                continue;
            }
            it->ran = it->record = true;
            /* A text index out of range is not one a child wrote: no text. */
            const sl_journal_text *t = e->text >= 0 && e->text < SL_JOURNAL_TEXTS ? &j->t[e->text] : NULL;
            const char *error = "";
            if (t) {
                error = t->error;
                j->t[e->text].error[SL_JOURNAL_ERROR_MAX - 1] = '\0';
                if (t->outputs_len > 0 && t->outputs_len <= SL_JOURNAL_OUTPUT_MAX)
                    it->outputs = sl_xstrndup(t->outputs, t->outputs_len);
            }
            if (e->status == SL_JOURNAL_SUCCEEDED) {
                it->act = ACT_ACK;
                it->status = "succeeded";
            } else if (e->status == SL_JOURNAL_CANCELLED) {
                it->act = ACT_ACK;
                it->status = it->attempt_status = "cancelled";
                set_error(it, "%s", error);
            } else {
                set_error(it, "%s", error);
                after_failure(c, it, e->code);
            }
            SL_INFO("job.journal_recovered", "job=%s queue=%s entry=%s attempt=%lld status=%s", it->job.id,
                    it->job.queue, it->entry->stream_id, (long long)it->job.attempt, it->status);
        }
    }
}

/* Takeover: gives each item whose entry the journal (either part)
 * describes the outcome recorded there (it ran under the predecessor, or
 * died running). */
static void journal_apply(consumer *c, size_t n)
{
    sl_journal *jr = journal(c);
    for (int p = 0; jr && p < SL_JOURNAL_PARTS; p++)
        journal_apply_part(c, &jr->part[p], n);
}

/* Records the failure of an attempt that did not end in this process:
 * its worker died or was killed running it, or its claim was lost. */
static void record_unfinished(consumer *c, item *it)
{
    it->record = true;
    if (it->finished_ms == 0)
        it->finished_ms = sl_now_ms();
    if (it->timed_out)
        set_error(it, "timed out: the job ran past its timeout of %lld ms (+ %d ms grace) and "
                  "its worker was killed", (long long)job_timeout_ms(c, &it->job),
                  sl_worker_config_of(c->cfg)->timeout_grace_ms);
    else if (it->died)
        set_error(it, "worker crashed: the process running this attempt died (a crash, a kill "
                  "or out of memory) before it finished");
    after_failure(c, it, SL_EJOB);
    if (it->timed_out)
        sl_metrics_count(c->metrics, it->job.queue, it->job.kind, SL_M_TIMED_OUT);
    sl_metrics_count(c->metrics, it->job.queue, it->job.kind, SL_M_FAILED);
    char q[600];
    SL_WARN(it->timed_out ? "job.timeout_recorded" : it->died ? "job.crash_recorded" : "job.lost_recorded",
            "job=%s queue=%s attempt=%lld next=%s error=%s", it->job.id, it->job.queue,
            (long long)it->job.attempt, it->act == ACT_RETRY ? "retry" : "dead",
            sl_log_quote(q, sizeof q, it->error));
}

/* True for an entry that leaves this batch unrun and keeps no claim:
 * handed back on a graceful stop, or deferred for its target's rate. */
static bool hands_back(action act)
{
    return act == ACT_RELEASE || act == ACT_DEFER;
}

/* Hands back the batch's unstarted entries on a graceful stop, and the
 * deferred ones: first their claims are dropped (so that the copies
 * appended to the stream or the delayed set can claim the jobs), then
 * settle_batch moves them.  If PostgreSQL cannot be
 * reached the claims stay, and the copies find them orphaned. */
static void unclaim_released(consumer *c, item *items, size_t n)
{
    sl_claim_req *reqs = sl_xcalloc(n ? n : 1, sizeof *reqs);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (hands_back(items[i].act))
            reqs[m++] = (sl_claim_req){ .job = &items[i].job, .entry = items[i].entry->stream_id };
    }
    sl_err err;
    if (m > 0 && (c->store == NULL || sl_store_unclaim(c->store, reqs, m, &err) < 0)) {
        char q[600];
        SL_WARN("job.unclaim_failed", "entries=%zu error=%s", m,
                sl_log_quote(q, sizeof q, c->store ? err.msg : "no PostgreSQL connection"));
    }
    free(reqs);
}

/* Ends the watchdog's watch over the batch and logs what it handed back. */
static void end_overrun(consumer *c)
{
    size_t failed = 0;
    sl_err err;
    sl_err_clear(&err);
    size_t released = sl_overrun_end(c->overrun, &failed, &err);
    if (released > 0)
        SL_INFO("batch.released", "entries=%zu reason=\"a job overran %d ms\"", released, SL_OVERRUN_AFTER_MS);
    if (failed > 0) {
        char q[600];
        SL_WARN("batch.release_failed", "entries=%zu action=run error=%s", failed,
                sl_log_quote(q, sizeof q, err.msg));
    }
}

/* Decodes the entries of b into items (as many), with the journal saying
 * so: a death while decoding may be an envelope's doing, and the delivery
 * counts of the batch then tell the replacement which (decode_item). */
static void decode_batch(consumer *c, item *items, sl_batch *b)
{
    memset(items, 0, b->n * sizeof *items);
    sl_journal *jd = journal(c);
    if (jd)
        __atomic_store_n(&jd->decoding, 1, __ATOMIC_RELEASE);
    for (size_t i = 0; i < b->n; i++) {
        item *it = &items[i];
        it->entry = &b->items[i];
        sl_pace_entry(&c->pace, it->entry->data ? it->entry->len : it->entry->oversize);
        decode_item(c, it);
    }
    if (jd)
        __atomic_store_n(&jd->decoding, 0, __ATOMIC_RELEASE);
}

static void reserve_items(item **items, size_t *cap, size_t n)
{
    if (n > *cap) {
        *items = sl_xrealloc(*items, n * sizeof **items);
        *cap = n;
    }
}

static void clear_items(item *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        item_clear(&items[i]);
}

/* Runs the claimed jobs of the batch in hand, one at a time, journaling
 * each outcome.  Returns -1 on a fatal error. */
static int run_batch(consumer *c, size_t n, bool *fatal)
{
    /* The entries that may run can be handed back by the watchdog while
     * an earlier one runs long (overrun.h). */
    sl_overrun_begin(c->overrun, n);
    for (size_t i = 0; i < n; i++) {
        item *it = &c->items[i];
        if (it->run && !(it->timed_out || it->died || it->lost))
            sl_overrun_add(c->overrun, i, it->entry, &it->job);
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        item *it = &c->items[i];
        bool stopping = stop_requested;
        int64_t wait;
        if (it->timed_out || it->died || it->lost) {
            record_unfinished(c, it);
        } else if (it->run && !sl_overrun_take(c->overrun, i, !stopping)) {
            it->run = false;        /* handed back: another process runs it */
            it->record = false;
            it->act = ACT_ACK;
            it->settled = true;
        } else if (it->run && stopping) {
            it->act = ACT_RELEASE;  /* graceful stop: hand back what has not started */
        } else if (it->run && (wait = limit_wait_ms(c, it)) > 0) {
            defer_item(c, it, wait);/* over its target's rate: not a failure */
            sl_overrun_done(c->overrun);
        } else if (it->run) {
            journal_start(c, it);
            run_item(c, it);
            sl_overrun_done(c->overrun);
            it->ran = true;
            rc = journal_finish(c, it, n, fatal);
        }
    }
    end_overrun(c);
    return rc;
}

/* Sends the outcomes of items[0..n) that are not committed yet,
 * pipelined (sl_store_record_send), without waiting.  True if they are in
 * flight; false if there is nothing to record or the connection is not
 * usable (commit_batch then records them the waiting way). */
static bool send_record(consumer *c, const item *items, size_t n)
{
    if (c->store == NULL || sl_store_broken(c->store))
        return false;
    sl_outcome *outs = sl_xcalloc(n ? n : 1, sizeof *outs);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].record && !items[i].flushed)
            fill_outcome(&items[i], &outs[m++]);
    }
    sl_err err;
    bool sent = m > 0 && sl_store_record_send(c->store, c->name, outs, m, &err) == 0;
    if (m > 0 && !sent) {
        char q[600];
        SL_DEBUG("postgres.pipeline_failed", "step=send error=%s", sl_log_quote(q, sizeof q, err.msg));
    }
    free(outs);
    return sent;
}

/* True if the next batch may be read before this one's commit: no stop
 * asked, no housekeeping due (the main loop does it between chains of
 * batches), no throttle (its tokens are taken per read and given back per
 * batch in the main loop), room in the scoreboard and in a takeover for
 * both batches' entries. */
static bool may_read_ahead(consumer *c, size_t n)
{
    int64_t now = sl_monotonic_ms();
    return !stop_requested && !reopen_requested && c->throttle == NULL && c->nactive > 0 &&
           n < SL_SCOREBOARD_BATCH_MAX && c->redis != NULL && !sl_redis_broken(c->redis) &&
           c->store != NULL && !sl_store_broken(c->store) && now < c->next_promote_ms &&
           now < c->next_paused_ms && now < c->next_reclaim_ms && !master_gone(c);
}

/* Before the record of the batch in hand (n entries) is sent: reads the
 * next batch into c->ahead without blocking, decodes it, lists its
 * entries as held, and sends its claim (cs), so that the claim is ahead of
 * the record in the pipeline.  Nothing of it runs before its claim is
 * answered. */
static void read_ahead(consumer *c, size_t n, claim_set *cs)
{
    sl_batch_clear(&c->ahead);
    if (!may_read_ahead(c, n))
        return;
    int want = sl_pace_want(&c->pace, sl_worker_config_of(c->cfg)->batch);
    if ((size_t)want > SL_SCOREBOARD_BATCH_MAX - n)
        want = (int)(SL_SCOREBOARD_BATCH_MAX - n);
    sl_err err;
    int got = read_bounded(c, &c->ahead, want, &err);
    if (got <= 0) {
        /* A failed read leaves what it took pending: reclaimed, or taken over. */
        if (got < 0 && sl_redis_broken(c->redis))
            note_redis_down(c, err.msg);
        sl_batch_clear(&c->ahead);
        return;
    }
    slot_hold(c, SL_CHILD_COMMITTING);
    reserve_items(&c->ahead_items, &c->ahead_cap, c->ahead.n);
    decode_batch(c, c->ahead_items, &c->ahead);
    drop_duplicates(c->ahead_items, c->ahead.n);
    claim_collect(cs, c->ahead_items, c->ahead.n);
    if (cs->m > 0 && sl_store_claim_send(c->store, c->name, cs->reqs, cs->m, &err) == 0) {
        cs->sent = true;
    } else if (cs->m > 0) {
        char q[600];
        SL_DEBUG("postgres.pipeline_failed", "step=claim error=%s", sl_log_quote(q, sizeof q, err.msg));
    }
}

/* Reads the answer to the claim sent ahead of the record, if any.
 * Without an answer, claim_finish claims again. */
static void claim_collect_answer(consumer *c, claim_set *cs)
{
    if (!cs->sent)
        return;
    cs->sent = false;
    sl_err err;
    cs->answered = sl_store_claim_wait(c->store, c->name, cs->reqs, cs->m, cs->prior, &err) == 0;
    cs->second_look_due = cs->answered && sl_store_in_flight(c->store) > 0;
    if (!cs->answered) {
        char q[600];
        SL_DEBUG("postgres.pipeline_failed", "step=claim_wait error=%s", sl_log_quote(q, sizeof q, err.msg));
    }
}

/* Commits the outcomes of items[0..n) (journal part `part`) and settles
 * them in Redis: piped, the record is in flight (send_record) and only its
 * answer is awaited; else, or if the pipelined record did not commit,
 * they are recorded the waiting way (record_batch: through an outage, and
 * outcome by outcome when PostgreSQL refuses the batch).  Nothing is
 * settled before the commit is confirmed, and the part is emptied only
 * after.  Returns -1 on a fatal error. */
static int commit_batch(consumer *c, item *items, size_t n, bool piped, int part, bool *fatal)
{
    if (piped) {
        sl_err err;
        if (sl_store_record_wait(c->store, &err) == 0) {
            for (size_t i = 0; i < n; i++)
                items[i].flushed = items[i].flushed || items[i].record;
        } else {
            char q[600];
            SL_DEBUG("postgres.pipeline_failed", "step=record_wait error=%s", sl_log_quote(q, sizeof q, err.msg));
        }
    }
    if (record_batch(c, items, n, fatal) < 0 || *fatal)
        return -1;
    bool release = false;
    for (size_t i = 0; i < n; i++)
        release = release || hands_back(items[i].act);
    if (release)
        unclaim_released(c, items, n);
    settle_batch(c, items, n);
    journal_reset_part(c, part);
    sl_pace_batch_done(&c->pace);
    return 0;
}

/* Finishes the batch whose commit is in flight while the batch in hand
 * runs (c->prev), if any: commit_batch, then it is no longer held.  Every
 * waiting call on the PostgreSQL connection comes after this.  Returns -1
 * on a fatal error. */
static int await_prev(consumer *c, bool *fatal)
{
    if (c->prev.n == 0)
        return 0;
    int rc = commit_batch(c, c->prev_items, c->prev.n, c->prev_piped, 1 - c->part, fatal);
    clear_items(c->prev_items, c->prev.n);
    sl_batch_clear(&c->prev);
    c->prev_piped = false;
    if (c->slot)
        slot_hold(c, c->slot->state);
    return rc;
}

/* Swaps batch a (its items and their capacity) with batch b. */
static void swap_batches(sl_batch *a, item **ai, size_t *acap, sl_batch *b, item **bi, size_t *bcap)
{
    sl_batch tb = *a;
    *a = *b;
    *b = tb;
    item *ti = *ai;
    *ai = *bi;
    *bi = ti;
    size_t tc = *acap;
    *acap = *bcap;
    *bcap = tc;
}

/* Processes the batch in c->batch, and the batches read ahead behind it
 * (read_ahead) as long as there are some: the claim of batch N+1 is sent
 * ahead of the record of batch N, and N+1 runs, journaled in the other
 * part, while N's commit is flushed (c->prev); N is settled after N+1 has
 * run, before N+2 is read.  takeover: it holds what a dead predecessor
 * held, described by the slot's journal (outcomes to record, the job it
 * died running); the journal is then kept and extended rather than reset,
 * and nothing is read ahead.  Returns -1 on a fatal error. */
static int process_batch(consumer *c, bool takeover)
{
    size_t n = c->batch.n;
    reserve_items(&c->items, &c->items_cap, n);
    slot_hold(c, SL_CHILD_COMMITTING);
    if (!takeover)
        journal_reset(c);
    decode_batch(c, c->items, &c->batch);
    if (takeover)
        journal_apply(c, n);
    drop_duplicates(c->items, n);
    bool fatal = false;
    int rc = claim_batch(c, n, &fatal);
    claim_set cs;
    memset(&cs, 0, sizeof cs);
    while (rc == 0) {
        if (run_batch(c, n, &fatal) < 0 || await_prev(c, &fatal) < 0) {
            rc = -1;
            break;
        }
        slot_state(c, SL_CHILD_COMMITTING);
        if (!takeover)
            read_ahead(c, n, &cs);
        bool piped = !takeover && send_record(c, c->items, n);
        claim_collect_answer(c, &cs);
        if (c->ahead.n > 0)
            SL_DEBUG("batch.read_ahead", "entries=%zu behind=%zu claim=%s record=%s", c->ahead.n, n,
                     cs.answered ? "answered" : cs.m > 0 ? "later" : "none", piped ? "in_flight" : "waited");
        if (piped && c->ahead.n > 0) {
            /* This batch's commit stays in flight while the next one runs. */
            swap_batches(&c->prev, &c->prev_items, &c->prev_cap, &c->batch, &c->items, &c->items_cap);
            c->prev_piped = true;
            c->part = 1 - c->part;
        } else {
            rc = commit_batch(c, c->items, n, piped, c->part, &fatal);
            if (rc == 0 && takeover)
                journal_reset(c);   /* it held every entry either part describes */
            clear_items(c->items, n);
            sl_batch_clear(&c->batch);
            if (rc < 0 || c->ahead.n == 0)
                break;
        }
        /* The batch read ahead becomes the batch in hand. */
        swap_batches(&c->batch, &c->items, &c->items_cap, &c->ahead, &c->ahead_items, &c->ahead_cap);
        n = c->batch.n;
        slot_hold(c, SL_CHILD_COMMITTING);
        rc = claim_finish(c, &cs, &fatal);
        claim_set_free(&cs);
    }
    /* Given up (a stop during an outage) or failed: a commit in flight is
     * still confirmed and settled if it can be, unless the schema is wrong. */
    if (!fatal && await_prev(c, &fatal) < 0)
        rc = -1;
    clear_items(c->items, c->batch.n);
    clear_items(c->ahead_items, c->ahead.n);
    clear_items(c->prev_items, c->prev.n);
    sl_batch_clear(&c->ahead);
    sl_batch_clear(&c->prev);
    c->prev_piped = false;
    claim_set_free(&cs);
    if (c->slot) {
        sl_slot_write_begin(c->slot);
        c->slot->held = 0;
        c->slot->state = SL_CHILD_IDLE;
        c->slot->jobs_done = c->jobs_done;
        c->slot->tick_ms = sl_monotonic_ms();
        sl_slot_write_end(c->slot);
    }
    return fatal ? -1 : rc;
}

/* ---- housekeeping ------------------------------------------------------------ */

/* True if err is Redis Cluster's refusal of one call's keys on several
 * slots (the multi-queue scripts then go one queue per call). */
static bool cross_slot(const sl_err *err)
{
    return strstr(err->msg, "CROSSSLOT") != NULL || strstr(err->msg, "slot") != NULL;
}

/* Refreshes the paused flags and the list of queues to read. */
static void refresh_paused(consumer *c, int64_t now)
{
    if (now < c->next_paused_ms)
        return;
    c->next_paused_ms = now + PAUSED_EVERY_MS;
    size_t nq = sl_worker_config_of(c->cfg)->nqueues;
    bool *fresh = sl_xcalloc(nq, sizeof *fresh);
    sl_err err;
    if (sl_queue_paused(c->redis, sl_worker_config_of(c->cfg)->queues, nq, fresh, &err) == 0) {
        for (size_t i = 0; i < nq; i++) {
            if (fresh[i] != c->paused[i])
                SL_INFO(fresh[i] ? "queue.paused" : "queue.resumed", "queue=%s", sl_worker_config_of(c->cfg)->queues[i]);
            c->paused[i] = fresh[i];
        }
    }
    free(fresh);
    size_t before = c->nactive;
    c->nactive = 0;
    for (size_t i = 0; i < nq; i++) {
        if (!c->paused[i])
            c->active[c->nactive++] = sl_worker_config_of(c->cfg)->queues[i];
    }
    if (c->nactive != before)
        c->first_ready = 0;   /* the list changed: read it from the top */
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Promotes the queues this child serves that sluice:due says have a job
 * due (queue.h): two round trips, one when none is due, however many
 * queues.  -1 when it cannot (Redis Cluster, an error): the caller then
 * goes over every queue. */
static int promote_noted(consumer *c)
{
    sl_err err;
    char **due = NULL;
    size_t ndue = 0, mine = 0;
    int rc = sl_queue_due(c->redis, sl_now_ms(), PROMOTE_NOTED_MAX, &due, &ndue, &err);
    for (size_t i = 0; rc == 0 && i < ndue; i++) {
        if (bsearch(&due[i], c->served, sl_worker_config_of(c->cfg)->nqueues, sizeof *c->served, cmp_name)) {
            char *t = due[mine];
            due[mine++] = due[i];
            due[i] = t;
        }
    }
    /* Notes of queues this child does not serve: another pool's, or
     * written for queues nobody serves; those whose delayed set is gone
     * leave the index, so that they do not stay due for ever. */
    int64_t now = sl_monotonic_ms();
    if (rc == 0 && ndue > mine && now >= c->next_prune_ms) {
        c->next_prune_ms = now + PROMOTE_ALL_EVERY_MS;
        int pruned = sl_queue_due_prune(c->redis, due + mine, ndue - mine, &err);
        if (pruned < 0)
            rc = -1;
        else if (pruned > 0)
            SL_INFO("queue.due_pruned", "from=%s entries=%d", SL_DUE_KEY, pruned);
    }
    for (size_t i = 0; rc == 0 && i < mine; i += PROMOTE_QUEUES_PER_CALL) {
        size_t n = mine - i < PROMOTE_QUEUES_PER_CALL ? mine - i : PROMOTE_QUEUES_PER_CALL;
        int moved = sl_queue_promote_noted(c->redis, due + i, n, sl_now_ms(), PROMOTE_LIMIT, &err);
        if (moved < 0)
            rc = -1;
        else if (moved > 0)
            SL_DEBUG("queue.promoted", "queue=%s%s jobs=%d", due[i], n > 1 ? "+" : "", moved);
    }
    if (rc < 0 && !sl_redis_broken(c->redis)) {
        if (cross_slot(&err)) {
            c->multi_ok = false;   /* Redis Cluster: every queue, one call each */
        } else {
            char q[600];
            SL_ERROR("queue.promote_failed", "from=%s error=%s", SL_DUE_KEY, sl_log_quote(q, sizeof q, err.msg));
        }
    }
    for (size_t i = 0; i < ndue; i++)
        free(due[i]);
    free(due);
    return rc;
}

/* Moves due delayed jobs into their streams.  Paused queues too: a
 * promoted job waits in its stream like any other. */
static void promote_due(consumer *c, int64_t now)
{
    if (now < c->next_promote_ms)
        return;
    c->next_promote_ms = now + PROMOTE_EVERY_MS;
    if (c->multi_ok && now < c->next_promote_all_ms && promote_noted(c) == 0)
        return;
    /* Every queue: delayed jobs other producers added without noting them
     * in sluice:due (every PROMOTE_ALL_EVERY_MS), or all the time on a
     * Redis Cluster. */
    c->next_promote_all_ms = now + PROMOTE_ALL_EVERY_MS;
    size_t nq = sl_worker_config_of(c->cfg)->nqueues, i = 0;
    while (i < nq && !sl_redis_broken(c->redis)) {
        size_t step = c->multi_ok ? PROMOTE_QUEUES_PER_CALL : 1, n = nq - i < step ? nq - i : step;
        sl_err err;
        int moved = sl_queue_promote_many(c->redis, sl_worker_config_of(c->cfg)->queues + i, n, sl_now_ms(), PROMOTE_LIMIT, &err);
        if (moved < 0 && n > 1 && !sl_redis_broken(c->redis) && cross_slot(&err)) {
            c->multi_ok = false;   /* Redis Cluster: these again, one queue per call */
            continue;
        }
        if (moved > 0) {
            SL_DEBUG("queue.promoted", "queue=%s%s jobs=%d", sl_worker_config_of(c->cfg)->queues[i], n > 1 ? "+" : "", moved);
        } else if (moved < 0 && !sl_redis_broken(c->redis)) {
            char q[600];
            SL_ERROR("queue.promote_failed", "queue=%s error=%s", sl_worker_config_of(c->cfg)->queues[i],
                     sl_log_quote(q, sizeof q, err.msg));
        }
        i += n;
    }
}

/* Claims an entry idle past the visibility timeout (its consumer died)
 * into c->batch.  Returns how many (0 or 1).
 *
 * One at a time, and the next one at once: an entry left behind by a dead
 * worker may be what killed it.  Claimed in a batch, a poison pill would
 * kill that batch again and again, and every claim would count a delivery
 * against its innocent neighbours too, until they all went to the dead
 * letter with it.  Alone, an entry's delivery count counts its own runs. */
static int reclaim_idle(consumer *c, int64_t now)
{
    if (now < c->next_reclaim_ms)
        return 0;
    int64_t every = sl_worker_config_of(c->cfg)->visibility_timeout_ms / 2;
    c->next_reclaim_ms = now + (every < RECLAIM_MIN_EVERY_MS ? RECLAIM_MIN_EVERY_MS : every);
    int total = 0;
    /* Only queues with entries pending can have idle ones: one pipelined
     * look at all of them first, so the sweep stays cheap with many queues. */
    long long *pending = sl_xcalloc(c->nactive ? c->nactive : 1, sizeof *pending);
    sl_err perr;
    if (sl_queue_pending_counts(c->redis, c->active, c->nactive, pending, &perr) < 0) {
        free(pending);
        if (!sl_redis_broken(c->redis)) {
            char q[600];
            SL_ERROR("queue.reclaim_failed", "error=%s", sl_log_quote(q, sizeof q, perr.msg));
        }
        return 0;
    }
    for (size_t i = 0; i < c->nactive && total < 1; i++) {
        if (pending[i] == 0)
            continue;
        sl_err err;
        int got = sl_queue_reclaim(c->redis, c->name, c->active[i], sl_worker_config_of(c->cfg)->visibility_timeout_ms,
                                   1, &c->batch, &err);
        if (got < 0) {
            if (!sl_redis_broken(c->redis)) {
                char q[600];
                SL_ERROR("queue.reclaim_failed", "queue=%s error=%s", c->active[i], sl_log_quote(q, sizeof q, err.msg));
            }
            break;
        }
        if (got > 0)
            SL_WARN("queue.reclaimed", "queue=%s entries=%d idle_ms=%d", c->active[i], got,
                    sl_worker_config_of(c->cfg)->visibility_timeout_ms);
        total += got;
    }
    free(pending);
    if (total > 0)
        c->next_reclaim_ms = now;
    return total;
}

/* Tops *out up to `want` entries from the active queues in priority
 * order, without blocking and without fetching any `job` field larger
 * than worker.max_payload (sl_queue_read_bounded).  Returns the entries
 * added, or -1. */
/* The index in active[s .. s+len) of the queue of batch entry e. */
static size_t queue_index(const consumer *c, const sl_batch *out, size_t s, size_t len, size_t e)
{
    for (size_t i = s; i < s + len; i++)
        if (strcmp(c->active[i], out->items[e].queue) == 0)
            return i;
    return s;
}

/* One round trip per window of queues, in priority order, until want
 * entries came.  With many queues, reading the drained ones at the front
 * of the list again on every batch would cost each batch a call per
 * drained queue: so a read starts at the first queue the previous read
 * found entries in, and the queues before it are read again every
 * RESCAN_EVERY_MS, or 20 times as long as reading from the top took last
 * time if that is longer (and at once when the rest is empty: the blocking
 * read covers every queue).  Priority order then holds to within that
 * time, and only for lists with SKIP_MIN or more drained queues ahead;
 * shorter lists are always read from the top.  -1 with err. */
static int read_many(consumer *c, sl_batch *out, int want, sl_err *err)
{
    int64_t now = sl_monotonic_ms();
    size_t start = 0;
    if (c->first_ready >= SKIP_MIN && c->first_ready < c->nactive && now < c->rescan_at_ms)
        start = c->first_ready;
    int got = 0;
    size_t first = c->nactive;
    /* The first window is small: the queues ahead usually hold a batch,
     * and a script is given every key of its window, used or not.  Later
     * ones grow, so that reading far costs few round trips. */
    size_t win = SCAN_FIRST, len;
    for (size_t s = start; s < c->nactive && got < want; s += len) {
        len = c->nactive - s < win ? c->nactive - s : win;
        win = 2 * win < SCAN_WINDOW ? 2 * win : SCAN_WINDOW;
        size_t before = out->n;
        int n = sl_queue_read_many(c->redis, c->name, c->active + s, len, want - got,
                                   (size_t)sl_worker_config_of(c->cfg)->max_payload, out, err);
        if (n < 0)
            return -1;
        if (n > 0 && first == c->nactive)
            first = queue_index(c, out, s, len, before);
        got += n;
    }
    if (start == 0) {
        /* Reading from the top costs more the more drained queues lead
         * the list: keep it to about 5 % of the time. */
        int64_t cost = sl_monotonic_ms() - now;
        c->rescan_at_ms = now + (20 * cost > RESCAN_EVERY_MS ? 20 * cost : RESCAN_EVERY_MS);
    }
    c->first_ready = first < c->nactive ? first : 0;
    return got;
}

static int read_bounded(consumer *c, sl_batch *out, int want, sl_err *err)
{
    if (c->throttle == NULL && c->multi_ok) {
        /* One round trip per window of queues: the cost of a read stays flat. */
        int n = read_many(c, out, want, err);
        if (n >= 0 || sl_redis_broken(c->redis) || !cross_slot(err))
            return n;
        c->multi_ok = false;   /* Redis Cluster: queues on several slots, one call each */
        SL_INFO("queue.read_per_queue", "reason=%s", "\"the queues are on several Redis Cluster slots\"");
    }
    int got = 0;
    int64_t now = sl_monotonic_ms();
    for (size_t i = 0; i < c->nactive && got < want; i++) {
        int admitted = sl_throttle_admit(c->throttle, c->redis, c->active[i], want - got, now);
        if (admitted == 0)
            continue;   /* over its limit: its jobs wait in the stream */
        int n = sl_queue_read_bounded(c->redis, c->name, c->active[i], admitted,
                                      (size_t)sl_worker_config_of(c->cfg)->max_payload, out, err);
        if (n < 0)
            return -1;
        sl_throttle_used(c->throttle, c->redis, c->active[i], admitted, n);
        got += n;
    }
    return got;
}

/* The blocking read of every active queue that may give an entry now:
 * throttled ones are left out, and the block ends in time for the first
 * of them to be asked again.  Returns entries read, or -1. */
static int read_blocking(consumer *c, int block, sl_err *err)
{
    int64_t now = sl_monotonic_ms();
    size_t nready = 0;
    for (size_t i = 0; i < c->nactive; i++) {
        int a = sl_throttle_admit(c->throttle, c->redis, c->active[i], 1, now);
        if (a == 0)
            continue;
        c->ready[nready] = c->active[i];
        c->admitted[nready++] = a;
    }
    block = sl_throttle_next_ms(c->throttle, now, block);
    if (nready == 0) {
        sl_sleep_ms(block);
        return 0;
    }
    size_t before = c->batch.n;
    int got = sl_queue_read(c->redis, c->name, c->ready, nready, 1, block, &c->batch, err);
    for (size_t k = 0; k < nready && got >= 0; k++) {
        int n = 0;
        for (size_t e = before; e < c->batch.n; e++)
            n += strcmp(c->batch.items[e].queue, c->ready[k]) == 0;
        sl_throttle_used(c->throttle, c->redis, c->ready[k], c->admitted[k], n);
    }
    return got;
}

/* Reads a batch in strict priority order: the queues in the order
 * configured, a later one only when the earlier ones have less than a
 * batch waiting.  Memory stays bounded whatever producers send: entries
 * are fetched with their oversized bytes left in Redis (read_bounded),
 * and only when every queue is empty does the child block, in an
 * XREADGROUP of COUNT 1 per queue: so it holds at most one entry per
 * queue it did not size first, each at most Redis's proto-max-bulk-len.
 * Returns entries read, or -1. */
static int read_batch(consumer *c)
{
    const int want = sl_pace_want(&c->pace, sl_worker_config_of(c->cfg)->batch);
    int block = sl_worker_config_of(c->cfg)->block_ms < READ_BLOCK_MAX_MS ? sl_worker_config_of(c->cfg)->block_ms : READ_BLOCK_MAX_MS;
    sl_err err;
    if (c->nactive == 0) {
        sl_sleep_ms(block);
        return 0;
    }
    int got = read_bounded(c, &c->batch, want, &err);
    if (got < 0)
        goto failed;
    if (got > 0)
        return got;
    /* What the blocking read brings runs at once, without a second read
     * to fill the batch: that round trip would delay the start of a job
     * that arrived alone, and when more follow, the next read (made
     * while this batch commits) takes them. */
    got = read_blocking(c, block, &err);
    if (got < 0)
        goto failed;
    return got;
failed:
    if (sl_redis_broken(c->redis)) {
        note_redis_down(c, err.msg);
    } else {
        char q[600];
        SL_ERROR("redis.read_failed", "error=%s", sl_log_quote(q, sizeof q, err.msg));
        sl_sleep_ms(RETRY_MAX_MS);
    }
    return -1;
}

/* Takeover: appends to the journal part of the batch in hand (which has
 * jn entries) the job of entry queue/rid that the predecessor died
 * running (status DIED or TIMED_OUT), with its attempt read from the
 * taken-over batch.  A part always keeps a free entry for this
 * (journal_put). */
static void journal_add_unfinished(consumer *c, uint64_t jn, const char *queue, const char *rid,
                                   sl_journal_status status)
{
    sl_journal_part *j = journal_part(c);
    if (j == NULL || jn >= SL_JOURNAL_MAX)
        return;
    sl_journal_entry *e = &j->e[jn];
    memset(e, 0, sizeof *e);
    e->text = -1;
    snprintf(e->queue, sizeof e->queue, "%s", queue);
    snprintf(e->stream_id, sizeof e->stream_id, "%s", rid);
    e->status = status;
    e->finished_ms = sl_now_ms();
    for (size_t i = 0; i < c->batch.n; i++) {
        const sl_entry *en = &c->batch.items[i];
        sl_job job;
        sl_err err;
        if (strcmp(en->stream_id, rid) == 0 && strcmp(en->queue, queue) == 0 && en->data &&
            sl_envelope_decode(en->data, en->len, &job, &err) == 0) {
            e->attempt = job.attempt;
            sl_job_clear(&job);
        }
    }
    __atomic_store_n(&j->n, jn + 1, __ATOMIC_RELEASE);
}

/* Claims into c->batch what the consumers from[0..nfrom) (a dead
 * predecessor and, if it died taking over too, its own) still hold, in
 * every configured queue, retrying through a Redis outage.  Returns the
 * entries taken, or -1 when it must give up. */
static int take_over(consumer *c, char from[][128], int nfrom)
{
    sl_batch_clear(&c->batch);
    for (int f = 0; f < nfrom; f++) {
        for (size_t i = 0; i < sl_worker_config_of(c->cfg)->nqueues; i++) {
            const char *queue = sl_worker_config_of(c->cfg)->queues[i];
            for (;;) {
                if (ensure_redis(c, false) < 0)
                    return -1;
                sl_err err;
                size_t before = c->batch.n;
                int room = SL_SCOREBOARD_BATCH_MAX - (int)before;
                if (room <= 0)
                    break;
                int got = sl_queue_take_over(c->redis, c->name, queue, from[f], room, &c->batch, &err);
                if (got >= 0) {
                    if (got > 0)
                        SL_INFO("queue.taken_over", "queue=%s from=%s entries=%d", queue, from[f], got);
                    break;
                }
                if (!sl_redis_broken(c->redis)) {
                    char q[600];
                    SL_ERROR("queue.take_over_failed", "queue=%s from=%s error=%s", queue, from[f],
                             sl_log_quote(q, sizeof q, err.msg));
                    break;
                }
            }
        }
    }
    return (int)c->batch.n;
}

/* A replacement child finishes what its predecessor in the slot left:
 * whatever it held when it died (a crash, a kill, the master's timeout
 * kill) is taken over at once rather than after the visibility timeout.
 * The predecessor's journal (scoreboard.h) says which of those jobs ran
 * and how they ended (recorded now, not run again) and which one was
 * running (recorded as a failed attempt: timed out if the master killed it
 * for its deadline, else "worker crashed"); the others run here.  Returns
 * -1 on a fatal error. */
static int settle_predecessor(consumer *c)
{
    if (c->slot == NULL)
        return 0;
    sl_journal *j = &c->slot->journal;
    sl_slot *snap = sl_xmalloc(sizeof *snap);
    int rc = 0;
    (void)sl_slot_read(c->slot, snap);  /* only the master part is used */
    bool killed = snap->killed_for_timeout && snap->killed_gen != snap->killed_gen_seen;
    snap->killed_entry[sizeof snap->killed_entry - 1] = '\0';
    snap->killed_queue[sizeof snap->killed_queue - 1] = '\0';
    snap->killed_consumer[sizeof snap->killed_consumer - 1] = '\0';
    char from[2][128];
    int nfrom = 0;
    j->consumer[sizeof j->consumer - 1] = j->successor[sizeof j->successor - 1] = '\0';
    if (j->consumer[0])
        snprintf(from[nfrom++], sizeof from[0], "%s", j->consumer);
    else if (killed && snap->killed_consumer[0])
        snprintf(from[nfrom++], sizeof from[0], "%s", snap->killed_consumer);
    if (j->successor[0] && strcmp(j->successor, c->name) != 0)
        snprintf(from[nfrom++], sizeof from[0], "%s", j->successor);
    if (nfrom == 0)
        goto done;
    /* The job that was running becomes an entry (died, or timed out) of
     * the part it was running in: the batch in hand of this child. */
    c->part = 0;
    uint64_t jn[SL_JOURNAL_PARTS];
    bool running = false;
    for (int p = 0; p < SL_JOURNAL_PARTS; p++) {
        sl_journal_part *jp = &j->part[p];
        jn[p] = __atomic_load_n(&jp->n, __ATOMIC_ACQUIRE);
        if (jn[p] > SL_JOURNAL_MAX)
            jn[p] = 0;  /* not a journal a child wrote */
        if (jp->ntexts > SL_JOURNAL_TEXTS)
            jp->ntexts = SL_JOURNAL_TEXTS;  /* likewise: the next text commits first */
        if (!running && __atomic_load_n(&jp->running, __ATOMIC_ACQUIRE) != 0) {
            running = true;
            c->part = p;
        }
    }
    sl_journal_part *rp = &j->part[c->part];
    /* Died running a job (the journal names it: its attempt is recorded
     * failed, and max_attempts bounds a job that keeps killing its
     * worker) or between jobs (claiming, committing): the batch's other
     * entries did nothing to deserve a delivery counted against them.
     * Only a death while decoding leaves the counts to judge. */
    bool decoding = __atomic_load_n(&j->decoding, __ATOMIC_ACQUIRE) != 0;
    char rq[SL_NAME_MAX + 1], rid[48];
    snprintf(rq, sizeof rq, "%s", running ? rp->run_queue : killed ? snap->killed_queue : "");
    snprintf(rid, sizeof rid, "%s", running ? rp->run_stream_id : killed ? snap->killed_entry : "");
    for (int p = 0; p < SL_JOURNAL_PARTS; p++) {
        for (uint64_t k = 0; k < jn[p] && rid[0]; k++) {
            if (strcmp(j->part[p].e[k].stream_id, rid) == 0 && strcmp(j->part[p].e[k].queue, rq) == 0)
                rid[0] = '\0';  /* it ended and was journaled just before the death */
        }
    }
    /* From here on the journal describes this child's batch: the entries
     * are taken over under its name (its successor field says so first, in
     * case it dies while taking them). */
    snprintf(j->successor, sizeof j->successor, "%s", c->name);
    int got = take_over(c, from, nfrom);
    if (got < 0) {
        rc = 0;  /* stopping: the next child of the slot finds the journal as it was */
        goto out;
    }
    snprintf(j->consumer, sizeof j->consumer, "%s", c->name);
    j->successor[0] = '\0';
    if (rid[0])
        journal_add_unfinished(c, jn[c->part], rq, rid, killed && strcmp(rid, snap->killed_entry) == 0
                                                        ? SL_JOURNAL_TIMED_OUT : SL_JOURNAL_DIED);
    for (int p = 0; p < SL_JOURNAL_PARTS; p++)
        __atomic_store_n(&j->part[p].running, 0, __ATOMIC_RELEASE);
    if (got > 0) {
        SL_INFO("worker.took_over", "from=%s entries=%d journaled=%llu running=%s", from[0], got,
                (unsigned long long)(__atomic_load_n(&j->part[0].n, __ATOMIC_ACQUIRE) +
                                     __atomic_load_n(&j->part[1].n, __ATOMIC_ACQUIRE)), rid[0] ? rid : "-");
        c->innocent = !decoding;
        rc = process_batch(c, true);
        c->innocent = false;
    } else if (rid[0]) {
        SL_INFO("job.timeout_already_settled", "entry=%s queue=%s from=%s", rid, rq, from[0]);
    }
done:
    if (rc == 0 && killed) {
        sl_slot_write_begin(c->slot);
        c->slot->killed_gen_seen = snap->killed_gen;
        sl_slot_write_end(c->slot);
    }
out:
    free(snap);
    return rc;
}

static void warn_eviction(consumer *c)
{
    char policy[64];
    sl_err err;
    if (sl_queue_eviction_policy(c->redis, policy, sizeof policy, &err) < 0)
        return;
    if (strcmp(policy, "noeviction") != 0 && strcmp(policy, "unknown") != 0)
        SL_WARN("redis.eviction_policy", "policy=%s risk=\"an evicting Redis can silently drop queued "
                "jobs: set maxmemory-policy noeviction\"", policy);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;  /* hiredis and libpq must not see EINTR */
    int sigs[] = { SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2 };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static bool kind_registered(const char *kind)
{
    return sl_registry_find(kind) != NULL;
}

int sl_consumer_main(const sl_config *cfg, int slot_index, sl_slot *slot, int master_fd)
{
    pid_t master = getppid();
    /* Follow a dead master: TERM (graceful) if it goes away. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
        SL_WARN("worker.pdeathsig_failed", "error=\"%s\"", strerror(errno));
    if (getppid() != master)
        return 0;
    install_signals();

    consumer c;
    memset(&c, 0, sizeof c);
    c.cfg = cfg;
    c.index = slot_index;
    c.slot = slot;
    c.master_fd = master_fd;
    c.rng = ((uint64_t)getpid() << 32) ^ (uint64_t)sl_now_ms() ^ 0x9e3779b97f4a7c15ULL;
    const sl_worker_config *wc = sl_worker_config_of(cfg);
    size_t nq = wc->nqueues ? wc->nqueues : 1;
    c.paused = sl_xcalloc(nq, sizeof *c.paused);
    c.active = sl_xcalloc(nq, sizeof *c.active);
    c.served = sl_xcalloc(nq, sizeof *c.served);
    memcpy(c.served, wc->queues, wc->nqueues * sizeof *c.served);
    qsort(c.served, wc->nqueues, sizeof *c.served, cmp_name);
    c.ready = sl_xcalloc(nq, sizeof *c.ready);
    c.admitted = sl_xcalloc(nq, sizeof *c.admitted);
    c.metrics = cfg->metrics.enabled ? sl_metrics_new() : NULL;
    sl_metrics_known_kinds(c.metrics, kind_registered); /* bounded label set */
    char host[64];
    if (gethostname(host, sizeof host) < 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(c.name, sizeof c.name, "%s:%ld", host, (long)getpid());
    c.throttle = sl_throttle_new(cfg, sl_worker_config_of(cfg)->queues, sl_worker_config_of(cfg)->nqueues, c.name);
    c.multi_ok = true;
    if (slot) {
        sl_slot_write_begin(slot);
        slot->pid = getpid();
        snprintf(slot->consumer, sizeof slot->consumer, "%s", c.name);
        slot->state = SL_CHILD_STARTING;
        slot->tick_ms = sl_monotonic_ms();
        sl_slot_write_end(slot);
    }

    int status = 0;
    bool fatal = false;
    sl_err perr;
    if ((c.protect = sl_protect_new(cfg, &perr)) == NULL) {
        SL_ERROR("config.invalid", "error=%s", sl_log_quote((char[600]){ 0 }, 600, perr.msg));
        status = SL_EXIT_FATAL;
        goto out;
    }
    sl_pace_init(&c.pace);
    /* Alone in its pool a child has no one to hand entries to. */
    if (sl_worker_config_of(cfg)->processes > 1 && (c.overrun = sl_overrun_new(cfg, &perr)) == NULL) {
        char q[600];
        SL_WARN("worker.overrun_watch_failed", "error=%s effect=\"a long job holds its batch-mates\"",
                sl_log_quote(q, sizeof q, perr.msg));
    }
    if (ensure_store(&c, false, &fatal) < 0 || ensure_redis(&c, false) < 0) {
        status = fatal ? SL_EXIT_FATAL : 0;
        goto out;
    }
    if (slot_index == 0)
        warn_eviction(&c);
    if (settle_predecessor(&c) < 0) {
        status = SL_EXIT_FATAL;
        goto out;
    }
    if (slot) {
        /* From now on a death of this child is followed by a takeover. */
        snprintf(slot->journal.consumer, sizeof slot->journal.consumer, "%s", c.name);
        slot->journal.successor[0] = '\0';
        journal_reset(&c);
    }
    SL_INFO("worker.ready", "slot=%d consumer=%s", slot_index, c.name);
    while (!stop_requested) {
        if (reopen_requested) {
            reopen_requested = 0;
            if (sl_log_reopen(NULL) < 0)
                SL_ERROR("log.reopen_failed", "error=\"%s\"", strerror(errno));
        }
        if (master_gone(&c)) {
            SL_WARN("worker.master_gone", "slot=%d", slot_index);
            break;
        }
        if (ensure_redis(&c, false) < 0)
            break;
        slot_state(&c, SL_CHILD_IDLE);
        int64_t now = sl_monotonic_ms();
        refresh_paused(&c, now);
        promote_due(&c, now);
        sl_batch_clear(&c.batch);
        int got = reclaim_idle(&c, now);
        if (got == 0 && !sl_redis_broken(c.redis))
            got = read_batch(&c);
        if (got > 0 && process_batch(&c, false) < 0) {
            status = SL_EXIT_FATAL;
            break;
        }
        sl_throttle_release(c.throttle, c.redis);
    }
out:
    if (slot && status == 0 && strcmp(slot->journal.consumer, c.name) == 0)
        slot->journal.consumer[0] = '\0';  /* everything it held is settled: nothing to take over */
    SL_INFO("worker.stopping", "slot=%d jobs=%llu", slot_index, (unsigned long long)c.jobs_done);
    slot_state(&c, SL_CHILD_STOPPING);
    sl_batch_free(&c.batch);
    sl_batch_free(&c.ahead);
    sl_batch_free(&c.prev);
    free(c.items);
    free(c.ahead_items);
    free(c.prev_items);
    free(c.paused);
    free(c.active);
    free(c.served);
    free(c.ready);
    free(c.admitted);
    sl_throttle_free(c.throttle);
    sl_metrics_free(c.metrics);
    sl_protect_free(c.protect);
    sl_overrun_free(c.overrun);
    sl_redis_free(c.redis);
    sl_store_free(c.store);
    return status;
}
