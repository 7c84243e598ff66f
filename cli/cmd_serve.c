/* cmd_serve.c: `sluice serve`: parses the command line and runs the API
 * server (server/server.h), which serves the /v1/ JSON API, /metrics,
 * /healthz and /readyz. */
#include "cli.h"
#include "log.h"
#include "server.h"

#include <getopt.h>
#include <stdio.h>

#define CMD "serve"

static const sl_opt cmd_rows[] = {
    { 'l', "listen", 'l', "ADDR", "address to bind, HOST:PORT (default: api.listen, else\nmetrics.listen, 127.0.0.1:9464); [V6ADDR]:PORT for IPv6;\nport 0 picks a free port (logged in serve.listening)" },
    { 'c', "config", 'c', "FILE", "configuration file (the api: section)" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts cmd_opts = { "sluice serve",
    "Usage: sluice serve [OPTIONS]\n"
    "\n"
    "Runs the API server: the JSON API under /v1/ (docs/api.md; the OpenAPI\n"
    "document is GET /v1/openapi.json), GET /metrics (the Prometheus text\n"
    "exposition), GET /healthz (200 when Redis and PostgreSQL answer) and\n"
    "GET /readyz (200 when, in addition, the schema is current).  Serves HTTPS\n"
    "when api.tls_cert and api.tls_key are set.  Runs in the foreground until\n"
    "SIGINT or SIGTERM; logs to stderr.\n"
    "\n",
    "\nTry 'sluice serve --help'.", cmd_rows,
NULL, NULL };


int cmd_serve(int argc, char **argv)
{
    const char *config = NULL, *listen = NULL;
    int c;
    sl_opts_parser op;
    const char *optval;
    sl_opts_begin(&op, &cmd_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        switch (c) {
        case 'l': listen = optval; break;
        case 'c': config = optval; break;
        default: return op.status;
        }
    }
    if (optind < argc)
        return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    sl_err err;
    if (listen && sl_server_check_listen(listen, &err) < 0)
        return cli_usage_error(CMD, "%s", err.msg);
    sl_config *cfg = cli_load_config(CMD, config);
    if (cfg == NULL)
        return CLI_FAILED;
    sl_log_setup("serve", cfg->log_level);
    int status = CLI_OK;
    if (sl_server_run(cfg, listen, &err) < 0)
        status = cli_fail(CMD, "%s", err.msg);
    sl_config_free(cfg);
    return status;
}
