/* snapshot.h: one picture of the whole system for operators, shared by
 * `sluice stats`, `sluice top`, `sluice metrics` and `sluice serve`.
 *
 * A snapshot reads, in two pipelined round trips to Redis for all queues:
 *   - the queues (sluice:queues, or the names the caller gives);
 *   - per queue: XLEN of the stream, XPENDING (in flight), ZCARD of the
 *     delayed set, XLEN of the dead letter, the paused flag, the counters
 *     and histograms of sluice:{Q}:stats (lib/metrics.h), and the oldest
 *     waiting entry (the first entry after the group's last-delivered id);
 *   - the worker registry (sluice:worker:*, SCAN + GET: worker/supervise.h),
 *     read first: a queue that a live pool serves is shown even if it is
 *     missing from sluice:queues, and each queue's `workers` counts the
 *     processes of the live pools (not stopping) that serve it;
 * and from PostgreSQL, when a store is given, the open approval gates
 * (skipped when the scheduler's table sluice_gates does not exist).
 *
 * Figures: length = XLEN (entries still in the stream: waiting + in
 * flight, since acknowledged entries are deleted); pending = entries
 * delivered and not yet acknowledged; depth = length - pending (waiting,
 * never below 0). */
#ifndef SL_SNAPSHOT_H
#define SL_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "envelope.h"
#include "err.h"
#include "metrics.h"
#include "redis.h"
#include "store.h"

typedef struct snap_queue {
    char name[SL_NAME_MAX + 1];
    long long length;      /* XLEN of sluice:{Q}:jobs */
    long long pending;     /* in flight (XPENDING count) */
    long long depth;       /* waiting: length - pending, >= 0 */
    long long delayed;     /* ZCARD of sluice:{Q}:delayed */
    long long dead;        /* XLEN of sluice:{Q}:dead */
    int64_t oldest_ms;     /* Unix ms of the oldest waiting entry (its id), 0: none */
    bool paused;
    long long workers;     /* worker processes of live pools that serve it */
    long long enqueued;    /* jobs enqueued, by any producer (see snap_take) */
    sl_metrics_queue m;    /* counters and histograms */
} snap_queue;

/* True if q has jobs waiting (now or delayed) and no live worker serves it. */
bool snap_queue_unserved(const snap_queue *q);

/* One process of a pool, from the registry (strings "" when absent). */
typedef struct snap_worker {
    char host[64];
    long long pid;
    bool master;           /* the pool's master (else a worker child) */
    long long master_pid;  /* its master's pid */
    char state[16];
    char job[64];
    char kind[SL_NAME_MAX + 1];
    char queue[SL_NAME_MAX + 1];
    long long job_ms;      /* -1: no job */
    long long jobs_done;   /* -1: unknown */
    long long rss_kb;      /* -1: unknown */
} snap_worker;

typedef struct snap_gate {
    char run[64];
    char gate[64];
    int64_t since_ms;
    long long approvals, required;
} snap_gate;

typedef struct snap {
    int64_t taken_ms;      /* Unix ms */
    snap_queue *queues;    /* owned, sorted by name */
    size_t nqueues;
    char **docs;           /* owned: the registry documents as stored (JSON) */
    size_t ndocs;
    snap_worker *workers;  /* owned: their processes, masters first per pool */
    size_t nworkers;
    bool gates_present;    /* the gates table exists and was read */
    char gates_error[256]; /* why gates could not be read ("" if fine / not asked) */
    snap_gate *gates;      /* owned */
    size_t ngates;
} snap;

/* Takes a snapshot into *out (which the caller clears with snap_clear).
 * queues/nqueues: the queues to show, or NULL for every known queue.
 * store may be NULL (no gates).  A PostgreSQL failure is not fatal: it is
 * noted in gates_error.  Returns -1 with err if Redis failed. */
int snap_take(sl_redis *r, sl_store *store, char *const *queues, size_t nqueues, snap *out,
              sl_err *err);
void snap_clear(snap *s);

/* Connections kept between snapshots (top, serve): opened lazily, and
 * reopened after a failure.  Zero-initialise, then snap_conn_close. */
typedef struct snap_conn {
    const sl_config *cfg;  /* borrowed: server URLs */
    sl_redis *redis;
    sl_store *store;
} snap_conn;

/* snap_take over c's connections, (re)connecting as needed.  PostgreSQL
 * being unreachable is noted in gates_error, not fatal. */
int snap_conn_take(snap_conn *c, char *const *queues, size_t nqueues, snap *out, sl_err *err);
void snap_conn_close(snap_conn *c);

/* Appends the snapshot as one JSON object (`sluice stats --json`). */
void snap_json(const snap *s, sl_buf *out);

/* Appends the Prometheus text exposition (format 0.0.4) of the snapshot. */
void snap_prometheus(const snap *s, sl_buf *out);

/* Every worker-registry document (sluice:worker:*): SCAN, never KEYS, and
 * one pipelined GET per SCAN page; keys that expire meanwhile are skipped.
 * *docs is a growing array of owned strings (free each, then the array). */
int snap_registry_docs(sl_redis *r, char ***docs, size_t *n, sl_err *err);

#endif
