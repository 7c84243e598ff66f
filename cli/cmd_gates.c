/* cmd_gates.c: approval gates from the command line:
 *   gates [--mine] [--json]  open gates and what the approvers decide on
 *                         (--mine, --json: through the API, as the caller)
 *   approve RUN GATE      approve (with a comment and inputs), through the API
 *   reject RUN GATE       reject (a comment is mandatory), through the API
 * The decision logic, refusals and auditing live in scheduler/gate.c and
 * migration 006; the API server calls it as the principal the caller's
 * token proves.  `sluice audit` is cli/cmd_audit.c. */
#include "apiclient.h"
#include "args.h"
#include "cli.h"
#include "db.h"
#include "gate.h"
#include "json.h"
#include "jsonval.h"
#include "mem.h"
#include "opts.h"
#include "pipeline.h"
#include "vis.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A database value as printed: visibly (vis.h). */
#define V(res, r, c) SL_VIS(PQgetvalue((res), (r), (c)))

enum { OPT_MINE = 256, OPT_JSON };

static const sl_opt gates_rows[] = {
    { OPT_MINE, "mine", 0, NULL, "only the gates you may decide (through the API, as the principal\n"
                                 "$SLUICE_TOKEN proves)" },
    { OPT_JSON, "json", 0, NULL, "print the API's JSON (GET /v1/gates; needs $SLUICE_TOKEN)" },
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts gates_opts = {
    "sluice gates",
    "Usage: sluice gates [--mine] [--json] [OPTIONS]\n"
    "\n"
    "Lists open approval gates: run, pipeline, gate, waiting since, deadline,\n"
    "approvals so far / required, who may still approve, the instructions, and\n"
    "the outputs of the steps the gate depends on.  Without --mine or --json it\n"
    "reads PostgreSQL; with either it asks the API server (api.url,\n"
    "$SLUICE_API_URL) with $SLUICE_TOKEN, like 'sluice approve'.  --mine lists\n"
    "the gates the token's principal may still decide: an approver, not the\n"
    "run's trigger unless the gate allows self-approval, not decided yet.\n"
    "\n",
    "\nTry 'sluice gates --help'.",
    gates_rows,
    NULL,
    NULL,
};

/* Prints the outputs of the steps gate gate_id needs, from the run's pipeline. */
static void print_evidence(sl_db *db, const sl_config *cfg, const char *run_id, const char *gate_id)
{
    sl_err err;
    const char *p[] = { run_id };
    PGresult *r = sl_db_exec(db, "source", "SELECT source_name, source FROM sluice_runs WHERE id = $1",
                             1, p, &err);
    if (r == NULL || PQntuples(r) == 0) {
        PQclear(r);
        return;
    }
    sl_yerrors errors = SL_YERRORS_INIT;
    sl_pipeline *pl = sl_pipeline_parse(PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
                                        (size_t)PQgetlength(r, 0, 1), sl_sched_config_of(cfg), &errors);
    sl_yerrors_free(&errors);
    PQclear(r);
    int k = pl ? sl_pipeline_step(pl, gate_id) : -1;
    for (size_t j = 0; k >= 0 && j < pl->steps[k].nneeds; j++) {
        const char *sp[] = { run_id, pl->steps[pl->steps[k].needs[j]].id };
        PGresult *s = sl_db_exec(db, "evidence", "SELECT status, coalesce(outputs::text, '{}')"
                                 " FROM sluice_run_steps WHERE run_id = $1 AND step_id = $2", 2, sp, &err);
        if (s && PQntuples(s) == 1) {
            printf("  evidence:     %s (%s) outputs ", SL_VIS(sp[1]), SL_VIS(PQgetvalue(s, 0, 0)));
            sl_vis_fputs(PQgetvalue(s, 0, 1), stdout);
            putchar('\n');
        }
        PQclear(s);
    }
    sl_pipeline_free(pl);
}

/* A string member of a JSON object, or "" (borrowed from o). */
static const char *member(const msgpack_object *o, const char *key, char *buf, size_t n)
{
    char *v = NULL;
    buf[0] = '\0';
    if (sl_args_str(o, key, false, &v, NULL) == 0 && v != NULL)
        snprintf(buf, n, "%s", v);
    free(v);
    return buf;
}

/* --mine without --json: the API's gates as a short list. */
static void print_api_gates(const char *json)
{
    sl_jsonval j;
    sl_jsonval_init(&j, json);
    if (!j.ok || j.up.data.type != MSGPACK_OBJECT_ARRAY || j.up.data.via.array.size == 0)
        printf("no open gates\n");
    for (uint32_t i = 0; j.ok && j.up.data.type == MSGPACK_OBJECT_ARRAY && i < j.up.data.via.array.size; i++) {
        const msgpack_object *g = &j.up.data.via.array.ptr[i];
        char run[128], gate[128], pipeline[128], deadline[64], instructions[512];
        member(g, "run", run, sizeof run);
        member(g, "gate", gate, sizeof gate);
        member(g, "pipeline", pipeline, sizeof pipeline);
        member(g, "deadline", deadline, sizeof deadline);
        member(g, "instructions", instructions, sizeof instructions);
        printf("%s %s  gate %s\n", SL_VIS(pipeline), SL_VIS(run), SL_VIS(gate));
        printf("  deadline:     %s\n", *deadline ? SL_VIS(deadline) : "none");
        if (*instructions)
            printf("  instructions: %s\n", SL_VIS(instructions));
    }
    sl_jsonval_free(&j);
}

/* `sluice gates --mine` / `--json`: GET /v1/gates[?mine=true] as the token's principal. */
static int api_gates(const sl_config *cfg, bool mine, bool json)
{
    sl_err err;
    cli_api_reply reply = { 0 };
    if (cli_api(cfg, "GET", mine ? "/v1/gates?mine=true" : "/v1/gates", NULL, &reply, &err) < 0) {
        sl_buf_free(&reply.body);
        return cli_fail("gates", "%s", err.msg);
    }
    int status = CLI_OK;
    if (reply.status != 200)
        status = cli_api_fail("gates", &reply);
    else if (json)
        printf("%s\n", sl_buf_str(&reply.body));   /* JSON escapes every control character */
    else
        print_api_gates(sl_buf_str(&reply.body));
    sl_buf_free(&reply.body);
    return status;
}

int cmd_gates(int argc, char **argv)
{
    const char *config = NULL, *value;
    bool mine = false, json = false;
    sl_opts_parser op;
    sl_opts_begin(&op, &gates_opts, argc, argv);
    for (int id; (id = sl_opts_next(&op, &value)) != SL_OPTS_END;) {
        switch (id) {
        case OPT_MINE: mine = true; break;
        case OPT_JSON: json = true; break;
        case 'c': config = value; break;
        default: return op.status;
        }
    }
    if (op.optind < argc)
        return sl_opts_error(&gates_opts, "unexpected argument '%s'", argv[op.optind]);
    sl_config *cfg = cli_load_config("gates", config);
    if (cfg == NULL)
        return CLI_FAILED;
    if (mine || json) {
        int st = api_gates(cfg, mine, json);
        sl_config_free(cfg);
        return st;
    }
    sl_err err;
    int status = CLI_FAILED;
    sl_db *db = sl_db_connect(cfg->database_url, &err);
    PGresult *res = db ? sl_db_exec(db, "gates",
        "SELECT g.run_id, r.pipeline, g.gate_id,"
        " to_char(g.opened_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
        " coalesce(to_char(g.deadline AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC', 'none'),"
        " (SELECT count(*) FROM sluice_audit a WHERE a.run_id = g.run_id AND a.gate_id = g.gate_id"
        "  AND a.decision = 'approve'), g.required,"
        " array_to_string(ARRAY(SELECT u FROM unnest(g.approvers) u WHERE NOT EXISTS ("
        "  SELECT 1 FROM sluice_audit a WHERE a.run_id = g.run_id AND a.gate_id = g.gate_id"
        "  AND a.actor = u AND a.decision IN ('approve', 'reject'))"
        "  AND (g.allow_self OR u <> g.triggered_by)), ', '),"
        " coalesce(g.instructions, ''), r.triggered_by, g.input_spec::text"
        " FROM sluice_gates g JOIN sluice_runs r ON r.id = g.run_id WHERE g.status = 'open'"
        " ORDER BY g.opened_at", 0, NULL, &err) : NULL;
    if (res == NULL) {
        cli_fail("gates", "%s", err.msg);
        goto out;
    }
    if (PQntuples(res) == 0)
        printf("no open gates\n");
    for (int r = 0; r < PQntuples(res); r++) {
        /* Every value may come from someone else (names, vars, instructions):
         * shown visibly, never obeyed by the terminal (vis.h). */
        printf("%s %s  gate %s\n", V(res, r, 1), V(res, r, 0), V(res, r, 2));
        printf("  waiting since %s UTC, deadline %s\n", V(res, r, 3), V(res, r, 4));
        printf("  approvals:    %s of %s (run triggered by %s)\n", V(res, r, 5), V(res, r, 6),
               V(res, r, 9));
        printf("  may approve:  %s\n", *PQgetvalue(res, r, 7) ? V(res, r, 7) : "(nobody left)");
        if (strcmp(PQgetvalue(res, r, 10), "[]") != 0) {
            fputs("  inputs:       ", stdout);
            sl_vis_fputs(PQgetvalue(res, r, 10), stdout);
            putchar('\n');
        }
        if (*PQgetvalue(res, r, 8)) {
            fputs("  instructions: ", stdout);
            sl_vis_fputs(PQgetvalue(res, r, 8), stdout);
            putchar('\n');
        }
        print_evidence(db, cfg, PQgetvalue(res, r, 0), PQgetvalue(res, r, 2));
    }
    PQclear(res);
    status = CLI_OK;
out:
    sl_db_free(db);
    sl_config_free(cfg);
    return status;
}

#define DECIDE_TEXT \
    "The decision is sent to the API server (api.url, $SLUICE_API_URL) with the\n" \
    "token in $SLUICE_TOKEN; the approver is the token's user, never a name\n" \
    "given here.  It is refused (exit 1, recorded as refused in the audit trail)\n" \
    "when that user is not an approver of the gate, triggered the run and the\n" \
    "gate does not allow self-approval, already decided at this gate, or when\n" \
    "the gate is not open.  Every decision is recorded in the audit trail with\n" \
    "the user, how the token proved it, and the client address.\n" \
    "\n"

static const sl_opt approve_rows[] = {
    { 'm', "comment", 'm', "TEXT", "why" },
    { 'i', "input", 'i', "NAME=VALUE", "a value for an input of the gate (repeatable)" },
    CLI_ROW_CONFIG,
    CLI_ROW_HELP,
    { 0 },
};

static const sl_opt reject_rows[] = {
    { 'm', "comment", 'm', "TEXT", "why (mandatory)" },
    { 'i', "input", 'i', "NAME=VALUE", "(approvals only: refused here)" },
    CLI_ROW_CONFIG,
    CLI_ROW_HELP,
    { 0 },
};

static const sl_opts approve_opts = CLI_OPTS("approve",
    "Usage: sluice approve RUN GATE [--comment TEXT] [--input NAME=VALUE]...\n"
    "\n"
    "Approves gate GATE of run RUN.  When the gate has its required number of\n"
    "approvals it is released and the steps after it start.  Inputs are the\n"
    "typed values the gate declares (see 'sluice gates').\n"
    "\n" DECIDE_TEXT,
    approve_rows);

static const sl_opts reject_opts = CLI_OPTS("reject",
    "Usage: sluice reject RUN GATE --comment TEXT\n"
    "\n"
    "Rejects gate GATE of run RUN: the gate closes and the run fails.\n"
    "\n" DECIDE_TEXT,
    reject_rows);

/* Appends {"NAME": "VALUE", ...} of pairs[0..n) ("NAME=VALUE") to b. */
static void put_pairs(sl_buf *b, char *const *pairs, size_t n)
{
    sl_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(pairs[i], '=');
        if (i)
            sl_buf_putc(b, ',');
        sl_json_put_string(b, pairs[i], (size_t)(eq - pairs[i]));
        sl_buf_putc(b, ':');
        sl_json_put_string(b, eq + 1, strlen(eq + 1));
    }
    sl_buf_putc(b, '}');
}

static int decide(int argc, char **argv, bool approve)
{
    const char *cmd = approve ? "approve" : "reject";
    const char *config = NULL, *comment = NULL, *optval;
    char **inputs = sl_xcalloc((size_t)argc + 1, sizeof *inputs);
    size_t ninputs = 0;
    int c, status = CLI_FAILED;
    sl_opts_parser op;
    sl_opts_begin(&op, approve ? &approve_opts : &reject_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        switch (c) {
        case 'm': comment = optval; break;
        case 'i':
            if (!approve || strchr(optval, '=') == NULL) {
                free(inputs);
                return cli_usage_error(cmd, approve ? "--input '%s': expected NAME=VALUE"
                                                    : "--input is for approvals%s", approve ? optval : "");
            }
            inputs[ninputs++] = optarg;   /* the same string, not const */
            break;
        case 'c': config = optval; break;
        default: free(inputs); return op.status;
        }
    }
    if (optind + 2 != argc) {
        free(inputs);
        return cli_usage_error(cmd, "expected RUN and GATE");
    }
    if (!approve && (comment == NULL || *comment == '\0')) {
        free(inputs);
        return cli_usage_error(cmd, "a rejection needs --comment TEXT saying why");
    }
    sl_config *cfg = cli_load_config(cmd, config);
    sl_err err;
    sl_buf body = SL_BUF_INIT;
    cli_api_reply reply = { 0 };
    char *path = NULL;
    if (cfg == NULL)
        goto out;
    sl_buf_puts(&body, "{\"inputs\":");
    put_pairs(&body, inputs, ninputs);
    if (comment) {
        sl_buf_puts(&body, ",\"comment\":");
        sl_json_put_string(&body, comment, strlen(comment));
    }
    sl_buf_putc(&body, '}');
    path = cli_api_path("/v1/runs/%s/gates/%s/%s", argv[optind], argv[optind + 1], cmd);
    if (cli_api(cfg, "POST", path, sl_buf_str(&body), &reply, &err) < 0) {
        cli_fail(cmd, "%s", err.msg);
        goto out;
    }
    if (reply.status != 200) {
        cli_api_fail(cmd, &reply);
        goto out;
    }
    sl_jsonval j;
    sl_jsonval_init(&j, sl_buf_str(&reply.body));
    char *msg = NULL;
    if (j.ok)
        sl_args_str(&j.up.data, "message", false, &msg, NULL);
    printf("%s\n", msg ? msg : "ok");
    free(msg);
    sl_jsonval_free(&j);
    status = CLI_OK;
out:
    free(path);
    sl_buf_free(&reply.body);
    sl_buf_free(&body);
    sl_config_free(cfg);
    free(inputs);
    return status;
}

int cmd_approve(int argc, char **argv) { return decide(argc, argv, true); }
int cmd_reject(int argc, char **argv) { return decide(argc, argv, false); }
