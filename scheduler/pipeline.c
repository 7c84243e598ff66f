/* pipeline.c: see pipeline.h.
 *
 * Validation runs in three passes so that every error is found in one go:
 *   1. the top level and each step's own fields (types, keys, durations,
 *      cron, kinds, approval counts, approver groups), collecting step
 *      ids; a job step's args must be something a job envelope can carry
 *      (check_value) and what its kind declares it takes (check_kind_args);
 *   2. `needs` against the ids, then a depth-first search for a cycle,
 *      printed as the path that closes it;
 *   3. template references in args, `if` and `concurrency`, which may name
 *      only declared vars, steps this step (transitively) needs, and inputs
 *      declared by a gate it needs.
 * Each reader gets a local sl_err; failures go into the caller's sl_yerrors
 * and validation carries on.
 *
 * Keys are dispatched with strcmp, which is sound only because yamldoc
 * refuses a key holding a NUL byte and a key written twice: each field is
 * met at most once, so no list is read twice into one array (asserted). */
#include "pipeline.h"

#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_jobs.h"
#include "envelope.h"
#include "json.h"
#include "mem.h"
#include "numfmt.h"
#include "registry.h"

typedef struct vctx {
    sl_pipeline *p;
    sl_yerrors *errors;
    int nerrors;
    const sl_sched_config *groups;
    const sl_ynode **step_nodes;   /* per step: its mapping node */
    const sl_ynode ***need_nodes;  /* per step, per need: the item node */
} vctx;

static bool ymap_has(const sl_ymap *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->pairs[i].name, name) == 0)
            return true;
    }
    return false;
}

static void add(vctx *v, const sl_err *e)
{
    sl_yerrors_add(v->errors, e);
    v->nerrors++;
}

static void errorf(vctx *v, const sl_ynode *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errorf(vctx *v, const sl_ynode *node, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sl_err e;
    sl_ydoc_errorf(v->p->doc, node, &e, "%s", msg);
    add(v, &e);
}

static bool valid_id(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
    return n >= 1 && n <= SL_STEP_ID_MAX && s[n] == '\0';
}

/* Reads a string field; on error records it and returns NULL. */
static const char *str_field(vctx *v, const sl_ynode *node, const char *what)
{
    const char *s;
    sl_err e;
    if (sl_ydoc_str(v->p->doc, node, what, &s, &e) < 0) {
        add(v, &e);
        return NULL;
    }
    return s;
}

static int64_t duration_field(vctx *v, const sl_ynode *node, const char *what)
{
    int64_t ms = 0;
    sl_err e;
    if (sl_ydoc_duration(v->p->doc, node, what, 1, 365LL * 86400000, &ms, &e) < 0) {
        add(v, &e);
        return 0;
    }
    return ms;
}

static void free_step(sl_pstep *s)
{
    free(s->needs);
    if (s->gate) {
        free(s->gate->approvers);
        free(s->gate->inputs);
        free(s->gate->notify);
        free(s->gate);
    }
}

void sl_pipeline_free(sl_pipeline *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nsteps; i++)
        free_step(&p->steps[i]);
    free(p->steps);
    free(p->notify);
    sl_ydoc_free(p->doc);
    free(p->source);
    free(p);
}

int sl_pipeline_step(const sl_pipeline *p, const char *id)
{
    for (size_t i = 0; i < p->nsteps; i++) {
        if (p->steps[i].id && strcmp(p->steps[i].id, id) == 0)
            return (int)i;
    }
    return -1;
}

/* ---- pass 1: fields ------------------------------------------------------- */

static void read_inputs(vctx *v, sl_pgate *g, const sl_ynode *node, const char *sid)
{
    sl_yseq seq;
    sl_err e;
    char what[128];
    snprintf(what, sizeof what, "steps.%s.approval.inputs", sid);
    if (sl_ydoc_seq(v->p->doc, node, what, &seq, &e) < 0) {
        add(v, &e);
        return;
    }
    assert(g->inputs == NULL);   /* keys are unique (yamldoc), so read once */
    g->inputs = sl_xcalloc(seq.n + 1, sizeof *g->inputs);
    for (size_t i = 0; i < seq.n; i++) {
        sl_ymap m;
        if (sl_ydoc_map(v->p->doc, seq.items[i], what, &m, &e) < 0) {
            add(v, &e);
            continue;
        }
        sl_pinput in = { NULL, "string", NULL };
        for (size_t k = 0; k < m.n; k++) {
            const char *key = m.pairs[k].name;
            if (strcmp(key, "name") == 0) {
                in.name = str_field(v, m.pairs[k].value, "inputs[].name");
                if (in.name && !valid_id(in.name)) {
                    errorf(v, m.pairs[k].value, "input name '%.60s' must be 1-64 of A-Z a-z 0-9 _ -",
                           in.name);
                    in.name = NULL;
                }
            } else if (strcmp(key, "type") == 0) {
                const char *t = str_field(v, m.pairs[k].value, "inputs[].type");
                if (t && strcmp(t, "string") != 0 && strcmp(t, "int") != 0 && strcmp(t, "bool") != 0)
                    errorf(v, m.pairs[k].value, "input type must be string, int or bool, got '%.40s'", t);
                else if (t)
                    in.type = t;
            } else if (strcmp(key, "default") == 0) {
                in.dflt = m.pairs[k].value;
            } else if (strcmp(key, "description") != 0) {
                errorf(v, m.pairs[k].key, "unknown key '%.60s' in an approval input (expected name, "
                       "type, default, description)", key);
            }
        }
        if (in.name == NULL) {
            if (ymap_has(&m, "name") == false)
                errorf(v, seq.items[i], "approval input without a 'name'");
            continue;
        }
        if (in.dflt) {
            sl_err de;
            int64_t iv;
            bool bv;
            if (strcmp(in.type, "int") == 0 &&
                sl_ydoc_int(v->p->doc, in.dflt, "default", INT64_MIN, INT64_MAX, &iv, &de) < 0)
                add(v, &de);
            else if (strcmp(in.type, "bool") == 0 && sl_ydoc_bool(v->p->doc, in.dflt, "default", &bv, &de) < 0)
                add(v, &de);
            else if (strcmp(in.type, "string") == 0 && sl_ynode_kind(in.dflt) != SL_YSCALAR)
                errorf(v, in.dflt, "'default' must be a string");
        }
        for (size_t j = 0; j < g->ninputs; j++) {
            if (strcmp(g->inputs[j].name, in.name) == 0)
                errorf(v, seq.items[i], "input '%s' is declared twice", in.name);
        }
        g->inputs[g->ninputs++] = in;
    }
}

/* An approver is a user name, or group:NAME for a group of the
 * configuration.  A group that does not exist, or a bare name that is a
 * group's (which would otherwise be read as a user of that name and make
 * the gate unreachable, or silently mean something else), is an error. */
static int check_approver(vctx *v, const sl_ynode *node, const char *a)
{
    const char *gname = sl_pipeline_group_name(a);
    if (gname != NULL) {
        if (*gname == '\0' || v->groups == NULL || sl_sched_config_group(v->groups, gname) == NULL) {
            errorf(v, node, "approver '%.60s': no group '%.60s' is defined under 'groups:' in the "
                   "configuration", a, gname);
            return -1;
        }
        return 0;
    }
    if (*a == '\0') {
        errorf(v, node, "an approver must not be empty");
        return -1;
    }
    if (v->groups && sl_sched_config_group(v->groups, a) != NULL) {
        errorf(v, node, "approver '%.60s' is the name of a group: write group:%.60s for the group",
               a, a);
        return -1;
    }
    return 0;
}

/* A `notify:` list of channel names (pipeline or gate): each must be a
 * channel of notify.channels when the configuration is known.  Returns an
 * owned array (possibly empty, never NULL) of borrowed names. */
static const char **read_notify(vctx *v, const sl_ynode *node, const char *what, size_t *n)
{
    sl_yseq seq;
    sl_err e;
    *n = 0;
    if (sl_ydoc_seq(v->p->doc, node, what, &seq, &e) < 0) {
        add(v, &e);
        return sl_xcalloc(1, sizeof(const char *));
    }
    const char **list = sl_xcalloc(seq.n + 1, sizeof *list);
    for (size_t i = 0; i < seq.n; i++) {
        const char *c = str_field(v, seq.items[i], what);
        if (c == NULL)
            continue;
        if (v->groups && v->groups->notify && sl_config_notify_channel(v->groups->notify, c) == NULL) {
            errorf(v, seq.items[i], "notify: no channel '%.60s' is defined under 'notify.channels' in "
                   "the configuration", c);
            continue;
        }
        for (size_t j = 0; j < *n; j++) {
            if (strcmp(list[j], c) == 0)
                errorf(v, seq.items[i], "notify: channel '%.60s' is listed twice", c);
        }
        list[(*n)++] = c;
    }
    return list;
}

const char *const *sl_pipeline_gate_channels(const sl_pipeline *p, const sl_pgate *g,
                                             const struct sl_notify_config *nc, size_t *n)
{
    if (g->notify) {
        *n = g->nnotify;
        return g->notify;
    }
    if (p->notify) {
        *n = p->nnotify;
        return p->notify;
    }
    *n = nc ? nc->ndefaults : 0;
    return nc ? (const char *const *)nc->defaults : NULL;
}

static sl_pgate *read_approval(vctx *v, const sl_ynode *node, const char *sid)
{
    sl_ymap m;
    sl_err e;
    char what[128];
    snprintf(what, sizeof what, "steps.%s.approval", sid);
    if (sl_ydoc_map(v->p->doc, node, what, &m, &e) < 0) {
        add(v, &e);
        return NULL;
    }
    sl_pgate *g = sl_xcalloc(1, sizeof *g);
    g->required = 1;
    const sl_ynode *required_node = NULL, *approvers_node = NULL;
    for (size_t i = 0; i < m.n; i++) {
        const char *key = m.pairs[i].name;
        const sl_ynode *val = m.pairs[i].value;
        if (strcmp(key, "approvers") == 0) {
            sl_yseq seq;
            approvers_node = val;
            if (sl_ydoc_seq(v->p->doc, val, "approvers", &seq, &e) < 0) {
                add(v, &e);
                continue;
            }
            if (seq.n == 0)
                errorf(v, val, "'approvers' must name at least one user or group");
            /* yamldoc refuses a repeated key, so this list is read once */
            assert(g->approvers == NULL);
            g->approvers = sl_xcalloc(seq.n + 1, sizeof *g->approvers);
            for (size_t j = 0; j < seq.n; j++) {
                const char *a = str_field(v, seq.items[j], "approvers[]");
                if (a && check_approver(v, seq.items[j], a) == 0)
                    g->approvers[g->napprovers++] = a;
            }
        } else if (strcmp(key, "required") == 0) {
            int64_t r;
            required_node = val;
            if (sl_ydoc_int(v->p->doc, val, "required", 1, 1000, &r, &e) < 0)
                add(v, &e);
            else
                g->required = (int)r;
        } else if (strcmp(key, "timeout") == 0) {
            g->timeout_ms = duration_field(v, val, "approval.timeout");
        } else if (strcmp(key, "on_timeout") == 0) {
            const char *s = str_field(v, val, "on_timeout");
            if (s && strcmp(s, "approve") == 0)
                g->on_timeout_approve = true;
            else if (s && strcmp(s, "reject") != 0)
                errorf(v, val, "'on_timeout' must be reject or approve, got '%.40s'", s);
        } else if (strcmp(key, "allow_self_approval") == 0) {
            if (sl_ydoc_bool(v->p->doc, val, "allow_self_approval", &g->allow_self, &e) < 0)
                add(v, &e);
        } else if (strcmp(key, "inputs") == 0) {
            read_inputs(v, g, val, sid);
        } else if (strcmp(key, "instructions") == 0) {
            g->instructions = str_field(v, val, "instructions");
        } else if (strcmp(key, "notify") == 0) {
            g->notify = read_notify(v, val, "approval.notify", &g->nnotify);
        } else {
            errorf(v, m.pairs[i].key, "unknown key '%.60s' in 'approval' (expected approvers, "
                   "required, timeout, on_timeout, allow_self_approval, inputs, instructions, notify)",
                   key);
        }
    }
    if (approvers_node == NULL) {
        errorf(v, node, "approval of step '%s' has no 'approvers'", sid);
    } else if (g->napprovers > 0) {
        size_t n;
        char **users = sl_pipeline_gate_users(g, v->groups, &n);
        sl_pipeline_users_free(users);
        if ((size_t)g->required > n)
            errorf(v, required_node ? required_node : node, "approval of step '%s' requires %d "
                   "approvals but only %zu approver%s listed", sid, g->required, n,
                   n == 1 ? " is" : "s are");
    }
    return g;
}

static void read_retry(vctx *v, sl_pstep *s, const sl_ynode *node)
{
    sl_ymap m;
    sl_err e;
    if (sl_ydoc_map(v->p->doc, node, "retry", &m, &e) < 0) {
        add(v, &e);
        return;
    }
    for (size_t i = 0; i < m.n; i++) {
        const char *key = m.pairs[i].name;
        const sl_ynode *val = m.pairs[i].value;
        if (strcmp(key, "max_attempts") == 0) {
            int64_t n;
            if (sl_ydoc_int(v->p->doc, val, "retry.max_attempts", 1, 1000, &n, &e) < 0)
                add(v, &e);
            else
                s->max_attempts = (int)n;
        } else if (strcmp(key, "backoff") == 0) {
            const char *b = str_field(v, val, "retry.backoff");
            if (b && strcmp(b, "fixed") != 0 && strcmp(b, "exponential") != 0)
                errorf(v, val, "'retry.backoff' must be fixed or exponential, got '%.40s'", b);
            else
                s->backoff = b;
        } else if (strcmp(key, "initial") == 0) {
            s->retry_initial_ms = duration_field(v, val, "retry.initial");
        } else if (strcmp(key, "max") == 0) {
            s->retry_max_ms = duration_field(v, val, "retry.max");
        } else {
            errorf(v, m.pairs[i].key, "unknown key '%.60s' in 'retry' (expected max_attempts, "
                   "backoff, initial, max)", key);
        }
    }
}

/* Checks that a value of args can travel in an envelope: nested at most
 * SL_JSON_MAX_DEPTH levels (depth counts node's level, the args mapping
 * being 1), no NUL byte in a string, integers that fit an int64, finite
 * floats.  Returns -1 after recording the first error of the subtree.
 * Loading bounded the document's expanded size, so this walk is bounded. */
static int check_value(vctx *v, const sl_ynode *node, int depth)
{
    sl_ydoc *doc = v->p->doc;
    const char *t = sl_ynode_text(node);
    int64_t iv;
    double dv;
    int rc = 0;
    switch (sl_ynode_type(node)) {
    case SL_YT_MAP:
    case SL_YT_SEQ:
        if (depth > SL_JSON_MAX_DEPTH) {
            errorf(v, node, "args nest more than %d levels deep (the most a job's envelope carries)",
                   SL_JSON_MAX_DEPTH);
            return -1;
        }
        if (sl_ynode_kind(node) == SL_YMAP) {
            sl_ymap m;
            sl_err e;
            if (sl_ydoc_map(doc, node, "args", &m, &e) < 0) {
                add(v, &e);
                return -1;
            }
            for (size_t i = 0; i < m.n && rc == 0; i++)
                rc = check_value(v, m.pairs[i].value, depth + 1);
        } else {
            sl_yseq q;
            if (sl_ydoc_seq(doc, node, NULL, &q, NULL) < 0)
                return -1;
            for (size_t i = 0; i < q.n && rc == 0; i++)
                rc = check_value(v, q.items[i], depth + 1);
        }
        return rc;
    case SL_YT_STR:
        if (strlen(t) != node->data.scalar.length) {
            errorf(v, node, "a string holding a NUL byte cannot be passed to a job");
            return -1;
        }
        return 0;
    case SL_YT_INT:
        if (!sl_yscalar_int(t, &iv)) {
            errorf(v, node, "integer '%.40s' does not fit 64 bits (quote it to pass it as a string)", t);
            return -1;
        }
        return 0;
    case SL_YT_FLOAT:
        if (!sl_yscalar_float(t, &dv) || !isfinite(dv)) {
            errorf(v, node, "number '%.40s' cannot be written as JSON (quote it to pass it as a "
                   "string)", t);
            return -1;
        }
        return 0;
    case SL_YT_NULL:
    case SL_YT_BOOL:
        return 0;
    }
    return 0;
}

static const sl_kind_arg *kind_arg(const sl_kind *k, const char *name)
{
    for (const sl_kind_arg *a = k->args; a->name; a++) {
        if (strcmp(a->name, name) == 0)
            return a;
    }
    return NULL;
}

/* Checks a job step's args against what its kind declares it takes: no
 * unknown argument (unless the kind passes others on), every required one
 * present, and a literal value among the allowed ones.  Templated values
 * are known only at run time, where the handler checks them. */
static void check_kind_args(vctx *v, const sl_kind *k, const sl_ynode *args, const sl_ynode *where,
                            const char *sid)
{
    if (k == NULL || k->args == NULL)
        return;
    sl_ymap m = { NULL, 0 };
    if (args && sl_ydoc_map(v->p->doc, args, "args", &m, NULL) < 0)
        return;
    char expected[300];
    size_t off = 0;
    expected[0] = '\0';
    for (const sl_kind_arg *a = k->args; a->name && off < sizeof expected; a++)
        off += (size_t)snprintf(expected + off, sizeof expected - off, "%s%s", off ? ", " : "", a->name);
    for (size_t i = 0; i < m.n; i++) {
        const sl_kind_arg *a = kind_arg(k, m.pairs[i].name);
        if (a == NULL) {
            if (!k->open_args)
                errorf(v, m.pairs[i].key, "kind '%s' takes no argument '%.60s' (it takes %s)", k->name,
                       m.pairs[i].name, expected);
            continue;
        }
        const char *t = sl_ynode_text(m.pairs[i].value);
        if (a->values == NULL || t == NULL || sl_tmpl_has_refs(t))
            continue;
        bool ok = false;
        for (const char *const *val = a->values; *val && !ok; val++)
            ok = strcmp(*val, t) == 0;
        if (!ok) {
            char allowed[200];
            size_t o = 0;
            allowed[0] = '\0';
            for (const char *const *val = a->values; *val && o < sizeof allowed; val++)
                o += (size_t)snprintf(allowed + o, sizeof allowed - o, "%s%s", o ? ", " : "", *val);
            errorf(v, m.pairs[i].value, "argument '%s' of kind '%s' must be one of %s, got '%.40s'",
                   a->name, k->name, allowed, t);
        }
    }
    for (const sl_kind_arg *a = k->args; a->name; a++) {
        bool present = false;
        for (size_t i = 0; i < m.n && !present; i++)
            present = strcmp(m.pairs[i].name, a->name) == 0;
        if (a->required && !present)
            errorf(v, where, "step '%s': kind '%s' needs argument '%s'", sid, k->name, a->name);
    }
}

static void known_kinds(char *buf, size_t n)
{
    size_t nk, off = 0;
    const sl_kind *const *all = sl_registry_all(&nk);
    buf[0] = '\0';
    for (size_t i = 0; i < nk && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%s", i ? ", " : "", all[i]->name);
}

static void read_step(vctx *v, size_t idx, const sl_ynode *node)
{
    sl_pstep *s = &v->p->steps[idx];
    sl_ymap m;
    sl_err e;
    v->step_nodes[idx] = node;
    if (sl_ydoc_map(v->p->doc, node, "steps[]", &m, &e) < 0) {
        add(v, &e);
        return;
    }
    const sl_ynode *kind_node = NULL, *approval_node = NULL, *queue_node = NULL, *args_node = NULL;
    for (size_t i = 0; i < m.n; i++) {
        const char *key = m.pairs[i].name;
        const sl_ynode *val = m.pairs[i].value;
        if (strcmp(key, "id") == 0) {
            const char *id = str_field(v, val, "id");
            if (id && !valid_id(id))
                errorf(v, val, "step id '%.60s' must be 1-64 of A-Z a-z 0-9 _ -", id);
            else if (id && sl_pipeline_step(v->p, id) >= 0)
                errorf(v, val, "duplicate step id '%s'", id);
            else
                s->id = id;
        } else if (strcmp(key, "kind") == 0) {
            kind_node = val;
            s->kind = str_field(v, val, "kind");
            if (s->kind && sl_registry_find(s->kind) == NULL) {
                char kinds[300];
                known_kinds(kinds, sizeof kinds);
                errorf(v, val, "unknown kind '%.60s' (this build knows %s)", s->kind, kinds);
            }
        } else if (strcmp(key, "queue") == 0) {
            queue_node = val;
            s->queue = str_field(v, val, "queue");
            if (s->queue && !sl_envelope_queue_valid(s->queue)) {
                errorf(v, val, "'queue' is not a valid queue name: '%.60s'", s->queue);
                s->queue = NULL;
            }
        } else if (strcmp(key, "args") == 0) {
            args_node = val;
            if (sl_ynode_kind(val) != SL_YMAP)
                errorf(v, val, "'args' must be a mapping, got %s (write {} for no arguments)",
                       sl_ynode_kind(val) == SL_YNULL ? "nothing" : "a list or a scalar");
            else if (check_value(v, val, 1) == 0)
                s->args = val;
        } else if (strcmp(key, "needs") == 0) {
            sl_yseq seq;
            if (sl_ydoc_seq(v->p->doc, val, "needs", &seq, &e) < 0) {
                add(v, &e);
                continue;
            }
            assert(v->need_nodes[idx] == NULL);   /* keys are unique (yamldoc) */
            v->need_nodes[idx] = sl_xcalloc(seq.n + 1, sizeof(sl_ynode *));
            for (size_t j = 0; j < seq.n; j++) {
                if (str_field(v, seq.items[j], "needs[]"))
                    v->need_nodes[idx][j] = seq.items[j];
            }
        } else if (strcmp(key, "if") == 0) {
            s->if_expr = str_field(v, val, "if");
        } else if (strcmp(key, "retry") == 0) {
            read_retry(v, s, val);
        } else if (strcmp(key, "timeout") == 0) {
            s->timeout_ms = duration_field(v, val, "timeout");
        } else if (strcmp(key, "approval") == 0) {
            approval_node = val;
        } else {
            errorf(v, m.pairs[i].key, "unknown key '%.60s' in a step (expected id, kind, queue, "
                   "args, needs, if, retry, timeout, approval)", key);
        }
    }
    if (s->id == NULL && !ymap_has(&m, "id"))
        errorf(v, node, "step %zu has no 'id'", idx + 1);
    const char *sid = s->id ? s->id : "?";
    if (approval_node) {
        if (kind_node)
            errorf(v, kind_node, "step '%s' has both 'kind' and 'approval': a step is a job or a gate",
                   sid);
        if (args_node || queue_node || s->max_attempts || s->timeout_ms)
            errorf(v, approval_node, "approval step '%s' takes no args, queue, retry or timeout "
                   "(the gate's deadline is approval.timeout)", sid);
        s->gate = read_approval(v, approval_node, sid);
        s->kind = NULL;
    } else if (kind_node == NULL) {
        errorf(v, node, "step '%s' has no 'kind' (or 'approval')", sid);
    } else if (s->kind && (args_node == NULL || sl_ynode_kind(args_node) == SL_YMAP)) {
        check_kind_args(v, sl_registry_find(s->kind), args_node, args_node ? args_node : node, sid);
    }
    if (s->queue == NULL && s->kind)
        s->queue = s->kind;
}

/* ---- pass 2: needs and cycles -------------------------------------------- */

static void resolve_needs(vctx *v)
{
    sl_pipeline *p = v->p;
    for (size_t i = 0; i < p->nsteps; i++) {
        const sl_ynode **nodes = v->need_nodes[i];
        size_t n = 0;
        while (nodes && nodes[n])
            n++;
        p->steps[i].needs = sl_xcalloc(n + 1, sizeof(size_t));
        for (size_t j = 0; j < n; j++) {
            const char *name = sl_ynode_text(nodes[j]);
            int k = sl_pipeline_step(p, name);
            if (k < 0) {
                errorf(v, nodes[j], "step '%s' needs unknown step '%.60s'",
                       p->steps[i].id ? p->steps[i].id : "?", name);
                continue;
            }
            if ((size_t)k == i) {
                errorf(v, nodes[j], "cycle: %s -> %s", name, name);
                continue;
            }
            p->steps[i].needs[p->steps[i].nneeds] = (size_t)k;
            v->need_nodes[i][p->steps[i].nneeds++] = nodes[j];   /* keep nodes aligned */
        }
    }
}

/* Depth-first search; colour 0 new, 1 on the stack, 2 done. */
static bool find_cycle(vctx *v, size_t i, int *colour, size_t *stack, size_t depth)
{
    sl_pipeline *p = v->p;
    colour[i] = 1;
    stack[depth] = i;
    for (size_t j = 0; j < p->steps[i].nneeds; j++) {
        size_t k = p->steps[i].needs[j];
        if (colour[k] == 1) {
            sl_buf path = SL_BUF_INIT;
            size_t start = 0;
            while (stack[start] != k)
                start++;
            for (size_t d = start; d <= depth; d++)
                sl_buf_printf(&path, "%s -> ", p->steps[stack[d]].id);
            sl_buf_puts(&path, p->steps[k].id);
            errorf(v, v->need_nodes[i][j], "cycle in needs: %s", sl_buf_str(&path));
            sl_buf_free(&path);
            return true;
        }
        if (colour[k] == 0 && find_cycle(v, k, colour, stack, depth + 1))
            return true;
    }
    colour[i] = 2;
    return false;
}

/* ---- pass 3: template references ----------------------------------------- */

typedef struct refctx {
    vctx *v;
    size_t step;          /* the step whose text is checked; SIZE_MAX for the pipeline level */
    const sl_ynode *node; /* where errors point */
    bool *upstream;       /* steps the step transitively needs */
} refctx;

static void mark_upstream(const sl_pipeline *p, size_t i, bool *up, int guard)
{
    if (guard > 1000)
        return;
    for (size_t j = 0; j < p->steps[i].nneeds; j++) {
        size_t k = p->steps[i].needs[j];
        if (!up[k]) {
            up[k] = true;
            mark_upstream(p, k, up, guard + 1);
        }
    }
}

static bool has_var(const sl_pipeline *p, const char *name)
{
    sl_ymap m;
    if (p->vars == NULL || sl_ydoc_map(p->doc, p->vars, "vars", &m, NULL) < 0)
        return false;
    return ymap_has(&m, name);
}

static int check_ref(void *arg, const sl_ref *ref, sl_err *err)
{
    refctx *rc = arg;
    const sl_pipeline *p = rc->v->p;
    const char *why = NULL;
    char buf[200];
    int k;
    switch (ref->kind) {
    case SL_REF_VAR:
        if (!has_var(p, ref->id))
            why = "no such variable in 'vars'";
        break;
    case SL_REF_RUN_ID:
    case SL_REF_RUN_TRIGGERED_BY:
        break;
    case SL_REF_STEP_OUTPUT:
    case SL_REF_STEP_STATUS:
    case SL_REF_GATE_INPUT:
        k = sl_pipeline_step(p, ref->id);
        if (rc->step == SIZE_MAX) {
            why = "only vars and run are known here";
        } else if (k < 0) {
            snprintf(buf, sizeof buf, "there is no step '%s'", ref->id);
            why = buf;
        } else if (!rc->upstream[k]) {
            snprintf(buf, sizeof buf, "step '%s' does not need '%s'", p->steps[rc->step].id, ref->id);
            why = buf;
        } else if (ref->kind == SL_REF_GATE_INPUT) {
            const sl_pgate *g = p->steps[k].gate;
            bool found = false;
            for (size_t i = 0; g && i < g->ninputs; i++)
                found = found || strcmp(g->inputs[i].name, ref->key) == 0;
            if (g == NULL) {
                snprintf(buf, sizeof buf, "step '%s' is not an approval gate", ref->id);
                why = buf;
            } else if (!found) {
                snprintf(buf, sizeof buf, "gate '%s' declares no input '%s'", ref->id, ref->key);
                why = buf;
            }
        } else if (ref->kind == SL_REF_STEP_OUTPUT && p->steps[k].gate) {
            snprintf(buf, sizeof buf, "'%s' is a gate: use gate.%s.inputs.NAME", ref->id, ref->id);
            why = buf;
        }
        break;
    }
    if (why)
        return sl_err_set(err, SL_EINVAL, "unknown template reference '${{ %s }}': %s", ref->text, why);
    return 0;
}

static void check_text(refctx *rc, const sl_ynode *node, const char *text, bool is_expr)
{
    sl_err e;
    int r = is_expr ? sl_expr_check(text, check_ref, rc, &e) : sl_tmpl_refs(text, check_ref, rc, &e);
    if (r < 0)
        errorf(rc->v, node, "%s", e.msg);
}

static void check_node(refctx *rc, const sl_ynode *node, int depth)
{
    sl_pipeline *p = rc->v->p;
    if (node == NULL || depth > 64)
        return;
    switch (sl_ynode_kind(node)) {
    case SL_YSCALAR:
        check_text(rc, node, sl_ynode_text(node), false);
        break;
    case SL_YMAP: {
        sl_ymap m;
        if (sl_ydoc_map(p->doc, node, NULL, &m, NULL) == 0) {
            for (size_t i = 0; i < m.n; i++)
                check_node(rc, m.pairs[i].value, depth + 1);
        }
        break;
    }
    case SL_YSEQ: {
        sl_yseq s;
        if (sl_ydoc_seq(p->doc, node, NULL, &s, NULL) == 0) {
            for (size_t i = 0; i < s.n; i++)
                check_node(rc, s.items[i], depth + 1);
        }
        break;
    }
    case SL_YNULL:
        break;
    }
}

static const sl_ynode *field_node(sl_pipeline *p, const sl_ynode *map, const char *key)
{
    sl_ymap m;
    if (map == NULL || sl_ydoc_map(p->doc, map, NULL, &m, NULL) < 0)
        return NULL;
    for (size_t i = 0; i < m.n; i++) {
        if (strcmp(m.pairs[i].name, key) == 0)
            return m.pairs[i].value;
    }
    return NULL;
}

static void check_refs(vctx *v, const sl_ynode *root)
{
    sl_pipeline *p = v->p;
    bool *up = sl_xcalloc(p->nsteps + 1, sizeof *up);
    refctx top = { v, SIZE_MAX, NULL, up };
    if (p->concurrency)
        check_text(&top, field_node(p, root, "concurrency"), p->concurrency, false);
    for (size_t i = 0; i < p->nsteps; i++) {
        memset(up, 0, p->nsteps * sizeof *up);
        mark_upstream(p, i, up, 0);
        refctx rc = { v, i, NULL, up };
        check_node(&rc, p->steps[i].args, 0);
        if (p->steps[i].gate && p->steps[i].gate->instructions) {
            const sl_ynode *an = field_node(p, v->step_nodes[i], "approval");
            check_text(&rc, field_node(p, an, "instructions"), p->steps[i].gate->instructions, false);
        }
        if (p->steps[i].if_expr) {
            const sl_ynode *n = field_node(p, v->step_nodes[i], "if");
            check_text(&rc, n, p->steps[i].if_expr, true);
        }
    }
    free(up);
}

/* ---- the whole file ------------------------------------------------------- */

sl_pipeline *sl_pipeline_parse(const char *name, const char *text, size_t len,
                               const sl_sched_config *groups, sl_yerrors *errors)
{
    sl_err e;
    sl_ydoc *doc = sl_ydoc_load_string(name, text, len, &e);
    if (doc == NULL) {
        sl_yerrors_add(errors, &e);
        return NULL;
    }
    sl_pipeline *p = sl_xcalloc(1, sizeof *p);
    p->doc = doc;
    p->source = sl_xstrndup(text, len);
    p->source_len = len;
    vctx v = { p, errors, 0, groups, NULL, NULL };
    const sl_ynode *root = sl_ydoc_root(doc);
    sl_ymap top;
    const sl_ynode *steps_node = NULL;
    if (root == NULL || sl_ynode_kind(root) != SL_YMAP) {
        sl_ydoc_errorf(doc, root, &e, "a pipeline must be a mapping with 'name' and 'steps'");
        add(&v, &e);
        goto done;
    }
    if (sl_ydoc_map(doc, root, NULL, &top, &e) < 0) {
        add(&v, &e);
        goto done;
    }
    for (size_t i = 0; i < top.n; i++) {
        const char *key = top.pairs[i].name;
        const sl_ynode *val = top.pairs[i].value;
        if (strcmp(key, "name") == 0) {
            p->name = str_field(&v, val, "name");
            if (p->name && !valid_id(p->name)) {
                errorf(&v, val, "pipeline name '%.60s' must be 1-64 of A-Z a-z 0-9 _ -", p->name);
                p->name = NULL;
            }
        } else if (strcmp(key, "vars") == 0) {
            sl_ymap vm;
            if (sl_ydoc_map(doc, val, "vars", &vm, &e) < 0) {
                add(&v, &e);
                continue;
            }
            for (size_t j = 0; j < vm.n; j++) {
                if (sl_ynode_kind(vm.pairs[j].value) == SL_YMAP || sl_ynode_kind(vm.pairs[j].value) == SL_YSEQ)
                    errorf(&v, vm.pairs[j].value, "variable '%.60s' must be a scalar", vm.pairs[j].name);
                else
                    (void)check_value(&v, vm.pairs[j].value, 1);   /* it must become JSON */
            }
            p->vars = val;
        } else if (strcmp(key, "schedule") == 0) {
            p->schedule = str_field(&v, val, "schedule");
            if (p->schedule && sl_cron_parse(p->schedule, &p->cron, &e) < 0)
                errorf(&v, val, "bad cron expression '%.60s': %s", p->schedule, e.msg);
        } else if (strcmp(key, "concurrency") == 0) {
            p->concurrency = str_field(&v, val, "concurrency");
        } else if (strcmp(key, "concurrency_release_at_gates") == 0) {
            if (sl_ydoc_bool(doc, val, "concurrency_release_at_gates", &p->release_at_gates, &e) < 0)
                add(&v, &e);
        } else if (strcmp(key, "steps") == 0) {
            steps_node = val;
        } else if (strcmp(key, "notify") == 0) {
            p->notify = read_notify(&v, val, "notify", &p->nnotify);
        } else if (strncmp(key, "x-", 2) == 0) {
            /* an extension key (Compose's convention): holds anchors, ignored */
        } else {
            errorf(&v, top.pairs[i].key, "unknown key '%.60s' at the top of a pipeline (expected "
                   "name, vars, schedule, concurrency, concurrency_release_at_gates, notify, steps, or x-NAME)",
                   key);
        }
    }
    if (!ymap_has(&top, "name"))
        errorf(&v, root, "pipeline has no 'name'");
    sl_yseq steps;
    if (steps_node == NULL) {
        errorf(&v, root, "pipeline has no 'steps'");
        goto done;
    }
    if (sl_ydoc_seq(doc, steps_node, "steps", &steps, &e) < 0) {
        add(&v, &e);
        goto done;
    }
    if (steps.n == 0) {
        errorf(&v, steps_node, "'steps' must list at least one step");
        goto done;
    }
    p->steps = sl_xcalloc(steps.n, sizeof *p->steps);
    p->nsteps = steps.n;
    v.step_nodes = sl_xcalloc(steps.n, sizeof *v.step_nodes);
    v.need_nodes = sl_xcalloc(steps.n, sizeof *v.need_nodes);
    for (size_t i = 0; i < steps.n; i++)
        read_step(&v, i, steps.items[i]);
    resolve_needs(&v);
    int *colour = sl_xcalloc(p->nsteps, sizeof *colour);
    size_t *stack = sl_xcalloc(p->nsteps, sizeof *stack);
    bool cyclic = false;
    for (size_t i = 0; i < p->nsteps && !cyclic; i++) {
        if (colour[i] == 0)
            cyclic = find_cycle(&v, i, colour, stack, 0);
    }
    free(colour);
    free(stack);
    if (!cyclic)
        check_refs(&v, root);

done:
    if (v.need_nodes) {
        for (size_t i = 0; i < p->nsteps; i++)
            free(v.need_nodes[i]);
    }
    free(v.need_nodes);
    free(v.step_nodes);
    if (v.nerrors > 0) {
        sl_pipeline_free(p);
        return NULL;
    }
    return p;
}

sl_pipeline *sl_pipeline_load(const char *path, const sl_sched_config *groups, sl_yerrors *errors)
{
    FILE *f = fopen(path, "rb");
    sl_err e;
    if (f == NULL) {
        sl_err_set(&e, SL_EIO, "open %s: %s", path, strerror(errno));
        sl_yerrors_add(errors, &e);
        return NULL;
    }
    sl_buf b = SL_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        sl_buf_append(&b, chunk, n);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        sl_err_set(&e, SL_EIO, "read %s: %s", path, strerror(errno));
        sl_yerrors_add(errors, &e);
        sl_buf_free(&b);
        return NULL;
    }
    sl_pipeline *p = sl_pipeline_parse(path, sl_buf_str(&b), b.len, groups, errors);
    sl_buf_free(&b);
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int sl_pipelines_load_dir(const char *dir, const sl_sched_config *groups, sl_pipeline ***out,
                          size_t *nout, sl_yerrors *errors, sl_err *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return sl_err_set(err, SL_EIO, "opendir %s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t nnames = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.')
            continue;
        if ((l > 5 && strcmp(de->d_name + l - 5, ".yaml") == 0) ||
            (l > 4 && strcmp(de->d_name + l - 4, ".yml") == 0)) {
            names = sl_xrealloc(names, (nnames + 1) * sizeof *names);
            names[nnames++] = sl_xasprintf("%s/%s", dir, de->d_name);
        }
    }
    closedir(d);
    if (nnames > 1)   /* qsort(NULL, 0, ...) is undefined */
        qsort(names, nnames, sizeof *names, cmp_str);
    sl_pipeline **list = sl_xcalloc(nnames + 1, sizeof *list);
    size_t n = 0;
    for (size_t i = 0; i < nnames; i++) {
        sl_pipeline *p = sl_pipeline_load(names[i], groups, errors);
        if (p && sl_ydoc_root(p->doc)) {
            for (size_t j = 0; j < n; j++) {
                if (strcmp(list[j]->name, p->name) == 0) {
                    sl_err e;
                    sl_ydoc_errorf(p->doc, sl_ydoc_root(p->doc), &e,
                                   "pipeline name '%s' is already used by %s", p->name,
                                   sl_ydoc_name(list[j]->doc));
                    sl_yerrors_add(errors, &e);
                    sl_pipeline_free(p);
                    p = NULL;
                    break;
                }
            }
        }
        if (p)
            list[n++] = p;
        free(names[i]);
    }
    free(names);
    *out = list;
    *nout = n;
    return 0;
}

void sl_pipelines_free(sl_pipeline **list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        sl_pipeline_free(list[i]);
    free(list);
}

/* ---- values ---------------------------------------------------------------- */

int sl_pipeline_node_json(const sl_pipeline *p, const sl_ynode *node, sl_ref_resolve_fn resolve,
                          void *arg, const char *path, sl_buf *out, sl_err *err)
{
    if (node == NULL) {
        sl_buf_puts(out, "null");
        return 0;
    }
    switch (sl_ynode_kind(node)) {
    case SL_YNULL:
        sl_buf_puts(out, "null");
        return 0;
    case SL_YSCALAR: {
        /* one typing rule for every YAML reader: yamldoc.h, sl_ynode_type */
        const char *t = sl_ynode_text(node);
        char num[SL_NUMFMT_MAX];
        int64_t iv;
        double dv;
        bool bv;
        switch (sl_ynode_type(node)) {
        case SL_YT_BOOL:
            sl_yscalar_bool(t, &bv);
            sl_buf_puts(out, bv ? "true" : "false");
            return 0;
        case SL_YT_INT:
            if (!sl_yscalar_int(t, &iv))
                return sl_err_set(err, SL_EINVAL, "%s: integer '%.40s' does not fit 64 bits", path, t);
            sl_buf_printf(out, "%" PRId64, iv);
            return 0;
        case SL_YT_FLOAT:
            if (!sl_yscalar_float(t, &dv) || !isfinite(dv))
                return sl_err_set(err, SL_EINVAL, "%s: '%.40s' is not a finite number", path, t);
            sl_buf_puts(out, sl_fmt_double(dv, num));
            return 0;
        default:
            break;
        }
        if (resolve && sl_tmpl_has_refs(t)) {
            if (sl_tmpl_render(t, resolve, arg, out, err) < 0)
                return sl_err_wrap(err, "%s", path);
        } else {
            sl_json_put_string(out, t, strlen(t));
        }
        return 0;
    }
    case SL_YMAP: {
        sl_ymap m;
        if (sl_ydoc_map(p->doc, node, NULL, &m, err) < 0)
            return -1;
        sl_buf_putc(out, '{');
        for (size_t i = 0; i < m.n; i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.%s", path, m.pairs[i].name);
            if (i)
                sl_buf_putc(out, ',');
            sl_json_put_string(out, m.pairs[i].name, strlen(m.pairs[i].name));
            sl_buf_putc(out, ':');
            if (sl_pipeline_node_json(p, m.pairs[i].value, resolve, arg, sub, out, err) < 0)
                return -1;
        }
        sl_buf_putc(out, '}');
        return 0;
    }
    case SL_YSEQ: {
        sl_yseq s;
        if (sl_ydoc_seq(p->doc, node, NULL, &s, err) < 0)
            return -1;
        sl_buf_putc(out, '[');
        for (size_t i = 0; i < s.n; i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            if (i)
                sl_buf_putc(out, ',');
            if (sl_pipeline_node_json(p, s.items[i], resolve, arg, sub, out, err) < 0)
                return -1;
        }
        sl_buf_putc(out, ']');
        return 0;
    }
    }
    return sl_err_set(err, SL_EINVAL, "%s: unexpected YAML node", path);
}

const char *sl_pipeline_group_name(const char *approver)
{
    static const char prefix[] = SL_GROUP_PREFIX;
    return strncmp(approver, prefix, sizeof prefix - 1) == 0 ? approver + sizeof prefix - 1 : NULL;
}

char **sl_pipeline_gate_users(const sl_pgate *g, const sl_sched_config *groups, size_t *n)
{
    size_t cap = 8, cnt = 0;
    char **users = sl_xcalloc(cap + 1, sizeof *users);
    for (size_t i = 0; i < g->napprovers; i++) {
        const char *gname = sl_pipeline_group_name(g->approvers[i]);
        const sl_group *grp = gname && groups ? sl_sched_config_group(groups, gname) : NULL;
        if (gname && grp == NULL)
            continue;   /* validation refuses it; a group removed since counts as nobody */
        size_t m = grp ? grp->nusers : 1;
        for (size_t j = 0; j < m; j++) {
            const char *u = grp ? grp->users[j] : g->approvers[i];
            bool dup = false;
            for (size_t k = 0; k < cnt && !dup; k++)
                dup = strcmp(users[k], u) == 0;
            if (dup)
                continue;
            if (cnt == cap) {
                cap *= 2;
                users = sl_xrealloc(users, (cap + 1) * sizeof *users);
            }
            users[cnt++] = sl_xstrdup(u);
            users[cnt] = NULL;
        }
    }
    *n = cnt;
    return users;
}

void sl_pipeline_users_free(char **users)
{
    for (size_t i = 0; users && users[i]; i++)
        free(users[i]);
    free(users);
}
