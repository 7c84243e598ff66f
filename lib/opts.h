/* opts.h: command-line options from one table per command, which also
 * writes the command's --help.
 *
 * A command describes its options once, as rows of sl_opt (long name,
 * optional short letter, the value's name or none, one line of help);
 * the parser turns the table into getopt_long's arguments, and
 * sl_opts_help prints the usage text followed by the options as the table
 * lists them, aligned.  So the help can never forget an option or name
 * one that does not exist.  Used by every `sluice` subcommand,
 * sluice-worker and sluice-scheduler.
 *
 *   static const sl_opt rows[] = {
 *       { 'j', "json", 0, NULL, "print JSON" },
 *       { 'c', "config", 'c', "FILE", "configuration file" },
 *       { 'h', "help", 'h', NULL, "show this help" },
 *       { 0 },
 *   };
 *   static const sl_opts gates = { "sluice gates", "Usage: …\n", "\nTry 'sluice gates --help'.", rows };
 *   sl_opts_parser p;
 *   sl_opts_begin(&p, &gates, argc, argv);
 *   for (int id; (id = sl_opts_next(&p, &value)) != SL_OPTS_END;)
 *       switch (id) { case SL_OPTS_EXIT: return p.status; case 'j': … }
 *   // positional arguments: argv[p.optind .. argc)
 *
 * The row named "help" is answered by the parser itself (help on stdout,
 * status 0).  A missing value or an unknown option prints
 * "PROG: option '--x' needs a value" / "PROG: unknown option '--x'" and
 * the hint to stderr, status 2.  getopt_long's global state is reset by
 * sl_opts_begin; one parse at a time. */
#ifndef SL_OPTS_H
#define SL_OPTS_H

#include <getopt.h>
#include <stdio.h>

#define SL_OPTS_MAX 32        /* rows of one table */
#define SL_OPTS_END (-1)      /* sl_opts_next: no options left */
#define SL_OPTS_EXIT (-2)     /* sl_opts_next: stop, exit with parser.status */

typedef struct sl_opt {
    int id;                   /* returned by sl_opts_next (a letter, or a number above 255) */
    const char *name;         /* long name without "--"; NULL ends the table */
    char short_name;          /* -x, or 0 for none */
    const char *arg;          /* the value's name in the help ("FILE"); NULL: a flag */
    const char *help;         /* its help; '\n' continues on an indented line */
} sl_opt;

typedef struct sl_opts {
    const char *prog;         /* prefix of messages: "sluice gates", "sluice-worker" */
    const char *usage;        /* the help before "Options:" (ends with a blank line) */
    const char *hint;         /* appended to usage errors: "\nTry 'sluice gates --help'." */
    const sl_opt *rows;       /* the options, ended by a row whose name is NULL */
    const char *epilog;       /* help after the options, or NULL */
    void (*footer)(FILE *f);  /* writes help that is known only at run time, or NULL */
} sl_opts;

typedef struct sl_opts_parser {
    const sl_opts *opts;      /* borrowed */
    int argc;
    char **argv;              /* borrowed */
    int optind;               /* after SL_OPTS_END: the first positional argument */
    int status;               /* after SL_OPTS_EXIT: the exit status (0 help, 2 usage error) */
    struct option longs[SL_OPTS_MAX + 1];
    char shorts[3 * SL_OPTS_MAX + 2];
} sl_opts_parser;

/* Starts parsing argv[1..argc) (argv[0] is the command) with o's table. */
void sl_opts_begin(sl_opts_parser *p, const sl_opts *o, int argc, char **argv);

/* The id of the next option (*value its value, or NULL for a flag),
 * SL_OPTS_END when none is left, or SL_OPTS_EXIT after --help or a usage
 * error (p->status says which; the message is printed). */
int sl_opts_next(sl_opts_parser *p, const char **value);

/* Prints o's help: usage, "Options:" and one aligned line per row. */
void sl_opts_help(const sl_opts *o, FILE *f);

/* Prints "PROG: message" and the hint to stderr; returns 2 (usage error). */
int sl_opts_error(const sl_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
