/* main.c: sluice-worker's command line.  Opens the log file, loads the
 * configuration, applies command-line overrides, and hands over to the
 * prefork master (which calls load_config again on SIGHUP). */
#include "config.h"
#include "config_api.h"
#include "config_jobs.h"
#include "config_worker.h"
#include "consumer.h"
#include "envelope.h"
#include "log.h"
#include "master.h"
#include "mem.h"
#include "opts.h"
#include "secretenv.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The configuration file this binary reads by default (it follows the
 * install prefix), for --help. */
static void help_footer(FILE *f)
{
    char installed[PATH_MAX + 32];
    sl_config_default_path(installed, sizeof installed);
    fprintf(f, "Without --config: $SLUICE_CONFIG, then %s.\n", installed);
}

static const sl_opt rows[] = {
    { 'c', "config", 'c', "FILE", "configuration file (default: below)" },
    { 'q', "queues", 'q', "A,B", "queues to consume (overrides worker.queues)" },
    { 'n', "processes", 'n', "N", "number of worker processes (overrides worker.processes)" },
    { 'L', "log-level", 0, "L", "debug, info, warn or error (overrides log.level)" },
    { 'F', "log-file", 0, "PATH", "append the log to PATH instead of stderr; SIGUSR1\n"
                                  "reopens it (for logrotate)" },
    { 'P', "pidfile", 0, "PATH", "write the master's pid to PATH while it runs; refuse\n"
                                 "to start if PATH names a running sluice-worker" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 'V', "version", 'V', NULL, "show the version" },
    { 0 },
};

static const sl_opts opts = {
    "sluice-worker",
    "Usage: sluice-worker [OPTIONS]\n"
    "\n"
    "Runs a pool of worker processes that take jobs from Redis Streams and\n"
    "record their results in PostgreSQL.  Stays in the foreground.  Signals:\n"
    "TERM graceful stop, INT/QUIT fast stop, HUP reload the configuration and\n"
    "replace the workers one by one, TTIN/TTOU one worker more/less, USR1\n"
    "reopen the log file (see docs/operations.md).\n"
    "\n",
    " (see --help)",
    rows,
    "\n"
    "Environment: SLUICE_REDIS_URL/REDIS_URL, SLUICE_DATABASE_URL/DATABASE_URL\n"
    "override the configured servers.\n"
    "Exit status: 0 after a clean stop, 1 on a runtime failure, 2 on a usage\n"
    "error, 78 on a configuration error (also when a worker process hits one).\n",
    help_footer,
};

/* The command line's overrides, parsed and checked once, applied to every
 * load of the configuration (at start and on each SIGHUP). */
typedef struct overrides {
    const char *config_path;  /* --config, or NULL */
    char **queues;            /* --queues, or NULL */
    size_t nqueues;
    int processes;            /* --processes, or 0 */
    bool has_level;           /* --log-level given */
    sl_log_level level;
} overrides;

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* Parses the comma-separated queue list of --queues into ov. */
static int parse_queues(overrides *ov, const char *text)
{
    char *copy = sl_xstrdup(text), *save = NULL;
    for (char *q = strtok_r(copy, ",", &save); q; q = strtok_r(NULL, ",", &save)) {
        if (!sl_envelope_queue_valid(q)) {
            fprintf(stderr, "sluice-worker: --queues: invalid queue name '%s' "
                            "(use 1-%d of A-Z a-z 0-9 _ . -)\n", q, SL_NAME_MAX);
            free(copy);
            return -1;
        }
        ov->queues = sl_xrealloc(ov->queues, (ov->nqueues + 1) * sizeof *ov->queues);
        ov->queues[ov->nqueues++] = sl_xstrdup(q);
    }
    free(copy);
    if (ov->nqueues == 0) {
        fprintf(stderr, "sluice-worker: --queues: empty queue list\n");
        return -1;
    }
    return 0;
}

/* Sections of the shared sluice.yaml that other programs read (the
 * scheduler's, retention among them): accepted and skipped here, so that a
 * misspelt section is still an error.  sluice-scheduler and `sluice` check
 * their contents. */
static const char *const others_names[] = { "scheduler", "groups", "retention", NULL };
static const sl_config_section others = { .names = others_names };

/* The sections the worker reads: its own, the job kinds', and the API's
 * address (links in what jobs send to people). */
static void register_sections(void)
{
    sl_worker_config_register();
    sl_config_jobs_register();
    sl_api_config_register();
    sl_config_register(&others);
}

/* Loads the configuration file and applies the overrides: the loader the
 * master calls again on SIGHUP. */
static sl_config *load_config(void *arg, sl_err *err)
{
    const overrides *ov = arg;
    sl_config *cfg = sl_config_load(ov->config_path, err);
    if (cfg == NULL)
        return NULL;
    /* Secrets leave the environment before any fork: a job's command could
     * read them in /proc/<worker or master>/environ (lib/secretenv.h). */
    static const char *const servers[] = { "SLUICE_REDIS_URL", "REDIS_URL", "SLUICE_DATABASE_URL", "DATABASE_URL" };
    for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++)
        sl_secretenv_take(servers[i]);
    const char *names[64];
    size_t n = sl_config_jobs_secret_envs(sl_config_jobs_of(cfg), names, 64);
    for (size_t i = 0; i < n && i < 64; i++)
        sl_secretenv_take(names[i]);
    sl_worker_config *w = sl_worker_config_of(cfg);
    if (ov->queues)
        sl_worker_config_set_queues(w, ov->queues, ov->nqueues);
    if (ov->processes)
        w->processes = ov->processes;
    if (ov->has_level)
        cfg->log_level = ov->level;
    return cfg;
}

int main(int argc, char **argv)
{
    register_sections();
    overrides ov = { 0 };
    const char *queues = NULL, *level = NULL, *log_file = NULL, *pidfile = NULL, *value;
    int c;
    sl_opts_parser op;
    sl_opts_begin(&op, &opts, argc, argv);
    while ((c = sl_opts_next(&op, &value)) != SL_OPTS_END) {
        switch (c) {
        case 'c': ov.config_path = value; break;
        case 'q': queues = value; break;
        case 'L': level = value; break;
        case 'F': log_file = value; break;
        case 'P': pidfile = value; break;
        case 'n': {
            char *end;
            long processes = strtol(value, &end, 10);
            if (*end != '\0' || processes < 1 || processes > 1024) {
                fprintf(stderr, "sluice-worker: --processes: expected a number from 1 to 1024, got '%s'\n", value);
                return 2;
            }
            ov.processes = (int)processes;
            break;
        }
        case 'V': printf("sluice-worker %s\n", SLUICE_VERSION); return 0;
        default: return op.status;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice-worker: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (level) {
        if (sl_log_level_parse(level, &ov.level) < 0) {
            fprintf(stderr, "sluice-worker: --log-level: expected debug, info, warn or error, got '%s'\n", level);
            return 2;
        }
        ov.has_level = true;
    }
    if (queues && parse_queues(&ov, queues) < 0) {
        free_list(ov.queues, ov.nqueues);
        return 2;
    }
    /* The log file first, so that everything below (config errors too) lands in it. */
    if (log_file && sl_log_reopen(log_file) < 0) {
        fprintf(stderr, "sluice-worker: --log-file: cannot open %s: %s\n", log_file, strerror(errno));
        free_list(ov.queues, ov.nqueues);
        return SL_EXIT_FATAL;
    }
    sl_err err;
    sl_config *cfg = load_config(&ov, &err);
    if (cfg == NULL) {
        fprintf(stderr, "sluice-worker: %s\n", err.msg);
        free_list(ov.queues, ov.nqueues);
        return SL_EXIT_FATAL;
    }
    sl_log_setup("master", cfg->log_level);
    if (sl_secretenv_protect() < 0)
        SL_WARN("master.not_protected", "error=\"prctl PR_SET_DUMPABLE: %s\"", strerror(errno));
    /* Once, before any fork: libcurl's global state is not fork-safe to set up later. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        SL_ERROR("curl.init_failed", "");
        sl_config_free(cfg);
        free_list(ov.queues, ov.nqueues);
        return 1;
    }
    sl_master_opts mopts = { .pidfile = pidfile, .reload = load_config, .reload_arg = &ov };
    int status = sl_master_run(cfg, &mopts); /* owns cfg from here */
    curl_global_cleanup();
    free_list(ov.queues, ov.nqueues);
    return status;
}
