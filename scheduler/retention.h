/* retention.h: keeping PostgreSQL bounded — the leader removes old results.
 *
 * Without it every job result, attempt and run is kept forever (a pool
 * committing 30,000 jobs a second adds billions of rows a day).  The
 * scheduler's leader calls sl_retention_pass on its ticks: each pass
 * removes at most `retention.batch` of the oldest expired rows in one short
 * transaction, so removal runs continuously in small steps, never as one
 * long delete that bloats the tables or holds locks:
 *   - job results: `succeeded` ones older than retention.succeeded (default
 *     7 days), `failed`, `dead` and `cancelled` ones older than
 *     retention.failed (30 days), with their attempts, cancellation
 *     requests and claims — but never a job of a run that is still active
 *     (its step results are still read);
 *   - runs: finished runs older than retention.runs (90 days), with their
 *     steps and gates;
 *   - the audit trail: rows older than retention.audit (400 days), oldest
 *     first, behind a checkpoint signed with the scheduler's audit key so
 *     that `sluice audit verify` still checks what remains
 *     (scheduler/audit.h).  Without an audit key, or while runs are kept
 *     forever (retention.runs 0), the trail is kept whole.
 * A setting of 0 keeps those rows forever.  Rows are locked with SKIP
 * LOCKED, so a pass never waits for a worker's transaction.
 *
 * Consequence, documented in docs/architecture.md: a job id runs at most
 * once within the retention window; after its result is removed, the same
 * id enqueued again is a new job. */
#ifndef SL_RETENTION_H
#define SL_RETENTION_H

#include <stdint.h>

#include "config.h"
#include "db.h"
#include "err.h"

typedef struct sl_retention_stats {
    long long jobs;   /* job results removed */
    long long runs;   /* runs removed */
    long long audit;  /* audit rows removed */
} sl_retention_stats;

/* Removes at most retention.batch (config_sched.h) expired job results and as many
 * expired runs and audit rows (these only when the connection has an
 * audit key: sl_db_set_audit_key).  Returns 0 with *st filled (a full batch in either means
 * more is due: call again soon), or -1 with err when the database failed
 * (nothing removed). */
int sl_retention_pass(sl_db *db, const sl_config *cfg, sl_retention_stats *st, sl_err *err);

#endif
