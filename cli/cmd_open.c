/* cmd_open.c: `sluice open RUN | RUN/GATE | RUN GATE` prints the address
 * of the run's (or the gate's) web page, api.public_url + /runs/RUN or
 * /runs/RUN/gates/GATE, to paste into a browser or a message.
 *
 * The names come from the command line, perhaps pasted from somewhere
 * else: each is one path segment, percent-encoded (cli_api_path), and "."
 * and ".." (which a browser would resolve to another page), empty names and
 * names with a '/' beyond the one separator are refused. */
#include "apiclient.h"
#include "cli.h"
#include "config_api.h"
#include "mem.h"
#include "opts.h"
#include "vis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const sl_opt open_rows[] = {
    { 'c', "config", 'c', "FILE", "configuration file (api.public_url, else api.url)" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts open_opts = {
    "sluice open",
    "Usage: sluice open RUN | RUN/GATE | RUN GATE [OPTIONS]\n"
    "\n"
    "Prints the address of the web page of run RUN, or of its gate GATE, on the\n"
    "API server's web interface: api.public_url (else api.url) followed by\n"
    "/runs/RUN or /runs/RUN/gates/GATE, each name percent-encoded.\n"
    "\n",
    "\nTry 'sluice open --help'.",
    open_rows,
    NULL,
    NULL,
};

/* True when name may be one path segment of a page's address. */
static bool segment_ok(const char *name)
{
    return *name && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && strchr(name, '/') == NULL;
}

int cmd_open(int argc, char **argv)
{
    const char *config = NULL, *value;
    sl_opts_parser op;
    sl_opts_begin(&op, &open_opts, argc, argv);
    for (int id; (id = sl_opts_next(&op, &value)) != SL_OPTS_END;) {
        if (id != 'c')
            return op.status;
        config = value;
    }
    int nargs = argc - op.optind;
    if (nargs < 1)
        return sl_opts_error(&open_opts, "missing RUN");
    if (nargs > 2)
        return sl_opts_error(&open_opts, "unexpected argument '%s'", argv[op.optind + 2]);
    char *run = sl_xstrdup(argv[op.optind]);
    const char *gate = nargs == 2 ? argv[op.optind + 1] : NULL;
    char *slash = strchr(run, '/');
    int status = CLI_USAGE;
    if (slash && gate == NULL) {
        *slash = '\0';
        gate = slash + 1;
    }
    if (!segment_ok(run) || (gate && !segment_ok(gate))) {
        sl_opts_error(&open_opts, "'%s' cannot name a page (not empty, '.' or '..', and no '/' but "
                      "the one between RUN and GATE)", SL_VIS(segment_ok(run) ? gate : argv[op.optind]));
        goto out;
    }
    sl_config *cfg = cli_load_config("open", config);
    status = CLI_FAILED;
    if (cfg == NULL)
        goto out;
    char *path = gate ? cli_api_path("/runs/%s/gates/%s", run, gate) : cli_api_path("/runs/%s", run);
    printf("%s%s\n", sl_api_public_url(sl_api_config_of(cfg)), path);
    free(path);
    sl_config_free(cfg);
    status = CLI_OK;
out:
    free(run);
    return status;
}
