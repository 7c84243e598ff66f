/* cmd_token.c: `sluice token create|list|revoke`: API tokens (server/tokens.h).
 * These talk to PostgreSQL directly: issuing credentials is an operator's
 * act, done with the database credentials, not through the API. */
#include "cli.h"
#include "db.h"
#include "duration.h"
#include "tokens.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#define CMD "token"

static const sl_opt cmd_rows[] = {
    { 'u', "user", 'u', "NAME", "who the token acts as (create)" },
    { 's', "scopes", 's', "LIST", "what it may do (create)" },
    { 'e', "expires", 'e', "DURATION", "lifetime, e.g. 90d, 12h (create; default: never)" },
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts cmd_opts = { "sluice token",
    "Usage: sluice token create --user NAME --scopes LIST [--expires DURATION]\n"
    "       sluice token list\n"
    "       sluice token revoke ID\n"
    "\n"
    "API tokens authenticate programs and the CLI to the API server ('sluice\n"
    "serve'; the CLI sends $SLUICE_TOKEN).  'create' prints the token once:\n"
    "only its SHA-256 is stored, so it cannot be shown again.  The token acts as\n"
    "user NAME: runs it triggers record NAME, and NAME is the approver of the\n"
    "gates it approves.  Scopes (comma-separated): enqueue (POST jobs), trigger\n"
    "(start runs), approve (approve/reject gates), read (runs, gates, jobs,\n"
    "audit), admin (everything).  'list' shows ids, users, scopes and expiry,\n"
    "never tokens; 'revoke ID' makes a token worthless at once.\n"
    "\n",
    "\nTry 'sluice token --help'.", cmd_rows,
NULL, NULL };


static int create(sl_db *db, const char *user, const char *scopes, int64_t expires_ms)
{
    unsigned mask;
    sl_err err;
    if (sl_scopes_parse(scopes, &mask, &err) < 0)
        return cli_usage_error(CMD, "--scopes: %s", err.msg);
    char token[SL_TOKEN_MAX], id[SL_TOKEN_ID_MAX];
    if (sl_token_create(db, user, mask, expires_ms, token, id, &err) < 0)
        return cli_fail(CMD, "%s", err.msg);
    printf("%s\n", token);
    fprintf(stderr, "token %s for %s created; it is shown only this once\n", id, user);
    return fflush(stdout) == 0 ? CLI_OK : CLI_FAILED;
}

static int list(sl_db *db)
{
    sl_err err;
    PGresult *r = sl_db_exec(db, "tokens", "SELECT id, user_name, array_to_string(scopes, ','),"
                             " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),"
                             " coalesce(to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), 'never'),"
                             " CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN expires_at <= now()"
                             " THEN 'expired' ELSE 'active' END,"
                             " coalesce(to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '-')"
                             " FROM sluice_api_tokens ORDER BY created_at", 0, NULL, &err);
    if (r == NULL)
        return cli_fail(CMD, "%s", err.msg);
    printf("%-16s  %-16s  %-28s  %-16s  %-16s  %-7s  %s\n", "ID", "USER", "SCOPES", "CREATED (UTC)",
           "EXPIRES", "STATE", "LAST USED");
    for (int i = 0; i < PQntuples(r); i++) {
        char user[17];
        size_t n = 0;
        for (const char *p = PQgetvalue(r, i, 1); *p && n < 16; p++)
            user[n++] = (*p < 0x20 || *p == 0x7f) ? '?' : *p;   /* never a terminal escape */
        user[n] = '\0';
        printf("%-16s  %-16s  %-28s  %-16s  %-16s  %-7s  %s\n", PQgetvalue(r, i, 0), user, PQgetvalue(r, i, 2),
               PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
    }
    PQclear(r);
    return CLI_OK;
}

int cmd_token(int argc, char **argv)
{
    const char *config = NULL, *user = NULL, *scopes = NULL, *expires = NULL;
    int c;
    sl_opts_parser op;
    const char *optval;
    sl_opts_begin(&op, &cmd_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        switch (c) {
        case 'u': user = optval; break;
        case 's': scopes = optval; break;
        case 'e': expires = optval; break;
        case 'c': config = optval; break;
        default: return op.status;
        }
    }
    if (optind >= argc)
        return cli_usage_error(CMD, "expected create, list or revoke");
    const char *sub = argv[optind];
    int64_t expires_ms = 0;
    if (strcmp(sub, "create") == 0) {
        if (user == NULL || *user == '\0' || scopes == NULL)
            return cli_usage_error(CMD, "create needs --user NAME and --scopes LIST");
        if (optind + 1 != argc)
            return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
        sl_err err;
        if (expires && (sl_duration_parse(expires, &expires_ms, &err) < 0 || expires_ms <= 0))
            return cli_usage_error(CMD, "--expires '%s': expected a positive duration such as 90d", expires);
        unsigned mask;
        if (sl_scopes_parse(scopes, &mask, &err) < 0)
            return cli_usage_error(CMD, "--scopes: %s", err.msg);
    } else if (strcmp(sub, "list") == 0) {
        if (optind + 1 != argc)
            return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    } else if (strcmp(sub, "revoke") == 0) {
        if (optind + 2 != argc)
            return cli_usage_error(CMD, "revoke needs exactly one token ID");
    } else {
        return cli_usage_error(CMD, "unknown subcommand '%s' (expected create, list or revoke)", sub);
    }
    sl_config *cfg = cli_load_config(CMD, config);
    if (cfg == NULL)
        return CLI_FAILED;
    sl_err err;
    int status = CLI_FAILED;
    sl_db *db = sl_db_connect(cfg->database_url, &err);
    if (db == NULL) {
        cli_fail(CMD, "%s", err.msg);
    } else if (strcmp(sub, "create") == 0) {
        status = create(db, user, scopes, expires_ms);
    } else if (strcmp(sub, "list") == 0) {
        status = list(db);
    } else if (sl_token_revoke(db, argv[optind + 1], &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
    } else {
        printf("token %s revoked\n", argv[optind + 1]);
        status = CLI_OK;
    }
    sl_db_free(db);
    sl_config_free(cfg);
    return status;
}
