/* cmd_migrate.c: `sluice migrate`: applies the compiled-in SQL migrations
 * (safe to run repeatedly and concurrently), then grants the runtime roles
 * what each needs (sluice_setup_roles(), migration 006): creating the
 * roles with --create-roles, making login roles members with --grant. */
#include "cli.h"
#include "db.h"
#include "mem.h"
#include "store.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "migrate"

/* The runtime roles: sluice_<name>, NOLOGIN groups (docs/security.md). */
static const char *const ROLES[] = { "worker", "scheduler", "api", "operator", "breakglass" };

static const sl_opt cmd_rows[] = {
    { 'R', "create-roles", 0, NULL, "create those roles (NOLOGIN) if missing, then grant\n(needs CREATEROLE)" },
    { 'g', "grant", 0, "ROLE=LOGIN", "make the existing login role LOGIN a member of\nsluice_ROLE (ROLE: worker, scheduler, api, operator,\nbreakglass); repeatable" },
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts cmd_opts = { "sluice migrate",
    "Usage: sluice migrate [--create-roles] [--grant ROLE=LOGIN]... [OPTIONS]\n"
    "\n"
    "Creates or upgrades sluice's tables in PostgreSQL (database.url or\n"
    "SLUICE_DATABASE_URL/DATABASE_URL).  Applies only what is missing, each\n"
    "migration in its own transaction; concurrent runs wait for each other.\n"
    "Run it as the role that owns sluice's tables; the worker, scheduler and\n"
    "API server connect as other roles (docs/security.md).\n"
    "\n"
    "After applying migrations it grants the runtime group roles that exist\n"
    "(sluice_worker, sluice_scheduler, sluice_api, sluice_operator,\n"
    "sluice_breakglass) exactly the privileges each needs.\n"
    "\n",
    "\nTry 'sluice migrate --help'.", cmd_rows,
NULL, NULL };


static bool known_role(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof ROLES / sizeof *ROLES; i++)
        if (strlen(ROLES[i]) == n && strncmp(ROLES[i], name, n) == 0)
            return true;
    return false;
}

/* Applies the grants and the memberships; prints what it did. */
static int setup_roles(const char *url, bool create, char *const *grants, size_t ngrants, sl_err *err)
{
    sl_db *db = sl_db_connect(url, err);
    if (db == NULL)
        return -1;
    int rc = -1;
    const char *p[] = { create ? "t" : "f" };
    PGresult *res = sl_db_exec(db, "grant to the runtime roles",
                               "SELECT sluice_setup_roles($1::boolean)", 1, p, err);
    if (res == NULL)
        goto cleanup;
    printf("granted %s privileges to the sluice_* roles%s\n", PQgetvalue(res, 0, 0),
           create ? " (created where missing)" : "");
    PQclear(res);
    for (size_t i = 0; i < ngrants; i++) {
        const char *eq = strchr(grants[i], '=');
        char *role = sl_xasprintf("sluice_%.*s", (int)(eq - grants[i]), grants[i]);
        const char *gp[] = { role, eq + 1 };
        PGresult *q = sl_db_exec(db, "membership", "SELECT format('GRANT %I TO %I', $1::text, $2::text)",
                                 2, gp, err);
        int r = q ? sl_db_run(db, grants[i], PQgetvalue(q, 0, 0), 0, NULL, err) : -1;
        PQclear(q);
        if (r == 0)
            printf("%s is a member of %s\n", eq + 1, role);
        free(role);
        if (r < 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    sl_db_free(db);
    return rc;
}

int cmd_migrate(int argc, char **argv)
{
    const char *config = NULL;
    bool create = false;
    char **grants = sl_xcalloc((size_t)argc + 1, sizeof *grants);
    size_t ngrants = 0;
    int c, status = CLI_USAGE;
    sl_config *cfg = NULL;
    sl_store *store = NULL;
    sl_opts_parser op;
    const char *optval;
    sl_opts_begin(&op, &cmd_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        switch (c) {
        case 'R': create = true; break;
        case 'g': {
            const char *eq = strchr(optval, '=');
            if (eq == NULL || eq[1] == '\0' || !known_role(optval, (size_t)(eq - optval))) {
                status = cli_usage_error(CMD, "--grant '%s': expected ROLE=LOGIN with ROLE one of "
                                         "worker, scheduler, api, operator, breakglass", optval);
                goto out;
            }
            grants[ngrants++] = optarg;   /* the same string, not const */
            break;
        }
        case 'c': config = optval; break;
        default: status = op.status; goto out;
        }
    }
    if (optind != argc) {
        status = cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    status = CLI_FAILED;
    if ((cfg = cli_load_config(CMD, config)) == NULL)
        goto out;
    sl_err err;
    int applied = 0;
    store = sl_store_connect(cfg->database_url, &err);
    if (store == NULL || sl_store_migrate(store, &applied, &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    printf("applied %d migration%s; schema is up to date\n", applied, applied == 1 ? "" : "s");
    if ((applied > 0 || create || ngrants > 0) &&
        setup_roles(cfg->database_url, create, grants, ngrants, &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    status = CLI_OK;
out:
    sl_store_free(store);
    sl_config_free(cfg);
    free(grants);
    return status;
}
