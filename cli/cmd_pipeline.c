/* cmd_pipeline.c: the pipeline commands of `sluice`:
 *   validate [FILES]   check pipeline files, every error as FILE:LINE:COL
 *   run PIPELINE       start a run through the API (optionally following it with --wait)
 *   runs               list runs
 *   status RUN         a run's steps: status, attempts, durations, job ids, outputs
 * The API server creates runs in PostgreSQL as the caller's authenticated
 * principal; the leading sluice-scheduler picks them up (NOTIFY) and drives
 * them.  runs and status read PostgreSQL directly. */
#include "apiclient.h"
#include "args.h"
#include "cli.h"
#include "clock.h"
#include "db.h"
#include "engine.h"
#include "json.h"
#include "jsonval.h"
#include "mem.h"
#include "pipeline.h"
#include "queue.h"
#include "vis.h"
#include "redis.h"
#include "workerreg.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_AT_GATE 3

/* A database value as printed: visibly (vis.h), since names, variables,
 * outputs and errors come from other people and programs. */
#define V(res, r, c) SL_VIS(PQgetvalue((res), (r), (c)))

/* ---- validate --------------------------------------------------------------- */

static const sl_opt validate_rows[] = {
    { 'p', "pipelines", 'p', "DIR", "pipeline directory (default: scheduler.pipelines)" },
    { 'q', "quiet", 'q', NULL, "print only errors" },
    { 'c', "config", 'c', "FILE", "configuration file (approver groups)" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts validate_opts = { "sluice validate",
    "Usage: sluice validate [OPTIONS] [FILE...]\n"
    "\n"
    "Checks pipeline files (default: every *.yaml in the pipeline directory) and\n"
    "prints each error as FILE:LINE:COLUMN: message.  Exits 1 if any has an error.\n"
    "\n",
    "\nTry 'sluice validate --help'.", validate_rows,
NULL, NULL };


int cmd_validate(int argc, char **argv)
{
    const char *config = NULL, *dir = NULL;
    bool quiet = false;
    int c;
    sl_opts_parser op;
    const char *optval;
    sl_opts_begin(&op, &validate_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        switch (c) {
        case 'p': dir = optval; break;
        case 'q': quiet = true; break;
        case 'c': config = optval; break;
        default: return op.status;
        }
    }
    sl_config *cfg = cli_load_config("validate", config);
    if (cfg == NULL)
        return CLI_FAILED;
    sl_yerrors errors = SL_YERRORS_INIT;
    int status = CLI_OK;
    if (optind < argc) {
        for (int i = optind; i < argc; i++) {
            sl_pipeline *p = sl_pipeline_load(argv[i], sl_sched_config_of(cfg), &errors);
            if (p && !quiet)
                printf("%s: ok (pipeline %s, %zu steps%s)\n", argv[i], p->name, p->nsteps,
                       p->schedule ? ", scheduled" : "");
            sl_pipeline_free(p);
        }
    } else {
        sl_pipeline **list;
        size_t n;
        sl_err err;
        if (dir == NULL)
            dir = sl_sched_config_of(cfg)->pipelines;
        if (sl_pipelines_load_dir(dir, sl_sched_config_of(cfg), &list, &n, &errors, &err) < 0) {
            status = cli_fail("validate", "%s", err.msg);
        } else {
            for (size_t i = 0; i < n && !quiet; i++)
                printf("%s: ok (pipeline %s, %zu steps%s)\n", sl_ydoc_name(list[i]->doc), list[i]->name,
                       list[i]->nsteps, list[i]->schedule ? ", scheduled" : "");
            sl_pipelines_free(list, n);
        }
    }
    for (size_t i = 0; i < errors.n; i++)
        fprintf(stderr, "%s\n", SL_VIS(errors.msgs[i]));
    if (errors.n > 0)
        status = CLI_FAILED;
    sl_yerrors_free(&errors);
    sl_config_free(cfg);
    return status;
}

/* ---- run -------------------------------------------------------------------- */

static const sl_opt run_rows[] = {
    { 'v', "var", 0, "NAME=VALUE", "override a declared variable (repeatable)" },
    { 'w', "wait", 'w', NULL, "follow the run until it ends or waits at a gate\n(needs the read scope too); exit 0 succeeded,\n1 failed or cancelled, 3 waiting at a gate" },
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts run_opts = { "sluice run",
    "Usage: sluice run PIPELINE [OPTIONS]\n"
    "\n"
    "Asks the API server (api.url, $SLUICE_API_URL) to start a run of PIPELINE,\n"
    "a pipeline the scheduler has installed (its scheduler.pipelines), and prints\n"
    "the run's id.  The scheduler runs its own copy of the pipeline and records\n"
    "its SHA-256 on the run; no pipeline text is sent from here.  A name it has\n"
    "not installed, or an undeclared --var, fails the run.  The request carries\n"
    "the token in $SLUICE_TOKEN (scope trigger); the run is recorded as\n"
    "triggered by the token's user, who may not approve its gates unless a gate\n"
    "allows self-approval.  The run waits (queued) while another run of its\n"
    "concurrency group is active.\n"
    "\n",
    "\nTry 'sluice run --help'.", run_rows,
NULL, NULL };


/* GET path as JSON into j (check j->ok; free it whatever the result);
 * prints the failure and returns -1 when there is no 200 answer. */
static int api_get(const sl_config *cfg, const char *path, sl_jsonval *j)
{
    cli_api_reply reply;
    sl_err err;
    sl_jsonval_init(j, NULL);
    if (cli_api(cfg, "GET", path, NULL, &reply, &err) < 0) {
        cli_fail("run", "%s", err.msg);
        return -1;
    }
    int rc = 0;
    if (reply.status != 200) {
        cli_api_fail("run", &reply);
        rc = -1;
    } else {
        sl_jsonval_init(j, sl_buf_str(&reply.body));
    }
    sl_buf_free(&reply.body);
    return rc;
}

/* A string member of a JSON object as printable text (control characters
 * shown as '?'), "" when absent or null. */
static void member(const msgpack_object *o, const char *key, char *out, size_t n)
{
    char *s = NULL;
    out[0] = '\0';
    if (sl_args_str(o, key, false, &s, NULL) == 0 && s) {
        size_t k = 0;
        for (const char *p = s; *p && k + 1 < n; p++)
            out[k++] = (*p < 0x20 || *p == 0x7f) ? '?' : *p;
        out[k] = '\0';
    }
    free(s);
}

/* Follows a run through the API, printing step changes; returns the exit status. */
static int follow(const sl_config *cfg, const char *run_id)
{
    char **seen = NULL;
    size_t nseen = 0;
    int status = CLI_FAILED;
    char *run_path = cli_api_path("/v1/runs/%s", run_id);
    char *steps_path = cli_api_path("/v1/runs/%s/steps", run_id);
    for (;;) {
        sl_jsonval run, steps;
        sl_jsonval_init(&steps, NULL);
        if (api_get(cfg, run_path, &run) < 0 || api_get(cfg, steps_path, &steps) < 0 || !run.ok || !steps.ok ||
            steps.up.data.type != MSGPACK_OBJECT_ARRAY) {
            sl_jsonval_free(&run);
            sl_jsonval_free(&steps);
            break;
        }
        const msgpack_object_array *a = &steps.up.data.via.array;
        if (a->size > nseen) {   /* steps appear when the scheduler accepts the run */
            seen = sl_xrealloc(seen, (a->size + 1) * sizeof *seen);
            memset(seen + nseen, 0, (a->size + 1 - nseen) * sizeof *seen);
            nseen = a->size;
        }
        bool waiting = false;
        for (size_t i = 0; i < a->size && i < nseen; i++) {
            char id[128], st[32], error[512];
            member(&a->ptr[i], "step", id, sizeof id);
            member(&a->ptr[i], "status", st, sizeof st);
            member(&a->ptr[i], "error", error, sizeof error);
            waiting = waiting || strcmp(st, "waiting") == 0;
            if (seen[i] == NULL || strcmp(seen[i], st) != 0) {
                printf("  %-20s %s%s%s\n", id, st, error[0] ? "  " : "", error);
                free(seen[i]);
                seen[i] = sl_xstrdup(st);
            }
        }
        fflush(stdout);
        char rs[32], error[512];
        member(&run.up.data, "status", rs, sizeof rs);
        member(&run.up.data, "error", error, sizeof error);
        sl_jsonval_free(&run);
        sl_jsonval_free(&steps);
        if (strcmp(rs, "succeeded") == 0 || strcmp(rs, "failed") == 0 || strcmp(rs, "cancelled") == 0) {
            printf("run %s %s%s%s\n", run_id, rs, error[0] ? ": " : "", error);
            status = strcmp(rs, "succeeded") == 0 ? CLI_OK : CLI_FAILED;
            break;
        }
        if (waiting) {
            printf("run %s is waiting at an approval gate (see 'sluice gates')\n", SL_VIS(run_id));
            status = EXIT_AT_GATE;
            break;
        }
        sl_sleep_ms(200);
    }
    for (size_t i = 0; i < nseen; i++)
        free(seen[i]);
    free(seen);
    free(run_path);
    free(steps_path);
    return status;
}

int cmd_run(int argc, char **argv)
{
    const char *config = NULL;
    sl_buf body = SL_BUF_INIT;
    bool wait = false;
    int c, status = CLI_FAILED;
    size_t nvars = 0;
    sl_buf_puts(&body, "{\"vars\":{");
    sl_opts_parser op;
    const char *optval;
    sl_opts_begin(&op, &run_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        const char *eq;
        switch (c) {
        case 'v':
            if ((eq = strchr(optval, '=')) == NULL) {
                sl_buf_free(&body);
                return cli_usage_error("run", "--var '%s': expected NAME=VALUE", optval);
            }
            if (nvars++)
                sl_buf_putc(&body, ',');
            sl_json_put_string(&body, optval, (size_t)(eq - optval));
            sl_buf_putc(&body, ':');
            sl_json_put_string(&body, eq + 1, strlen(eq + 1));
            break;
        case 'w': wait = true; break;
        case 'c': config = optval; break;
        default: sl_buf_free(&body); return op.status;
        }
    }
    sl_buf_puts(&body, "}}");
    if (optind + 1 != argc) {
        sl_buf_free(&body);
        return cli_usage_error("run", optind >= argc ? "missing PIPELINE" : "unexpected argument '%s'",
                               optind < argc ? argv[optind + 1] : "");
    }
    if (strchr(argv[optind], '/') || strstr(argv[optind], ".yaml") || strstr(argv[optind], ".yml")) {
        sl_buf_free(&body);
        return cli_usage_error("run", "'%s': a run is started by pipeline NAME; the scheduler runs only "
                               "the pipelines installed in its own directory", argv[optind]);
    }
    sl_config *cfg = cli_load_config("run", config);
    sl_err err;
    cli_api_reply reply = { 0 };
    char *path = NULL;
    if (cfg == NULL)
        goto out;
    path = cli_api_path("/v1/pipelines/%s/runs", argv[optind]);
    if (cli_api(cfg, "POST", path, sl_buf_str(&body), &reply, &err) < 0) {
        cli_fail("run", "%s", err.msg);
        goto out;
    }
    if (reply.status != 201) {
        status = reply.status == 422 ? cli_usage_error("run", "%s", reply.detail) : cli_api_fail("run", &reply);
        goto out;
    }
    sl_jsonval j;
    sl_jsonval_init(&j, sl_buf_str(&reply.body));
    char run_id[SL_RUN_ID_MAX];
    member(&j.up.data, "id", run_id, sizeof run_id);
    sl_jsonval_free(&j);
    if (run_id[0] == '\0') {
        cli_fail("run", "the API server's answer has no run id");
        goto out;
    }
    printf("%s\n", run_id);
    fflush(stdout);
    status = wait ? follow(cfg, run_id) : CLI_OK;
out:
    free(path);
    sl_buf_free(&reply.body);
    sl_buf_free(&body);
    sl_config_free(cfg);
    return status;
}

/* ---- runs, status ------------------------------------------------------------ */

/* Parses the options of runs and status from o's table: --config and the
 * rows with ids ac and bc into *a and *b.  Returns -1 to go on, else the
 * exit status (help printed, or a usage error). */
static int simple_opts(const sl_opts *o, int argc, char **argv, const char **config, const char **a,
                       int ac, const char **b, int bc)
{
    sl_opts_parser op;
    const char *value;
    sl_opts_begin(&op, o, argc, argv);
    for (int c; (c = sl_opts_next(&op, &value)) != SL_OPTS_END;) {
        if (c == 'c')
            *config = value;
        else if (a && c == ac)
            *a = value;
        else if (b && c == bc)
            *b = value;
        else
            return op.status;
    }
    return -1;
}

static const sl_opt runs_rows[] = {
    { 'P', "pipeline", 0, "P", "only runs of pipeline P" },
    { 'S', "status", 0, "S", "only runs with status S" },
    CLI_ROW_CONFIG,
    CLI_ROW_HELP,
    { 0 },
};

static const sl_opts runs_opts = CLI_OPTS("runs",
    "Usage: sluice runs [--pipeline P] [--status S]\n"
    "\n"
    "Lists runs, newest first (at most 100): id, pipeline, status, who or what\n"
    "triggered it, when it was created and finished.  S is queued, running,\n"
    "succeeded, failed or cancelled.\n"
    "\n",
    runs_rows);

int cmd_runs(int argc, char **argv)
{
    const char *config = NULL, *pipeline = NULL, *st = NULL;
    int rc = simple_opts(&runs_opts, argc, argv, &config, &pipeline, 'P', &st, 'S');
    if (rc >= 0)
        return rc;
    if (optind < argc)
        return cli_usage_error("runs", "unexpected argument '%s'", argv[optind]);
    sl_config *cfg = cli_load_config("runs", config);
    if (cfg == NULL)
        return CLI_FAILED;
    sl_err err;
    int status = CLI_FAILED;
    sl_db *db = sl_db_connect(cfg->database_url, &err);
    const char *p[] = { pipeline, st };
    PGresult *res = db ? sl_db_exec(db, "runs", "SELECT id, pipeline, status, triggered_by,"
        " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
        " coalesce(to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '-')"
        " FROM sluice_runs WHERE ($1::text IS NULL OR pipeline = $1) AND ($2::text IS NULL OR status = $2)"
        " ORDER BY created_at DESC LIMIT 100", 2, p, &err) : NULL;
    if (res == NULL) {
        cli_fail("runs", "%s", err.msg);
        goto out;
    }
    printf("%-36s  %-16s %-10s %-12s %-19s  %s\n", "RUN", "PIPELINE", "STATUS", "TRIGGERED BY",
           "CREATED (UTC)", "FINISHED");
    for (int r = 0; r < PQntuples(res); r++)
        printf("%-36s  %-16s %-10s %-12s %-19s  %s\n", V(res, r, 0), V(res, r, 1), V(res, r, 2),
               V(res, r, 3), V(res, r, 4), V(res, r, 5));
    PQclear(res);
    status = CLI_OK;
out:
    sl_db_free(db);
    sl_config_free(cfg);
    return status;
}

static const sl_opts status_opts = CLI_OPTS("status",
    "Usage: sluice status RUN\n"
    "\n"
    "Shows a run and its steps: status, attempts, how long each took, job ids,\n"
    "outputs or errors.  A queued step whose queue no live sluice-worker reads\n"
    "is marked as such.  Exits 1 if there is no such run.\n"
    "\n",
    cli_rows_simple);

/* What `status` needs to say whether a queued step's queue is served. */
typedef struct unserved_ctx {
    const sl_config *cfg;
    sl_pipeline *p;       /* the run's pipeline, as stored with it (NULL if it no longer loads) */
    sl_redis *redis;      /* opened at the first queued step */
    bool redis_failed;    /* said once */
} unserved_ctx;

/* Prints a note under a queued step when no live worker pool reads its
 * queue (the worker registry in Redis: lib/workerreg.h). */
static void unserved_note(unserved_ctx *uc, const char *step_id)
{
    int k = uc->p ? sl_pipeline_step(uc->p, step_id) : -1;
    if (k < 0 || uc->p->steps[k].queue == NULL || uc->redis_failed)
        return;
    const char *queue = uc->p->steps[k].queue;
    sl_err err;
    bool served;
    if (uc->redis == NULL)
        uc->redis = sl_redis_connect(uc->cfg->redis_url, 2000, &err);
    if (uc->redis == NULL || sl_workerreg_serves(uc->redis, queue, &served, &err) < 0) {
        printf("%-20s (cannot tell whether a worker reads queue '%s': %s)\n", "", queue, SL_VIS(err.msg));
        uc->redis_failed = true;
        return;
    }
    if (!served)
        printf("%-20s waiting: no live sluice-worker reads queue '%s' (see sluice workers)\n", "", queue);
}

int cmd_status(int argc, char **argv)
{
    const char *config = NULL;
    int rc = simple_opts(&status_opts, argc, argv, &config, NULL, 0, NULL, 0);
    if (rc >= 0)
        return rc;
    if (optind + 1 != argc)
        return cli_usage_error("status", optind >= argc ? "missing RUN" : "unexpected argument");
    sl_config *cfg = cli_load_config("status", config);
    if (cfg == NULL)
        return CLI_FAILED;
    unserved_ctx uc = { cfg, NULL, NULL, false };
    sl_err err;
    int status = CLI_FAILED;
    const char *p[] = { argv[optind] };
    PGresult *r = NULL, *s = NULL;
    sl_db *db = sl_db_connect(cfg->database_url, &err);
    if (db == NULL ||
        (r = sl_db_exec(db, "run", "SELECT pipeline, status, triggered_by, coalesce(error, ''),"
                        " vars::text, coalesce(concurrency_group, '-'),"
                        " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
                        " source_name, source"
                        " FROM sluice_runs WHERE id = $1", 1, p, &err)) == NULL) {
        cli_fail("status", "%s", err.msg);
        goto out;
    }
    if (PQntuples(r) == 0) {
        cli_fail("status", "no run '%s'", argv[optind]);
        goto out;
    }
    printf("run          %s\npipeline     %s\nstatus       %s\ntriggered by %s\ncreated      %s UTC\n"
           "vars         ", SL_VIS(argv[optind]), V(r, 0, 0), V(r, 0, 1), V(r, 0, 2), V(r, 0, 6));
    sl_vis_fputs(PQgetvalue(r, 0, 4), stdout);
    printf("\nconcurrency  %s\n", V(r, 0, 5));
    if (*PQgetvalue(r, 0, 3)) {
        fputs("error        ", stdout);
        sl_vis_fputs(PQgetvalue(r, 0, 3), stdout);
        putchar('\n');
    }
    s = sl_db_exec(db, "steps", "SELECT s.step_id, s.status, coalesce(j.attempts::text, '-'),"
                   " coalesce(round(extract(epoch FROM (s.finished_at - coalesce(s.queued_at, g.opened_at))) * 1000)::text"
                   " || 'ms', '-'),"
                   " coalesce(s.job_id, '-'), coalesce(s.outputs::text, ''), coalesce(s.error, '')"
                   " FROM sluice_run_steps s LEFT JOIN sluice_jobs j ON j.id = s.job_id"
                   " LEFT JOIN sluice_gates g ON g.run_id = s.run_id AND g.gate_id = s.step_id"
                   " WHERE s.run_id = $1 ORDER BY s.position", 1, p, &err);
    if (s == NULL) {
        cli_fail("status", "%s", err.msg);
        goto out;
    }
    sl_yerrors perr = SL_YERRORS_INIT;
    uc.p = sl_pipeline_parse(PQgetvalue(r, 0, 7), PQgetvalue(r, 0, 8), (size_t)PQgetlength(r, 0, 8),
                             sl_sched_config_of(cfg), &perr);
    sl_yerrors_free(&perr);
    printf("\n%-20s %-10s %-8s %-10s %s\n", "STEP", "STATUS", "ATTEMPTS", "TOOK", "JOB");
    for (int i = 0; i < PQntuples(s); i++) {
        printf("%-20s %-10s %-8s %-10s %s\n", V(s, i, 0), V(s, i, 1), V(s, i, 2), V(s, i, 3), V(s, i, 4));
        if (*PQgetvalue(s, i, 5)) {
            printf("%-20s outputs: ", "");
            sl_vis_fputs(PQgetvalue(s, i, 5), stdout);
            putchar('\n');
        }
        if (*PQgetvalue(s, i, 6)) {
            printf("%-20s error: ", "");
            sl_vis_fputs(PQgetvalue(s, i, 6), stdout);
            putchar('\n');
        }
        if (strcmp(PQgetvalue(s, i, 1), "queued") == 0)
            unserved_note(&uc, PQgetvalue(s, i, 0));
    }
    status = CLI_OK;
out:
    sl_pipeline_free(uc.p);
    sl_redis_free(uc.redis);
    PQclear(r);
    PQclear(s);
    sl_db_free(db);
    sl_config_free(cfg);
    return status;
}

/* ---- cancel RUN (called by cmd_cancel.c) ---------------------------------------- */

int cli_cancel_run(const sl_config *cfg, const char *id, const char *by)
{
    sl_err err;
    sl_db *db = sl_db_connect(cfg->database_url, &err);
    if (db == NULL)
        return cli_fail("cancel", "%s", err.msg);
    const char *p[] = { id };
    PGresult *res = sl_db_exec(db, "find run", "SELECT 1 FROM sluice_runs WHERE id = $1", 1, p, &err);
    int rc;
    if (res == NULL) {
        rc = err.code == SL_EPG && strstr(err.msg, "does not exist") ? -1 : cli_fail("cancel", "%s", err.msg);
    } else if (PQntuples(res) == 0) {
        rc = -1;   /* not a run: a job id */
    } else if (sl_run_cancel(db, id, by, &err) < 0) {
        rc = cli_fail("cancel", "%s", err.msg);
    } else {
        printf("run %s cancelled\n", id);
        rc = CLI_OK;
    }
    PQclear(res);
    sl_db_free(db);
    return rc;
}
