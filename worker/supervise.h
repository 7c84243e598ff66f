/* supervise.h: what the master does in Redis on behalf of its pool.
 *
 *  - Lease renewal: a job that runs longer than worker.visibility_timeout
 *    would be reclaimed (and run twice) by another worker.  Every
 *    visibility_timeout/3 the master renews (sl_queue_renew: XCLAIM … JUSTID
 *    by the owner) the entries each RUNNING or COMMITTING child lists in its
 *    scoreboard slot, grouped per queue.  The children never stop for this,
 *    and a child stuck in a job keeps its lease only until the master kills
 *    it at the job's deadline.
 *  - Worker registry: every 2 s (and soon after the pool changes) the
 *    master writes one JSON document describing itself and its children to
 *    sluice:worker:<host>:<masterpid> with a 10 s expiry, so a master that
 *    dies without cleaning up disappears by itself.  `sluice workers` reads
 *    them.  Document fields:
 *      host, pid, role ("master"), version, started_at_ms and updated_at_ms
 *      (Unix ms), state ("running", "reloading", "stopping"), processes
 *      (target pool size), rss_kb (the master's), queues [..], children
 *      [{slot, pid, state, job, kind, queue, job_ms, jobs_done, rss_kb}]
 *      where job/kind/queue/job_ms are null when the child runs no job.
 *
 *  - Cancellation: every SL_CANCEL_EVERY_MS the master looks up, for each
 *    child running a job, the flag `sluice cancel` sets in Redis
 *    (SL_CANCEL_KEY_PREFIX + job id) and sends that child SIGUSR2 (once per
 *    job); the child sets the job's `cancelled` flag (jobs/kind.h).
 *
 * The master's Redis connection is its own (the children have theirs),
 * opened lazily, reopened with capped backoff after a failure (an outage is
 * logged once, its end once), and bounded by a short command timeout so
 * that a hung Redis delays the master's loop by at most about a second.
 * It must never be used in a child: after fork, the child calls
 * sl_supervisor_forget to close(2) its copy of the socket. */
#ifndef SL_SUPERVISE_H
#define SL_SUPERVISE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "scoreboard.h"

#define SL_WORKER_KEY_PREFIX "sluice:worker:"  /* + "<host>:<masterpid>" */
#define SL_REGISTRY_TTL_S 10                   /* expiry of a registry document */
#define SL_REGISTRY_EVERY_MS 2000              /* how often the master rewrites it */
#define SL_CANCEL_EVERY_MS 500                 /* how often it looks for cancellations */
#define SL_SUPERVISOR_SLOTS_MAX 1024           /* most slots a pool has (master.c) */

/* What the master shows the supervisor on each tick (borrowed, read only). */
typedef struct sl_pool_view {
    const sl_config *cfg;     /* the current configuration */
    sl_scoreboard *board;     /* the shared slots */
    const pid_t *pids;        /* pids[i]: the child in slot i, 0 for none */
    int nslots;               /* entries in pids (slots that may hold a child) */
    int processes;            /* target pool size */
    const char *state;        /* "running", "reloading", "stopping" */
    int64_t started_at_ms;    /* Unix ms the master started */
} sl_pool_view;

typedef struct sl_supervisor sl_supervisor;

/* A supervisor with no connection yet.  Never NULL (aborts on OOM); the
 * master frees it with sl_supervisor_free. */
sl_supervisor *sl_supervisor_new(void);
void sl_supervisor_free(sl_supervisor *s);

/* In a child right after fork: closes the master's socket (close(2) only;
 * the connection object is left alone, the master keeps using it). */
void sl_supervisor_forget(const sl_supervisor *s);

/* Notes that the pool changed (a child started or exited, a resize): the
 * registry is rewritten soon rather than on the 2 s beat. */
void sl_supervisor_pool_changed(sl_supervisor *s);

/* Notes what the dead child of slot `slot` held (dead: its slot as read
 * after it was reaped, before the slot is reset for a replacement), so
 * that those entries are renewed under its name while the slot is empty
 * again (the replacement died before taking them over).  Nothing held: an
 * earlier note for the slot stays. */
void sl_supervisor_handover(sl_supervisor *s, int slot, const sl_slot *dead);

/* Renews leases and rewrites the registry when they are due.  Failures are
 * logged, never fatal.  Returns the ms until it next has something to do. */
int64_t sl_supervisor_tick(sl_supervisor *s, const sl_pool_view *v);

/* Deletes the master's registry document (on a clean exit). */
void sl_supervisor_unregister(sl_supervisor *s, const sl_config *cfg);

#endif
