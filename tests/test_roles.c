/* test_roles.c: least privilege in PostgreSQL (migration 006, `sluice
 * migrate --create-roles --grant`).
 *
 * Each test works in a database of its own, migrated by the test server's
 * owner role, with login roles made members of the runtime group roles.
 * Connected as those (never superusers), every way of issue #11's bypass
 * #5 is tried for real and must be refused, leaving the gate closed, its
 * step waiting and no approval in the audit trail; then a whole pipeline
 * (gate approved through the API's function, a job run by a worker) runs
 * with each component on its own role, which shows the grants suffice. */
#include "db.h"
#include "engine.h"
#include "gate.h"
#include "harness.h"
#include "kindtest.h"
#include "mem.h"
#include "pipeline.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(roles, .timeout = 110);

static void as_owner(const char *db, const char *sql)
{
    char *e = th_pg_try("sluice", db, sql);
    cr_assert_null(e, "%s: %s", sql, e);
}

/* A run 'r1' (triggered by dave) waiting at gate 'go' (2 of alice, bob, carol). */
static void open_gate(const char *db)
{
    as_owner(db, "INSERT INTO sluice_runs (id, pipeline, source_name, source, triggered_by, status)"
                 " VALUES ('r1', 'p', 'p.yaml', 'name: p', 'dave', 'running');"
                 "INSERT INTO sluice_run_steps (run_id, step_id, position, status)"
                 " VALUES ('r1', 'go', 0, 'waiting');"
                 "INSERT INTO sluice_gates (run_id, gate_id, status, approvers, required, triggered_by)"
                 " VALUES ('r1', 'go', 'open', '{alice,bob,carol}', 2, 'dave')");
}

/* Asserts that statement sql, run as login, is refused with a message containing want. */
static void refused(const char *login, const char *db, const char *sql, const char *want)
{
    char *e = th_pg_try(login, db, sql);
    cr_assert_not_null(e, "%s was allowed to run: %s", login, sql);
    cr_assert(strstr(e, want), "%s: %s: expected '%s' in: %s", login, sql, want, e);
    free(e);
}

static const char *const ROLES[] = { "worker", "scheduler", "api", "operator", "breakglass" };
#define NROLES (sizeof ROLES / sizeof *ROLES)

Test(roles, bypass_5_is_refused_for_every_runtime_role)
{
    char db[96], login[NROLES][96];
    th_private_db(db, sizeof db, "roles");
    for (size_t i = 0; i < NROLES; i++)
        th_runtime_login(db, ROLES[i], login[i], sizeof login[i]);
    open_gate(db);
    for (size_t i = 0; i < NROLES; i++) {
        const char *u = login[i];
        /* triggers are the owner's */
        refused(u, db, "ALTER TABLE sluice_audit DISABLE TRIGGER sluice_audit_append_only", "must be owner");
        refused(u, db, "ALTER TABLE sluice_gates DISABLE TRIGGER ALL", "must be owner");
        refused(u, db, "ALTER TABLE sluice_run_steps DISABLE TRIGGER sluice_gate_step_guard", "must be owner");
        /* the gate cannot be released by hand */
        refused(u, db, "UPDATE sluice_gates SET status = 'approved' WHERE run_id = 'r1'", "permission denied");
        refused(u, db, "DELETE FROM sluice_gates", "permission denied");
        /* nor the audit trail written, by any path but a decision */
        refused(u, db, "INSERT INTO sluice_audit (seq, run_id, gate_id, actor, decision, prev_hash, hash)"
                       " VALUES (999, 'r1', 'go', 'alice', 'approve', '', '')", "permission denied");
        refused(u, db, "SELECT sluice_audit_append('r1', 'go', 'alice', 'approve', NULL, NULL, NULL)",
                "does not exist");
        refused(u, db, "SELECT sluice_audit_append_v2('r1', 'go', 'alice', 'token:1', NULL, 'approve',"
                       " NULL, NULL, NULL)", "permission denied");
        refused(u, db, "SELECT sluice_gate_decision('r1', 'go', 'alice', 'token:1', NULL, true, NULL,"
                       " '[]', true)", "permission denied");
        refused(u, db, "SELECT sluice_setup_roles(false)", "permission denied");
        /* a signature cannot be put on a row this transaction did not write */
        if (strcmp(ROLES[i], "worker") != 0 && strcmp(ROLES[i], "operator") != 0)
            refused(u, db, "SELECT sluice_audit_sign(1, '0123456789abcdef', repeat('ab', 64))",
                    "not appended by this transaction");
        /* the decision function trusts its caller: only the API role may call it */
        if (strcmp(ROLES[i], "api") != 0)
            refused(u, db, "SELECT * FROM sluice_gate_decide('r1', 'go', 'alice', 'token:1', NULL, true,"
                           " NULL, '[]')", "permission denied");
        if (strcmp(ROLES[i], "breakglass") != 0)
            refused(u, db, "SELECT * FROM sluice_gate_breakglass('r1', 'go', true, 'x', '[]')",
                    "permission denied");
        if (strcmp(ROLES[i], "scheduler") != 0)
            refused(u, db, "SELECT * FROM sluice_gate_time_out('r1', 'go')", "permission denied");
        /* whoever may update steps cannot pass the gate's step */
        if (strcmp(ROLES[i], "scheduler") == 0 || strcmp(ROLES[i], "api") == 0 ||
            strcmp(ROLES[i], "operator") == 0)
            refused(u, db, "UPDATE sluice_run_steps SET status = 'succeeded' WHERE run_id = 'r1'",
                    "only a gate decision releases it");
        else
            refused(u, db, "UPDATE sluice_run_steps SET status = 'succeeded' WHERE run_id = 'r1'",
                    "permission denied");
        /* a gate cannot be opened already decided */
        if (strcmp(ROLES[i], "scheduler") == 0)
            refused(u, db, "INSERT INTO sluice_gates (run_id, gate_id, status, approvers, required,"
                           " triggered_by) VALUES ('r1', 'g2', 'approved', '{x}', 1, 'x')",
                    "a gate is opened open");
    }
    /* nothing moved */
    cr_assert_eq(th_pg_db_number(db, "SELECT count(*) FROM sluice_gates WHERE status = 'open'"), 1);
    cr_assert_eq(th_pg_db_number(db, "SELECT count(*) FROM sluice_run_steps WHERE status = 'waiting'"), 1);
    cr_assert_eq(th_pg_db_number(db, "SELECT count(*) FROM sluice_audit"), 0);
    th_private_db_drop(db);
}

Test(roles, runtime_roles_own_nothing_and_have_no_special_attributes)
{
    char db[96], login[96];
    th_private_db(db, sizeof db, "own");
    th_runtime_login(db, "api", login, sizeof login);
    cr_assert_eq(th_pg_db_number(db, "SELECT count(*) FROM pg_roles WHERE rolname IN ('sluice_worker',"
                                  " 'sluice_scheduler', 'sluice_api', 'sluice_operator', 'sluice_breakglass')"
                                  " AND NOT (rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls"
                                  " OR rolcanlogin)"), 5, "the five group roles exist, NOLOGIN, no attributes");
    cr_assert_eq(th_pg_db_number(db, "SELECT (SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
                                  "  WHERE r.rolname LIKE 'sluice\\_%') + (SELECT count(*) FROM pg_proc p"
                                  "  JOIN pg_roles r ON r.oid = p.proowner WHERE r.rolname LIKE 'sluice\\_%')"), 0,
                 "a runtime role owns a table or function");
    /* every SECURITY DEFINER function pins its search_path and is not PUBLIC */
    cr_assert_eq(th_pg_db_number(db, "SELECT count(*) FROM pg_proc WHERE prosecdef AND proname LIKE 'sluice%'"), 8,
                 "the decision, time-out, cancel, break-glass, sign, retention and audit-cut functions");
    cr_assert_eq(th_pg_db_number(db, "SELECT count(*) FROM pg_proc WHERE prosecdef AND proname LIKE 'sluice%'"
                                  " AND (proconfig IS NULL OR NOT EXISTS (SELECT 1 FROM unnest(proconfig) s"
                                  " WHERE s LIKE 'search_path=%') OR has_function_privilege('public', oid,"
                                  " 'EXECUTE'))"), 0);
    /* --grant rejects unknown roles before touching the database */
    const char *argv[] = { SLUICE_BIN, "migrate", "--grant", "root=alice", NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 2, "%s", r.err);
    cr_assert(strstr(r.err, "ROLE=LOGIN"), "%s", r.err);
    th_result_free(&r);
    th_private_db_drop(db);
}

static bool run_succeeded(void *arg)
{
    const char **a = arg;
    char *url = th_pg_url("sluice", a[0]);
    PGconn *c = PQconnectdb(url);
    free(url);
    const char *p[] = { a[1] };
    PGresult *res = PQexecParams(c, "SELECT status FROM sluice_runs WHERE id = $1", 1, NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
              strcmp(PQgetvalue(res, 0, 0), a[2]) == 0;
    PQclear(res);
    PQfinish(c);
    return ok;
}

static bool gate_opened(void *arg)
{
    const char **a = arg;
    char *sql = sl_xasprintf("SELECT count(*) FROM sluice_gates WHERE run_id = '%s' AND status = 'open'", a[1]);
    bool open = th_pg_db_number(a[0], sql) == 1;
    free(sql);
    return open;
}

static pid_t start_scheduler(const char *url, const char *config, const char *dir, const char *log)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setenv("SLUICE_DATABASE_URL", url, 1);
        setenv("DATABASE_URL", url, 1);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execl(SLUICE_SCHEDULER_BIN, SLUICE_SCHEDULER_BIN, "--config", config, "--pipelines", dir,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

Test(roles, a_pipeline_runs_with_each_component_on_its_own_role)
{
    char db[96], wl[96], sl[96], al[96], queue[96];
    th_private_db(db, sizeof db, "e2e");
    th_runtime_login(db, "worker", wl, sizeof wl);
    th_runtime_login(db, "scheduler", sl, sizeof sl);
    th_runtime_login(db, "api", al, sizeof al);
    th_name(queue, sizeof queue, "rq");
    char dir[] = "/tmp/sluice-roles-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *config = sl_xasprintf("%s/sluice.config", dir);
    char *yaml = sl_xasprintf("name: least\nsteps:\n  - id: go\n    approval: {approvers: [bob]}\n"
                              "  - {id: ship, kind: noop, queue: %s, needs: [go]}\n", queue);
    char *ypath = sl_xasprintf("%s/least.yaml", dir);
    FILE *f = fopen(config, "w");
    cr_assert_not_null(f);
    fputs("worker:\n  block: 100ms\nscheduler:\n  reconcile: 1s\n  standby_poll: 100ms\n", f);
    cr_assert_eq(fclose(f), 0);
    f = fopen(ypath, "w");
    cr_assert_not_null(f);
    fputs(yaml, f);
    cr_assert_eq(fclose(f), 0);

    /* the worker pool, as the worker role */
    char *wurl = th_pg_url(wl, db), *surl = th_pg_url(sl, db), *aurl = th_pg_url(al, db);
    char *wlog = sl_xasprintf("%s/worker.log", dir), *slog = sl_xasprintf("%s/scheduler.log", dir);
    char *saved = sl_xstrdup(getenv("SLUICE_DATABASE_URL")), *saved2 = sl_xstrdup(getenv("DATABASE_URL"));
    setenv("SLUICE_DATABASE_URL", wurl, 1);
    setenv("DATABASE_URL", wurl, 1);
    const char *wargs[] = { "--config", config, "--queues", queue, "--processes", "1", NULL };
    pid_t pool = th_worker_start(wargs, wlog);
    setenv("SLUICE_DATABASE_URL", saved, 1);
    setenv("DATABASE_URL", saved2, 1);
    pid_t sched = start_scheduler(surl, config, dir, slog);

    /* the API's side: start the run and approve, as the API role */
    sl_err err;
    sl_db *api = sl_db_connect(aurl, &err);
    cr_assert_not_null(api, "%s", err.msg);
    char run[SL_RUN_ID_MAX];
    cr_assert_eq(sl_run_create(api, "least", NULL, 0, "dave", run, &err), 0, "%s", err.msg);
    const char *waiting[] = { db, run, "running" };
    cr_assert(th_wait(run_succeeded, waiting, 20000), "the run did not start: see %s", slog);
    const char *gq[] = { db, run };
    cr_assert(th_wait(gate_opened, gq, 20000), "the gate did not open: see %s", slog);
    sl_gate_result res = { 0 };
    cr_assert_eq(sl_gate_decide(api, run, "go", &(sl_principal){ .name = "bob", .method = "token:42",
                                .address = "192.0.2.7" }, true, "ok", NULL, 0, &res, &err), 0, "%s", err.msg);
    cr_assert(!res.refused && res.closed, "%s", res.message);
    const char *done[] = { db, run, "succeeded" };
    cr_assert(th_wait(run_succeeded, done, 30000), "the run did not succeed: see %s and %s", slog, wlog);
    char *sql = sl_xasprintf("SELECT count(*) FROM sluice_audit WHERE run_id = '%s' AND actor = 'bob'"
                             " AND method = 'token:42' AND address = '192.0.2.7' AND db_role = '%s'"
                             " AND decision = 'approve'", run, al);
    cr_assert_eq(th_pg_db_number(db, sql), 1, "the audit row names principal, method, address and role");
    free(sql);
    sql = sl_xasprintf("SELECT count(*) FROM sluice_jobs WHERE run_id = '%s' AND status = 'succeeded'", run);
    cr_assert_eq(th_pg_db_number(db, sql), 1, "the worker recorded the job as its role");
    free(sql);

    cr_assert_eq(th_stop(sched, SIGTERM, 20000), 0);
    cr_assert_eq(th_stop(pool, SIGTERM, 20000), 0);
    char *text = th_read_file(slog);
    cr_assert(text == NULL || !strstr(text, "permission denied"), "the scheduler was refused:\n%s", text);
    free(text);
    text = th_read_file(wlog);
    cr_assert(text == NULL || !strstr(text, "permission denied"), "the worker was refused:\n%s", text);
    free(text);
    sl_db_free(api);
    free(saved);
    free(saved2);
    free(wurl);
    free(surl);
    free(aurl);
    free(wlog);
    free(slog);
    free(yaml);
    free(ypath);
    free(config);
    th_private_db_drop(db);
    th_rmtree(dir);
}
