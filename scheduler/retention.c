/* retention.c: see retention.h.  A pass is one call of the SECURITY
 * DEFINER function sluice_retention_pass (migration 011): two
 * data-modifying CTEs that pick the oldest expired rows (FOR UPDATE SKIP
 * LOCKED, bounded by LIMIT) and delete them with everything that hangs off
 * them, so a pass is one short transaction whatever the backlog, and the
 * scheduler's role needs no DELETE privilege on any table. */
#include "retention.h"

#include "audit.h"
#include "config_sched.h"

#include <stdio.h>
#include <stdlib.h>

int sl_retention_pass(sl_db *db, const sl_config *cfg, sl_retention_stats *st, sl_err *err)
{
    const sl_retention_config *r = &sl_sched_config_of(cfg)->retention;
    st->jobs = st->runs = st->audit = 0;
    char ok[24], failed[24], runs[24], batch[16];
    snprintf(ok, sizeof ok, "%lld", (long long)r->succeeded_ms);
    snprintf(failed, sizeof failed, "%lld", (long long)r->failed_ms);
    snprintf(runs, sizeof runs, "%lld", (long long)r->runs_ms);
    snprintf(batch, sizeof batch, "%d", r->batch);
    if (r->audit_ms > 0 && r->runs_ms > 0 && sl_db_audit_key(db) != NULL &&
        sl_audit_cut(db, r->audit_ms, r->batch, &st->audit, err) < 0)
        return -1;
    if (r->succeeded_ms <= 0 && r->failed_ms <= 0 && r->runs_ms <= 0)
        return 0;
    const char *p[] = { ok, failed, runs, batch };
    PGresult *res = sl_db_exec(db, "retention", "SELECT jobs, runs FROM sluice_retention_pass("
                               "$1::bigint, $2::bigint, $3::bigint, $4::integer)", 4, p, err);
    if (res == NULL)
        return -1;
    st->jobs = atoll(PQgetvalue(res, 0, 0));
    st->runs = atoll(PQgetvalue(res, 0, 1));
    PQclear(res);
    return 0;
}
