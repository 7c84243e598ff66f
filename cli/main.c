/* main.c: `sluice`, the command-line client: dispatches to a subcommand. */
#include "cli.h"
#include "buf.h"
#include "config_api.h"
#include "config_jobs.h"
#include "config_sched.h"
#include "config_worker.h"
#include "vis.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    { "enqueue", cmd_enqueue, "add a job to a queue and print its id" },
    { "job", cmd_job, "show a job's status, attempts, timings and result" },
    { "dead", cmd_dead, "list, retry or purge dead-letter entries" },
    { "pause", cmd_pause, "stop workers taking jobs from a queue" },
    { "resume", cmd_resume, "let workers take jobs from a paused queue again" },
    { "migrate", cmd_migrate, "create or upgrade sluice's PostgreSQL schema" },
    { "kinds", cmd_kinds, "list the job kinds this build can run" },
    { "workers", cmd_workers, "list the running worker pools and what each process does" },
    { "validate", cmd_validate, "check pipeline files (every error as FILE:LINE:COL)" },
    { "run", cmd_run, "start a run of a pipeline" },
    { "runs", cmd_runs, "list pipeline runs" },
    { "cancel", cmd_cancel, "cancel a job or a pipeline run" },
    { "status", cmd_status, "show a run's steps, attempts, durations and outputs" },
    { "gates", cmd_gates, "list open approval gates" },
    { "approve", cmd_approve, "approve an approval gate" },
    { "reject", cmd_reject, "reject an approval gate (fails the run)" },
    { "open", cmd_open, "print the address of a run's or a gate's web page" },
    { "audit", cmd_audit, "verify the approval audit trail, show a run's decisions, print its signed head, make keys" },
    { "break-glass", cmd_breakglass, "emergency gate decision through PostgreSQL (sluice_breakglass)" },
    { "stats", cmd_stats, "one snapshot of the queues, workers and gates (--json for scripts)" },
    { "top", cmd_top, "live full-screen view of the queues, workers and gates" },
    { "metrics", cmd_metrics, "print the Prometheus text exposition" },
    { "serve", cmd_serve, "run the API server (/v1/ API, /metrics, /healthz, /readyz)" },
    { "token", cmd_token, "create, list or revoke API tokens" },
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: sluice COMMAND [OPTIONS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
        "\n'sluice COMMAND --help' describes a command.\n"
        "Servers come from the configuration file (--config, $SLUICE_CONFIG) and\n"
        "SLUICE_REDIS_URL/REDIS_URL, SLUICE_DATABASE_URL/DATABASE_URL.\n"
        "Exit status: 0 success, 1 runtime failure, 2 usage error.\n");
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sluice %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'sluice %s --help'.\n", cmd);
    va_end(ap);
    return CLI_USAGE;
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
    /* Messages quote values from servers and other people (database
     * errors, names, job errors): one line, shown visibly (vis.h). */
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sluice %s: ", cmd);
    sl_vis_fputs(msg, stderr);
    fputc('\n', stderr);
    return CLI_FAILED;
}

sl_config *cli_load_config(const char *cmd, const char *path)
{
    sl_err err;
    /* sluice links every component and checks all of sluice.yaml */
    sl_worker_config_register();
    sl_config_jobs_register();
    sl_sched_config_register();
    sl_api_config_register();
    sl_config *cfg = sl_config_load(path, &err);
    if (cfg == NULL)
        cli_fail(cmd, "%s", err.msg);
    return cfg;
}

const sl_opt cli_rows_simple[] = { CLI_ROW_CONFIG, CLI_ROW_HELP, { 0 } };
const sl_opt cli_rows_simple_json[] = { CLI_ROW_JSON, CLI_ROW_CONFIG, CLI_ROW_HELP, { 0 } };

int cli_simple_args(const sl_opts *o, int argc, char **argv, const char **config, bool *json, int nargs,
                    const char *what)
{
    sl_opts_parser p;
    const char *value;
    sl_opts_begin(&p, o, argc, argv);
    for (int id; (id = sl_opts_next(&p, &value)) != SL_OPTS_END;) {
        switch (id) {
        case CLI_OPT_JSON_ID: *json = true; break;
        case 'c': *config = value; break;
        default: return p.status;
        }
    }
    if (nargs > 0 && p.optind >= argc)
        return sl_opts_error(o, "missing %s", what);
    if (p.optind + nargs < argc)
        return sl_opts_error(o, "unexpected argument '%s'", argv[p.optind + nargs]);
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("sluice %s\n", SLUICE_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "sluice: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}
