/* config_sched.c: see config_sched.h.  The three sections reach this module
 * through the core loader's registry (sl_sched_config_register): lib/config.c
 * does not know them. */
#include "config_sched.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_jobs.h"
#include "mem.h"

void sl_sched_config_init(sl_sched_config *c)
{
    memset(c, 0, sizeof *c);
    c->pipelines = sl_xstrdup("pipelines");
    c->reconcile_ms = 5000;
    c->standby_poll_ms = 1000;
    c->retention.succeeded_ms = 7 * 86400000LL;
    c->retention.failed_ms = 30 * 86400000LL;
    c->retention.runs_ms = 90 * 86400000LL;
    c->retention.audit_ms = 400 * 86400000LL;
    c->retention.batch = 1000;
}

static void free_group(sl_group *g)
{
    free(g->name);
    for (size_t i = 0; i < g->nusers; i++)
        free(g->users[i]);
    free(g->users);
}

void sl_sched_config_clear(sl_sched_config *c)
{
    free(c->pipelines);
    free(c->audit_key_file);
    free(c->signing_key_file);
    for (size_t i = 0; i < c->ngroups; i++)
        free_group(&c->groups[i]);
    free(c->groups);
    memset(c, 0, sizeof *c);
}

static const char *const section_names[] = { "scheduler", "groups", "retention", NULL };

/* scheduler.audit_key_file: empty means none (timeouts audited unsigned). */
static int read_optional_file(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                              const sl_ynode *node, sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, node, what, &s, err) < 0)
        return -1;
    char **field = SL_CONFIG_FIELD(data, row, char *);
    free(*field);
    *field = *s ? sl_xstrdup(s) : NULL;
    return 0;
}

static const sl_config_key scheduler_keys[] = {
    SL_CONFIG_KEY("pipelines", SL_CONFIG_STRING, sl_sched_config, pipelines, 0, 0),
    SL_CONFIG_KEY("reconcile", SL_CONFIG_DURATION, sl_sched_config, reconcile_ms, 100, 3600000),
    SL_CONFIG_KEY("standby_poll", SL_CONFIG_DURATION, sl_sched_config, standby_poll_ms, 50, 60000),
    SL_CONFIG_KEY_FN("audit_key_file", sl_sched_config, audit_key_file, read_optional_file),
    SL_CONFIG_KEY("signing_key_file", SL_CONFIG_STRING, sl_sched_config, signing_key_file, 0, 0),
};

static int read_groups(sl_sched_config *c, sl_ydoc *doc, const sl_ynode *node, sl_err *err)
{
    sl_ymap map;
    if (sl_ydoc_map(doc, node, "groups", &map, err) < 0)
        return -1;
    for (size_t i = 0; i < map.n; i++) {
        char what[96];
        sl_yseq seq;
        snprintf(what, sizeof what, "groups.%.60s", map.pairs[i].name);
        if (sl_ydoc_seq(doc, map.pairs[i].value, what, &seq, err) < 0)
            return -1;
        sl_group g = { sl_xstrdup(map.pairs[i].name), sl_xcalloc(seq.n + 1, sizeof(char *)), 0 };
        for (size_t j = 0; j < seq.n; j++) {
            const char *u;
            if (sl_ydoc_str(doc, seq.items[j], what, &u, err) < 0) {
                free_group(&g);
                return -1;
            }
            g.users[g.nusers++] = sl_xstrdup(u);
        }
        c->groups = sl_xrealloc(c->groups, (c->ngroups + 1) * sizeof *c->groups);
        c->groups[c->ngroups++] = g;
    }
    return 0;
}

static const sl_config_key retention_keys[] = {
    SL_CONFIG_KEY("succeeded", SL_CONFIG_DURATION64, sl_sched_config, retention.succeeded_ms,
                  0, 3650 * 86400000LL),
    SL_CONFIG_KEY("failed", SL_CONFIG_DURATION64, sl_sched_config, retention.failed_ms, 0, 3650 * 86400000LL),
    SL_CONFIG_KEY("runs", SL_CONFIG_DURATION64, sl_sched_config, retention.runs_ms, 0, 3650 * 86400000LL),
    SL_CONFIG_KEY("audit", SL_CONFIG_DURATION64, sl_sched_config, retention.audit_ms, 0, 36500 * 86400000LL),
    SL_CONFIG_KEY("batch", SL_CONFIG_INT, sl_sched_config, retention.batch, 1, 100000),
};

/* The audit trail outlives the runs whose gates it records: retention.audit
 * is 0 (forever), or at least an hour and at least retention.runs (with
 * runs kept forever, the audit trail is too: scheduler/retention.h). */
static int read_retention(sl_sched_config *c, sl_ydoc *doc, const sl_ynode *node, sl_err *err)
{
    if (sl_config_read_keys(retention_keys, sizeof retention_keys / sizeof retention_keys[0], c, doc,
                            "retention", node, err) < 0)
        return -1;
    int64_t audit = c->retention.audit_ms, runs = c->retention.runs_ms;
    if (audit == 0)
        return 0;
    if (audit < 3600000)
        return sl_ydoc_errorf(doc, node, err, "retention.audit must be 0 (kept forever) or at least 1h");
    if (runs > 0 && audit < runs)
        return sl_ydoc_errorf(doc, node, err, "retention.audit must be at least retention.runs: "
                              "a run that is kept keeps the audit rows of its gates");
    return 0;
}

int sl_sched_config_read(sl_sched_config *c, sl_ydoc *doc, const char *name, const sl_ynode *node,
                         sl_err *err)
{
    if (strcmp(name, "scheduler") == 0)
        return sl_config_read_keys(scheduler_keys, sizeof scheduler_keys / sizeof scheduler_keys[0], c, doc,
                                   "scheduler", node, err);
    if (strcmp(name, "retention") == 0)
        return read_retention(c, doc, node, err);
    return read_groups(c, doc, node, err);
}

const sl_group *sl_sched_config_group(const sl_sched_config *c, const char *name)
{
    for (size_t i = 0; i < c->ngroups; i++) {
        if (strcmp(c->groups[i].name, name) == 0)
            return &c->groups[i];
    }
    return NULL;
}

/* ---- registration with the core loader (lib/config.h) -------------------- */

static void *part_create(void)
{
    sl_sched_config *c = sl_xmalloc(sizeof *c);
    sl_sched_config_init(c);
    return c;
}

static void part_destroy(void *data)
{
    sl_sched_config_clear(data);
    free(data);
}

static int part_read(void *data, sl_ydoc *doc, const char *name, const sl_ynode *node, sl_err *err)
{
    return sl_sched_config_read(data, doc, name, node, err);
}

static const sl_config_section sched_section = {
    .names = section_names, .create = part_create, .destroy = part_destroy, .read = part_read,
};

void sl_sched_config_register(void)
{
    sl_config_register(&sched_section);
}

sl_sched_config *sl_sched_config_of(const sl_config *cfg)
{
    sl_sched_config *s = sl_config_part(cfg, &sched_section);
    if (s != NULL && s->notify == NULL) {
        /* the channels pipelines may name: the jobs' notify section */
        const sl_jobs_config *jobs = sl_config_jobs_of(cfg);
        if (jobs != NULL)
            s->notify = &jobs->notify;
    }
    return s;
}
