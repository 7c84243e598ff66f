/* opts.c: see opts.h.  The table is turned into getopt_long's arguments
 * on every sl_opts_begin (a few dozen rows at most: nothing to cache);
 * getopt reports a missing value as ':' and anything unknown as '?',
 * which become the two usage errors every command prints alike. */
#include "opts.h"

#include <assert.h>
#include <stdarg.h>
#include <string.h>

void sl_opts_begin(sl_opts_parser *p, const sl_opts *o, int argc, char **argv)
{
    memset(p, 0, sizeof *p);
    p->opts = o;
    p->argc = argc;
    p->argv = argv;
    size_t s = 0, n = 0;
    p->shorts[s++] = ':';    /* report a missing value as ':' */
    for (const sl_opt *r = o->rows; r->name != NULL; r++, n++) {
        assert(n < SL_OPTS_MAX && r->id != '?' && r->id != ':' && r->id >= 0);
        p->longs[n] = (struct option){ r->name, r->arg ? required_argument : no_argument, NULL, r->id };
        if (r->short_name) {
            assert(r->short_name == r->id);   /* getopt returns the letter itself */
            p->shorts[s++] = r->short_name;
            if (r->arg)
                p->shorts[s++] = ':';
        }
    }
    p->shorts[s] = '\0';
    opterr = 0;
    optind = 1;
    p->optind = 1;
}

int sl_opts_error(const sl_opts *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", o->prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "%s\n", o->hint ? o->hint : "");
    va_end(ap);
    return 2;
}

/* The row whose id getopt returned. */
static const sl_opt *row_of(const sl_opts *o, int id)
{
    for (const sl_opt *r = o->rows; r->name != NULL; r++) {
        if (r->id == id)
            return r;
    }
    return NULL;
}

int sl_opts_next(sl_opts_parser *p, const char **value)
{
    *value = NULL;
    int c = getopt_long(p->argc, p->argv, p->shorts, p->longs, NULL);
    p->optind = optind;
    if (c == -1)
        return SL_OPTS_END;
    const sl_opt *r = c == ':' || c == '?' ? NULL : row_of(p->opts, c);
    if (r == NULL) {
        p->status = sl_opts_error(p->opts, c == ':' ? "option '%s' needs a value" : "unknown option '%s'",
                                  p->argv[optind - 1]);
        return SL_OPTS_EXIT;
    }
    if (strcmp(r->name, "help") == 0) {
        sl_opts_help(p->opts, stdout);
        p->status = 0;
        return SL_OPTS_EXIT;
    }
    *value = r->arg ? optarg : NULL;
    return c;
}

/* Writes "-c, --config FILE" (or "    --json") into buf; returns its length. */
static size_t left_column(const sl_opt *r, char *buf, size_t n)
{
    int len = snprintf(buf, n, "%c%c%c --%s%s%s", r->short_name ? '-' : ' ',
                       r->short_name ? r->short_name : ' ', r->short_name ? ',' : ' ', r->name,
                       r->arg ? " " : "", r->arg ? r->arg : "");
    return len < 0 ? 0 : (size_t)len;
}

void sl_opts_help(const sl_opts *o, FILE *f)
{
    char left[96];
    size_t width = 0;
    for (const sl_opt *r = o->rows; r->name != NULL; r++) {
        size_t len = left_column(r, left, sizeof left);
        if (len > width)
            width = len;
    }
    fputs(o->usage, f);
    fputs("Options:\n", f);
    for (const sl_opt *r = o->rows; r->name != NULL; r++) {
        left_column(r, left, sizeof left);
        fprintf(f, "  %-*s  ", (int)width, left);
        for (const char *h = r->help; *h; h++) {
            fputc(*h, f);
            if (*h == '\n')
                fprintf(f, "  %-*s  ", (int)width, "");
        }
        fputc('\n', f);
    }
    if (o->epilog)
        fputs(o->epilog, f);
    if (o->footer)
        o->footer(f);
}
