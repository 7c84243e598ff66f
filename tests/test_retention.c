/* test_retention.c: the leader's removal of old results (scheduler/retention.c)
 * against the real PostgreSQL.  Rows are written with finished_at in the
 * past; a pass must remove exactly the expired ones (with their attempts,
 * cancellations, steps and gates), never a result of a run that is still
 * active, and at most retention.batch per statement. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_sched.h"
#include "db.h"
#include "harness.h"
#include "mem.h"
#include "retention.h"

TH_REGISTER_CONFIG_SECTIONS

static char prefix[64];

static void exec_ok(PGconn *c, const char *sql, const char *p1)
{
    const char *p[] = { p1 };
    PGresult *r = PQexecParams(c, sql, p1 ? 1 : 0, NULL, p, NULL, NULL, 0);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* A job row NAME of prefix, finished AGE ago with STATUS, optionally in run RUN. */
static void job(PGconn *c, const char *name, const char *status, const char *age, const char *run)
{
    char *sql = sl_xasprintf(
        "INSERT INTO sluice_jobs (id, queue, kind, status, attempts, finished_at, run_id)"
        " VALUES ($1 || '-%s', 'q', 'noop', '%s', 1, now() - interval '%s', %s%s%s)",
        name, status, age, run ? "$1 || '-" : "NULL", run ? run : "", run ? "'" : "");
    exec_ok(c, sql, prefix);
    free(sql);
    sql = sl_xasprintf("INSERT INTO sluice_job_attempts (job_id, attempt, status, finished_at)"
                       " VALUES ($1 || '-%s', 1, 'failed', now() - interval '%s')", name, age);
    exec_ok(c, sql, prefix);
    free(sql);
}

static void run(PGconn *c, const char *name, const char *status, const char *age)
{
    char *finished = age ? sl_xasprintf("now() - interval '%s'", age) : sl_xstrdup("NULL");
    char *sql = sl_xasprintf(
        "INSERT INTO sluice_runs (id, pipeline, source_name, source, triggered_by, status, finished_at)"
        " VALUES ($1 || '-%s', 'p', 'p.yaml', '', 'test', '%s', %s)", name, status, finished);
    exec_ok(c, sql, prefix);
    free(sql);
    free(finished);
    sql = sl_xasprintf("INSERT INTO sluice_run_steps (run_id, step_id, position, status)"
                       " VALUES ($1 || '-%s', 's', 0, 'succeeded')", name);
    exec_ok(c, sql, prefix);
    free(sql);
    sql = sl_xasprintf("INSERT INTO sluice_gates (run_id, gate_id, status, approvers, required, triggered_by)"
                       " VALUES ($1 || '-%s', 'g', 'open', '{alice}', 1, 'test')", name);
    exec_ok(c, sql, prefix);
    free(sql);
}

static long long present(const char *table, const char *col, const char *name)
{
    char *sql = sl_xasprintf("SELECT count(*) FROM %s WHERE %s = $1 || '-%s'", table, col, name);
    const char *p[] = { prefix };
    long long n = th_pg_number(sql, 1, p);
    free(sql);
    return n;
}

static sl_config *config_with(const char *yaml)
{
    char *path = th_write_temp("sluice.yaml", yaml);
    sl_err err;
    sl_config *cfg = sl_config_load(path, &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    free(path);
    return cfg;
}

Test(retention, removes_expired_results_and_runs_in_batches_and_keeps_the_rest)
{
    th_migrate();
    th_name(prefix, sizeof prefix, "ret");
    PGconn *c = th_pg();
    run(c, "active", "running", NULL);
    run(c, "old", "succeeded", "91 days");
    run(c, "recent", "failed", "10 days");
    job(c, "ok-old", "succeeded", "8 days", NULL);
    job(c, "ok-new", "succeeded", "1 hour", NULL);
    job(c, "failed-8d", "failed", "8 days", NULL);
    job(c, "dead-31d", "dead", "31 days", NULL);
    job(c, "cancelled-31d", "cancelled", "31 days", NULL);
    job(c, "of-active-run", "succeeded", "10 days", "active");
    exec_ok(c, "INSERT INTO sluice_cancellations (job_id) VALUES ($1 || '-cancelled-31d')", prefix);

    sl_config *cfg = config_with("retention:\n  batch: 2\n");   /* defaults 7d, 30d, 90d */
    sl_err err;
    sl_db *db = sl_db_connect(th_env("DATABASE_URL"), &err);
    cr_assert_not_null(db, "%s", err.msg);
    /* Three expired results at 2 per statement: the first pass is full. */
    sl_retention_stats st;
    long long jobs = 0, runs = 0, passes = 0;
    do {
        cr_assert_eq(sl_retention_pass(db, cfg, &st, &err), 0, "%s", err.msg);
        cr_assert_leq(st.jobs, 2, "a pass removed %lld rows with batch 2", st.jobs);
        jobs += st.jobs;
        runs += st.runs;
        passes++;
    } while ((st.jobs == 2 || st.runs == 2) && passes < 100);
    cr_assert_geq(jobs, 3);
    cr_assert_geq(runs, 1, "the run that finished 91 days ago was removed by a pass");
    cr_assert_geq(passes, 2, "three rows need two passes of two");

    cr_expect_eq(present("sluice_jobs", "id", "ok-old"), 0, "succeeded 8 days ago is past 7d");
    cr_expect_eq(present("sluice_job_attempts", "job_id", "ok-old"), 0, "its attempts go with it");
    cr_expect_eq(present("sluice_jobs", "id", "dead-31d"), 0);
    cr_expect_eq(present("sluice_jobs", "id", "cancelled-31d"), 0);
    cr_expect_eq(present("sluice_cancellations", "job_id", "cancelled-31d"), 0);
    cr_expect_eq(present("sluice_jobs", "id", "ok-new"), 1, "a recent result stays");
    cr_expect_eq(present("sluice_jobs", "id", "failed-8d"), 1, "failures are kept 30 days");
    cr_expect_eq(present("sluice_job_attempts", "job_id", "failed-8d"), 1);
    cr_expect_eq(present("sluice_jobs", "id", "of-active-run"), 1, "an active run's results stay");
    cr_expect_eq(present("sluice_runs", "id", "old"), 0, "a run finished 91 days ago goes");
    cr_expect_eq(present("sluice_run_steps", "run_id", "old"), 0);
    cr_expect_eq(present("sluice_gates", "run_id", "old"), 0);
    cr_expect_eq(present("sluice_runs", "id", "recent"), 1);
    cr_expect_eq(present("sluice_gates", "run_id", "recent"), 1);
    cr_expect_eq(present("sluice_runs", "id", "active"), 1);

    /* 0 keeps forever: nothing older goes. */
    sl_config *forever = config_with("retention:\n  succeeded: 0s\n  failed: 0s\n  runs: 0s\n");
    job(c, "ancient", "succeeded", "3000 days", NULL);
    cr_assert_eq(sl_retention_pass(db, forever, &st, &err), 0, "%s", err.msg);
    cr_expect_eq(st.jobs, 0);
    cr_expect_eq(present("sluice_jobs", "id", "ancient"), 1);

    sl_config_free(forever);
    sl_config_free(cfg);
    sl_db_free(db);
    PQfinish(c);
}

Test(retention, settings_are_checked)
{
    char *path = th_write_temp("sluice.yaml", "retention:\n  succeeded: forever\n");
    sl_err err;
    cr_assert_null(sl_config_load(path, &err));
    cr_assert_not_null(strstr(err.msg, "retention.succeeded"), "%s", err.msg);
    free(path);
    path = th_write_temp("sluice.yaml", "retention:\n  batch: 0\n");
    cr_assert_null(sl_config_load(path, &err));
    cr_assert_not_null(strstr(err.msg, ":2:"), "%s", err.msg);
    free(path);
    sl_config *cfg = config_with("retention:\n  succeeded: 2d\n  runs: 365d\n");
    cr_expect_eq(sl_sched_config_of(cfg)->retention.succeeded_ms, 2 * 86400000LL);
    cr_expect_eq(sl_sched_config_of(cfg)->retention.runs_ms, 365 * 86400000LL, "durations past 24 days fit");
    cr_expect_eq(sl_sched_config_of(cfg)->retention.failed_ms, 30 * 86400000LL);
    cr_expect_eq(sl_sched_config_of(cfg)->retention.audit_ms, 400 * 86400000LL, "the audit trail: 400 days by default");
    sl_config_free(cfg);
    /* the audit trail outlives the runs whose gates it records */
    path = th_write_temp("sluice.yaml", "retention:\n  audit: 30m\n");
    cr_assert_null(sl_config_load(path, &err));
    cr_assert_not_null(strstr(err.msg, "retention.audit must be 0 (kept forever) or at least 1h"), "%s", err.msg);
    free(path);
    path = th_write_temp("sluice.yaml", "retention:\n  audit: 30d\n");
    cr_assert_null(sl_config_load(path, &err));
    cr_assert_not_null(strstr(err.msg, "retention.audit must be at least retention.runs"), "%s", err.msg);
    free(path);
    cfg = config_with("retention:\n  audit: 0s\n  runs: 0s\n");
    cr_expect_eq(sl_sched_config_of(cfg)->retention.audit_ms, 0);
    sl_config_free(cfg);
}
