/* engine.c: see engine.h.
 *
 * Runs are requested by name (sl_run_create) and accepted by the leader
 * (accept_one_tx), which copies the installed definition's text into the
 * run with its SHA-256; sl_engine_advance refuses a run whose text does
 * not match that hash.  Each step's job gets an unguessable id, is signed
 * when the engine has a key, and what was enqueued (kind, queue, args
 * hash) is recorded with the step; a result whose job row differs does not
 * count (mismatch_error).
 *
 * sl_engine_advance is the heart: under a row lock on the run, it reads the
 * run and its steps (joined with the jobs' result rows), re-parses the
 * pipeline from the YAML stored with the run, settles steps whose job has
 * a final result, then repeatedly looks for pending steps whose needs are
 * all finished and decides each one (skip, open a gate, queue a job, fail
 * on a template that cannot be rendered) until nothing changes.  Jobs are
 * enqueued to Redis only after that transaction commits; each enqueued job
 * is then marked `enqueued`.  */
#include "engine.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "args.h"
#include "clock.h"
#include "config_jobs.h"
#include "envelope.h"
#include "gate.h"
#include "jobid.h"
#include "jobsig.h"
#include "jsonval.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "queue.h"
#include "workerreg.h"
#include "sha256.h"

/* A log value that may hold spaces (log.h: sl_log_quote). */
#define LOGQ(s) sl_log_quote((char[600]){ 0 }, 600, (s))

/* Queues the worker registry said lately were served: a pool rewrites its
 * document every 2 s and disappears at most 10 s after dying
 * (supervise.h), so a "served" younger than 2 s is trusted rather than
 * asked again (a SCAN) for every job.  "Not served" is asked again each
 * time: it is the rare case, and a pool that just started must end it. */
#define SERVED_CACHE 16
#define SERVED_FRESH_MS 2000

typedef struct served_entry {
    char queue[SL_NAME_MAX + 1];
    int64_t checked_ms;     /* monotonic; 0: empty */
    bool served;
} served_entry;

struct sl_engine {
    const sl_config *cfg;
    sl_db *db;
    sl_redis *redis;
    served_entry served[SERVED_CACHE];   /* the registry's recent answers, per queue */
    sl_pipeline *const *pipes;  /* borrowed: the installed pipelines runs are resolved against */
    size_t npipes;
    const sl_sign_key *signer;  /* borrowed, NULL: enqueue jobs unsigned */
};

/* Hex SHA-256 of a pipeline's text, as recorded on its runs. */
static void source_hash(const char *text, size_t n, char hex[SL_SHA256_HEX])
{
    unsigned char d[SL_SHA256_LEN];
    sl_sha256_digest(text, n, d);
    sl_sha256_hex(d, hex);
}

/* Looks up a dotted path ("a.b") in a map. */
static const msgpack_object *path_get(const msgpack_object *o, const char *path)
{
    char seg[SL_REF_KEY_MAX + 1];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof seg || o->type != MSGPACK_OBJECT_MAP)
            return NULL;
        memcpy(seg, path, n);
        seg[n] = '\0';
        o = sl_args_get(o, seg);
        path += n + (path[n] == '.');
    }
    return o;
}

static void str_object(msgpack_object *o, const char *s)
{
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = s;
    o->via.str.size = (uint32_t)strlen(s);
}

/* ---- creating and cancelling runs ----------------------------------------- */

static int vars_json(const sl_pipeline *p, char *const *vars, size_t nvars, sl_buf *out, sl_err *err)
{
    sl_ymap m = { NULL, 0 };
    if (p->vars && sl_ydoc_map(p->doc, p->vars, "vars", &m, err) < 0)
        return -1;
    for (size_t i = 0; i < nvars; i++) {
        const char *eq = strchr(vars[i], '=');
        bool known = false;
        for (size_t k = 0; eq && k < m.n; k++)
            known = known || (strlen(m.pairs[k].name) == (size_t)(eq - vars[i]) &&
                              strncmp(m.pairs[k].name, vars[i], (size_t)(eq - vars[i])) == 0);
        if (eq == NULL)
            return sl_err_set(err, SL_EINVAL, "--var '%s': expected NAME=VALUE", vars[i]);
        if (!known)
            return sl_err_set(err, SL_EINVAL, "--var '%.*s': pipeline '%s' declares no such variable",
                              (int)(eq - vars[i]), vars[i], p->name);
    }
    sl_buf_putc(out, '{');
    for (size_t k = 0; k < m.n; k++) {
        const char *over = NULL;
        size_t nl = strlen(m.pairs[k].name);
        for (size_t i = 0; i < nvars; i++) {
            if (strncmp(vars[i], m.pairs[k].name, nl) == 0 && vars[i][nl] == '=')
                over = vars[i] + nl + 1;   /* the last one given wins */
        }
        if (k)
            sl_buf_putc(out, ',');
        sl_json_put_string(out, m.pairs[k].name, nl);
        sl_buf_putc(out, ':');
        if (over)
            sl_json_put_string(out, over, strlen(over));
        else if (sl_pipeline_node_json(p, m.pairs[k].value, NULL, NULL, "vars", out, err) < 0)
            return -1;
    }
    sl_buf_putc(out, '}');
    return 0;
}

typedef struct create_ctx {
    sl_jsonval vars;
    const char *run_id;
    const char *triggered_by;
} create_ctx;

static int resolve_create(void *arg, const sl_ref *ref, msgpack_object *out, sl_err *err)
{
    create_ctx *c = arg;
    const msgpack_object *v;
    switch (ref->kind) {
    case SL_REF_VAR:
        v = c->vars.ok ? sl_args_get(&c->vars.up.data, ref->id) : NULL;
        if (v == NULL)
            return sl_err_set(err, SL_EINVAL, "${{ %s }}: no such variable", ref->text);
        *out = *v;
        return 0;
    case SL_REF_RUN_ID: str_object(out, c->run_id); return 0;
    case SL_REF_RUN_TRIGGERED_BY: str_object(out, c->triggered_by); return 0;
    default:
        return sl_err_set(err, SL_EINVAL, "${{ %s }}: only vars and run are known here", ref->text);
    }
}

/* Inside the caller's transaction: makes run id a run of p, the installed
 * definition: writes p's text, its hash, the variables (declared values
 * with vars[0..nvars) "NAME=VALUE" overriding them) and the concurrency
 * group, and inserts the steps.  The run row exists (status queued).
 * Returns -1 with err; SL_EINVAL is the run's own fault (a bad variable). */
/* The message a run's seal signs: its id, pipeline, source hash and vars
 * (jsonb's canonical text), each length-prefixed. */
static void seal_message(sl_buf *m, const char *id, const char *pipeline, const char *hash, const char *vars)
{
    const char *f[] = { "sluice-run-seal-v1", id, pipeline, hash, vars };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        size_t n = strlen(f[i]);
        unsigned char len[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8),
                                 (unsigned char)n };
        sl_buf_append(m, len, sizeof len);
        sl_buf_append(m, f[i], n);
    }
}

/* True if seal_hex (NULL: none) is key's seal of the run. */
static bool seal_ok(const sl_sign_key *key, const char *seal_hex, const char *id, const char *pipeline,
                    const char *hash, const char *vars)
{
    unsigned char sig[SL_SIGN_LEN];
    if (seal_hex == NULL || strlen(seal_hex) != 2 * SL_SIGN_LEN)
        return false;
    for (size_t i = 0; i < SL_SIGN_LEN; i++) {
        unsigned v;
        if (sscanf(seal_hex + 2 * i, "%2x", &v) != 1)
            return false;
        sig[i] = (unsigned char)v;
    }
    sl_buf m = SL_BUF_INIT;
    seal_message(&m, id, pipeline, hash, vars);
    bool ok = sl_sign_verify(key, m.data, m.len, sig, sizeof sig);
    sl_buf_free(&m);
    return ok;
}

/* Inside the caller's transaction: seals accepted run id with key. */
static int seal_run(sl_db *db, const sl_sign_key *key, const char *id, sl_err *err)
{
    const char *p1[] = { id };
    PGresult *res = sl_db_exec(db, "read run", "SELECT pipeline, source_sha256, vars::text FROM sluice_runs"
                               " WHERE id = $1", 1, p1, err);
    if (res == NULL)
        return -1;
    sl_buf m = SL_BUF_INIT;
    seal_message(&m, id, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
    PQclear(res);
    unsigned char sig[SL_SIGN_LEN];
    int rc = sl_sign(key, m.data, m.len, sig, err);
    sl_buf_free(&m);
    if (rc < 0)
        return -1;
    char hex[2 * SL_SIGN_LEN + 1];
    for (size_t i = 0; i < SL_SIGN_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", sig[i]);
    const char *p[] = { id, hex };
    return sl_db_run(db, "seal run", "UPDATE sluice_runs SET seal = $2 WHERE id = $1", 2, p, err);
}

static int accept_tx(sl_db *db, const sl_pipeline *p, const char *id, char *const *vars, size_t nvars,
                     const char *triggered_by, const sl_sign_key *signer, sl_err *err)
{
    sl_buf vj = SL_BUF_INIT, group = SL_BUF_INIT;
    int rc = -1;
    if (vars_json(p, vars, nvars, &vj, err) < 0)
        goto out;
    create_ctx cc = { .run_id = id, .triggered_by = triggered_by };
    sl_jsonval_init(&cc.vars, sl_buf_str(&vj));
    if (p->concurrency && sl_tmpl_render_text(p->concurrency, resolve_create, &cc, &group, err) < 0) {
        sl_jsonval_free(&cc.vars);
        goto out;
    }
    sl_jsonval_free(&cc.vars);
    char hash[SL_SHA256_HEX];
    source_hash(p->source, strlen(p->source), hash);
    const char *rp[] = { id, sl_ydoc_name(p->doc), p->source, hash, sl_buf_str(&vj),
                         p->concurrency ? sl_buf_str(&group) : NULL, p->release_at_gates ? "true" : "false" };
    if (sl_db_run(db, "accept run", "UPDATE sluice_runs SET source_name = $2, source = $3, source_sha256 = $4,"
                  " vars = $5::jsonb, concurrency_group = $6, release_at_gates = $7::boolean, seal = NULL"
                  " WHERE id = $1", 7, rp, err) < 0 ||
        (signer && seal_run(db, signer, id, err) < 0))
        goto out;
    sl_buf ids = SL_BUF_INIT;   /* the step ids as a JSON array: one INSERT for all */
    sl_buf_putc(&ids, '[');
    for (size_t i = 0; i < p->nsteps; i++) {
        sl_buf_puts(&ids, i ? "," : "");
        sl_json_put_string(&ids, p->steps[i].id, strlen(p->steps[i].id));
    }
    sl_buf_putc(&ids, ']');
    const char *sp[] = { id, sl_buf_str(&ids) };
    int ir = sl_db_run(db, "insert steps", "INSERT INTO sluice_run_steps (run_id, step_id, position, status)"
                       " SELECT $1, s.value, s.ord - 1, 'pending'"
                       " FROM jsonb_array_elements_text($2::jsonb) WITH ORDINALITY AS s(value, ord)", 2, sp, err);
    sl_buf_free(&ids);
    if (ir < 0)
        goto out;
    rc = 0;
out:
    sl_buf_free(&vj);
    sl_buf_free(&group);
    return rc;
}

/* Inside the caller's transaction: a cron run of p, accepted at once.
 * Returns 0, 1 when that fire time already has its run, or -1 with err. */
static int create_cron_run_tx(sl_db *db, const sl_pipeline *p, int64_t scheduled_for_ms,
                              const sl_sign_key *signer, char run_id[SL_RUN_ID_MAX], sl_err *err)
{
    char id[37], sched[32];
    sl_jobid_new(id);
    snprintf(sched, sizeof sched, "%" PRId64, scheduled_for_ms);
    const char *rp[] = { id, p->name, sched };
    PGresult *res = sl_db_exec(db, "insert run",
        "INSERT INTO sluice_runs (id, pipeline, triggered_by, status, scheduled_for)"
        " VALUES ($1, $2, 'schedule', 'queued', to_timestamp($3::bigint / 1000.0))"
        " ON CONFLICT (pipeline, scheduled_for) WHERE scheduled_for IS NOT NULL DO NOTHING", 3, rp, err);
    if (res == NULL)
        return -1;
    bool created = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!created)
        return 1;
    const char *np[] = { id };
    if (accept_tx(db, p, id, NULL, 0, "schedule", signer, err) < 0 ||
        sl_db_run(db, "notify", "SELECT pg_notify('sluice_runs', $1)", 1, np, err) < 0)
        return -1;
    snprintf(run_id, SL_RUN_ID_MAX, "%s", id);
    return 0;
}

static bool name_ok(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
    return n >= 1 && n <= 64 && s[n] == '\0';
}

int sl_run_create(sl_db *db, const char *pipeline, char *const *vars, size_t nvars,
                  const char *triggered_by, char run_id[SL_RUN_ID_MAX], sl_err *err)
{
    if (!name_ok(pipeline))
        return sl_err_set(err, SL_EINVAL, "'%.80s' is not a pipeline name (1-64 of A-Z a-z 0-9 _ -)",
                          pipeline);
    sl_buf vj = SL_BUF_INIT;
    sl_buf_putc(&vj, '{');
    for (size_t i = 0; i < nvars; i++) {
        const char *eq = strchr(vars[i], '=');
        if (eq == NULL || eq == vars[i]) {
            sl_buf_free(&vj);
            return sl_err_set(err, SL_EINVAL, "--var '%s': expected NAME=VALUE", vars[i]);
        }
        sl_buf_puts(&vj, i ? "," : "");
        sl_json_put_string(&vj, vars[i], (size_t)(eq - vars[i]));
        sl_buf_putc(&vj, ':');
        sl_json_put_string(&vj, eq + 1, strlen(eq + 1));   /* jsonb keeps the last of a name */
    }
    sl_buf_putc(&vj, '}');
    char id[37];
    sl_jobid_new(id);
    const char *rp[] = { id, pipeline, sl_buf_str(&vj), triggered_by };
    /* A request only: no source, no steps.  The leading scheduler resolves
     * the name against its installed pipelines (sl_engine_start_queued). */
    int rc = -1;
    if (sl_db_begin(db, err) < 0)
        goto out;
    if (sl_db_run(db, "request run", "INSERT INTO sluice_runs (id, pipeline, vars, triggered_by, status)"
                  " VALUES ($1, $2, $3::jsonb, $4, 'queued')", 4, rp, err) < 0 ||
        sl_db_run(db, "notify", "SELECT pg_notify('sluice_runs', $1)", 1, rp, err) < 0 ||
        sl_db_commit(db, err) < 0) {
        sl_db_rollback(db);
        goto out;
    }
    snprintf(run_id, SL_RUN_ID_MAX, "%s", id);
    rc = 0;
out:
    sl_buf_free(&vj);
    return rc;
}

/* Inside a transaction: cancels every unfinished step of the run, closes
 * its open gates, and asks workers not to run its queued jobs. */
static int cancel_rest(sl_db *db, const char *run_id, const char *by, sl_err *err)
{
    const char *p[] = { run_id, by };
    if (sl_db_run(db, "cancel jobs", "INSERT INTO sluice_cancellations (job_id, requested_by)"
                  " SELECT job_id, $2 FROM sluice_run_steps WHERE run_id = $1 AND status = 'queued'"
                  " AND job_id IS NOT NULL ON CONFLICT DO NOTHING", 2, p, err) < 0 ||
        sl_db_run(db, "cancel steps", "UPDATE sluice_run_steps SET status = 'cancelled',"
                  " finished_at = now() WHERE run_id = $1 AND status IN ('pending', 'queued', 'waiting')",
                  1, p, err) < 0 ||
        sl_db_run(db, "cancel gates", "SELECT sluice_gates_cancel($1)", 1, p, err) < 0)
        return -1;
    return 0;
}

int sl_run_cancel(sl_db *db, const char *run_id, const char *by, sl_err *err)
{
    const char *p[] = { run_id, by };
    if (sl_db_begin(db, err) < 0)
        return -1;
    PGresult *res = sl_db_exec(db, "lock run", "SELECT status FROM sluice_runs WHERE id = $1 FOR UPDATE",
                               1, p, err);
    if (res == NULL)
        goto fail;
    if (PQntuples(res) == 0) {
        PQclear(res);
        sl_err_set(err, SL_ENOTFOUND, "no run '%s'", run_id);
        goto fail;
    }
    char status[32];
    snprintf(status, sizeof status, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (strcmp(status, "queued") != 0 && strcmp(status, "running") != 0) {
        sl_err_set(err, SL_EINVAL, "run %s already ended (%s)", run_id, status);
        goto fail;
    }
    if (cancel_rest(db, run_id, by, err) < 0 ||
        sl_db_run(db, "cancel run", "UPDATE sluice_runs SET status = 'cancelled', finished_at = now(),"
                  " error = 'cancelled by ' || $2 WHERE id = $1", 2, p, err) < 0 ||
        sl_db_run(db, "notify", "SELECT pg_notify('sluice_runs', $1)", 1, p, err) < 0 ||
        sl_db_commit(db, err) < 0)
        goto fail;
    return 0;
fail:
    sl_db_rollback(db);
    return -1;
}

/* ---- the engine ------------------------------------------------------------ */

sl_engine *sl_engine_new(const sl_config *cfg, sl_db *db, sl_redis *redis)
{
    sl_engine *e = sl_xcalloc(1, sizeof *e);
    e->cfg = cfg;
    e->db = db;
    e->redis = redis;
    return e;
}

void sl_engine_free(sl_engine *e) { free(e); }

void sl_engine_set_pipelines(sl_engine *e, sl_pipeline *const *pipelines, size_t n)
{
    e->pipes = pipelines;
    e->npipes = n;
}

void sl_engine_set_signer(sl_engine *e, const sl_sign_key *key) { e->signer = key; }

/* Fails a requested run that cannot be accepted, dropping whatever a
 * client wrote beside the request (it is never parsed). */
static int refuse_request(sl_engine *e, const char *id, const char *why, sl_err *err)
{
    const char *p[] = { id, why };
    SL_WARN("run.refused", "run=%s error=%s", id, LOGQ(why));
    return sl_db_run(e->db, "refuse run", "UPDATE sluice_runs SET status = 'failed', finished_at = now(),"
                     " source = NULL, source_name = NULL, error = $2 WHERE id = $1", 2, p, err);
}

/* Accepts requested run id (inside the caller's transaction): resolves its
 * pipeline name against the installed pipelines. */
static int accept_one_tx(sl_engine *e, const char *id, sl_err *err)
{
    const char *p1[] = { id };
    PGresult *res = sl_db_exec(e->db, "lock request", "SELECT pipeline, triggered_by,"
                               " jsonb_typeof(vars) = 'object' FROM sluice_runs WHERE id = $1"
                               " AND status = 'queued' AND source_sha256 IS NULL FOR UPDATE", 1, p1, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0) {   /* accepted or cancelled meanwhile */
        PQclear(res);
        return 0;
    }
    char *name = sl_xstrdup(PQgetvalue(res, 0, 0)), *by = sl_xstrdup(PQgetvalue(res, 0, 1));
    bool vars_ok = PQgetvalue(res, 0, 2)[0] == 't';
    PQclear(res);
    const sl_pipeline *p = NULL;
    for (size_t i = 0; i < e->npipes && p == NULL; i++)
        p = strcmp(e->pipes[i]->name, name) == 0 ? e->pipes[i] : NULL;
    char **vars = NULL;
    int nvars = 0, rc = -1;
    if (p == NULL) {
        char *why = sl_xasprintf("no pipeline named '%s' is installed: the scheduler runs only the "
                                 "pipelines in its own directory (scheduler.pipelines)", name);
        rc = refuse_request(e, id, why, err);
        free(why);
        goto out;
    }
    if (!vars_ok) {
        rc = refuse_request(e, id, "the run's variables are not a JSON object", err);
        goto out;
    }
    res = sl_db_exec(e->db, "request vars", "SELECT v.key || '=' || v.value FROM sluice_runs r,"
                     " jsonb_each_text(r.vars) v WHERE r.id = $1", 1, p1, err);
    if (res == NULL)
        goto out;
    nvars = PQntuples(res);
    vars = sl_xcalloc((size_t)nvars + 1, sizeof *vars);
    for (int i = 0; i < nvars; i++)
        vars[i] = sl_xstrdup(PQgetvalue(res, i, 0));
    PQclear(res);
    /* Steps a client inserted beside the request go.  Gates cannot be
     * inserted by the roles that make requests (only by the scheduler's),
     * and the scheduler's role may not delete gates: a gate row already
     * there makes accepting the run fail on its key, closed. */
    if (sl_db_run(e->db, "drop steps", "DELETE FROM sluice_run_steps WHERE run_id = $1", 1, p1, err) < 0)
        goto out;
    sl_err aerr;
    if (sl_db_run(e->db, "savepoint", "SAVEPOINT accept", 0, NULL, err) < 0)
        goto out;
    if (accept_tx(e->db, p, id, vars, (size_t)nvars, by, e->signer, &aerr) < 0) {
        if (aerr.code != SL_EINVAL) {
            *err = aerr;
            goto out;
        }
        if (sl_db_run(e->db, "rollback to", "ROLLBACK TO SAVEPOINT accept", 0, NULL, err) < 0)
            goto out;
        rc = refuse_request(e, id, aerr.msg, err);
        goto out;
    }
    SL_INFO("run.accepted", "run=%s pipeline=%s", id, name);
    rc = 0;
out:
    for (int i = 0; i < nvars; i++)
        free(vars[i]);
    free(vars);
    free(name);
    free(by);
    return rc;
}

/* Accepts every requested run (sl_run_create) not yet accepted. */
static int accept_requested(sl_engine *e, sl_err *err)
{
    PGresult *res = sl_db_exec(e->db, "requested runs", "SELECT id FROM sluice_runs WHERE status = 'queued'"
                               " AND source_sha256 IS NULL ORDER BY created_at, id", 0, NULL, err);
    if (res == NULL)
        return -1;
    int ret = 0;
    if (PQntuples(res) > 0) {   /* one transaction for all of them */
        bool ok = sl_db_begin(e->db, err) == 0;
        for (int r = 0; ok && r < PQntuples(res); r++)
            ok = accept_one_tx(e, PQgetvalue(res, r, 0), err) == 0;
        if (!ok || sl_db_commit(e->db, err) < 0) {
            sl_db_rollback(e->db);
            ret = -1;
        }
    }
    PQclear(res);
    return ret;
}

typedef struct step_state {
    char status[16];
    char *job_id;        /* owned */
    bool enqueued;
    char *outputs;       /* owned JSON text */
    char *error;         /* owned */
    char *job_status;    /* owned: sluice_jobs.status, NULL if no row */
    char *job_outputs;
    char *job_error;
    char *want;          /* owned: what the scheduler enqueued, "kind\nqueue\nargs sha256";
                            NULL for steps queued before this was recorded */
    char *got;           /* owned: the same of the recorded job, NULL without a row */
    char *enq_kind, *enq_queue, *enq_args;  /* owned: set when the step is queued now */
    bool changed;        /* needs an UPDATE */
    sl_jsonval out;          /* outputs parsed, lazily */
    bool out_loaded;
} step_state;

typedef struct run_ctx {
    const char *run_id;
    const sl_sign_key *signer;   /* borrowed, NULL: jobs unsigned */
    char *triggered_by;
    sl_jsonval vars;
    sl_pipeline *p;
    step_state *st;
} run_ctx;

static const msgpack_object *step_outputs(run_ctx *rc, size_t i)
{
    step_state *s = &rc->st[i];
    if (!s->out_loaded) {
        sl_jsonval_init(&s->out, s->outputs ? s->outputs : "{}");
        s->out_loaded = true;
    }
    return s->out.ok ? &s->out.up.data : NULL;
}

static int resolve_run(void *arg, const sl_ref *ref, msgpack_object *out, sl_err *err)
{
    run_ctx *rc = arg;
    const msgpack_object *v = NULL;
    int k;
    switch (ref->kind) {
    case SL_REF_VAR:
        v = rc->vars.ok ? sl_args_get(&rc->vars.up.data, ref->id) : NULL;
        if (v == NULL)
            return sl_err_set(err, SL_EINVAL, "${{ %s }}: the run has no variable '%s'", ref->text, ref->id);
        *out = *v;
        return 0;
    case SL_REF_RUN_ID: str_object(out, rc->run_id); return 0;
    case SL_REF_RUN_TRIGGERED_BY: str_object(out, rc->triggered_by); return 0;
    case SL_REF_STEP_STATUS:
        if ((k = sl_pipeline_step(rc->p, ref->id)) < 0)
            return sl_err_set(err, SL_EINVAL, "${{ %s }}: no step '%s'", ref->text, ref->id);
        str_object(out, rc->st[k].status);
        return 0;
    case SL_REF_STEP_OUTPUT:
    case SL_REF_GATE_INPUT:
        if ((k = sl_pipeline_step(rc->p, ref->id)) < 0)
            return sl_err_set(err, SL_EINVAL, "${{ %s }}: no step '%s'", ref->text, ref->id);
        if (strcmp(rc->st[k].status, "succeeded") != 0)
            return sl_err_set(err, SL_EINVAL, "${{ %s }}: step '%s' did not succeed (%s)", ref->text,
                              ref->id, rc->st[k].status);
        v = path_get(step_outputs(rc, (size_t)k), ref->key);
        if (v == NULL)
            return sl_err_set(err, SL_EINVAL, "${{ %s }}: %s '%s' has no %s '%s'", ref->text,
                              ref->kind == SL_REF_GATE_INPUT ? "gate" : "step", ref->id,
                              ref->kind == SL_REF_GATE_INPUT ? "input" : "output", ref->key);
        *out = *v;
        return 0;
    }
    return sl_err_set(err, SL_EINVAL, "${{ %s }}: unknown reference", ref->text);
}

/* Why step s's recorded job is not the one the scheduler enqueued. */
static char *mismatch_error(const step_state *s)
{
    char want[3][128] = { "", "", "" }, got[3][128] = { "", "", "" };
    for (int k = 0, pos = 0; s->want && k < 3; k++) {
        size_t n = strcspn(s->want + pos, "\n");
        snprintf(want[k], sizeof want[k], "%.*s", (int)n, s->want + pos);
        pos += (int)n + (s->want[pos + (int)n] == '\n');
    }
    for (int k = 0, pos = 0; s->got && k < 3; k++) {
        size_t n = strcspn(s->got + pos, "\n");
        snprintf(got[k], sizeof got[k], "%.*s", (int)n, s->got + pos);
        pos += (int)n + (s->got[pos + (int)n] == '\n');
    }
    return sl_xasprintf("job %s was recorded by a different job (kind '%s', queue '%s'%s) than the "
                        "scheduler enqueued (kind '%s', queue '%s'): its result does not count",
                        s->job_id, got[0], got[1], strcmp(got[0], want[0]) == 0 &&
                        strcmp(got[1], want[1]) == 0 ? ", other args" : "", want[0], want[1]);
}

static bool finished(const char *status)
{
    return strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
           strcmp(status, "skipped") == 0 || strcmp(status, "cancelled") == 0;
}

static void set_status(step_state *s, const char *status, const char *error)
{
    snprintf(s->status, sizeof s->status, "%s", status);
    if (error) {
        free(s->error);
        s->error = sl_xstrdup(error);
    }
    s->changed = true;
}

static char *dupv(const PGresult *res, int row, int col)
{
    const char *v = sl_db_value(res, row, col);
    return v ? sl_xstrdup(v) : NULL;
}

/* Builds the envelope of step i and stores its bytes for the later XADD. */
typedef struct pending_job {
    sl_job job;
    char *args_json;     /* owned: the args as rendered, for the step's record */
} pending_job;

/* A step job's id: RUN.STEP.1.RANDOM.  The random part (96 bits) makes it
 * unguessable, so that nobody can record a result under it before the
 * scheduler enqueues it (a result still counts only if the recorded job
 * matches, see settle_step). */
static char *new_job_id(const char *run_id, const char *step)
{
    unsigned char rnd[12];
    size_t got = 0;
    while (got < sizeof rnd) {
        ssize_t r = getrandom(rnd + got, sizeof rnd - got, 0);
        if (r < 0) {
            SL_ERROR("getrandom_failed", "errno=%s", strerror(errno));
            abort();   /* no randomness: no unguessable ids (as lib/jobid.c) */
        }
        got += (size_t)r;
    }
    char hex[2 * sizeof rnd + 1];
    for (size_t k = 0; k < sizeof rnd; k++)
        snprintf(hex + 2 * k, 3, "%02x", rnd[k]);
    return sl_xasprintf("%s.%s.1.%s", run_id, step, hex);
}

/* Builds the envelope of step i (signed when the engine has a key) and
 * keeps it for the XADD after the commit.  id: the step's recorded job id
 * (re-enqueueing after a crash), NULL for a new one. */
static int make_job(run_ctx *rc, size_t i, const char *id, pending_job *pj, sl_err *err)
{
    const sl_pstep *s = &rc->p->steps[i];
    sl_buf args = SL_BUF_INIT;
    int ret = -1;
    if (s->args == NULL)
        sl_buf_puts(&args, "{}");
    else if (sl_pipeline_node_json(rc->p, s->args, resolve_run, rc, "args", &args, err) < 0)
        goto out;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (sl_json_to_msgpack(args.data, args.len, &pk, err) < 0) {   /* deeper than a job carries */
        sl_err_wrap(err, "the job cannot be enqueued");
        msgpack_sbuffer_destroy(&sb);
        goto out;
    }
    memset(pj, 0, sizeof *pj);
    pj->job.id = id ? sl_xstrdup(id) : new_job_id(rc->run_id, s->id);
    pj->job.kind = sl_xstrdup(s->kind);
    pj->job.queue = sl_xstrdup(s->queue);
    pj->job.args = sl_xmalloc(sb.size);
    memcpy(pj->job.args, sb.data, sb.size);
    pj->job.args_len = sb.size;
    pj->job.attempt = 1;
    pj->job.max_attempts = s->max_attempts;
    pj->job.timeout_ms = s->timeout_ms;
    pj->job.retry_backoff = s->backoff == NULL                       ? SL_BACKOFF_DEFAULT
                            : strcmp(s->backoff, "fixed") == 0       ? SL_BACKOFF_FIXED
                                                                     : SL_BACKOFF_EXPONENTIAL;
    pj->job.retry_initial_ms = s->retry_initial_ms;
    pj->job.retry_max_ms = s->retry_max_ms;
    pj->job.run = sl_xstrdup(rc->run_id);
    pj->job.step = sl_xstrdup(s->id);
    pj->job.enqueued_at = sl_now_ms();
    msgpack_sbuffer_destroy(&sb);
    if (rc->signer && sl_jobsig_sign(rc->signer, &pj->job, err) < 0) {
        sl_job_clear(&pj->job);
        goto out;
    }
    /* Encode it now, inside the run's transaction: a job the envelope
     * refuses (args rendered deeper than it carries, say) fails its step
     * here, instead of staying queued while every pass retries the XADD. */
    msgpack_sbuffer_init(&sb);
    int encoded = sl_envelope_encode(&pj->job, &sb, err);
    msgpack_sbuffer_destroy(&sb);
    if (encoded < 0) {
        sl_err_wrap(err, "the job cannot be enqueued");
        sl_job_clear(&pj->job);
        goto out;
    }
    pj->args_json = sl_buf_detach(&args);
    ret = 0;
out:
    sl_buf_free(&args);
    return ret;
}

/* Opens the gate of step i (inside the run's transaction). */
static int open_gate(sl_engine *e, run_ctx *rc, size_t i, sl_err *err)
{
    const sl_pstep *s = &rc->p->steps[i];
    const sl_pgate *g = s->gate;
    size_t nusers;
    char **users = sl_pipeline_gate_users(g, sl_sched_config_of(e->cfg), &nusers);
    sl_buf arr = SL_BUF_INIT, spec = SL_BUF_INIT, instr = SL_BUF_INIT, chans = SL_BUF_INIT;
    sl_buf_putc(&arr, '[');   /* a JSON array, turned into text[] by the INSERT */
    for (size_t u = 0; u < nusers; u++) {
        sl_buf_puts(&arr, u ? "," : "");
        sl_json_put_string(&arr, users[u], strlen(users[u]));
    }
    sl_buf_putc(&arr, ']');
    sl_pipeline_users_free(users);
    size_t nch;   /* the channels of its events, recorded with it (scheduler/notify.h) */
    const char *const *ch = sl_pipeline_gate_channels(rc->p, g, &sl_config_jobs_of(e->cfg)->notify, &nch);
    sl_buf_putc(&chans, '[');
    for (size_t c = 0; c < nch; c++) {
        sl_buf_puts(&chans, c ? "," : "");
        sl_json_put_string(&chans, ch[c], strlen(ch[c]));
    }
    sl_buf_putc(&chans, ']');
    sl_buf_putc(&spec, '[');
    for (size_t k = 0; k < g->ninputs; k++) {
        sl_buf_printf(&spec, "%s{\"name\":", k ? "," : "");
        sl_json_put_string(&spec, g->inputs[k].name, strlen(g->inputs[k].name));
        sl_buf_printf(&spec, ",\"type\":\"%s\"", g->inputs[k].type);
        if (g->inputs[k].dflt) {
            sl_buf_puts(&spec, ",\"default\":");
            if (sl_pipeline_node_json(rc->p, g->inputs[k].dflt, NULL, NULL, "default", &spec, err) < 0)
                goto fail;
        }
        sl_buf_putc(&spec, '}');
    }
    sl_buf_putc(&spec, ']');
    sl_err ierr;
    if (g->instructions && sl_tmpl_render_text(g->instructions, resolve_run, rc, &instr, &ierr) < 0) {
        sl_buf_reset(&instr);
        sl_buf_puts(&instr, g->instructions);   /* shown as written rather than not at all */
    }
    char req[16], timeout[32];
    snprintf(req, sizeof req, "%d", g->required);
    snprintf(timeout, sizeof timeout, "%" PRId64, g->timeout_ms);
    const char *p[] = { rc->run_id, s->id, sl_buf_str(&arr), req, g->allow_self ? "true" : "false",
                        rc->triggered_by, g->on_timeout_approve ? "approve" : "reject",
                        sl_buf_str(&spec), g->instructions ? sl_buf_str(&instr) : NULL,
                        g->timeout_ms ? timeout : NULL, sl_buf_str(&chans) };
    int ret = sl_db_run(e->db, "open gate", "INSERT INTO sluice_gates (run_id, gate_id, status, approvers,"
                  " required, allow_self, triggered_by, on_timeout, input_spec, instructions, deadline,"
                  " notify)"
                  " VALUES ($1, $2, 'open', ARRAY(SELECT jsonb_array_elements_text($3::jsonb)), $4::integer, $5::boolean, $6, $7, $8::jsonb, $9,"
                  " now() + make_interval(secs => $10::bigint / 1000.0),"
                  " ARRAY(SELECT jsonb_array_elements_text($11::jsonb)))"
                  " ON CONFLICT (run_id, gate_id) DO NOTHING", 11, p, err);
    sl_buf_free(&arr);
    sl_buf_free(&spec);
    sl_buf_free(&instr);
    sl_buf_free(&chans);
    return ret;
fail:
    sl_buf_free(&arr);
    sl_buf_free(&spec);
    sl_buf_free(&instr);
    sl_buf_free(&chans);
    return -1;
}

/* Is job id anywhere in its queue's stream (waiting or pending)? */
static int in_stream(sl_engine *e, const char *queue, const char *job_id, bool *found, sl_err *err)
{
    char key[SL_KEY_MAX];
    char start[64] = "-";
    sl_queue_key(key, queue, "jobs");
    *found = false;
    for (;;) {
        const char *argv[] = { "XRANGE", key, start, "+", "COUNT", "500" };
        redisReply *rep = sl_redis_command(e->redis, 6, argv, NULL, err);
        if (rep == NULL)
            return -1;
        size_t n = rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
        for (size_t i = 0; i < n && !*found; i++) {
            redisReply *ent = rep->element[i];
            if (ent->type != REDIS_REPLY_ARRAY || ent->elements < 2)
                continue;
            redisReply *fields = ent->element[1];
            for (size_t f = 0; f + 1 < fields->elements; f += 2) {
                sl_job job;
                if (strcmp(fields->element[f]->str, "job") == 0 &&
                    sl_envelope_decode(fields->element[f + 1]->str, fields->element[f + 1]->len,
                                       &job, NULL) == 0) {
                    *found = strcmp(job.id, job_id) == 0;
                    sl_job_clear(&job);
                }
            }
        }
        if (n > 0)
            snprintf(start, sizeof start, "(%s", rep->element[n - 1]->element[0]->str);
        freeReplyObject(rep);
        if (*found || n < 500)
            return 0;
    }
}

/* A step enqueued to a queue no live worker pool reads would wait without
 * a word: say so in the log (`sluice status` shows it beside the step). */
static void warn_if_unserved(sl_engine *e, const sl_job *job)
{
    int64_t now = sl_monotonic_ms();
    served_entry *slot = &e->served[0];
    for (size_t i = 0; i < SERVED_CACHE; i++) {
        served_entry *c = &e->served[i];
        if (c->checked_ms && strcmp(c->queue, job->queue) == 0) {
            slot = c;
            break;
        }
        if (c->checked_ms < slot->checked_ms)
            slot = c;   /* else reuse the oldest */
    }
    if (strcmp(slot->queue, job->queue) != 0 || !slot->served || now - slot->checked_ms >= SERVED_FRESH_MS) {
        sl_err err;
        bool served;
        if (sl_workerreg_serves(e->redis, job->queue, &served, &err) < 0) {
            SL_DEBUG("step.queue_check_failed", "queue=%s error=%s", job->queue, LOGQ(err.msg));
            return;
        }
        snprintf(slot->queue, sizeof slot->queue, "%s", job->queue);
        slot->checked_ms = now;
        slot->served = served;
    }
    if (!slot->served)
        SL_WARN("step.queue_unserved", "run=%s step=%s job=%s queue=%s detail=%s", job->run, job->step,
                job->id, job->queue, LOGQ("no live sluice-worker reads this queue: the step waits until "
                                          "one does (sluice workers lists them)"));
}

static int enqueue_job(sl_engine *e, pending_job *pj, bool verify, sl_err *err)
{
    if (verify) {
        bool found;
        if (in_stream(e, pj->job.queue, pj->job.id, &found, err) < 0)
            return -1;
        if (!found) {
            const char *p[] = { pj->job.id };
            PGresult *res = sl_db_exec(e->db, "job row", "SELECT 1 FROM sluice_jobs WHERE id = $1", 1, p, err);
            if (res == NULL)
                return -1;
            found = PQntuples(res) > 0;
            PQclear(res);
        }
        if (found) {
            SL_INFO("step.enqueue_verified", "run=%s step=%s job=%s", pj->job.run, pj->job.step, pj->job.id);
            goto mark;
        }
    }
    pj->job.enqueued_at = sl_now_ms();
    if (sl_queue_enqueue(e->redis, &pj->job, err) < 0)
        return -1;
    SL_INFO("step.enqueued", "run=%s step=%s job=%s queue=%s", pj->job.run, pj->job.step, pj->job.id,
            pj->job.queue);
    warn_if_unserved(e, &pj->job);
mark:;
    const char *p[] = { pj->job.run, pj->job.step };
    return sl_db_run(e->db, "mark enqueued", "UPDATE sluice_run_steps SET enqueued = true"
                     " WHERE run_id = $1 AND step_id = $2", 2, p, err);
}

static void run_ctx_free(run_ctx *rc)
{
    if (rc->st) {
        for (size_t i = 0; i < rc->p->nsteps; i++) {
            step_state *s = &rc->st[i];
            free(s->job_id);
            free(s->outputs);
            free(s->error);
            free(s->job_status);
            free(s->job_outputs);
            free(s->job_error);
            free(s->want);
            free(s->got);
            free(s->enq_kind);
            free(s->enq_queue);
            free(s->enq_args);
            if (s->out_loaded)
                sl_jsonval_free(&s->out);
        }
        free(rc->st);
    }
    free(rc->triggered_by);
    sl_jsonval_free(&rc->vars);
    sl_pipeline_free(rc->p);
}

static int fail_run_now(sl_engine *e, const char *run_id, const char *why, sl_err *err)
{
    const char *p[] = { run_id, why };
    if (cancel_rest(e->db, run_id, "sluice-scheduler", err) < 0)
        return -1;
    return sl_db_run(e->db, "fail run", "UPDATE sluice_runs SET status = 'failed', finished_at = now(),"
                     " error = $2 WHERE id = $1", 2, p, err);
}

/* After the run's transaction: fails step_id of run_id (still queued and
 * not enqueued) with why, and the run with it, in a transaction of its own. */
static int fail_step_now(sl_engine *e, const char *run_id, const char *step_id, const char *why,
                         sl_err *err)
{
    char *msg = sl_xasprintf("the job cannot be enqueued: %s", why);
    char *run_why = sl_xasprintf("step %s failed: %s", step_id, msg);
    const char *p[] = { run_id, step_id, msg };
    int rc = -1;
    if (sl_db_begin(e->db, err) < 0)
        goto out;
    PGresult *res = sl_db_exec(e->db, "fail step", "UPDATE sluice_run_steps SET status = 'failed', error = $3,"
                               " finished_at = now() WHERE run_id = $1 AND step_id = $2 AND status = 'queued'"
                               " AND NOT enqueued", 3, p, err);
    if (res == NULL)
        goto rollback;
    bool failed = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (failed && (fail_run_now(e, run_id, run_why, err) < 0 ||
                   sl_db_run(e->db, "notify", "SELECT pg_notify('sluice_runs', $1)", 1, p, err) < 0))
        goto rollback;
    if (sl_db_commit(e->db, err) < 0)
        goto rollback;
    if (failed)
        SL_INFO("run.failed", "run=%s step=%s", run_id, step_id);
    rc = 0;
    goto out;
rollback:
    sl_db_rollback(e->db);
out:
    free(msg);
    free(run_why);
    return rc;
}

int sl_engine_advance(sl_engine *e, const char *run_id, sl_err *err)
{
    run_ctx rc = { .run_id = run_id };
    sl_jsonval_init(&rc.vars, NULL);
    pending_job *jobs = NULL;
    bool *verify = NULL;
    size_t njobs = 0;
    int ret = -1;
    bool ended = false, opened_gate = false;
    const char *p1[] = { run_id };
    if (sl_db_begin(e->db, err) < 0)
        goto out;
    PGresult *res = sl_db_exec(e->db, "lock run", "SELECT status, source_name, source, vars::text,"
                               " triggered_by, source_sha256, pipeline, seal FROM sluice_runs WHERE id = $1"
                               " FOR UPDATE", 1, p1, err);
    if (res == NULL)
        goto rollback;
    if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "running") != 0) {
        PQclear(res);
        ret = sl_db_commit(e->db, err);
        goto out;
    }
    char hash[SL_SHA256_HEX];
    source_hash(PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2), hash);
    const char *not_accepted = NULL;
    if (PQgetisnull(res, 0, 2) || PQgetisnull(res, 0, 5) || strcmp(hash, PQgetvalue(res, 0, 5)) != 0)
        not_accepted = "the run's pipeline text is not the one the scheduler accepted (no source, or its "
                       "SHA-256 differs from source_sha256): not run";
    else if (e->signer && !seal_ok(e->signer, sl_db_value(res, 0, 7), run_id, PQgetvalue(res, 0, 6),
                                   PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 3)))
        not_accepted = "the run was not accepted by this scheduler (its seal does not verify with "
                       "scheduler.signing_key_file): not run";
    if (not_accepted) {
        PQclear(res);
        SL_WARN("run.not_accepted", "run=%s error=%s", run_id, LOGQ(not_accepted));
        if (fail_run_now(e, run_id, not_accepted, err) < 0)
            goto rollback;
        ended = true;
        ret = sl_db_commit(e->db, err);
        goto out;
    }
    rc.signer = e->signer;
    sl_yerrors perr = SL_YERRORS_INIT;
    rc.p = sl_pipeline_parse(PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                             (size_t)PQgetlength(res, 0, 2), sl_sched_config_of(e->cfg), &perr);
    sl_jsonval_free(&rc.vars);
    sl_jsonval_init(&rc.vars, PQgetvalue(res, 0, 3));
    rc.triggered_by = sl_xstrdup(PQgetvalue(res, 0, 4));
    PQclear(res);
    if (rc.p == NULL) {
        char why[600];
        snprintf(why, sizeof why, "the pipeline no longer loads: %s", perr.n ? perr.msgs[0] : "?");
        sl_yerrors_free(&perr);
        if (fail_run_now(e, run_id, why, err) < 0)
            goto rollback;
        ended = true;
        ret = sl_db_commit(e->db, err);
        goto out;
    }
    sl_yerrors_free(&perr);
    size_t n = rc.p->nsteps;
    rc.st = sl_xcalloc(n, sizeof *rc.st);
    for (size_t i = 0; i < n; i++)
        snprintf(rc.st[i].status, sizeof rc.st[i].status, "pending");
    res = sl_db_exec(e->db, "read steps", "SELECT s.step_id, s.status, s.job_id, s.enqueued,"
                     " s.outputs::text, s.error, j.status, j.outputs::text, j.error,"
                     " s.job_kind || E'\\n' || s.job_queue || E'\\n' || s.job_args_sha256,"
                     " j.kind || E'\\n' || j.queue || E'\\n'"
                     "  || encode(sha256(convert_to(j.args::text, 'UTF8')), 'hex')"
                     " FROM sluice_run_steps s LEFT JOIN sluice_jobs j ON j.id = s.job_id"
                     " WHERE s.run_id = $1", 1, p1, err);
    if (res == NULL)
        goto rollback;
    for (int r = 0; r < PQntuples(res); r++) {
        int k = sl_pipeline_step(rc.p, PQgetvalue(res, r, 0));
        if (k < 0)
            continue;
        step_state *s = &rc.st[k];
        snprintf(s->status, sizeof s->status, "%s", PQgetvalue(res, r, 1));
        s->job_id = dupv(res, r, 2);
        s->enqueued = strcmp(PQgetvalue(res, r, 3), "t") == 0;
        s->outputs = dupv(res, r, 4);
        s->error = dupv(res, r, 5);
        s->job_status = dupv(res, r, 6);
        s->job_outputs = dupv(res, r, 7);
        s->job_error = dupv(res, r, 8);
        s->want = dupv(res, r, 9);
        s->got = dupv(res, r, 10);
    }
    PQclear(res);

    /* Settle queued steps whose job has a final result. */
    for (size_t i = 0; i < n; i++) {
        step_state *s = &rc.st[i];
        if (strcmp(s->status, "queued") != 0 || s->job_status == NULL)
            continue;
        if (s->want && (s->got == NULL || strcmp(s->want, s->got) != 0)) {
            char *why = mismatch_error(s);
            set_status(s, "failed", why);
            free(why);
        } else if (strcmp(s->job_status, "succeeded") == 0) {
            set_status(s, "succeeded", NULL);
            free(s->outputs);
            s->outputs = sl_xstrdup(s->job_outputs ? s->job_outputs : "{}");
        } else if (strcmp(s->job_status, "failed") == 0 || strcmp(s->job_status, "dead") == 0 ||
                   strcmp(s->job_status, "cancelled") == 0) {
            char *why = sl_xasprintf("job %s %s: %s", s->job_id, s->job_status,
                                     s->job_error ? s->job_error : "no error recorded");
            set_status(s, "failed", why);
            free(why);
        }
    }

    /* Decide pending steps until nothing changes. */
    bool any_failed = false;
    for (size_t i = 0; i < n; i++)
        any_failed = any_failed || strcmp(rc.st[i].status, "failed") == 0;
    jobs = sl_xcalloc(n, sizeof *jobs);
    verify = sl_xcalloc(n, sizeof *verify);
    for (size_t i = 0; i < n && !any_failed; i++) {
        step_state *s = &rc.st[i];
        if (strcmp(s->status, "queued") == 0 && !s->enqueued && s->job_status == NULL) {
            sl_err je;
            if (make_job(&rc, i, s->job_id, &jobs[njobs], &je) == 0) {
                verify[njobs++] = true;
            } else {
                set_status(s, "failed", je.msg);   /* never retried pass after pass */
                any_failed = true;
            }
        }
    }
    for (bool progress = true; progress && !any_failed;) {
        progress = false;
        for (size_t i = 0; i < n && !any_failed; i++) {
            step_state *s = &rc.st[i];
            const sl_pstep *ps = &rc.p->steps[i];
            if (strcmp(s->status, "pending") != 0)
                continue;
            bool all_done = true, all_ok = true;
            for (size_t j = 0; j < ps->nneeds; j++) {
                const char *ns = rc.st[ps->needs[j]].status;
                all_done = all_done && finished(ns);
                all_ok = all_ok && strcmp(ns, "succeeded") == 0;
            }
            if (!all_done)
                continue;
            progress = true;
            if (!all_ok) {
                set_status(s, "skipped", NULL);
                continue;
            }
            if (ps->if_expr) {
                bool yes;
                sl_err xe;
                if (sl_expr_eval(ps->if_expr, resolve_run, &rc, &yes, &xe) < 0) {
                    char *why = sl_xasprintf("if: %s", xe.msg);
                    set_status(s, "failed", why);
                    free(why);
                    any_failed = true;
                    continue;
                }
                if (!yes) {
                    set_status(s, "skipped", NULL);
                    continue;
                }
            }
            if (ps->gate) {
                if (open_gate(e, &rc, i, err) < 0)
                    goto rollback;
                set_status(s, "waiting", NULL);
                opened_gate = true;
                continue;
            }
            sl_err je;
            if (make_job(&rc, i, NULL, &jobs[njobs], &je) < 0) {
                set_status(s, "failed", je.msg);
                any_failed = true;
                continue;
            }
            free(s->job_id);
            s->job_id = sl_xstrdup(jobs[njobs].job.id);
            s->enq_kind = sl_xstrdup(jobs[njobs].job.kind);
            s->enq_queue = sl_xstrdup(jobs[njobs].job.queue);
            s->enq_args = sl_xstrdup(jobs[njobs].args_json);
            verify[njobs++] = false;
            set_status(s, "queued", NULL);
        }
    }

    /* Write the steps that changed. */
    for (size_t i = 0; i < n; i++) {
        step_state *s = &rc.st[i];
        if (!s->changed)
            continue;
        const char *p[] = { run_id, rc.p->steps[i].id, s->status, s->job_id, s->outputs, s->error,
                            s->enq_kind, s->enq_queue, s->enq_args };
        /* What was enqueued is recorded with the step; the args hash is
         * taken over jsonb's canonical text, as settle compares it. */
        if (sl_db_run(e->db, "update step", "UPDATE sluice_run_steps SET status = $3, job_id = $4,"
                      " outputs = $5::jsonb, error = $6,"
                      " queued_at = CASE WHEN $3 = 'queued' THEN now() ELSE queued_at END,"
                      " finished_at = CASE WHEN $3 IN ('succeeded', 'failed', 'skipped', 'cancelled')"
                      " THEN now() ELSE finished_at END,"
                      " job_kind = coalesce($7, job_kind), job_queue = coalesce($8, job_queue),"
                      " job_args_sha256 = coalesce(encode(sha256(convert_to($9::jsonb::text, 'UTF8')), 'hex'),"
                      "  job_args_sha256)"
                      " WHERE run_id = $1 AND step_id = $2", 9, p, err) < 0)
            goto rollback;
        SL_INFO("step.status", "run=%s step=%s status=%s", run_id, rc.p->steps[i].id, s->status);
    }
    if (any_failed) {
        size_t f = 0;
        while (f < n && strcmp(rc.st[f].status, "failed") != 0)
            f++;
        char *why = sl_xasprintf("step %s failed: %s", rc.p->steps[f].id,
                                 rc.st[f].error ? rc.st[f].error : "?");
        int r = fail_run_now(e, run_id, why, err);
        free(why);
        if (r < 0)
            goto rollback;
        ended = true;
        njobs = 0;   /* nothing more is enqueued for a failed run */
        SL_INFO("run.failed", "run=%s", run_id);
    } else {
        bool all_done = true;
        for (size_t i = 0; i < n; i++)
            all_done = all_done && finished(rc.st[i].status);
        if (all_done) {
            if (sl_db_run(e->db, "finish run", "UPDATE sluice_runs SET status = 'succeeded',"
                          " finished_at = now() WHERE id = $1", 1, p1, err) < 0)
                goto rollback;
            ended = true;
            SL_INFO("run.succeeded", "run=%s", run_id);
        }
    }
    if (sl_db_commit(e->db, err) < 0)
        goto out;

    /* After the commit: the XADDs.  A failure leaves the step queued and
     * not enqueued; the next pass verifies and enqueues it. */
    ret = 0;
    for (size_t j = 0; j < njobs; j++) {
        if (enqueue_job(e, &jobs[j], verify[j], err) == 0)
            continue;
        SL_WARN("step.enqueue_failed", "run=%s step=%s error=%s", run_id, jobs[j].job.step, LOGQ(err->msg));
        /* Redis being away is worth retrying on the next pass; a refusal
         * of the job itself is not: it fails the step, and so the run. */
        if (err->code == SL_EINVAL && fail_step_now(e, run_id, jobs[j].job.step, err->msg, err) == 0)
            ended = true;
        else
            ret = -1;
    }
    /* the group may be free now: the run ended, or waits at a gate and
     * releases its group there */
    if ((ended || opened_gate) && sl_engine_start_queued(e, err) < 0)
        ret = -1;
    goto out;
rollback:
    sl_db_rollback(e->db);
    ret = -1;
out:
    for (size_t j = 0; jobs && j < (rc.p ? rc.p->nsteps : 0); j++) {
        sl_job_clear(&jobs[j].job);
        free(jobs[j].args_json);
    }
    free(jobs);
    free(verify);
    run_ctx_free(&rc);
    return ret;
}

int sl_engine_start_queued(sl_engine *e, sl_err *err)
{
    if (accept_requested(e, err) < 0)
        return -1;
    PGresult *res = sl_db_exec(e->db, "queued runs", "SELECT id FROM sluice_runs WHERE status = 'queued'"
                               " AND source_sha256 IS NOT NULL ORDER BY created_at, id", 0, NULL, err);
    if (res == NULL)
        return -1;
    int ret = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *p[] = { PQgetvalue(res, r, 0) };
        /* The group is free when no running run of it holds it: a run
         * waiting at a gate holds it unless it releases at gates. */
        PGresult *u = sl_db_exec(e->db, "start run",
            "UPDATE sluice_runs q SET status = 'running', started_at = now()"
            " WHERE q.id = $1 AND q.status = 'queued' AND (q.concurrency_group IS NULL OR NOT EXISTS ("
            "  SELECT 1 FROM sluice_runs a WHERE a.status = 'running'"
            "  AND a.concurrency_group = q.concurrency_group"
            "  AND NOT (a.release_at_gates AND EXISTS (SELECT 1 FROM sluice_run_steps w"
            "   WHERE w.run_id = a.id AND w.status = 'waiting'))))", 1, p, err);
        if (u == NULL) {
            ret = -1;
            break;
        }
        bool started = atoi(PQcmdTuples(u)) == 1;
        PQclear(u);
        if (started) {
            SL_INFO("run.started", "run=%s", p[0]);
            if (sl_engine_advance(e, p[0], err) < 0)
                ret = -1;
        }
    }
    PQclear(res);
    return ret;
}

int sl_engine_reconcile(sl_engine *e, sl_err *err)
{
    int ret = sl_engine_start_queued(e, err);
    PGresult *res = sl_db_exec(e->db, "running runs", "SELECT id FROM sluice_runs WHERE status = 'running'"
                               " ORDER BY created_at", 0, NULL, err);
    if (res == NULL)
        return -1;
    for (int r = 0; r < PQntuples(res); r++) {
        sl_err e2;
        if (sl_engine_advance(e, PQgetvalue(res, r, 0), &e2) < 0) {
            SL_WARN("run.advance_failed", "run=%s error=%s", PQgetvalue(res, r, 0), LOGQ(e2.msg));
            *err = e2;
            ret = -1;
        }
    }
    PQclear(res);
    return ret;
}

int sl_engine_fire_cron(sl_engine *e, sl_pipeline *const *pipelines, size_t n, int64_t now_ms,
                        int *started, sl_err *err)
{
    int count = 0;
    char now[32];
    snprintf(now, sizeof now, "%" PRId64, now_ms);
    for (size_t i = 0; i < n; i++) {
        const sl_pipeline *p = pipelines[i];
        if (p->schedule == NULL)
            continue;
        const char *pp[] = { p->name, now };
        if (sl_db_begin(e->db, err) < 0)
            return -1;
        if (sl_db_run(e->db, "register schedule", "INSERT INTO sluice_schedules (pipeline, last_fire)"
                      " VALUES ($1, to_timestamp($2::bigint / 1000.0)) ON CONFLICT DO NOTHING",
                      2, pp, err) < 0)
            goto fail;
        PGresult *res = sl_db_exec(e->db, "read schedule", "SELECT (extract(epoch FROM last_fire) * 1000)"
                                   "::bigint FROM sluice_schedules WHERE pipeline = $1 FOR UPDATE", 1, pp, err);
        if (res == NULL)
            goto fail;
        int64_t last = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        int64_t fire = sl_cron_next(&p->cron, last), latest = -1;
        for (int guard = 0; fire > 0 && fire <= now_ms && guard < 1000000; guard++) {
            latest = fire;
            fire = sl_cron_next(&p->cron, fire);
        }
        if (latest < 0) {
            if (sl_db_commit(e->db, err) < 0)
                goto fail;
            continue;
        }
        char fire_s[32], run_id[SL_RUN_ID_MAX];
        snprintf(fire_s, sizeof fire_s, "%" PRId64, latest);
        const char *up[] = { p->name, fire_s };
        /* One transaction: the schedule moves on and the run exists, or
         * neither; the unique (pipeline, scheduled_for) index makes a
         * second scheduler's attempt at the same fire time a no-op. */
        int rc = create_cron_run_tx(e->db, p, latest, e->signer, run_id, err);
        if (rc < 0 ||
            sl_db_run(e->db, "advance schedule", "UPDATE sluice_schedules SET last_fire ="
                      " to_timestamp($2::bigint / 1000.0) WHERE pipeline = $1", 2, up, err) < 0 ||
            sl_db_commit(e->db, err) < 0)
            goto fail;
        if (rc == 0) {
            SL_INFO("cron.fired", "pipeline=%s run=%s fire_ms=%" PRId64, p->name, run_id, latest);
            count++;
        }
    }
    if (started)
        *started = count;
    return 0;
fail:
    sl_db_rollback(e->db);
    return -1;
}

int sl_engine_promote(sl_engine *e, sl_err *err)
{
    const char *argv[] = { "SMEMBERS", SL_QUEUES_KEY };
    redisReply *rep = sl_redis_command(e->redis, 2, argv, NULL, err);
    if (rep == NULL)
        return -1;
    int ret = 0;
    int64_t now = sl_now_ms();
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        if (rep->element[i]->type == REDIS_REPLY_STRING &&
            sl_queue_promote(e->redis, rep->element[i]->str, now, 1000, err) < 0)
            ret = -1;
    }
    freeReplyObject(rep);
    return ret;
}

int sl_engine_expire_gates(sl_engine *e, sl_err *err)
{
    /* The NOTIFY sent with each timeout makes the leader advance the run. */
    return sl_gate_expire(e->db, NULL, err);
}
