/* main.c: sluice-worker's command line.  Loads the configuration, applies
 * command-line overrides, and hands over to the prefork master. */
#include "config.h"
#include "consumer.h"
#include "envelope.h"
#include "log.h"
#include "master.h"
#include "mem.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: sluice-worker [OPTIONS]\n"
        "\n"
        "Runs a pool of worker processes that take jobs from Redis Streams and\n"
        "record their results in PostgreSQL.  Stays in the foreground; stop it with\n"
        "SIGTERM (graceful) or SIGINT/SIGQUIT (fast).\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE     configuration file (default: $SLUICE_CONFIG, then\n"
        "                        " SLUICE_SYSCONFDIR "/sluice/sluice.yaml)\n"
        "  -q, --queues A,B      queues to consume (overrides worker.queues)\n"
        "  -n, --processes N     number of worker processes (overrides worker.processes)\n"
        "      --log-level L     debug, info, warn or error (overrides log.level)\n"
        "  -h, --help            show this help\n"
        "  -V, --version         show the version\n"
        "\n"
        "Environment: SLUICE_REDIS_URL/REDIS_URL, SLUICE_DATABASE_URL/DATABASE_URL\n"
        "override the configured servers.\n"
        "Exit status: 0 after a clean stop, 1 on a runtime failure, 2 on a usage\n"
        "error, 78 on a configuration error.\n");
}

/* Replaces cfg's queue list with the comma-separated list in text. */
static int set_queues(sl_config *cfg, const char *text)
{
    char *copy = sl_xstrdup(text), *save = NULL;
    size_t n = 0;
    char **queues = NULL;
    for (char *q = strtok_r(copy, ",", &save); q; q = strtok_r(NULL, ",", &save)) {
        if (!sl_envelope_queue_valid(q)) {
            fprintf(stderr, "sluice-worker: --queues: invalid queue name '%s' "
                            "(use 1-%d of A-Z a-z 0-9 _ . -)\n", q, SL_NAME_MAX);
            for (size_t i = 0; i < n; i++)
                free(queues[i]);
            free(queues);
            free(copy);
            return -1;
        }
        queues = sl_xrealloc(queues, (n + 1) * sizeof *queues);
        queues[n++] = sl_xstrdup(q);
    }
    free(copy);
    if (n == 0) {
        fprintf(stderr, "sluice-worker: --queues: empty queue list\n");
        return -1;
    }
    for (size_t i = 0; i < cfg->worker.nqueues; i++)
        free(cfg->worker.queues[i]);
    free(cfg->worker.queues);
    cfg->worker.queues = queues;
    cfg->worker.nqueues = n;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "queues", required_argument, NULL, 'q' },
        { "processes", required_argument, NULL, 'n' },
        { "log-level", required_argument, NULL, 'L' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *config_path = NULL, *queues = NULL, *level = NULL;
    long processes = 0;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:q:n:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'q': queues = optarg; break;
        case 'L': level = optarg; break;
        case 'n': {
            char *end;
            processes = strtol(optarg, &end, 10);
            if (*end != '\0' || processes < 1 || processes > 1024) {
                fprintf(stderr, "sluice-worker: --processes: expected a number from 1 to 1024, got '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'h': usage(stdout); return 0;
        case 'V': printf("sluice-worker %s\n", SLUICE_VERSION); return 0;
        case ':':
            fprintf(stderr, "sluice-worker: option '%s' needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "sluice-worker: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice-worker: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    sl_err err;
    sl_config *cfg = sl_config_load(config_path, &err);
    if (cfg == NULL) {
        fprintf(stderr, "sluice-worker: %s\n", err.msg);
        return SL_EXIT_FATAL;
    }
    if (queues && set_queues(cfg, queues) < 0) {
        sl_config_free(cfg);
        return 2;
    }
    if (processes)
        cfg->worker.processes = (int)processes;
    if (level && sl_log_level_parse(level, &cfg->log_level) < 0) {
        fprintf(stderr, "sluice-worker: --log-level: expected debug, info, warn or error, got '%s'\n", level);
        sl_config_free(cfg);
        return 2;
    }
    sl_log_setup("master", cfg->log_level);
    /* Once, before any fork: libcurl's global state is not fork-safe to set up later. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        SL_ERROR("curl.init_failed", "");
        sl_config_free(cfg);
        return 1;
    }
    int status = sl_master_run(cfg);
    curl_global_cleanup();
    sl_config_free(cfg);
    return status;
}
