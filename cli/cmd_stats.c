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

static const sl_opt cmd_rows[] = {
    { 'J', "json", 0, NULL, "print one JSON object (counters per kind, histogram\nbuckets, registry documents; docs/operations.md)" },
    { 'q', "queue", 'q', "NAME", "only this queue (repeatable)" },
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts cmd_opts = { "sluice stats",
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
    "\n",
    "\nTry 'sluice stats --help'.", cmd_rows,
NULL, NULL };


int cmd_stats(int argc, char **argv)
{
    const char *config = NULL;
    bool as_json = false;
    char **queues = sl_xcalloc((size_t)argc, sizeof *queues);
    size_t nqueues = 0;
    int c, status = CLI_FAILED;
    sl_opts_parser op;
    const char *optval;
    sl_opts_begin(&op, &cmd_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        switch (c) {
        case 'J': as_json = true; break;
        case 'q':
            if (!sl_envelope_queue_valid(optval)) {
                status = cli_usage_error(CMD, "invalid queue name '%s'", optval);
                goto out_args;
            }
            queues[nqueues++] = optarg;   /* the same string, not const */
            break;
        case 'c': config = optval; break;
        default: status = op.status; goto out_args;
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
