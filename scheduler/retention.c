/* retention.c: see retention.h.  Two statements per pass, each one
 * data-modifying CTE: pick the oldest expired rows (FOR UPDATE SKIP
 * LOCKED, bounded by LIMIT) and delete them with everything that hangs off
 * them, so a pass is one short transaction whatever the backlog. */
#include "retention.h"

#include <stdio.h>
#include <stdlib.h>

static const char JOBS_SQL[] =
    "WITH doomed AS ("
    "  SELECT j.id FROM sluice_jobs j"
    "   WHERE ((j.status = 'succeeded' AND $1::bigint > 0"
    "           AND j.finished_at < now() - $1::bigint * interval '1 millisecond')"
    "       OR (j.status IN ('failed', 'dead', 'cancelled') AND $2::bigint > 0"
    "           AND j.finished_at < now() - $2::bigint * interval '1 millisecond'))"
    "     AND (j.run_id IS NULL OR NOT EXISTS (SELECT 1 FROM sluice_runs r"
    "          WHERE r.id = j.run_id AND r.status IN ('queued', 'running')))"
    "   ORDER BY j.finished_at LIMIT $3::int FOR UPDATE OF j SKIP LOCKED),"
    " attempts AS (DELETE FROM sluice_job_attempts WHERE job_id IN (SELECT id FROM doomed)),"
    " cancels AS (DELETE FROM sluice_cancellations WHERE job_id IN (SELECT id FROM doomed))"
    " DELETE FROM sluice_jobs WHERE id IN (SELECT id FROM doomed)";

static const char RUNS_SQL[] =
    "WITH doomed AS ("
    "  SELECT id FROM sluice_runs"
    "   WHERE status IN ('succeeded', 'failed', 'cancelled') AND $1::bigint > 0"
    "     AND finished_at < now() - $1::bigint * interval '1 millisecond'"
    "   ORDER BY finished_at LIMIT $2::int FOR UPDATE SKIP LOCKED),"
    " steps AS (DELETE FROM sluice_run_steps WHERE run_id IN (SELECT id FROM doomed)),"
    " gates AS (DELETE FROM sluice_gates WHERE run_id IN (SELECT id FROM doomed))"
    " DELETE FROM sluice_runs WHERE id IN (SELECT id FROM doomed)";

/* Runs sql and returns how many rows its final DELETE removed, or -1. */
static long long delete_count(sl_db *db, const char *what, const char *sql, int n,
                              const char *const *params, sl_err *err)
{
    PGresult *res = sl_db_exec(db, what, sql, n, params, err);
    if (res == NULL)
        return -1;
    long long removed = atoll(PQcmdTuples(res));
    PQclear(res);
    return removed;
}

int sl_retention_pass(sl_db *db, const sl_config *cfg, sl_retention_stats *st, sl_err *err)
{
    st->jobs = st->runs = 0;
    char ok[24], failed[24], runs[24], batch[16];
    snprintf(ok, sizeof ok, "%lld", (long long)cfg->retention.succeeded_ms);
    snprintf(failed, sizeof failed, "%lld", (long long)cfg->retention.failed_ms);
    snprintf(runs, sizeof runs, "%lld", (long long)cfg->retention.runs_ms);
    snprintf(batch, sizeof batch, "%d", cfg->retention.batch);
    if (cfg->retention.succeeded_ms > 0 || cfg->retention.failed_ms > 0) {
        const char *p[] = { ok, failed, batch };
        st->jobs = delete_count(db, "retention: job results", JOBS_SQL, 3, p, err);
        if (st->jobs < 0)
            return -1;
    }
    if (cfg->retention.runs_ms > 0) {
        const char *p[] = { runs, batch };
        st->runs = delete_count(db, "retention: runs", RUNS_SQL, 2, p, err);
        if (st->runs < 0)
            return -1;
    }
    return 0;
}
