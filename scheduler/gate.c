/* gate.c: see gate.h. */
#include "gate.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "buf.h"
#include "json.h"
#include "jsonval.h"
#include "log.h"
#include "mem.h"

static int audit(sl_db *db, const char *run, const char *gate, const char *actor,
                 const char *decision, const char *comment, const char *inputs, const char *reason,
                 sl_err *err)
{
    const char *p[] = { run, gate, actor, decision, comment, inputs, reason };
    return sl_db_run(db, "audit", "SELECT sluice_audit_append($1, $2, $3, $4, $5, $6::jsonb, $7)",
                     7, p, err);
}

/* Finds "name" in the spec array ([{name,type,default}]); returns its type or NULL. */
static const char *spec_type(const msgpack_object *spec, const char *name, size_t len,
                             const msgpack_object **dflt)
{
    for (uint32_t i = 0; spec && spec->type == MSGPACK_OBJECT_ARRAY && i < spec->via.array.size; i++) {
        const msgpack_object *it = &spec->via.array.ptr[i];
        const msgpack_object *nm = sl_args_get(it, "name"), *ty = sl_args_get(it, "type");
        if (nm && nm->type == MSGPACK_OBJECT_STR && nm->via.str.size == len &&
            memcmp(nm->via.str.ptr, name, len) == 0 && ty && ty->type == MSGPACK_OBJECT_STR) {
            if (dflt)
                *dflt = sl_args_get(it, "default");
            return ty->via.str.ptr;   /* msgpack str is not NUL-terminated: compare with prefix */
        }
    }
    return NULL;
}

static bool type_is(const char *t, const char *want)
{
    return strncmp(t, want, strlen(want)) == 0;
}

/* Turns the "k=v" inputs into a JSON object per the spec; on a bad one
 * writes the reason and returns -1. */
static int inputs_json(const msgpack_object *spec, char *const *inputs, size_t n, sl_buf *out,
                       char *why, size_t whyn)
{
    sl_buf_putc(out, '{');
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(inputs[i], '=');
        if (eq == NULL) {
            snprintf(why, whyn, "input '%s' is not NAME=VALUE", inputs[i]);
            return -1;
        }
        size_t nl = (size_t)(eq - inputs[i]);
        const char *val = eq + 1;
        const char *t = spec_type(spec, inputs[i], nl, NULL);
        if (t == NULL) {
            snprintf(why, whyn, "this gate has no input '%.*s'", (int)nl, inputs[i]);
            return -1;
        }
        sl_buf_puts(out, i ? "," : "");
        sl_json_put_string(out, inputs[i], nl);
        sl_buf_putc(out, ':');
        if (type_is(t, "int")) {
            char *end;
            const char *v = val;
            if (*v == '-' || *v == '+')
                v++;
            if (!isdigit((unsigned char)*v) || (strtoll(val, &end, 10), *end != '\0')) {
                snprintf(why, whyn, "input '%.*s' must be an int, got '%.60s'", (int)nl, inputs[i], val);
                return -1;
            }
            sl_buf_printf(out, "%lld", strtoll(val, NULL, 10));
        } else if (type_is(t, "bool")) {
            if (strcmp(val, "true") != 0 && strcmp(val, "false") != 0) {
                snprintf(why, whyn, "input '%.*s' must be true or false, got '%.60s'", (int)nl,
                         inputs[i], val);
                return -1;
            }
            sl_buf_puts(out, val);
        } else {
            sl_json_put_string(out, val, strlen(val));
        }
    }
    sl_buf_putc(out, '}');
    return 0;
}

/* Inside the transaction: the gate's final inputs (defaults < supplied)
 * into out.  Returns 0; -1 with the missing inputs named in why; -2 with
 * err if the database failed. */
static int final_inputs(sl_db *db, const char *spec_json, const char *supplied, sl_buf *out,
                        char *why, size_t whyn, sl_err *err)
{
    const char *p[] = { spec_json, supplied };
    PGresult *res = sl_db_exec(db, "merge inputs",
        "SELECT coalesce((SELECT jsonb_object_agg(s->>'name', s->'default') FROM"
        " jsonb_array_elements($1::jsonb) s WHERE s ? 'default'), '{}'::jsonb) || $2::jsonb,"
        " (SELECT string_agg(s->>'name', ', ') FROM jsonb_array_elements($1::jsonb) s"
        "  WHERE NOT s ? 'default' AND NOT $2::jsonb ? (s->>'name'))", 2, p, err);
    if (res == NULL)
        return -2;
    int rc = 0;
    if (!PQgetisnull(res, 0, 1)) {
        snprintf(why, whyn, "approving now would release the gate, but input(s) %s have no value: "
                 "supply them with --input NAME=VALUE", PQgetvalue(res, 0, 1));
        rc = -1;
    } else {
        sl_buf_puts(out, PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return rc;
}

int sl_gate_decide(sl_db *db, const char *run_id, const char *gate_id, const sl_principal *who,
                   bool approve, const char *comment, char *const *inputs, size_t ninputs,
                   sl_gate_result *out, sl_err *err)
{
    const char *user = who->name;
    memset(out, 0, sizeof *out);
    char why[512] = "";
    sl_buf in = SL_BUF_INIT, fin = SL_BUF_INIT;
    const char *decision = approve ? "approve" : "reject";
    sl_jsonval spec;
    bool spec_set = false;
    PGresult *g = NULL;
    const char *p2[] = { run_id, gate_id, user };
    if (sl_db_begin(db, err) < 0)
        return -1;
    g = sl_db_exec(db, "lock gate", "SELECT status, $3 = ANY (approvers), required, allow_self,"
                   " triggered_by, input_spec::text, inputs::text FROM sluice_gates"
                   " WHERE run_id = $1 AND gate_id = $2 FOR UPDATE", 3, p2, err);
    if (g == NULL)
        goto fail;
    if (PQntuples(g) == 0) {
        snprintf(why, sizeof why, "gate '%s' of run %s is not open (no such run or gate, or the run "
                 "has not reached it)", gate_id, run_id);
        goto refuse;
    }
    out->required = atoi(PQgetvalue(g, 0, 2));
    if (strcmp(PQgetvalue(g, 0, 0), "open") != 0) {
        snprintf(why, sizeof why, "gate '%s' of run %s is not open: it was %s", gate_id, run_id,
                 PQgetvalue(g, 0, 0));
        goto refuse;
    }
    if (strcmp(PQgetvalue(g, 0, 1), "t") != 0) {
        snprintf(why, sizeof why, "%s is not an approver of gate '%s'", user, gate_id);
        goto refuse;
    }
    if (strcmp(PQgetvalue(g, 0, 3), "t") != 0 && strcmp(PQgetvalue(g, 0, 4), user) == 0) {
        snprintf(why, sizeof why, "%s triggered run %s and gate '%s' does not allow self-approval",
                 user, run_id, gate_id);
        goto refuse;
    }
    PGresult *d = sl_db_exec(db, "earlier decision", "SELECT decision FROM sluice_audit WHERE run_id = $1"
                             " AND gate_id = $2 AND actor = $3 AND decision IN ('approve', 'reject')",
                             3, p2, err);
    if (d == NULL)
        goto fail;
    if (PQntuples(d) > 0) {
        snprintf(why, sizeof why, "%s already decided at gate '%s' (%s)", user, gate_id,
                 PQgetvalue(d, 0, 0));
        PQclear(d);
        goto refuse;
    }
    PQclear(d);
    if (!approve && ninputs > 0) {
        snprintf(why, sizeof why, "inputs are given with an approval, not a rejection");
        goto refuse;
    }
    sl_jsonval_init(&spec, PQgetvalue(g, 0, 5));
    spec_set = true;
    if (inputs_json(spec.ok ? &spec.up.data : NULL, inputs, ninputs, &in, why, sizeof why) < 0) {
        sl_buf_reset(&in);   /* a partial object is not JSON */
        goto refuse;
    }
    if (approve) {
        const char *cp[] = { run_id, gate_id, PQgetvalue(g, 0, 6), sl_buf_str(&in) };
        PGresult *c = sl_db_exec(db, "count approvals", "SELECT count(*) FROM sluice_audit WHERE"
                                 " run_id = $1 AND gate_id = $2 AND decision = 'approve'", 2, cp, err);
        if (c == NULL)
            goto fail;
        out->approvals = atoi(PQgetvalue(c, 0, 0)) + 1;
        PQclear(c);
        PGresult *m = sl_db_exec(db, "merge", "SELECT ($1::jsonb || $2::jsonb)::text", 2, cp + 2, err);
        if (m == NULL)
            goto fail;
        char *merged = sl_xstrdup(PQgetvalue(m, 0, 0));
        PQclear(m);
        if (out->approvals >= out->required) {
            int r = final_inputs(db, PQgetvalue(g, 0, 5), merged, &fin, why, sizeof why, err);
            if (r == -2) {
                free(merged);
                goto fail;
            }
            if (r < 0) {
                free(merged);
                goto refuse;
            }
        }
        const char *up[] = { run_id, gate_id, merged };
        const char *rel[] = { run_id, gate_id, sl_buf_str(&fin) };
        int r = audit(db, run_id, gate_id, user, decision, comment, sl_buf_str(&in), NULL, err);
        if (r == 0)
            r = sl_db_run(db, "gate inputs", "UPDATE sluice_gates SET inputs = $3::jsonb"
                          " WHERE run_id = $1 AND gate_id = $2", 3, up, err);
        if (r == 0 && out->approvals >= out->required) {
            out->closed = true;
            r = sl_db_run(db, "release gate", "UPDATE sluice_gates SET status = 'approved',"
                          " decided_at = now(), inputs = $3::jsonb WHERE run_id = $1 AND gate_id = $2",
                          3, rel, err);
            if (r == 0)
                r = sl_db_run(db, "gate step", "UPDATE sluice_run_steps SET status = 'succeeded',"
                              " outputs = $3::jsonb, finished_at = now() WHERE run_id = $1"
                              " AND step_id = $2 AND status = 'waiting'", 3, rel, err);
        }
        free(merged);
        if (r < 0)
            goto fail;
        snprintf(out->message, sizeof out->message, "%s approved gate '%s' of run %s (%d of %d)%s",
                 user, gate_id, run_id, out->approvals, out->required,
                 out->closed ? ": the gate is released" : "");
    } else {
        char *e = sl_xasprintf("rejected by %s: %s", user, comment ? comment : "");
        const char *rp[] = { run_id, gate_id, e };
        int r = audit(db, run_id, gate_id, user, decision, comment, NULL, NULL, err);
        if (r == 0)
            r = sl_db_run(db, "reject gate", "UPDATE sluice_gates SET status = 'rejected', decided_at = now()"
                          " WHERE run_id = $1 AND gate_id = $2", 2, rp, err);
        if (r == 0)
            r = sl_db_run(db, "gate step", "UPDATE sluice_run_steps SET status = 'failed', error = $3,"
                          " finished_at = now() WHERE run_id = $1 AND step_id = $2 AND status = 'waiting'",
                          3, rp, err);
        free(e);
        if (r < 0)
            goto fail;
        out->closed = true;
        snprintf(out->message, sizeof out->message, "%s rejected gate '%s' of run %s: the run fails",
                 user, gate_id, run_id);
    }
    if (out->closed) {
        const char *np[] = { run_id };
        if (sl_db_run(db, "notify", "SELECT pg_notify('sluice_gates', $1)", 1, np, err) < 0)
            goto fail;
    }
    if (sl_db_commit(db, err) < 0)
        goto fail;
    goto done;

refuse:
    if (audit(db, run_id, gate_id, user, "refused", comment, in.len ? sl_buf_str(&in) : NULL, why,
              err) < 0 ||
        sl_db_commit(db, err) < 0)
        goto fail;
    out->refused = true;
    snprintf(out->message, sizeof out->message, "%s", why);
    goto done;
fail:
    sl_db_rollback(db);
    PQclear(g);
    if (spec_set)
        sl_jsonval_free(&spec);
    sl_buf_free(&in);
    sl_buf_free(&fin);
    return -1;
done:
    PQclear(g);
    if (spec_set)
        sl_jsonval_free(&spec);
    sl_buf_free(&in);
    sl_buf_free(&fin);
    return 0;
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
        PGresult *g = sl_db_exec(db, "lock gate", "SELECT on_timeout, input_spec::text, inputs::text"
                                 " FROM sluice_gates WHERE run_id = $1 AND gate_id = $2 AND status = 'open'"
                                 " AND deadline <= now() FOR UPDATE", 2, p, err);
        if (g == NULL)
            goto rollback;
        if (PQntuples(g) == 0) {
            PQclear(g);
            sl_db_rollback(db);
            continue;
        }
        bool approve = strcmp(PQgetvalue(g, 0, 0), "approve") == 0;
        sl_buf fin = SL_BUF_INIT;
        char why[512];
        int fr = approve ? final_inputs(db, PQgetvalue(g, 0, 1), PQgetvalue(g, 0, 2), &fin, why,
                                        sizeof why, err) : 0;
        PQclear(g);
        if (fr == -2) {
            sl_buf_free(&fin);
            goto rollback;
        }
        if (fr == -1)
            approve = false;   /* cannot approve without the inputs: reject */
        const char *up[] = { p[0], p[1], approve ? sl_buf_str(&fin) : "approval timed out" };
        int rc = audit(db, p[0], p[1], "sluice-scheduler", approve ? "timeout-approve" : "timeout-reject",
                       fr == -1 ? why : NULL, NULL, NULL, err);
        if (rc == 0)
            rc = sl_db_run(db, "time out gate", "UPDATE sluice_gates SET status = 'timed_out',"
                           " decided_at = now() WHERE run_id = $1 AND gate_id = $2", 2, up, err);
        if (rc == 0 && approve)
            rc = sl_db_run(db, "gate step", "UPDATE sluice_run_steps SET status = 'succeeded',"
                           " outputs = $3::jsonb, finished_at = now() WHERE run_id = $1 AND step_id = $2"
                           " AND status = 'waiting'", 3, up, err);
        if (rc == 0 && !approve)
            rc = sl_db_run(db, "gate step", "UPDATE sluice_run_steps SET status = 'failed', error = $3,"
                           " finished_at = now() WHERE run_id = $1 AND step_id = $2 AND status = 'waiting'",
                           3, up, err);
        sl_buf_free(&fin);
        if (rc == 0)
            rc = sl_db_run(db, "notify", "SELECT pg_notify('sluice_gates', $1)", 1, p, err);
        if (rc < 0 || sl_db_commit(db, err) < 0)
            goto rollback;
        SL_INFO("gate.timed_out", "run=%s gate=%s outcome=%s", p[0], p[1], approve ? "approve" : "reject");
        count++;
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

int sl_audit_verify(sl_db *db, bool *ok, long long *bad_seq, long long *rows, char *why, size_t n,
                    sl_err *err)
{
    PGresult *res = sl_db_exec(db, "audit chain",
        "SELECT seq, hash = sluice_audit_hash(a), prev_hash = coalesce(lag(hash) OVER w, ''),"
        " seq = coalesce(lag(seq) OVER w, 0) + 1 FROM sluice_audit a WINDOW w AS (ORDER BY seq)"
        " ORDER BY seq", 0, NULL, err);
    if (res == NULL)
        return -1;
    *ok = true;
    *rows = PQntuples(res);
    for (int r = 0; r < PQntuples(res) && *ok; r++) {
        *bad_seq = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        if (strcmp(PQgetvalue(res, r, 3), "t") != 0) {
            *ok = false;
            snprintf(why, n, "row %lld follows a missing row (deleted?)", *bad_seq);
        } else if (strcmp(PQgetvalue(res, r, 1), "t") != 0) {
            *ok = false;
            snprintf(why, n, "row %lld does not match its hash (edited?)", *bad_seq);
        } else if (strcmp(PQgetvalue(res, r, 2), "t") != 0) {
            *ok = false;
            snprintf(why, n, "row %lld does not chain to the row before it", *bad_seq);
        }
    }
    PQclear(res);
    return 0;
}
