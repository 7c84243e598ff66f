/* config_sched.c: see config_sched.h.  The two sections reach this module
 * through the core loader's registry (sl_sched_config_register): lib/config.c
 * does not know them. */
#include "config_sched.h"

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

static const char *const section_names[] = { "scheduler", "groups", NULL };

bool sl_sched_config_section(const char *name)
{
    for (const char *const *n = section_names; *n; n++) {
        if (strcmp(*n, name) == 0)
            return true;
    }
    return false;
}

static int read_scheduler(sl_sched_config *c, sl_ydoc *doc, const sl_ynode *node, sl_err *err)
{
    sl_ymap map;
    if (sl_ydoc_map(doc, node, "scheduler", &map, err) < 0)
        return -1;
    for (size_t i = 0; i < map.n; i++) {
        const char *k = map.pairs[i].name;
        const sl_ynode *v = map.pairs[i].value;
        int64_t ms;
        const char *s;
        if (strcmp(k, "pipelines") == 0) {
            if (sl_ydoc_str(doc, v, "scheduler.pipelines", &s, err) < 0)
                return -1;
            if (*s == '\0')
                return sl_ydoc_errorf(doc, v, err, "'scheduler.pipelines' must not be empty");
            free(c->pipelines);
            c->pipelines = sl_xstrdup(s);
        } else if (strcmp(k, "reconcile") == 0) {
            if (sl_ydoc_duration(doc, v, "scheduler.reconcile", 100, 3600000, &ms, err) < 0)
                return -1;
            c->reconcile_ms = (int)ms;
        } else if (strcmp(k, "standby_poll") == 0) {
            if (sl_ydoc_duration(doc, v, "scheduler.standby_poll", 50, 60000, &ms, err) < 0)
                return -1;
            c->standby_poll_ms = (int)ms;
        } else if (strcmp(k, "audit_key_file") == 0) {
            if (sl_ydoc_str(doc, v, "scheduler.audit_key_file", &s, err) < 0)
                return -1;
            free(c->audit_key_file);
            c->audit_key_file = *s ? sl_xstrdup(s) : NULL;
        } else if (strcmp(k, "signing_key_file") == 0) {
            if (sl_ydoc_str(doc, v, "scheduler.signing_key_file", &s, err) < 0)
                return -1;
            if (*s == '\0')
                return sl_ydoc_errorf(doc, v, err, "'scheduler.signing_key_file' must not be empty");
            free(c->signing_key_file);
            c->signing_key_file = sl_xstrdup(s);
        } else {
            return sl_ydoc_errorf(doc, map.pairs[i].key, err, "unknown key '%.60s' in 'scheduler' "
                                  "(expected pipelines, reconcile, standby_poll, audit_key_file, "
                                  "signing_key_file)", k);
        }
    }
    return 0;
}

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

int sl_sched_config_read(sl_sched_config *c, sl_ydoc *doc, const char *name, const sl_ynode *node,
                         sl_err *err)
{
    if (strcmp(name, "scheduler") == 0)
        return read_scheduler(c, doc, node, err);
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
