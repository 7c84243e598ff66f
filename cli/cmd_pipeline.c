/* cmd_pipeline.c: the pipeline commands of `sluice`:
 *   validate [FILES]   check pipeline files, every error as FILE:LINE:COL
 *   run PIPELINE       start a run (optionally following it with --wait)
 *   runs               list runs
 *   status RUN         a run's steps: status, attempts, durations, job ids, outputs
 * Runs are created in PostgreSQL; the leading sluice-scheduler picks them
 * up (NOTIFY) and drives them. */
#include "cli.h"
#include "clock.h"
#include "db.h"
#include "engine.h"
#include "mem.h"
#include "pipeline.h"
#include "queue.h"
#include "snapshot.h"
#include "vis.h"
#include "redis.h"
#include "workerreg.h"

#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_AT_GATE 3

/* A database value as printed: visibly (vis.h), since names, variables,
 * outputs and errors come from other people and programs. */
#define V(res, r, c) SL_VIS(PQgetvalue((res), (r), (c)))

const char *cli_user(const char *as)
{
    if (as && *as)
        return as;
    const char *u = getenv("SLUICE_USER");
    if (u && *u)
        return u;
    const struct passwd *pw = getpwuid(getuid());
    return pw ? pw->pw_name : "unknown";
}

/* ---- validate --------------------------------------------------------------- */

static void validate_usage(FILE *f)
{
    fprintf(f,
        "Usage: sluice validate [OPTIONS] [FILE...]\n"
        "\n"
        "Checks pipeline files (default: every *.yaml in the pipeline directory) and\n"
        "prints each error as FILE:LINE:COLUMN: message.  Exits 1 if any has an error.\n"
        "\n"
        "Options:\n"
        "  -p, --pipelines DIR  pipeline directory (default: scheduler.pipelines)\n"
        "  -q, --quiet          print only errors\n"
        "  -c, --config FILE    configuration file (approver groups)\n"
        "  -h, --help           show this help\n");
}

int cmd_validate(int argc, char **argv)
{
    static const struct option opts[] = {
        { "pipelines", required_argument, NULL, 'p' },
        { "quiet", no_argument, NULL, 'q' },
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL, *dir = NULL;
    bool quiet = false;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":p:qc:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': dir = optarg; break;
        case 'q': quiet = true; break;
        case 'c': config = optarg; break;
        case 'h': validate_usage(stdout); return CLI_OK;
        case ':': return cli_usage_error("validate", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("validate", "unknown option '%s'", argv[optind - 1]);
        }
    }
    sl_config *cfg = cli_load_config("validate", config);
    if (cfg == NULL)
        return CLI_FAILED;
    sl_yerrors errors = SL_YERRORS_INIT;
    int status = CLI_OK;
    if (optind < argc) {
        for (int i = optind; i < argc; i++) {
            sl_pipeline *p = sl_pipeline_load(argv[i], &cfg->sched, &errors);
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
            dir = cfg->sched.pipelines;
        if (sl_pipelines_load_dir(dir, &cfg->sched, &list, &n, &errors, &err) < 0) {
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

static void run_usage(FILE *f)
{
    fprintf(f,
        "Usage: sluice run PIPELINE [OPTIONS]\n"
        "\n"
        "Asks the scheduler for a run of the installed pipeline called PIPELINE and\n"
        "prints the run's id.  The scheduler runs its own copy of the pipeline (from\n"
        "its scheduler.pipelines directory) and records its SHA-256 on the run; no\n"
        "pipeline text is sent from here.  A name it has not installed, or an\n"
        "undeclared --var, fails the run.  The run waits (queued) while another run\n"
        "of its concurrency group is active.\n"
        "\n"
        "Options:\n"
        "      --var NAME=VALUE  override a declared variable (repeatable)\n"
        "      --as USER         who triggers the run (default: $SLUICE_USER, then\n"
        "                        the login name); may not approve its gates unless\n"
        "                        the gate allows self-approval\n"
        "  -w, --wait            follow the run until it ends or waits at a gate;\n"
        "                        exit 0 succeeded, 1 failed or cancelled, 3 waiting\n"
        "                        at a gate\n"
        "  -c, --config FILE     configuration file\n"
        "  -h, --help            show this help\n");
}

/* Follows a run, printing step changes; returns the exit status. */
static int follow(sl_db *db, const char *run_id)
{
    char **seen = NULL;
    int nseen = 0;   /* steps appear when the scheduler accepts the run */
    int status = CLI_FAILED;
    const char *p[] = { run_id };
    for (;;) {
        sl_err err;
        PGresult *r = sl_db_exec(db, "run", "SELECT status, coalesce(error, '') FROM sluice_runs WHERE id = $1",
                                 1, p, &err);
        PGresult *s = r ? sl_db_exec(db, "steps", "SELECT step_id, status, coalesce(error, '')"
                                     " FROM sluice_run_steps WHERE run_id = $1 ORDER BY position", 1, p, &err)
                        : NULL;
        if (r == NULL || s == NULL) {
            PQclear(r);
            status = cli_fail("run", "%s", err.msg);
            break;
        }
        if (PQntuples(s) > nseen) {
            seen = sl_xrealloc(seen, ((size_t)PQntuples(s) + 1) * sizeof *seen);
            memset(seen + nseen, 0, ((size_t)PQntuples(s) - (size_t)nseen + 1) * sizeof *seen);
            nseen = PQntuples(s);
        }
        bool waiting = false;
        for (int i = 0; i < PQntuples(s) && i < nseen; i++) {
            const char *st = PQgetvalue(s, i, 1);
            waiting = waiting || strcmp(st, "waiting") == 0;
            if (seen[i] == NULL || strcmp(seen[i], st) != 0) {
                printf("  %-20s %s%s%s\n", V(s, i, 0), SL_VIS(st), *PQgetvalue(s, i, 2) ? "  " : "",
                       V(s, i, 2));
                free(seen[i]);
                seen[i] = sl_xstrdup(st);
            }
        }
        fflush(stdout);
        char rs[32];
        snprintf(rs, sizeof rs, "%s", PQgetvalue(r, 0, 0));
        PQclear(s);
        if (strcmp(rs, "succeeded") == 0 || strcmp(rs, "failed") == 0 || strcmp(rs, "cancelled") == 0) {
            printf("run %s %s%s%s\n", SL_VIS(run_id), SL_VIS(rs), *PQgetvalue(r, 0, 1) ? ": " : "",
                   V(r, 0, 1));
            status = strcmp(rs, "succeeded") == 0 ? CLI_OK : CLI_FAILED;
            PQclear(r);
            break;
        }
        PQclear(r);
        if (waiting) {
            printf("run %s is waiting at an approval gate (see 'sluice gates')\n", SL_VIS(run_id));
            status = EXIT_AT_GATE;
            break;
        }
        sl_sleep_ms(200);
    }
    for (int i = 0; i < nseen; i++)
        free(seen[i]);
    free(seen);
    return status;
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        { "var", required_argument, NULL, 'v' },
        { "as", required_argument, NULL, 'a' },
        { "wait", no_argument, NULL, 'w' },
        { "pipelines", required_argument, NULL, 'p' },
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL, *as = NULL;
    char **vars = sl_xcalloc((size_t)argc + 1, sizeof *vars);
    size_t nvars = 0;
    bool wait = false;
    int c, status = CLI_FAILED;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":wp:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'v':
            if (strchr(optarg, '=') == NULL) {
                free(vars);
                return cli_usage_error("run", "--var '%s': expected NAME=VALUE", optarg);
            }
            vars[nvars++] = optarg;
            break;
        case 'a': as = optarg; break;
        case 'w': wait = true; break;
        case 'p':
            free(vars);
            return cli_usage_error("run", "--pipelines is not an option of run: the scheduler runs only "
                                   "the pipelines installed in its own directory (use it with "
                                   "'sluice validate')");
        case 'c': config = optarg; break;
        case 'h': free(vars); run_usage(stdout); return CLI_OK;
        case ':': free(vars); return cli_usage_error("run", "option '%s' needs a value", argv[optind - 1]);
        default: free(vars); return cli_usage_error("run", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc) {
        free(vars);
        return cli_usage_error("run", optind >= argc ? "missing PIPELINE" : "unexpected argument '%s'",
                               optind < argc ? argv[optind + 1] : "");
    }
    if (strchr(argv[optind], '/') || strstr(argv[optind], ".yaml") || strstr(argv[optind], ".yml")) {
        free(vars);
        return cli_usage_error("run", "'%s': a run is started by pipeline NAME; the scheduler runs only "
                               "the pipelines installed in its own directory", argv[optind]);
    }
    sl_config *cfg = cli_load_config("run", config);
    sl_db *db = NULL;
    sl_err err;
    char run_id[SL_RUN_ID_MAX];
    if (cfg == NULL)
        goto out;
    if ((db = sl_db_connect(cfg->database_url, &err)) == NULL ||
        sl_run_create(db, argv[optind], vars, nvars, cli_user(as), run_id, &err) < 0) {
        status = err.code == SL_EINVAL ? cli_usage_error("run", "%s", err.msg) : cli_fail("run", "%s", err.msg);
        goto out;
    }
    printf("%s\n", run_id);
    fflush(stdout);
    status = wait ? follow(db, run_id) : CLI_OK;
out:
    sl_db_free(db);
    sl_config_free(cfg);
    free(vars);
    return status;
}

/* ---- runs, status ------------------------------------------------------------ */

static int simple_opts(const char *cmd, int argc, char **argv, const char **config, void (*usage)(FILE *),
                       const char **a, char ac, const char **b, char bc)
{
    static const struct option opts[] = {
        { "pipeline", required_argument, NULL, 'P' },
        { "status", required_argument, NULL, 'S' },
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        if (c == 'c') {
            *config = optarg;
        } else if (c == 'h') {
            usage(stdout);
            return CLI_OK + 100;
        } else if (a && c == ac) {
            *a = optarg;
        } else if (b && c == bc) {
            *b = optarg;
        } else if (c == ':') {
            return cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    return -1;
}

static void runs_usage(FILE *f)
{
    fprintf(f,
        "Usage: sluice runs [--pipeline P] [--status S]\n"
        "\n"
        "Lists runs, newest first (at most 100): id, pipeline, status, who or what\n"
        "triggered it, when it was created and finished.  S is queued, running,\n"
        "succeeded, failed or cancelled.\n"
        "\n"
        "Options:\n"
        "      --pipeline P     only runs of pipeline P\n"
        "      --status S       only runs with status S\n"
        "  -c, --config FILE    configuration file\n"
        "  -h, --help           show this help\n");
}

int cmd_runs(int argc, char **argv)
{
    const char *config = NULL, *pipeline = NULL, *st = NULL;
    int rc = simple_opts("runs", argc, argv, &config, runs_usage, &pipeline, 'P', &st, 'S');
    if (rc >= 0)
        return rc == CLI_OK + 100 ? CLI_OK : rc;
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

static void status_usage(FILE *f)
{
    fprintf(f,
        "Usage: sluice status RUN\n"
        "\n"
        "Shows a run and its steps: status, attempts, how long each took, job ids,\n"
        "outputs or errors.  A queued step whose queue no live sluice-worker reads\n"
        "is marked as such.  Exits 1 if there is no such run.\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE    configuration file\n"
        "  -h, --help           show this help\n");
}

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
    int rc = simple_opts("status", argc, argv, &config, status_usage, NULL, 0, NULL, 0);
    if (rc >= 0)
        return rc == CLI_OK + 100 ? CLI_OK : rc;
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
                             &cfg->sched, &perr);
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
