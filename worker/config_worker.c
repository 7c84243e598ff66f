/* config_worker.c: see config_worker.h.  The two sections reach this module
 * through the core loader's registry (sl_worker_config_register):
 * lib/config.c does not know them.  `worker` is one table of rows; `queues`
 * is a mapping from queue names to a table each. */
#include "config_worker.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "mem.h"

#define ROWS(t) t, sizeof t / sizeof t[0]

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* Replaces the list at row (and the count beside it) with names[0..n). */
static void set_list(void *data, const sl_config_key *row, char **names, size_t n)
{
    char ***list = SL_CONFIG_FIELD(data, row, char **);
    size_t *count = (size_t *)(void *)((char *)data + row->count_off);
    free_list(*list, *count);
    *list = names;
    *count = n;
}

/* What the items of a list must be. */
enum item_rule {
    ITEM_QUEUE,   /* a queue name; at least one item */
    ITEM_KIND,    /* a kind name */
    ITEM_FILE,    /* a non-empty path */
};

static bool item_valid(enum item_rule rule, const char *s)
{
    switch (rule) {
    case ITEM_QUEUE: return sl_envelope_queue_valid(s);
    case ITEM_KIND: return sl_envelope_kind_valid(s);
    case ITEM_FILE: return *s != '\0';
    }
    return false;
}

typedef struct named { const char *name; size_t index; } named;

static int cmp_named(const void *a, const void *b)
{
    const named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* The index of the first name that repeats an earlier one, or n if all n
 * differ: by sorting, so that a list of 10,000 queues is checked at once. */
static size_t first_repeat(char *const *names, size_t n)
{
    named *order = sl_xcalloc(n ? n : 1, sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = (named){ names[i], i };
    qsort(order, n, sizeof *order, cmp_named);
    size_t first = n;
    for (size_t k = 1; k < n; k++)
        if (strcmp(order[k - 1].name, order[k].name) == 0 && order[k].index < first)
            first = order[k].index;
    free(order);
    return first;
}

/* A list of distinct strings, each valid by rule, into the row's list. */
static int read_names(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                      const sl_ynode *node, enum item_rule rule, sl_err *err)
{
    sl_yseq seq;
    char **names = NULL;
    size_t n = 0;
    if (sl_ydoc_seq(doc, node, what, &seq, err) < 0)
        return -1;
    if (rule == ITEM_QUEUE && seq.n == 0)
        return sl_ydoc_errorf(doc, node, err, "'%s' must list at least one queue", what);
    names = sl_xcalloc(seq.n ? seq.n : 1, sizeof *names);
    for (n = 0; n < seq.n; n++) {
        char item[96];
        const char *s;
        snprintf(item, sizeof item, "%s[%zu]", what, n);
        if (sl_ydoc_str(doc, seq.items[n], item, &s, err) < 0)
            goto fail;
        if (!item_valid(rule, s)) {
            if (rule == ITEM_QUEUE)
                sl_ydoc_errorf(doc, seq.items[n], err, "'%s' is not a valid queue name: '%.80s' "
                               "(use 1-%d of A-Z a-z 0-9 _ . -)", item, s, SL_NAME_MAX);
            else if (rule == ITEM_KIND)
                sl_ydoc_errorf(doc, seq.items[n], err, "'%s' is not a valid kind name: '%.80s'", item, s);
            else
                sl_ydoc_errorf(doc, seq.items[n], err, "'%s' must not be empty", item);
            goto fail;
        }
        names[n] = sl_xstrdup(s);
    }
    size_t twice = first_repeat(names, n);
    if (twice < n) {
        char item[96];
        snprintf(item, sizeof item, "%s[%zu]", what, twice);
        if (rule == ITEM_QUEUE)
            sl_ydoc_errorf(doc, seq.items[twice], err, "'%s': queue '%s' is listed twice", item, names[twice]);
        else
            sl_ydoc_errorf(doc, seq.items[twice], err, "'%s': '%.80s' is listed twice", item, names[twice]);
        goto fail;
    }
    set_list(data, row, names, n);
    return 0;

fail:
    free_list(names, n);
    return -1;
}

static int read_queue_list(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                           const sl_ynode *node, sl_err *err)
{
    return read_names(data, row, doc, what, node, ITEM_QUEUE, err);
}

static int read_kind_list(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                          const sl_ynode *node, sl_err *err)
{
    return read_names(data, row, doc, what, node, ITEM_KIND, err);
}

static int read_file_list(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                          const sl_ynode *node, sl_err *err)
{
    return read_names(data, row, doc, what, node, ITEM_FILE, err);
}

static const sl_config_key worker_keys[] = {
    SL_CONFIG_KEY("processes", SL_CONFIG_INT, sl_worker_config, processes, 1, 1024),
    SL_CONFIG_KEY_LIST("queues", sl_worker_config, queues, nqueues, read_queue_list),
    SL_CONFIG_KEY("batch", SL_CONFIG_INT, sl_worker_config, batch, 1, 1000),
    SL_CONFIG_KEY("block", SL_CONFIG_DURATION, sl_worker_config, block_ms, 1, 60000),
    SL_CONFIG_KEY("shutdown_timeout", SL_CONFIG_DURATION, sl_worker_config, shutdown_timeout_ms, 0, 86400000),
    SL_CONFIG_KEY("visibility_timeout", SL_CONFIG_DURATION, sl_worker_config, visibility_timeout_ms,
                  1000, 86400000),
    SL_CONFIG_KEY("max_deliveries", SL_CONFIG_INT, sl_worker_config, max_deliveries, 1, 1000),
    SL_CONFIG_KEY("job_timeout", SL_CONFIG_DURATION, sl_worker_config, job_timeout_ms, 1, 7 * 86400000LL),
    SL_CONFIG_KEY("max_job_timeout", SL_CONFIG_DURATION, sl_worker_config, max_job_timeout_ms,
                  1, 7 * 86400000LL),
    SL_CONFIG_KEY("timeout_grace", SL_CONFIG_DURATION, sl_worker_config, timeout_grace_ms, 0, 3600000),
    SL_CONFIG_KEY("max_attempts", SL_CONFIG_INT, sl_worker_config, max_attempts, 1, 1000),
    SL_CONFIG_KEY("retry_initial", SL_CONFIG_DURATION, sl_worker_config, retry_initial_ms, 1, 86400000),
    SL_CONFIG_KEY("retry_max", SL_CONFIG_DURATION, sl_worker_config, retry_max_ms, 1, 86400000),
    SL_CONFIG_KEY("max_payload", SL_CONFIG_INT, sl_worker_config, max_payload, 1024, 536870912),
    SL_CONFIG_KEY_LIST("protected_kinds", sl_worker_config, protected_kinds, nprotected_kinds, read_kind_list),
    SL_CONFIG_KEY_LIST("scheduler_public_keys", sl_worker_config, scheduler_public_keys,
                       nscheduler_public_keys, read_file_list),
};

/* ---- queues: { NAME: { timeout: DURATION, rate: N/s, concurrency: N } } ---- */

static const sl_config_key queue_keys[] = {
    SL_CONFIG_KEY("timeout", SL_CONFIG_DURATION64, sl_queue_settings, timeout_ms, 1, 7 * 86400000LL),
    SL_CONFIG_KEY("rate", SL_CONFIG_RATE, sl_queue_settings, limits.rate, 0, 0),
    SL_CONFIG_KEY("concurrency", SL_CONFIG_INT, sl_queue_settings, limits.concurrency, 1, 1000000),
};

static int read_queue_settings(sl_worker_config *w, sl_ydoc *doc, const sl_ynode *node, sl_err *err)
{
    sl_ymap queues;
    if (sl_ydoc_map(doc, node, "queues", &queues, err) < 0)
        return -1;
    for (size_t i = 0; i < queues.n; i++) {
        const char *name = queues.pairs[i].name;
        if (!sl_envelope_queue_valid(name))
            return sl_ydoc_errorf(doc, queues.pairs[i].key, err, "'queues': invalid queue name '%.60s' "
                                  "(1 to 64 of A-Z a-z 0-9 _ . -)", name);
        char what[SL_NAME_MAX + 16];
        snprintf(what, sizeof what, "queues.%s", name);
        w->queue_settings = sl_xrealloc(w->queue_settings, (w->nqueue_settings + 1) * sizeof *w->queue_settings);
        sl_queue_settings *q = &w->queue_settings[w->nqueue_settings++];
        memset(q, 0, sizeof *q);
        q->name = sl_xstrdup(name);
        if (sl_config_read_keys(ROWS(queue_keys), q, doc, what, queues.pairs[i].value, err) < 0)
            return -1;
    }
    return 0;
}

const sl_queue_limits *sl_worker_queue_limits(const sl_worker_config *w, const char *queue)
{
    for (size_t i = 0; queue && i < w->nqueue_settings; i++) {
        const sl_queue_limits *l = &w->queue_settings[i].limits;
        if (strcmp(w->queue_settings[i].name, queue) == 0 && (l->rate.count > 0 || l->concurrency > 0))
            return l;
    }
    return NULL;
}

int64_t sl_worker_job_timeout_ms(const sl_worker_config *w, const char *queue, int64_t timeout_ms)
{
    /* A producer's value is capped: anything added to it stays far from
     * INT64_MAX, and no envelope can pin a worker past every deadline. */
    if (timeout_ms > 0)
        return timeout_ms < w->max_job_timeout_ms ? timeout_ms : w->max_job_timeout_ms;
    for (size_t i = 0; queue && i < w->nqueue_settings; i++) {
        if (strcmp(w->queue_settings[i].name, queue) == 0 && w->queue_settings[i].timeout_ms > 0)
            return w->queue_settings[i].timeout_ms;
    }
    return w->job_timeout_ms;
}

void sl_worker_config_set_queues(sl_worker_config *w, char *const *queues, size_t n)
{
    free_list(w->queues, w->nqueues);
    w->queues = sl_xcalloc(n ? n : 1, sizeof *w->queues);
    for (size_t i = 0; i < n; i++)
        w->queues[i] = sl_xstrdup(queues[i]);
    w->nqueues = n;
}

/* ---- registration with the core loader (lib/config.h) -------------------- */

static const char *const section_names[] = { "worker", "queues", NULL };

static void *part_create(void)
{
    sl_worker_config *w = sl_xcalloc(1, sizeof *w);
    w->processes = 2;
    w->queues = sl_xcalloc(1, sizeof *w->queues);
    w->queues[0] = sl_xstrdup("default");
    w->nqueues = 1;
    w->batch = 1000;
    w->block_ms = 1000;
    w->shutdown_timeout_ms = 30000;
    w->visibility_timeout_ms = 30000;
    w->max_deliveries = 5;
    w->job_timeout_ms = 30 * 60000;
    w->max_job_timeout_ms = 86400000;
    w->timeout_grace_ms = 5000;
    w->max_attempts = 1;
    w->retry_initial_ms = 1000;
    w->retry_max_ms = 5 * 60000;
    w->max_payload = 1048576;
    return w;
}

static void part_destroy(void *data)
{
    sl_worker_config *w = data;
    free_list(w->queues, w->nqueues);
    free_list(w->protected_kinds, w->nprotected_kinds);
    free_list(w->scheduler_public_keys, w->nscheduler_public_keys);
    for (size_t i = 0; i < w->nqueue_settings; i++)
        free(w->queue_settings[i].name);
    free(w->queue_settings);
    free(w);
}

static int part_read(void *data, sl_ydoc *doc, const char *name, const sl_ynode *node, sl_err *err)
{
    if (strcmp(name, "queues") == 0)
        return read_queue_settings(data, doc, node, err);
    return sl_config_read_keys(ROWS(worker_keys), data, doc, "worker", node, err);
}

static const sl_config_section worker_section = {
    .names = section_names, .create = part_create, .destroy = part_destroy, .read = part_read,
};

void sl_worker_config_register(void)
{
    sl_config_register(&worker_section);
}

sl_worker_config *sl_worker_config_of(const sl_config *cfg)
{
    return sl_config_part(cfg, &worker_section);
}
