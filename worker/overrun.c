/* overrun.c: see overrun.h.
 *
 * The thread sleeps on a condition variable (CLOCK_MONOTONIC) and the
 * child does not wake it per job: sl_overrun_take only stamps the start
 * under the lock, and the thread, once a batch is being run, wakes when
 * the job running now would reach SL_OVERRUN_AFTER_MS.  Each job is
 * examined at most once (job_seq / tried_seq): a handing-back that failed
 * is not retried for the same job.  Slot states move
 *   UNSTARTED -> TAKEN (the child) or UNSTARTED -> RELEASING -> RELEASED
 *   (or back to UNSTARTED when it failed),
 * always under `mu`; a slot being released is read by the thread outside
 * the lock, which is safe because the child neither takes it nor ends the
 * batch until the thread has settled it (done_cv). */
#include "overrun.h"
#include "mem.h"
#include "redis.h"
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONNECT_TIMEOUT_MS 5000
#define THREAD_STACK (256 * 1024)

typedef enum slot_state { S_NONE, S_UNSTARTED, S_TAKEN, S_RELEASING, S_RELEASED } slot_state;

typedef struct slot {
    slot_state state;
    const sl_entry *entry; /* borrowed until sl_overrun_end */
    const sl_job *job;     /* borrowed likewise */
} slot;

struct sl_overrun {
    const sl_config *cfg;  /* borrowed */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* child -> thread: a batch is being run, or quit */
    pthread_cond_t done_cv; /* thread -> child: a handing-back has ended */
    bool quit;
    bool watching;          /* a batch with slots is being run */
    bool running;           /* a job runs now */
    uint64_t job_seq;       /* bumped by each timed take */
    uint64_t tried_seq;     /* the job the thread last acted on */
    struct timespec started;/* when the running job started (monotonic) */
    slot *slots;            /* owned, n in use */
    size_t n, cap;
    size_t released, failed;/* this batch's results */
    sl_err last_err;        /* why the last failure failed */
    sl_redis *redis;        /* the thread's own connections (owned) */
    sl_store *store;
};

static void add_ms(struct timespec *t, int64_t ms)
{
    t->tv_sec += (time_t)(ms / 1000);
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static bool reached(const struct timespec *now, const struct timespec *t)
{
    return now->tv_sec > t->tv_sec || (now->tv_sec == t->tv_sec && now->tv_nsec >= t->tv_nsec);
}

/* Opens (or reopens) the thread's connections.  Returns 0 or -1 with err. */
static int connect_both(sl_overrun *o, sl_err *err)
{
    if (o->store && sl_store_broken(o->store)) {
        sl_store_free(o->store);
        o->store = NULL;
    }
    if (o->store == NULL && (o->store = sl_store_connect(o->cfg->database_url, err)) == NULL)
        return -1;
    if (o->redis && sl_redis_broken(o->redis)) {
        sl_redis_free(o->redis);
        o->redis = NULL;
    }
    if (o->redis == NULL && (o->redis = sl_redis_connect(o->cfg->redis_url, CONNECT_TIMEOUT_MS, err)) == NULL)
        return -1;
    return 0;
}

/* Hands back slots idx[0..m) (all RELEASING), outside the lock: their
 * claims dropped first (so that the copies can claim the jobs), then each
 * entry moved.  ok[k] says which were. */
static void hand_back(sl_overrun *o, const size_t *idx, size_t m, bool *ok, sl_err *err)
{
    sl_claim_req *reqs = sl_xcalloc(m, sizeof *reqs);
    for (size_t k = 0; k < m; k++)
        reqs[k] = (sl_claim_req){ .job = o->slots[idx[k]].job, .entry = o->slots[idx[k]].entry->stream_id };
    if (connect_both(o, err) == 0 && sl_store_unclaim(o->store, reqs, m, err) == 0) {
        for (size_t k = 0; k < m; k++)
            ok[k] = sl_queue_release(o->redis, o->slots[idx[k]].entry, err) == 0;
    }
    free(reqs);
}

/* One handing-back of every unstarted slot; called with mu held. */
static void release_unstarted(sl_overrun *o)
{
    size_t m = 0;
    for (size_t i = 0; i < o->n; i++)
        m += o->slots[i].state == S_UNSTARTED;
    if (m == 0)
        return;
    size_t *idx = sl_xcalloc(m, sizeof *idx);
    bool *ok = sl_xcalloc(m, sizeof *ok);
    m = 0;
    for (size_t i = 0; i < o->n; i++) {
        if (o->slots[i].state == S_UNSTARTED) {
            o->slots[i].state = S_RELEASING;
            idx[m++] = i;
        }
    }
    pthread_mutex_unlock(&o->mu);
    sl_err err;
    sl_err_clear(&err);
    hand_back(o, idx, m, ok, &err);
    pthread_mutex_lock(&o->mu);
    for (size_t k = 0; k < m; k++) {
        o->slots[idx[k]].state = ok[k] ? S_RELEASED : S_UNSTARTED;
        if (ok[k]) {
            o->released++;
        } else {
            o->failed++;
            o->last_err = err;
        }
    }
    pthread_cond_broadcast(&o->done_cv);
    free(idx);
    free(ok);
}

static void *watch(void *arg)
{
    sl_overrun *o = arg;
    pthread_mutex_lock(&o->mu);
    while (!o->quit) {
        if (!o->watching || !o->running || o->tried_seq == o->job_seq) {
            /* Nothing to time: wake on the next batch, or after a while to
             * look at the next job of this one. */
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            add_ms(&t, SL_OVERRUN_AFTER_MS);
            if (o->watching)
                pthread_cond_timedwait(&o->cv, &o->mu, &t);
            else
                pthread_cond_wait(&o->cv, &o->mu);
            continue;
        }
        struct timespec due = o->started, now;
        add_ms(&due, SL_OVERRUN_AFTER_MS);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!reached(&now, &due)) {
            pthread_cond_timedwait(&o->cv, &o->mu, &due);
            continue;
        }
        o->tried_seq = o->job_seq;
        release_unstarted(o);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

sl_overrun *sl_overrun_new(const sl_config *cfg, sl_err *err)
{
    sl_overrun *o = sl_xcalloc(1, sizeof *o);
    o->cfg = cfg;
    pthread_condattr_t ca;
    pthread_attr_t ta;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, &ca);
    pthread_cond_init(&o->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_attr_init(&ta);
    pthread_attr_setstacksize(&ta, THREAD_STACK);
    /* Signals go to the child's main thread, which handles them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&o->thread, &ta, watch, o);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&ta);
    if (rc != 0) {
        sl_err_set(err, SL_EIO, "pthread_create: %s", strerror(rc));
        pthread_cond_destroy(&o->cv);
        pthread_cond_destroy(&o->done_cv);
        pthread_mutex_destroy(&o->mu);
        free(o);
        return NULL;
    }
    return o;
}

void sl_overrun_free(sl_overrun *o)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->mu);
    o->quit = true;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->thread, NULL);
    pthread_cond_destroy(&o->cv);
    pthread_cond_destroy(&o->done_cv);
    pthread_mutex_destroy(&o->mu);
    sl_redis_free(o->redis);
    sl_store_free(o->store);
    free(o->slots);
    free(o);
}

void sl_overrun_begin(sl_overrun *o, size_t n)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->mu);
    if (n > o->cap) {
        o->slots = sl_xrealloc(o->slots, n * sizeof *o->slots);
        o->cap = n;
    }
    memset(o->slots, 0, n * sizeof *o->slots);
    o->n = n;
    o->released = o->failed = 0;
    o->running = false;
    pthread_mutex_unlock(&o->mu);
}

void sl_overrun_add(sl_overrun *o, size_t i, const sl_entry *entry, const sl_job *job)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->mu);
    if (i < o->n)
        o->slots[i] = (slot){ .state = S_UNSTARTED, .entry = entry, .job = job };
    pthread_mutex_unlock(&o->mu);
}

bool sl_overrun_take(sl_overrun *o, size_t i, bool running)
{
    if (o == NULL || i >= o->n)
        return true;
    pthread_mutex_lock(&o->mu);
    while (o->slots[i].state == S_RELEASING)
        pthread_cond_wait(&o->done_cv, &o->mu);
    bool mine = o->slots[i].state != S_RELEASED;
    if (mine && o->slots[i].state == S_UNSTARTED)
        o->slots[i].state = S_TAKEN;
    if (mine && running) {
        clock_gettime(CLOCK_MONOTONIC, &o->started);
        o->running = true;
        o->job_seq++;
        if (!o->watching) {
            o->watching = true;
            pthread_cond_signal(&o->cv);
        }
    }
    pthread_mutex_unlock(&o->mu);
    return mine;
}

void sl_overrun_done(sl_overrun *o)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->mu);
    o->running = false;
    pthread_mutex_unlock(&o->mu);
}

size_t sl_overrun_end(sl_overrun *o, size_t *failed, sl_err *err)
{
    *failed = 0;
    if (o == NULL)
        return 0;
    pthread_mutex_lock(&o->mu);
    for (;;) {
        bool busy = false;
        for (size_t i = 0; i < o->n && !busy; i++)
            busy = o->slots[i].state == S_RELEASING;
        if (!busy)
            break;
        pthread_cond_wait(&o->done_cv, &o->mu);
    }
    size_t released = o->released;
    *failed = o->failed;
    if (o->failed)
        *err = o->last_err;
    o->watching = o->running = false;
    o->n = 0;
    pthread_mutex_unlock(&o->mu);
    return released;
}
