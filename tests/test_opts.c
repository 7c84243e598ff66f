/* test_opts.c: one option table per command (lib/opts.c): what the parser
 * returns for each row, the help it writes from the same table, and the
 * two usage errors. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <string.h>

#include "opts.h"

enum { OPT_JSON = 256, OPT_LIMIT };

static const sl_opt rows[] = {
    { 'q', "queue", 'q', "NAME", "the queue" },
    { OPT_JSON, "json", 0, NULL, "print JSON" },
    { OPT_LIMIT, "limit", 0, "N", "at most N\nrows (default 10)" },
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts cmd = { "sluice probe", "Usage: sluice probe [OPTIONS] ARG\n\n",
                             "\nTry 'sluice probe --help'.", rows, "Exit status: 0.\n", NULL };

/* Parses argv (NULL-terminated) and writes "id=value;" per option into out. */
static int parse(const char *const *args, char *out, size_t n, int *first_arg)
{
    char *argv[16];
    int argc = 0;
    for (; args[argc]; argc++)
        argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    sl_opts_parser p;
    sl_opts_begin(&p, &cmd, argc, argv);
    out[0] = '\0';
    const char *v;
    for (int id; (id = sl_opts_next(&p, &v)) != SL_OPTS_END;) {
        if (id == SL_OPTS_EXIT)
            return p.status;
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%d=%s;", id, v ? v : "-");
    }
    *first_arg = p.optind;
    return -1;
}

Test(opts, rows_become_options)
{
    char out[256];
    int first = 0;
    const char *args[] = { "probe", "-q", "jobs", "--json", "--limit=5", "--config", "c.yaml", "rest", NULL };
    cr_assert_eq(parse(args, out, sizeof out, &first), -1);
    char want[128];
    snprintf(want, sizeof want, "%d=jobs;%d=-;%d=5;%d=c.yaml;", 'q', OPT_JSON, OPT_LIMIT, 'c');
    cr_assert_str_eq(out, want);
    cr_assert_eq(first, 7, "the positional argument follows the options");
}

Test(opts, help_lists_every_row_aligned, .init = cr_redirect_stdout)
{
    char out[64];
    int first;
    const char *args[] = { "probe", "--json", "--help", NULL };
    cr_assert_eq(parse(args, out, sizeof out, &first), 0, "--help exits 0");
    fflush(stdout);
    cr_assert_stdout_eq_str("Usage: sluice probe [OPTIONS] ARG\n\n"
                            "Options:\n"
                            "  -q, --queue NAME   the queue\n"
                            "      --json         print JSON\n"
                            "      --limit N      at most N\n"
                            "                     rows (default 10)\n"
                            "  -c, --config FILE  configuration file\n"
                            "  -h, --help         show this help\n"
                            "Exit status: 0.\n");
}

Test(opts, missing_value, .init = cr_redirect_stderr)
{
    char out[64];
    int first;
    const char *args[] = { "probe", "--queue", NULL };
    cr_assert_eq(parse(args, out, sizeof out, &first), 2);
    fflush(stderr);
    cr_assert_stderr_eq_str("sluice probe: option '--queue' needs a value\nTry 'sluice probe --help'.\n");
}

Test(opts, unknown_option, .init = cr_redirect_stderr)
{
    char out[64];
    int first;
    const char *args[] = { "probe", "-q", "x", "--jsn", NULL };
    cr_assert_eq(parse(args, out, sizeof out, &first), 2);
    fflush(stderr);
    cr_assert_stderr_eq_str("sluice probe: unknown option '--jsn'\nTry 'sluice probe --help'.\n");
}

Test(opts, a_flag_given_a_value_is_refused, .init = cr_redirect_stderr)
{
    char out[64];
    int first;
    const char *args[] = { "probe", "--json=yes", NULL };
    cr_assert_eq(parse(args, out, sizeof out, &first), 2);
}
