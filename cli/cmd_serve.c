/* cmd_serve.c: `sluice serve`: parses the command line and runs the API
 * server (server/server.h), which serves the /v1/ JSON API, /metrics,
 * /healthz and /readyz. */
#include "cli.h"
#include "log.h"
#include "server.h"

#include <getopt.h>
#include <stdio.h>

#define CMD "serve"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: sluice serve [OPTIONS]\n"
        "\n"
        "Runs the API server: the JSON API under /v1/ (docs/api.md; the OpenAPI\n"
        "document is GET /v1/openapi.json), GET /metrics (the Prometheus text\n"
        "exposition), GET /healthz (200 when Redis and PostgreSQL answer) and\n"
        "GET /readyz (200 when, in addition, the schema is current).  Serves HTTPS\n"
        "when api.tls_cert and api.tls_key are set.  Runs in the foreground until\n"
        "SIGINT or SIGTERM; logs to stderr.\n"
        "\n"
        "Options:\n"
        "  -l, --listen ADDR   address to bind, HOST:PORT (default: api.listen, else\n"
        "                      metrics.listen, 127.0.0.1:9464); [V6ADDR]:PORT for IPv6;\n"
        "                      port 0 picks a free port (logged in serve.listening)\n"
        "  -c, --config FILE   configuration file (the api: section)\n"
        "  -h, --help          show this help\n");
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL, *listen = NULL;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":l:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 'c': config = optarg; break;
        case 'h': usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
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
