/* cli.h: what the `sluice` subcommands share: exit codes, error printing,
 * configuration loading, and the subcommand entry points. */
#ifndef SL_CLI_H
#define SL_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "opts.h"
#include "err.h"

enum {
    CLI_OK = 0,       /* success */
    CLI_FAILED = 1,   /* runtime failure: a server unreachable, a job not found */
    CLI_USAGE = 2,    /* the command line is wrong */
};

/* Prints "sluice CMD: message" and a hint to stderr; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "sluice CMD: message" to stderr; returns CLI_FAILED. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Option rows every command has, for its table (lib/opts.h). */
#define CLI_OPT_JSON_ID 300
#define CLI_ROW_CONFIG { 'c', "config", 'c', "FILE", "configuration file" }
#define CLI_ROW_HELP { 'h', "help", 'h', NULL, "show this help" }
#define CLI_ROW_JSON { CLI_OPT_JSON_ID, "json", 0, NULL, "print JSON" }
/* A command's table: its messages start "sluice NAME: " and usage errors
 * end with "Try 'sluice NAME --help'."; usage is the help before "Options:". */
#define CLI_OPTS(name, usage, rows) { "sluice " name, usage, "\nTry 'sluice " name " --help'.", rows, NULL, NULL }

/* The rows of a command whose options are only --config and --help
 * (cli_rows_simple) or those and --json (cli_rows_simple_json). */
extern const sl_opt cli_rows_simple[];
extern const sl_opt cli_rows_simple_json[];

/* Parses the command line of a subcommand whose table has only the rows
 * above, and that takes exactly nargs (0 or 1) positional arguments, named
 * `what` in the message when missing.  Returns -1 to go on (the argument,
 * if any, is argv[optind]); otherwise the exit status: CLI_OK after
 * printing the help, CLI_USAGE after saying what is wrong. */
int cli_simple_args(const sl_opts *o, int argc, char **argv, const char **config, bool *json, int nargs,
                    const char *what);

/* Loads the configuration (path may be NULL), printing the error and
 * returning NULL on failure. */
sl_config *cli_load_config(const char *cmd, const char *path);

/* Each subcommand: argc/argv start at the subcommand's name. */
int cmd_enqueue(int argc, char **argv);
int cmd_job(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_dead(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_kinds(int argc, char **argv);
int cmd_workers(int argc, char **argv);
int cmd_validate(int argc, char **argv);   /* cmd_pipeline.c */
int cmd_run(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_gates(int argc, char **argv);      /* cmd_gates.c */
int cmd_approve(int argc, char **argv);
int cmd_reject(int argc, char **argv);
int cmd_audit(int argc, char **argv);       /* cmd_audit.c */
int cmd_open(int argc, char **argv);        /* cmd_open.c */
int cmd_breakglass(int argc, char **argv);  /* cmd_breakglass.c */

/* `sluice cancel ID` for a run: returns -1 if ID names no run (the caller
 * then treats it as a job id), else the command's exit status. */
int cli_cancel_run(const sl_config *cfg, const char *id, const char *by);

int cmd_stats(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_token(int argc, char **argv);      /* cmd_token.c */

#endif
