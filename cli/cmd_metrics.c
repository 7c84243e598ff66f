/* cmd_metrics.c: `sluice metrics`: prints the Prometheus text exposition
 * of one snapshot (snapshot.h) -- what `sluice serve` answers on GET
 * /metrics -- for a textfile collector, a cron job or a quick look. */
#include "cli.h"
#include "snapshot.h"

#include <getopt.h>
#include <stdio.h>

#define CMD "metrics"

static const sl_opts opts = CLI_OPTS("metrics",
    "Usage: sluice metrics [OPTIONS]\n"
    "\n"
    "Prints the Prometheus text exposition (format 0.0.4) of every queue's\n"
    "counters, latency histograms and gauges, the worker processes and the\n"
    "open gates: the same text 'sluice serve' answers on GET /metrics.\n"
    "docs/operations.md lists every metric.\n"
    "\n",
    cli_rows_simple);

int cmd_metrics(int argc, char **argv)
{
    const char *config = NULL;
    int parsed = cli_simple_args(&opts, argc, argv, &config, NULL, 0, NULL);
    if (parsed >= 0)
        return parsed;
    sl_config *cfg = cli_load_config(CMD, config);
    if (cfg == NULL)
        return CLI_FAILED;
    snap_conn conn = { .cfg = cfg };
    snap s;
    sl_err err;
    int status = CLI_FAILED;
    if (snap_conn_take(&conn, NULL, 0, &s, &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
    } else {
        sl_buf b = SL_BUF_INIT;
        snap_prometheus(&s, &b);
        fputs(sl_buf_str(&b), stdout);
        sl_buf_free(&b);
        status = fflush(stdout) == 0 ? CLI_OK : CLI_FAILED;
    }
    snap_clear(&s);
    snap_conn_close(&conn);
    sl_config_free(cfg);
    return status;
}
