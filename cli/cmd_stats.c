/* cmd_stats.c: `sluice stats`: one snapshot of every queue (depth, in
 * flight, delayed, dead, counters, latency quantiles, oldest waiting job,
 * paused), the worker pools and the open gates, as a table or, with
 * --json, as one JSON object for scripts (snapshot.h, view.h). */
#include "cli.h"
#include "mem.h"
#include "snapshot.h"
#include "view.h"
#include "vis.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define CMD "stats"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: sluice stats [OPTIONS]\n"
        "\n"
        "Prints one snapshot of every queue, the worker pools and the open approval\n"
        "gates.  Per queue: DEPTH (jobs waiting: stream length minus in flight),\n"
        "INFL (delivered, not yet acknowledged), DELAY (scheduled or waiting to\n"
        "retry), DEAD (dead-letter entries), latency p50/p99 of WAIT (enqueue to\n"
        "start) and RUN, estimated from the histograms over all time, OLDST (age\n"
        "of the oldest waiting job) and P: 'P' paused, '!' jobs wait (now or\n"
        "delayed) and no live worker serves the queue (a line under the table\n"
        "names such queues).  PROC/s and FAIL/s need two snapshots: see 'sluice\n"
        "top'.  Queues are those registered in Redis and those live pools serve.\n"
        "\n"
        "Options:\n"
        "      --json          print one JSON object (counters per kind, histogram\n"
        "                      buckets, registry documents; docs/operations.md)\n"
        "  -q, --queue NAME    only this queue (repeatable)\n"
        "  -c, --config FILE   configuration file\n"
        "  -h, --help          show this help\n");
}

int cmd_stats(int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'J' },
        { "queue", required_argument, NULL, 'q' },
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL;
    bool as_json = false;
    char **queues = sl_xcalloc((size_t)argc, sizeof *queues);
    size_t nqueues = 0;
    int c, status = CLI_FAILED;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":q:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'J': as_json = true; break;
        case 'q':
            if (!sl_envelope_queue_valid(optarg)) {
                status = cli_usage_error(CMD, "invalid queue name '%s'", optarg);
                goto out_args;
            }
            queues[nqueues++] = optarg;
            break;
        case 'c': config = optarg; break;
        case 'h': usage(stdout); status = CLI_OK; goto out_args;
        case ':': status = cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]); goto out_args;
        default: status = cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]); goto out_args;
        }
    }
    if (optind < argc) {
        status = cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
        goto out_args;
    }
    sl_config *cfg = cli_load_config(CMD, config);
    if (cfg == NULL)
        goto out_args;
    snap_conn conn = { .cfg = cfg };
    snap s;
    sl_err err;
    if (snap_conn_take(&conn, nqueues ? queues : NULL, nqueues, &s, &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
    } else {
        sl_buf b = SL_BUF_INIT, safe = SL_BUF_INIT;
        if (as_json) {
            snap_json(&s, &b);
            sl_vis_json(&safe, b.data, b.len);   /* registry documents are stored text */
            fputs(sl_buf_str(&safe), stdout);
        } else {
            view_opts vo = { .sort = VIEW_SORT_NAME };
            view_render(&s, NULL, &vo, &b);
            fputs(sl_buf_str(&b), stdout);
        }
        sl_buf_free(&b);
        sl_buf_free(&safe);
        status = fflush(stdout) == 0 ? CLI_OK : CLI_FAILED;
    }
    snap_clear(&s);
    snap_conn_close(&conn);
    sl_config_free(cfg);
out_args:
    free(queues);
    return status;
}
