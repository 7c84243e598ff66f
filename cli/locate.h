/* locate.h: where a job is in Redis, for `sluice job ID` when PostgreSQL
 * has no final result for it: running (a worker process shows it in the
 * worker registry), claimed (its stream entry is pending for a consumer),
 * queued (its entry waits in a stream), delayed (its envelope waits in a
 * delayed set, scheduled or for a retry) or dead-lettered (an entry of a
 * dead letter names it, in its `id` field or its envelope).
 *
 * Cost: a stream or set holds no index by job id, so finding one reads the
 * entries of each queue's stream, delayed set and dead letter, in pages of
 * LOCATE_PAGE per round trip, up to `limit` entries per key (the result
 * says whether every key was read to its end).  For a UUIDv7 id (what
 * sluice makes) a stream is read only from ten minutes before the id's
 * time, since no entry for the job can be older.  Entries are matched on
 * the id's bytes first and decoded only then.  A job moving between keys
 * while they are read (promoted, retried) can be missed: asking again
 * finds it. */
#ifndef SL_LOCATE_H
#define SL_LOCATE_H

#include <stdbool.h>
#include <stdint.h>

#include "envelope.h"
#include "err.h"
#include "redis.h"

#define LOCATE_PAGE 500
#define LOCATE_LIMIT 100000   /* default entries read per key */

typedef enum locate_state {
    LOC_NOWHERE = 0,  /* not found */
    LOC_DEAD,         /* in a dead letter */
    LOC_DELAYED,      /* in a delayed set */
    LOC_QUEUED,       /* waiting in a stream, not yet delivered */
    LOC_CLAIMED,      /* delivered to a consumer, not yet acknowledged */
    LOC_RUNNING,      /* a worker process shows it as its current job */
} locate_state;

typedef struct locate_result {
    locate_state state;
    char queue[SL_NAME_MAX + 1];
    char entry[48];          /* stream entry id (queued, claimed, dead) */
    long long attempt;       /* from the envelope; -1 unknown */
    int64_t since_ms;        /* queued/claimed: when the entry was added (its id) */
    int64_t due_ms;          /* delayed: when it is due */
    char consumer[160];      /* claimed: the consumer that holds it (host:pid) */
    long long deliveries;    /* claimed: times delivered */
    char host[64];           /* running: the worker's host, pid, pool */
    long long pid, master_pid;
    long long running_ms;    /* running: for how long, -1 unknown */
    char error[1024];        /* dead: why */
    int64_t failed_at_ms;    /* dead: when */
    bool complete;           /* every key was read to its end */
    long long scanned;       /* entries read */
} locate_result;

/* Looks for job id in queues[0..nqueues) (and in the worker registry),
 * reading at most limit entries per key.  Fills *out (state LOC_NOWHERE if
 * not found).  only_dead: look only in the dead letters.  Returns -1 with
 * err if Redis failed. */
int locate_job(sl_redis *r, const char *id, char *const *queues, size_t nqueues, long limit,
               bool only_dead, locate_result *out, sl_err *err);

/* "queued", "running", …; "unknown" for LOC_NOWHERE. */
const char *locate_state_name(locate_state s);

#endif
