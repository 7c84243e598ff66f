/* cmd_breakglass.c: `sluice break-glass approve|reject RUN GATE`: an
 * emergency decision straight through PostgreSQL, for when the API server
 * or every approver is unavailable.  The database login must be a member
 * of sluice_breakglass; it is the principal (method "break-glass" in the
 * audit trail), and the row is signed with the break-glass key given.
 * The logic is sl_gate_breakglass (scheduler/gate.c, migration 006). */
#include "cli.h"
#include "db.h"
#include "gate.h"
#include "mem.h"
#include "sign.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "break-glass"

static const sl_opt cmd_rows[] = {
    { 'k', "key", 'k', "FILE", "the break-glass Ed25519 private key (PEM)" },
    { 'm', "comment", 'm', "TEXT", "why (mandatory)" },
    { 'i', "input", 'i', "NAME=VALUE", "a value for an input of the gate (approve; repeatable)" },
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts cmd_opts = { "sluice break-glass",
    "Usage: sluice break-glass approve RUN GATE --key FILE --comment TEXT [--input NAME=VALUE]...\n"
    "       sluice break-glass reject RUN GATE --key FILE --comment TEXT\n"
    "\n"
    "An emergency decision made directly in PostgreSQL, bypassing the API server:\n"
    "one break-glass approval releases the gate whoever its approvers are, one\n"
    "rejection fails the run.  The database login (database.url or\n"
    "SLUICE_DATABASE_URL) must be a member of the role sluice_breakglass; it is\n"
    "recorded as the principal, with method \"break-glass\" and the client\n"
    "address, and the audit row is signed with --key (the break-glass private\n"
    "key, whose public key `sluice audit verify --public-key` is given).  The\n"
    "gate must be open; inputs without a default still need a value.\n"
    "\n",
    "\nTry 'sluice break-glass --help'.", cmd_rows,
NULL, NULL };


int cmd_breakglass(int argc, char **argv)
{
    const char *config = NULL, *keyfile = NULL, *comment = NULL;
    char **inputs = sl_xcalloc((size_t)argc + 1, sizeof *inputs);
    size_t ninputs = 0;
    int c, status = CLI_USAGE;
    sl_config *cfg = NULL;
    sl_sign_key *key = NULL;
    sl_db *db = NULL;
    sl_opts_parser op;
    const char *optval;
    sl_opts_begin(&op, &cmd_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        switch (c) {
        case 'k': keyfile = optval; break;
        case 'm': comment = optval; break;
        case 'i':
            if (strchr(optval, '=') == NULL) {
                status = cli_usage_error(CMD, "--input '%s': expected NAME=VALUE", optval);
                goto out;
            }
            inputs[ninputs++] = optarg;   /* the same string, not const */
            break;
        case 'c': config = optval; break;
        default: status = op.status; goto out;
        }
    }
    if (optind + 3 != argc ||
        (strcmp(argv[optind], "approve") != 0 && strcmp(argv[optind], "reject") != 0)) {
        status = cli_usage_error(CMD, "expected approve|reject RUN GATE");
        goto out;
    }
    bool approve = strcmp(argv[optind], "approve") == 0;
    if (comment == NULL || *comment == '\0' || keyfile == NULL) {
        status = cli_usage_error(CMD, "a break-glass decision needs --comment TEXT and --key FILE");
        goto out;
    }
    if (!approve && ninputs > 0) {
        status = cli_usage_error(CMD, "--input is for approvals");
        goto out;
    }
    status = CLI_FAILED;
    sl_err err;
    sl_gate_result res;
    if ((key = sl_sign_load_private(keyfile, &err)) == NULL) {
        cli_fail(CMD, "--key %s", err.msg);
        goto out;
    }
    if ((cfg = cli_load_config(CMD, config)) == NULL)
        goto out;
    if ((db = sl_db_connect(cfg->database_url, &err)) == NULL) {
        cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    sl_db_set_audit_key(db, key);
    if (sl_gate_breakglass(db, argv[optind + 1], argv[optind + 2], approve, comment, inputs, ninputs,
                           &res, &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    if (res.refused) {
        cli_fail(CMD, "refused: %s", res.message);
        goto out;
    }
    printf("%s\n", res.message);
    status = CLI_OK;
out:
    sl_db_free(db);
    sl_sign_key_free(key);
    sl_config_free(cfg);
    free(inputs);
    return status;
}
