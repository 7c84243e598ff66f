/* view.h: a snapshot (snapshot.h) as text for people: the queues table,
 * the workers and the open gates.  `sluice stats` prints it once; `sluice
 * top` draws it on the screen every interval, within the terminal's size.
 *
 * Rates (processed/s, failed/s) and latency quantiles are taken over the
 * interval since the previous snapshot when there is one (top), and over
 * all time otherwise (stats, top's first frame).  Quantiles are estimated
 * from the histogram buckets (lib/metrics.h); "-" means no job started or
 * ran in that time. */
#ifndef SL_VIEW_H
#define SL_VIEW_H

#include "buf.h"
#include "snapshot.h"

typedef enum view_sort {
    VIEW_SORT_NAME = 0,  /* n: queue name */
    VIEW_SORT_DEPTH,     /* d: waiting jobs, most first */
    VIEW_SORT_PENDING,   /* i: in flight */
    VIEW_SORT_PROCESSED, /* p: processed/s */
    VIEW_SORT_FAILED,    /* f: failed/s */
    VIEW_SORT_WAIT,      /* w: wait p99 */
    VIEW_SORT_OLDEST,    /* o: oldest waiting job's age */
    VIEW_SORT_COUNT,
} view_sort;

typedef struct view_opts {
    view_sort sort;
    const char *filter;  /* show queues whose name contains it; NULL/"" all */
    int width;           /* columns; 0: no limit (plain output) */
    int height;          /* lines for the whole view; 0: no limit */
} view_opts;

/* The key (letter) and name of a sort order, for help and the screen. */
char view_sort_key(view_sort s);
const char *view_sort_name(view_sort s);

/* Parses a sort key letter or name ("d", "depth"); -1 if unknown. */
int view_sort_parse(const char *s);

/* Appends the view of cur (prev: the previous snapshot, or NULL) as lines
 * ending in "\n", none longer than o->width, at most o->height of them. */
void view_render(const snap *cur, const snap *prev, const view_opts *o, sl_buf *out);

#endif
