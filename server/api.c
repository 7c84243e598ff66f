/* api.c: the handlers of the API server's routes (see api.h, docs/api.md).
 *
 * Handlers read their parameters and JSON body, act through the modules
 * that own the state — sl_run_create (engine.h) to trigger a run,
 * sl_gate_decide (gate.h) to approve or reject, sl_queue_enqueue to add a
 * job — always as the authenticated principal (r->who), never as a name
 * the client sent.  Reads build their JSON in PostgreSQL (json_build_object)
 * so that column values are escaped by the server that stores them.
 * Backend failures are logged and answered with 503 "unavailable", naming
 * no host, port or database. */
#include "api.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "clock.h"
#include "db.h"
#include "engine.h"
#include "envelope.h"
#include "gate.h"
#include "jobid.h"
#include "json.h"
#include "jsonval.h"
#include "log.h"
#include "mem.h"
#include "numfmt.h"
#include "openapi.h"
#include "pipeline.h"
#include "problem.h"
#include "queue.h"
#include "registry.h"
#include "snapshot.h"
#include "tokens.h"

/* ---- helpers --------------------------------------------------------------- */

/* Answers 503 for a backend failure, logging what it was. */
static void backend_failed(sl_request *r, sl_response *resp, const sl_err *err)
{
    char q[600];
    SL_WARN("serve.backend_error", "path=%s error=%s", r->path, sl_log_quote(q, sizeof q, err->msg));
    sl_problem(resp, SL_PROB_UNAVAILABLE, "a backend is unavailable; try again");
    resp->retry_after = 1;
}

/* Runs a query whose one row, one column is JSON text; answers it with
 * status, 404 (detail missing) when there is no row. */
static void json_query(sl_request *r, sl_response *resp, const char *sql, int n, const char *const *params,
                       const char *missing)
{
    sl_err err;
    sl_db *db = sl_backends_db(r->be, &err);
    PGresult *res = db ? sl_db_exec(db, "read", sql, n, params, &err) : NULL;
    if (res == NULL) {
        backend_failed(r, resp, &err);
        return;
    }
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
        sl_problem(resp, SL_PROB_NOT_FOUND, "%s", missing);
    } else {
        sl_buf b = SL_BUF_INIT;
        sl_buf_append(&b, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
        sl_http_json(resp, 200, &b);
    }
    PQclear(res);
}

/* Parses the body as a JSON object into j; answers 400/415 and returns
 * false when it is not one.  An empty body reads as {}. */
static bool body_object(sl_request *r, sl_response *resp, sl_jsonval *j)
{
    const char *ct = sl_http_header(r, "Content-Type");
    if (r->body_len > 0 && (ct == NULL || strncmp(ct, "application/json", 16) != 0)) {
        sl_jsonval_init(j, NULL);
        sl_problem(resp, SL_PROB_UNSUPPORTED, "send Content-Type: application/json");
        return false;
    }
    if (strlen(r->body) != r->body_len) {
        sl_jsonval_init(j, NULL);
        sl_problem(resp, SL_PROB_BAD_REQUEST, "the body holds a NUL byte");
        return false;
    }
    sl_jsonval_init(j, r->body_len ? r->body : "{}");
    if (!j->ok || j->up.data.type != MSGPACK_OBJECT_MAP) {
        sl_problem(resp, SL_PROB_BAD_REQUEST, "the body must be one JSON object");
        return false;
    }
    return true;
}

/* A JSON scalar as the text a pipeline variable or gate input takes:
 * strings as they are, numbers and booleans as written.  NULL for others. */
static char *scalar_text(const msgpack_object *v)
{
    char num[SL_NUMFMT_MAX];
    switch (v->type) {
    case MSGPACK_OBJECT_STR:
        if (memchr(v->via.str.ptr, '\0', v->via.str.size))
            return NULL;
        return sl_xstrndup(v->via.str.ptr, v->via.str.size);
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return sl_xasprintf("%llu", (unsigned long long)v->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return sl_xasprintf("%lld", (long long)v->via.i64);
    case MSGPACK_OBJECT_FLOAT64: return sl_xstrdup(sl_fmt_double(v->via.f64, num));
    case MSGPACK_OBJECT_BOOLEAN: return sl_xstrdup(v->via.boolean ? "true" : "false");
    default: return NULL;
    }
}

/* Turns the object member `name` of body into "KEY=VALUE" strings (owned,
 * *n of them).  Returns false with resp filled when it is not an object of
 * scalars. */
static bool pairs_of(const msgpack_object *body, const char *name, char ***out, size_t *n, sl_response *resp)
{
    *out = NULL;
    *n = 0;
    const msgpack_object *m = sl_args_get(body, name);
    if (m == NULL)
        return true;
    if (m->type != MSGPACK_OBJECT_MAP) {
        sl_problem(resp, SL_PROB_BAD_REQUEST, "'%s' must be an object", name);
        return false;
    }
    *out = sl_xcalloc(m->via.map.size + 1, sizeof **out);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        char *v = scalar_text(&m->via.map.ptr[i].val);
        if (k->type != MSGPACK_OBJECT_STR || v == NULL || k->via.str.size == 0 ||
            memchr(k->via.str.ptr, '=', k->via.str.size) || memchr(k->via.str.ptr, '\0', k->via.str.size)) {
            free(v);
            sl_problem(resp, SL_PROB_BAD_REQUEST, "'%s' must map names to strings, numbers or booleans", name);
            return false;
        }
        (*out)[(*n)++] = sl_xasprintf("%.*s=%s", (int)k->via.str.size, k->via.str.ptr, v);
        free(v);
    }
    return true;
}

static void free_pairs(char **p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i]);
    free(p);
}

/* ---- operations: /metrics, /healthz, /readyz, /v1/openapi.json ------------- */

static void text(sl_response *resp, unsigned status, const char *body)
{
    sl_buf_reset(&resp->body);
    sl_buf_puts(&resp->body, body);
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
}

static void get_metrics(sl_request *r, sl_response *resp)
{
    sl_err err, pgerr;
    sl_redis *redis = sl_backends_redis(r->be, &err);
    sl_store *store = redis ? sl_backends_store(r->be, &pgerr) : NULL;
    snap sn;
    memset(&sn, 0, sizeof sn);
    if (redis == NULL || snap_take(redis, store, NULL, 0, &sn, &err) < 0) {
        char q[600];
        SL_WARN("serve.scrape_failed", "error=%s", sl_log_quote(q, sizeof q, err.msg));
        text(resp, 503, "unavailable\n");
    } else {
        sl_buf_reset(&resp->body);
        snap_prometheus(&sn, &resp->body);
        resp->status = 200;
        resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    }
    snap_clear(&sn);
}

static void health(sl_request *r, sl_response *resp, bool ready)
{
    sl_err err;
    bool ok = true;
    sl_buf msg = SL_BUF_INIT;
    sl_redis *redis = sl_backends_redis(r->be, &err);
    const char *ping[] = { "PING" };
    redisReply *rep = redis ? sl_redis_command(redis, 1, ping, NULL, &err) : NULL;
    if (rep)
        freeReplyObject(rep);
    else
        ok = false;
    sl_buf_printf(&msg, "redis: %s\n", rep ? "ok" : "unavailable");
    sl_store *store = sl_backends_store(r->be, &err);
    if (store == NULL) {
        ok = false;
        sl_buf_puts(&msg, "postgres: unavailable\n");
    } else if (sl_store_check_schema(store, &err) == 0) {
        sl_buf_puts(&msg, "postgres: ok\n");
    } else if (sl_store_broken(store)) {
        ok = false;
        sl_buf_puts(&msg, "postgres: unavailable\n");
    } else {
        ok = ok && !ready;   /* reachable; the schema only matters for readiness */
        sl_buf_puts(&msg, "postgres: ok\nschema: not current (run sluice migrate)\n");
    }
    if (!ok) {
        char q[600];
        SL_WARN("serve.unhealthy", "detail=%s", sl_log_quote(q, sizeof q, sl_buf_str(&msg)));
    }
    text(resp, ok ? 200 : 503, sl_buf_str(&msg));
    sl_buf_free(&msg);
}

static void get_healthz(sl_request *r, sl_response *resp) { health(r, resp, false); }
static void get_readyz(sl_request *r, sl_response *resp) { health(r, resp, true); }

static void get_openapi(sl_request *r, sl_response *resp)
{
    (void)r;
    sl_buf_reset(&resp->body);
    sl_buf_append(&resp->body, sl_openapi_json, sl_openapi_json_len);
    resp->status = 200;
    resp->content_type = "application/json";
}

static void get_whoami(sl_request *r, sl_response *resp)
{
    sl_buf b = SL_BUF_INIT;
    sl_buf_puts(&b, "{\"name\":");
    sl_json_put_string(&b, r->name, strlen(r->name));
    sl_buf_puts(&b, ",\"method\":");
    sl_json_put_string(&b, r->how, strlen(r->how));
    sl_buf_puts(&b, ",\"address\":");
    sl_json_put_string(&b, r->address, strlen(r->address));
    sl_buf_puts(&b, ",\"groups\":[");
    for (size_t i = 0; i < r->ngroups; i++) {
        if (i)
            sl_buf_putc(&b, ',');
        sl_json_put_string(&b, r->groups[i], strlen(r->groups[i]));
    }
    sl_buf_puts(&b, "],\"scopes\":[");
    bool first = true;
    for (unsigned s = SL_SCOPE_ENQUEUE; s <= SL_SCOPE_ADMIN; s <<= 1) {
        if (r->scopes & s) {
            sl_buf_printf(&b, "%s\"%s\"", first ? "" : ",", sl_scope_name(s));
            first = false;
        }
    }
    sl_buf_puts(&b, "]}");
    sl_http_json(resp, 200, &b);
}

/* ---- runs -------------------------------------------------------------------- */

#define RUN_JSON \
    "json_build_object('id', r.id, 'pipeline', r.pipeline, 'status', r.status, 'vars', r.vars," \
    " 'triggered_by', r.triggered_by, 'created_at', r.created_at, 'started_at', r.started_at," \
    " 'finished_at', r.finished_at, 'error', r.error)"

/* Whether this server's own pipeline directory (scheduler.pipelines)
 * rules out a pipeline called name: true only if the directory could be
 * read and no valid pipeline in it has that name.  An unreadable directory
 * (the server runs where the pipelines are not) rules nothing out. */
static bool pipeline_absent(const sl_config *cfg, const char *name)
{
    const char *dir = sl_sched_config_of(cfg)->pipelines;
    if (dir == NULL || dir[0] == '\0')
        return false;
    sl_pipeline **list = NULL;
    size_t n = 0;
    sl_yerrors perr = SL_YERRORS_INIT;
    sl_err err;
    if (sl_pipelines_load_dir(dir, sl_sched_config_of(cfg), &list, &n, &perr, &err) < 0) {
        sl_yerrors_free(&perr);
        return false;
    }
    bool found = false;
    for (size_t i = 0; i < n && !found; i++)
        found = strcmp(list[i]->name, name) == 0;
    sl_pipelines_free(list, n);
    sl_yerrors_free(&perr);
    return !found;
}

/* POST /v1/pipelines/{name}/runs  {"vars": {...}}
 * Inserts a run request by name only: the scheduler's leader resolves the
 * name against the pipelines it installed itself (a name it does not know,
 * or an undeclared variable, fails the run with the reason), so no
 * pipeline text ever comes from here.  As a courtesy to the client, a name
 * that is not among the pipelines of this server's own scheduler.pipelines
 * directory (when it can read it) is answered 404 at once; the scheduler
 * stays the authority for every name that passes. */
static void post_run(sl_request *r, sl_response *resp)
{
    const char *name = r->params[0];
    sl_jsonval body;
    char **vars = NULL;
    size_t nvars = 0;
    sl_err err;
    if (!body_object(r, resp, &body) || !pairs_of(&body.up.data, "vars", &vars, &nvars, resp))
        goto cleanup;
    /* (a malformed name is left to sl_run_create's 422) */
    size_t len = strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
    if (len >= 1 && len <= 64 && name[len] == '\0' && pipeline_absent(r->cfg, name)) {
        sl_problem(resp, SL_PROB_NOT_FOUND, "no pipeline named '%s' is installed", name);
        goto cleanup;
    }
    char run_id[SL_RUN_ID_MAX];
    sl_db *db = sl_backends_db(r->be, &err);
    if (db == NULL || sl_run_create(db, name, vars, nvars, r->who.name, run_id, &err) < 0) {
        if (db && err.code == SL_EINVAL)
            sl_problem(resp, SL_PROB_INVALID, "%s", err.msg);
        else
            backend_failed(r, resp, &err);
        goto cleanup;
    }
    char q[300];
    SL_INFO("serve.run_created", "run=%s pipeline=%s by=%s method=%s address=%s", run_id,
            sl_log_quote(q, sizeof q, name), r->who.name, r->who.method, r->address);
    const char *params[] = { run_id };
    json_query(r, resp, "SELECT " RUN_JSON " FROM sluice_runs r WHERE r.id = $1", 1, params, "run vanished");
    if (resp->status == 200) {
        resp->status = 201;
        snprintf(resp->location, sizeof resp->location, "/v1/runs/%s", run_id);
    }
cleanup:
    free_pairs(vars, nvars);
    sl_jsonval_free(&body);
}

/* GET /v1/runs?pipeline=&status=&limit= */
static void get_runs(sl_request *r, sl_response *resp)
{
    const char *limit = sl_http_query(r, "limit");
    long lim = limit ? strtol(limit, NULL, 10) : 50;
    if (lim < 1 || lim > 1000) {
        sl_problem(resp, SL_PROB_BAD_REQUEST, "limit must be 1..1000");
        return;
    }
    char lims[16];
    snprintf(lims, sizeof lims, "%ld", lim);
    const char *params[] = { sl_http_query(r, "pipeline"), sl_http_query(r, "status"), lims };
    json_query(r, resp, "SELECT coalesce(json_agg(x.j ORDER BY x.created_at DESC), '[]') FROM (SELECT "
               RUN_JSON " AS j, r.created_at FROM sluice_runs r WHERE ($1::text IS NULL OR r.pipeline = $1)"
               " AND ($2::text IS NULL OR r.status = $2) ORDER BY r.created_at DESC LIMIT $3::int) x",
               3, params, "");
}

static void get_run(sl_request *r, sl_response *resp)
{
    const char *params[] = { r->params[0] };
    json_query(r, resp, "SELECT " RUN_JSON " FROM sluice_runs r WHERE r.id = $1", 1, params, "no such run");
}

static void get_steps(sl_request *r, sl_response *resp)
{
    const char *params[] = { r->params[0] };
    json_query(r, resp, "SELECT CASE WHEN EXISTS (SELECT 1 FROM sluice_runs WHERE id = $1) THEN"
               " coalesce((SELECT json_agg(json_build_object('step', s.step_id, 'status', s.status,"
               " 'job_id', s.job_id, 'attempt', s.attempt, 'queued_at', s.queued_at, 'finished_at',"
               " s.finished_at, 'outputs', s.outputs, 'error', s.error) ORDER BY s.position)"
               " FROM sluice_run_steps s WHERE s.run_id = $1), '[]') END", 1, params, "no such run");
}

static void get_audit(sl_request *r, sl_response *resp)
{
    const char *params[] = { r->params[0] };
    json_query(r, resp, "SELECT CASE WHEN EXISTS (SELECT 1 FROM sluice_runs WHERE id = $1) THEN"
               " coalesce((SELECT json_agg(to_jsonb(a) - 'run_id' ORDER BY a.seq) FROM sluice_audit a"
               " WHERE a.run_id = $1), '[]') END", 1, params, "no such run");
}

/* ---- gates --------------------------------------------------------------------- */

char *sl_api_gate_needs(sl_db *db, const sl_config *cfg, const char *run_id, const char *gate_id, sl_err *err)
{
    const char *p[] = { run_id };
    PGresult *res = sl_db_exec(db, "source", "SELECT source_name, source FROM sluice_runs WHERE id = $1", 1, p, err);
    if (res == NULL)
        return NULL;
    sl_buf lit = SL_BUF_INIT;
    sl_buf_puts(&lit, "{");
    if (PQntuples(res) == 1) {
        sl_yerrors errors = SL_YERRORS_INIT;
        sl_pipeline *pl = sl_pipeline_parse(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                                            (size_t)PQgetlength(res, 0, 1), sl_sched_config_of(cfg), &errors);
        sl_yerrors_free(&errors);
        int k = pl ? sl_pipeline_step(pl, gate_id) : -1;
        for (size_t j = 0; k >= 0 && j < pl->steps[k].nneeds; j++) {
            const char *id = pl->steps[pl->steps[k].needs[j]].id;
            sl_buf_printf(&lit, "%s\"%s\"", j ? "," : "", id);   /* step ids are [a-z0-9_-] */
        }
        sl_pipeline_free(pl);
    }
    PQclear(res);
    sl_buf_puts(&lit, "}");
    return sl_buf_detach(&lit);
}

#define GATE_JSON \
    "json_build_object('run', g.run_id, 'gate', g.gate_id, 'pipeline', r.pipeline, 'status', g.status," \
    " 'approvers', g.approvers, 'required', g.required, 'allow_self', g.allow_self," \
    " 'triggered_by', g.triggered_by, 'approvals', (SELECT count(*) FROM sluice_audit a WHERE" \
    " a.run_id = g.run_id AND a.gate_id = g.gate_id AND a.decision = 'approve'), 'on_timeout'," \
    " g.on_timeout, 'inputs', g.input_spec, 'values', g.inputs, 'instructions', g.instructions," \
    " 'opened_at', g.opened_at, 'deadline', g.deadline, 'decided_at', g.decided_at," \
    " 'evidence', coalesce((SELECT json_agg(json_build_object('step', s.step_id, 'status', s.status," \
    " 'outputs', s.outputs) ORDER BY s.position) FROM sluice_run_steps s WHERE s.run_id = g.run_id" \
    " AND s.step_id = ANY($3::text[])), '[]'))"

/* The JSON of one gate with its evidence into out; false if none. */
static int gate_json(sl_request *r, sl_db *db, const char *run_id, const char *gate_id, sl_buf *out, sl_err *err)
{
    char *needs = sl_api_gate_needs(db, r->cfg, run_id, gate_id, err);
    if (needs == NULL)
        return -1;
    const char *p[] = { run_id, gate_id, needs };
    PGresult *res = sl_db_exec(db, "gate", "SELECT " GATE_JSON " FROM sluice_gates g JOIN sluice_runs r"
                               " ON r.id = g.run_id WHERE g.run_id = $1 AND g.gate_id = $2", 3, p, err);
    free(needs);
    if (res == NULL)
        return -1;
    int found = PQntuples(res) == 1;
    if (found)
        sl_buf_append(out, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    PQclear(res);
    return found;
}

/* GET /v1/runs/{id}/gates/{gate} */
static void get_gate(sl_request *r, sl_response *resp)
{
    sl_err err;
    sl_buf b = SL_BUF_INIT;
    sl_db *db = sl_backends_db(r->be, &err);
    int found = db ? gate_json(r, db, r->params[0], r->params[1], &b, &err) : -1;
    if (found < 0)
        backend_failed(r, resp, &err);
    else if (found == 0)
        sl_problem(resp, SL_PROB_NOT_FOUND, "no such gate (it opens when the steps it needs succeed)");
    else
        sl_http_json(resp, 200, &b);
    sl_buf_free(&b);
}

/* The open gates principal name may decide: an approver, not the run's
 * trigger unless the gate allows self-approval, not decided by them yet
 * (the checks of the decision function, migration 006). */
#define MINE_SQL \
    "SELECT g.run_id, g.gate_id FROM sluice_gates g WHERE g.status = 'open' AND $1 = ANY (g.approvers)" \
    " AND (g.allow_self OR g.triggered_by <> $1) AND NOT EXISTS (SELECT 1 FROM sluice_audit a" \
    " WHERE a.run_id = g.run_id AND a.gate_id = g.gate_id AND a.actor = $1" \
    " AND a.decision IN ('approve', 'reject')) ORDER BY g.opened_at"

/* The gates of one run (run_id), every open gate (run_id NULL), or with
 * ?mine=true the open gates the caller may decide. */
static void list_gates(sl_request *r, sl_response *resp, const char *run_id)
{
    sl_err err;
    const char *mine = run_id ? NULL : sl_http_query(r, "mine");
    if (mine && strcmp(mine, "true") != 0 && strcmp(mine, "false") != 0) {
        sl_problem(resp, SL_PROB_BAD_REQUEST, "mine must be true or false");
        return;
    }
    bool only_mine = mine && strcmp(mine, "true") == 0;
    sl_db *db = sl_backends_db(r->be, &err);
    const char *p[] = { only_mine ? r->who.name : run_id };
    PGresult *res = db ? sl_db_exec(db, "gates", only_mine ? MINE_SQL : run_id
                                    ? "SELECT run_id, gate_id FROM sluice_gates WHERE run_id = $1 ORDER BY opened_at"
                                    : "SELECT run_id, gate_id FROM sluice_gates WHERE status = 'open' ORDER BY opened_at",
                                    p[0] ? 1 : 0, p[0] ? p : NULL, &err)
                       : NULL;
    if (res == NULL) {
        backend_failed(r, resp, &err);
        return;
    }
    sl_buf b = SL_BUF_INIT;
    sl_buf_puts(&b, "[");
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc >= 0; i++) {
        if (i)
            sl_buf_putc(&b, ',');
        rc = gate_json(r, db, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), &b, &err);
    }
    PQclear(res);
    sl_buf_puts(&b, "]");
    if (rc < 0)
        backend_failed(r, resp, &err);
    else
        sl_http_json(resp, 200, &b);
    sl_buf_free(&b);
}

static void get_run_gates(sl_request *r, sl_response *resp) { list_gates(r, resp, r->params[0]); }
static void get_open_gates(sl_request *r, sl_response *resp) { list_gates(r, resp, NULL); }

/* POST /v1/runs/{id}/gates/{gate}/approve|reject  {"comment": "...", "inputs": {...}} */
static void decide(sl_request *r, sl_response *resp, bool approve)
{
    sl_jsonval body;
    char **inputs = NULL;
    size_t ninputs = 0;
    char *comment = NULL;
    sl_err err;
    if (!body_object(r, resp, &body) || !pairs_of(&body.up.data, "inputs", &inputs, &ninputs, resp))
        goto cleanup;
    const msgpack_object *c = sl_args_get(&body.up.data, "comment");
    if (c && (c->type != MSGPACK_OBJECT_STR || (comment = scalar_text(c)) == NULL)) {
        sl_problem(resp, SL_PROB_BAD_REQUEST, "'comment' must be a string");
        goto cleanup;
    }
    if (!approve && (comment == NULL || *comment == '\0')) {
        sl_problem(resp, SL_PROB_BAD_REQUEST, "a rejection needs a comment saying why");
        goto cleanup;
    }
    if (!approve && ninputs > 0) {
        sl_problem(resp, SL_PROB_BAD_REQUEST, "inputs are for approvals");
        goto cleanup;
    }
    sl_gate_result res;
    sl_db *db = sl_backends_db(r->be, &err);
    if (db == NULL || sl_gate_decide(db, r->params[0], r->params[1], &r->who, approve, comment, inputs, ninputs,
                                     &res, &err) < 0) {
        backend_failed(r, resp, &err);
        goto cleanup;
    }
    SL_INFO("serve.decision", "run=%s gate=%s by=%s method=%s address=%s decision=%s refused=%s",
            r->params[0], r->params[1], r->who.name, r->who.method, r->address, approve ? "approve" : "reject",
            res.refused ? "yes" : "no");
    if (res.refused) {
        sl_problem(resp, SL_PROB_REFUSED, "%s", res.message);
        goto cleanup;
    }
    sl_buf b = SL_BUF_INIT;
    sl_buf_printf(&b, "{\"decision\":\"%s\",\"closed\":%s,\"approvals\":%d,\"required\":%d,\"by\":",
                  approve ? "approve" : "reject", res.closed ? "true" : "false", res.approvals, res.required);
    sl_json_put_string(&b, r->who.name, strlen(r->who.name));
    sl_buf_puts(&b, ",\"message\":");
    sl_json_put_string(&b, res.message, strlen(res.message));
    sl_buf_puts(&b, "}");
    sl_http_json(resp, 200, &b);
cleanup:
    free(comment);
    free_pairs(inputs, ninputs);
    sl_jsonval_free(&body);
}

static void post_approve(sl_request *r, sl_response *resp) { decide(r, resp, true); }
static void post_reject(sl_request *r, sl_response *resp) { decide(r, resp, false); }

/* ---- jobs ------------------------------------------------------------------------ */

static void get_job(sl_request *r, sl_response *resp)
{
    const char *params[] = { r->params[0] };
    json_query(r, resp, "SELECT json_build_object('id', j.id, 'queue', j.queue, 'kind', j.kind, 'args', j.args,"
               " 'status', j.status, 'attempts', j.attempts, 'max_attempts', j.max_attempts, 'run', j.run_id,"
               " 'step', j.step_id, 'enqueued_at', j.enqueued_at, 'started_at', j.started_at, 'finished_at',"
               " j.finished_at, 'worker', j.worker, 'outputs', j.outputs, 'error', j.error)"
               " FROM sluice_jobs j WHERE j.id = $1", 1, params,
               "no finished job with this id (a job still queued or running has no result yet)");
}

static bool idem_key_valid(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 200)
        return false;
    for (const char *p = k; *p; p++) {
        if (*p < 0x21 || *p > 0x7e)
            return false;
    }
    return true;
}

/* Answers 202 with the job's id. */
static void enqueued(sl_response *resp, const char *id, const char *queue, bool duplicate)
{
    sl_buf b = SL_BUF_INIT;
    sl_buf_puts(&b, "{\"id\":");
    sl_json_put_string(&b, id, strlen(id));
    sl_buf_puts(&b, ",\"queue\":");
    sl_json_put_string(&b, queue, strlen(queue));
    sl_buf_printf(&b, ",\"duplicate\":%s}", duplicate ? "true" : "false");
    sl_http_json(resp, duplicate ? 200 : 202, &b);
}

/* Claims Idempotency-Key key for the principal and job id in a
 * transaction left open on db (the caller commits after the XADD, or rolls
 * back): a concurrent request with the same key waits on the row, then
 * finds it.  Returns 1 when claimed; 0 when resp is answered (the key's
 * earlier job, or a conflict); -1 when resp is answered with a failure. */
static int claim_key(sl_request *r, sl_response *resp, sl_db *db, const char *key, const char *id,
                     const char *queue)
{
    sl_err err;
    const char *p[] = { r->who.name, key, id, queue };
    if (sl_db_begin(db, &err) < 0) {
        backend_failed(r, resp, &err);
        return -1;
    }
    PGresult *res = sl_db_exec(db, "idempotency", "INSERT INTO sluice_api_idempotency (principal, key, job_id,"
                               " queue) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING job_id", 4, p, &err);
    if (res && PQntuples(res) == 1) {
        PQclear(res);
        return 1;
    }
    PQclear(res);
    res = sl_db_exec(db, "idempotency", "SELECT job_id, queue FROM sluice_api_idempotency"
                     " WHERE principal = $1 AND key = $2", 2, p, &err);
    int rc = -1;
    if (res == NULL || PQntuples(res) != 1) {
        backend_failed(r, resp, &err);
    } else if (strcmp(PQgetvalue(res, 0, 1), queue) != 0) {
        sl_problem(resp, SL_PROB_CONFLICT, "this Idempotency-Key was used for another queue");
        rc = 0;
    } else {
        enqueued(resp, PQgetvalue(res, 0, 0), queue, true);
        rc = 0;
    }
    PQclear(res);
    sl_db_rollback(db);
    return rc;
}

/* Reads the job's settings from body into job (kind and args owned by
 * the caller: kind freed, args destroyed).  False with resp answered. */
static bool job_of(const msgpack_object *body, const char *queue, sl_job *job, msgpack_sbuffer *args,
                   sl_response *resp)
{
    sl_err err;
    if (sl_args_str(body, "kind", true, &job->kind, &err) < 0 ||
        sl_args_int(body, "max_attempts", false, 0, 0, 1000, &job->max_attempts, &err) < 0 ||
        sl_args_int(body, "timeout_ms", false, 0, 0, 7 * 86400000LL, &job->timeout_ms, &err) < 0) {
        sl_problem(resp, SL_PROB_BAD_REQUEST, "%s", err.msg);
        return false;
    }
    if (!sl_envelope_queue_valid(queue)) {
        sl_problem(resp, SL_PROB_INVALID, "invalid queue name (use 1-%d of A-Z a-z 0-9 _ . -)", SL_NAME_MAX);
        return false;
    }
    if (sl_registry_find(job->kind) == NULL) {
        sl_problem(resp, SL_PROB_INVALID, "unknown kind '%.60s'", job->kind);
        return false;
    }
    const msgpack_object *a = sl_args_get(body, "args");
    if (a && a->type != MSGPACK_OBJECT_MAP) {
        sl_problem(resp, SL_PROB_BAD_REQUEST, "'args' must be an object");
        return false;
    }
    if (a) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, args, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, *a);
    }
    job->queue = (char *)queue;
    job->args = args->data;
    job->args_len = args->size;
    job->attempt = 1;
    job->enqueued_at = sl_now_ms();
    return true;
}

/* POST /v1/queues/{queue}/jobs  {"kind": "...", "args": {...}, "max_attempts": N, "timeout_ms": N} */
static void post_job(sl_request *r, sl_response *resp)
{
    const char *queue = r->params[0];
    const char *key = sl_http_header(r, "Idempotency-Key");
    sl_jsonval body;
    msgpack_sbuffer args;
    msgpack_sbuffer_init(&args);
    char id[37];
    sl_jobid_new(id);
    sl_job job = { .id = id };
    sl_err err;
    sl_db *db = NULL;
    bool in_tx = false;
    if (!body_object(r, resp, &body) || !job_of(&body.up.data, queue, &job, &args, resp))
        goto cleanup;
    if (key && !idem_key_valid(key)) {
        sl_problem(resp, SL_PROB_BAD_REQUEST, "Idempotency-Key must be 1..200 printable ASCII characters");
        goto cleanup;
    }
    sl_redis *redis = sl_backends_redis(r->be, &err);
    if (redis == NULL || (key && (db = sl_backends_db(r->be, &err)) == NULL)) {
        backend_failed(r, resp, &err);
        goto cleanup;
    }
    if (key && (in_tx = claim_key(r, resp, db, key, id, queue) == 1) == false)
        goto cleanup;
    if (sl_queue_enqueue(redis, &job, &err) < 0) {
        if (err.code == SL_EINVAL)
            sl_problem(resp, SL_PROB_INVALID, "%s", err.msg);
        else
            backend_failed(r, resp, &err);
        goto cleanup;
    }
    if (in_tx) {
        in_tx = false;
        if (sl_db_commit(db, &err) < 0) {
            /* The job is in its queue; only the key was lost. */
            char q[600];
            SL_WARN("serve.idempotency_lost", "job=%s error=%s", id, sl_log_quote(q, sizeof q, err.msg));
        }
    }
    SL_INFO("serve.enqueued", "job=%s queue=%s kind=%s by=%s method=%s", id, queue, job.kind, r->who.name,
            r->who.method);
    enqueued(resp, id, queue, false);
cleanup:
    if (in_tx)
        sl_db_rollback(db);
    free(job.kind);
    msgpack_sbuffer_destroy(&args);
    sl_jsonval_free(&body);
}

/* ---- the table ----------------------------------------------------------------- */

const sl_route sl_api_routes[] = {
    { "GET", "/metrics", 0, get_metrics },
    { "GET", "/healthz", 0, get_healthz },
    { "GET", "/readyz", 0, get_readyz },
    { "GET", "/v1/openapi.json", 0, get_openapi },
    { "GET", "/v1/whoami", SL_ROUTE_AUTH, get_whoami },
    { "POST", "/v1/pipelines/{}/runs", SL_SCOPE_TRIGGER, post_run },
    { "GET", "/v1/runs", SL_SCOPE_READ, get_runs },
    { "GET", "/v1/runs/{}", SL_SCOPE_READ, get_run },
    { "GET", "/v1/runs/{}/steps", SL_SCOPE_READ, get_steps },
    { "GET", "/v1/runs/{}/audit", SL_SCOPE_READ, get_audit },
    { "GET", "/v1/runs/{}/gates", SL_SCOPE_READ, get_run_gates },
    { "GET", "/v1/runs/{}/gates/{}", SL_SCOPE_READ, get_gate },
    { "POST", "/v1/runs/{}/gates/{}/approve", SL_SCOPE_APPROVE, post_approve },
    { "POST", "/v1/runs/{}/gates/{}/reject", SL_SCOPE_APPROVE, post_reject },
    { "GET", "/v1/gates", SL_SCOPE_READ, get_open_gates },
    { "GET", "/v1/jobs/{}", SL_SCOPE_READ, get_job },
    { "POST", "/v1/queues/{}/jobs", SL_SCOPE_ENQUEUE, post_job },
};
const size_t sl_api_nroutes = sizeof sl_api_routes / sizeof sl_api_routes[0];
