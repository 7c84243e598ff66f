/* gate.c: see gate.h.  The decision logic itself is SQL (migration 006:
 * sluice_gate_decide, sluice_gate_breakglass, sluice_gate_time_out), run
 * as the schema owner with the caller's role only allowed to EXECUTE it;
 * this file passes the principal and the inputs in, signs the audit row
 * the function appended (scheduler/audit.h) and commits both together. */
#include "gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "buf.h"
#include "json.h"
#include "log.h"

/* The "NAME=VALUE" inputs as a JSON array of strings. */
static void inputs_array(char *const *inputs, size_t n, sl_buf *out)
{
    sl_buf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        sl_buf_puts(out, i ? "," : "");
        sl_json_put_string(out, inputs[i], strlen(inputs[i]));
    }
    sl_buf_putc(out, ']');
}

/* Inside a transaction: runs a decision function (sql, its n params) whose
 * columns are refused, closed, approvals, required, message, audit_seq,
 * audit_hash; fills out, signs the audit row and commits.  Rolls back and
 * returns -1 with err on failure. */
static int decide(sl_db *db, const char *sql, int n, const char *const *params, sl_gate_result *out,
                  sl_err *err)
{
    memset(out, 0, sizeof *out);
    if (sl_db_begin(db, err) < 0)
        return -1;
    PGresult *res = sl_db_exec(db, "gate decision", sql, n, params, err);
    if (res == NULL) {
        if (err != NULL && strstr(err->msg, "permission denied for function"))
            sl_err_wrap(err, "this database login may not record gate decisions (only members of "
                        "sluice_api, or sluice_breakglass for `sluice break-glass`; docs/security.md)");
        goto fail;
    }
    out->refused = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    out->closed = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    out->approvals = atoi(PQgetvalue(res, 0, 2));
    out->required = atoi(PQgetvalue(res, 0, 3));
    snprintf(out->message, sizeof out->message, "%s", PQgetvalue(res, 0, 4));
    int rc = sl_audit_sign_row(db, PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 6), err);
    PQclear(res);
    if (rc < 0 || sl_db_commit(db, err) < 0)
        goto fail;
    return 0;
fail:
    sl_db_rollback(db);
    return -1;
}

int sl_gate_decide(sl_db *db, const char *run_id, const char *gate_id, const sl_principal *who,
                   bool approve, const char *comment, char *const *inputs, size_t ninputs,
                   sl_gate_result *out, sl_err *err)
{
    sl_buf in = SL_BUF_INIT;
    inputs_array(inputs, ninputs, &in);
    const char *p[] = { run_id, gate_id, who->name, who->method, who->address, approve ? "t" : "f",
                        comment, sl_buf_str(&in) };
    int rc = decide(db, "SELECT * FROM sluice_gate_decide($1, $2, $3, $4, $5, $6::boolean, $7,"
                    " $8::jsonb)", 8, p, out, err);
    sl_buf_free(&in);
    return rc;
}

int sl_gate_breakglass(sl_db *db, const char *run_id, const char *gate_id, bool approve,
                       const char *comment, char *const *inputs, size_t ninputs,
                       sl_gate_result *out, sl_err *err)
{
    sl_buf in = SL_BUF_INIT;
    inputs_array(inputs, ninputs, &in);
    const char *p[] = { run_id, gate_id, approve ? "t" : "f", comment, sl_buf_str(&in) };
    int rc = decide(db, "SELECT * FROM sluice_gate_breakglass($1, $2, $3::boolean, $4, $5::jsonb)",
                    5, p, out, err);
    sl_buf_free(&in);
    if (rc == 0 && !out->refused)
        SL_WARN("gate.break_glass", "run=%s gate=%s decision=%s", run_id, gate_id,
                approve ? "approve" : "reject");
    return rc;
}

int sl_gate_expire(sl_db *db, int *closed, sl_err *err)
{
    int count = 0;
    PGresult *res = sl_db_exec(db, "due gates", "SELECT run_id, gate_id FROM sluice_gates"
                               " WHERE status = 'open' AND deadline <= now()", 0, NULL, err);
    if (res == NULL)
        return -1;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *p[] = { PQgetvalue(res, r, 0), PQgetvalue(res, r, 1) };
        if (sl_db_begin(db, err) < 0)
            goto fail;
        PGresult *t = sl_db_exec(db, "time out gate", "SELECT closed, outcome, audit_seq, audit_hash"
                                 " FROM sluice_gate_time_out($1, $2)", 2, p, err);
        if (t == NULL)
            goto rollback;
        bool done = strcmp(PQgetvalue(t, 0, 0), "t") == 0;
        char outcome[16];
        snprintf(outcome, sizeof outcome, "%s", PQgetvalue(t, 0, 1));
        int rc = done ? sl_audit_sign_row(db, PQgetvalue(t, 0, 2), PQgetvalue(t, 0, 3), err) : 0;
        PQclear(t);
        if (rc < 0 || sl_db_commit(db, err) < 0)
            goto rollback;
        if (done) {
            SL_INFO("gate.timed_out", "run=%s gate=%s outcome=%s", p[0], p[1], outcome);
            count++;
        }
    }
    PQclear(res);
    if (closed)
        *closed = count;
    return 0;
rollback:
    sl_db_rollback(db);
fail:
    PQclear(res);
    return -1;
}
