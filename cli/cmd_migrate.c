/* cmd_migrate.c: `sluice migrate`: applies the compiled-in SQL migrations
 * (safe to run repeatedly and concurrently). */
#include "cli.h"
#include "store.h"

#include <getopt.h>
#include <stdio.h>

#define CMD "migrate"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: sluice migrate [OPTIONS]\n"
        "\n"
        "Creates or upgrades sluice's tables in PostgreSQL (database.url or\n"
        "SLUICE_DATABASE_URL/DATABASE_URL).  Applies only what is missing, each\n"
        "migration in its own transaction; concurrent runs wait for each other.\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE   configuration file\n"
        "  -h, --help          show this help\n");
}

int cmd_migrate(int argc, char **argv)
{
    const char *config = NULL;
    int parsed = cli_simple_args(CMD, argc, argv, usage, &config, NULL, 0, NULL);
    if (parsed >= 0)
        return parsed;
    sl_config *cfg = cli_load_config(CMD, config);
    if (cfg == NULL)
        return CLI_FAILED;
    sl_err err;
    int applied = 0, status = CLI_FAILED;
    sl_store *store = sl_store_connect(cfg->database_url, &err);
    if (store == NULL || sl_store_migrate(store, &applied, &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
    } else {
        printf("applied %d migration%s; schema is up to date\n", applied, applied == 1 ? "" : "s");
        status = CLI_OK;
    }
    sl_store_free(store);
    sl_config_free(cfg);
    return status;
}
