/* pipeline.h: a pipeline definition (a YAML file in pipelines/), parsed and
 * validated.
 *
 * Parsing reports every error it finds, each as "FILE:LINE:COL: message"
 * (unknown key, wrong type, missing id/kind, duplicate step id, unknown
 * kind, unknown need, a cycle printed as its path, bad duration, bad cron,
 * unknown template reference, approval `required` above its approvers, an
 * undefined group among approvers, args that no envelope can carry), and
 * returns a pipeline only when there was none: a pipeline is never half
 * loaded.  Top-level keys named x-… are extensions, ignored (a place for
 * anchors several steps share).  docs/pipelines.md is the user's description of the syntax.
 *
 * A parsed pipeline keeps its YAML document: strings and nodes below point
 * into it and live until sl_pipeline_free. */
#ifndef SL_PIPELINE_H
#define SL_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config_sched.h"
#include "cron.h"
#include "err.h"
#include "expr.h"
#include "yamldoc.h"

#define SL_STEP_ID_MAX 64

typedef struct sl_pinput {
    const char *name;
    const char *type;          /* "string", "int" or "bool" */
    const sl_ynode *dflt;      /* NULL: the approver must supply it */
} sl_pinput;

typedef struct sl_pgate {
    const char **approvers;    /* as written: user names or group:NAME; owned array */
    size_t napprovers;
    int required;              /* default 1 */
    int64_t timeout_ms;        /* 0: no deadline */
    bool on_timeout_approve;   /* on_timeout: approve (default reject) */
    bool allow_self;           /* allow_self_approval, default false */
    sl_pinput *inputs;         /* owned array */
    size_t ninputs;
    const char *instructions;  /* NULL if none */
    const char **notify;       /* approval.notify: channels of this gate's events, owned array
                                  (names borrowed); NULL: the pipeline's */
    size_t nnotify;
} sl_pgate;

typedef struct sl_pstep {
    const char *id;
    const char *kind;          /* NULL for an approval gate */
    const char *queue;         /* the queue to enqueue into (default: the kind's name) */
    const sl_ynode *args;      /* mapping node, or NULL for none */
    size_t *needs;             /* owned: indexes into the pipeline's steps */
    size_t nneeds;
    const char *if_expr;       /* NULL if none */
    int max_attempts;          /* retry.max_attempts, 0 = the worker's default */
    const char *backoff;       /* retry.backoff, NULL = the worker's */
    int64_t retry_initial_ms, retry_max_ms;   /* 0 = the worker's */
    int64_t timeout_ms;        /* 0 = the worker's default */
    sl_pgate *gate;            /* owned; NULL for a job step */
} sl_pstep;

typedef struct sl_pipeline {
    sl_ydoc *doc;              /* owned */
    const char *name;
    const sl_ynode *vars;      /* mapping node or NULL */
    const char *schedule;      /* NULL if none */
    sl_cron cron;
    const char *concurrency;   /* template, NULL if none */
    bool release_at_gates;     /* concurrency_release_at_gates */
    sl_pstep *steps;           /* owned array */
    size_t nsteps;
    char *source;              /* owned: the YAML text */
    size_t source_len;
    const char **notify;       /* notify: channels of its gates' events, owned array (names
                                  borrowed); NULL: notify.default of the configuration */
    size_t nnotify;
} sl_pipeline;

/* Parses text (name stands for the file in messages).  groups may be NULL
 * (then every approver counts as one user).  Every error is appended to
 * errors; returns the pipeline only if there were none (free with
 * sl_pipeline_free). */
sl_pipeline *sl_pipeline_parse(const char *name, const char *text, size_t len,
                               const sl_sched_config *groups, sl_yerrors *errors);

/* Reads and parses the file at path. */
sl_pipeline *sl_pipeline_load(const char *path, const sl_sched_config *groups, sl_yerrors *errors);

void sl_pipeline_free(sl_pipeline *p);   /* p may be NULL */

/* Loads every *.yaml / *.yml file of dir (sorted by name).  The good
 * pipelines go to *out (an owned array of owned pipelines, *n of them; free
 * with sl_pipelines_free); a file with errors is left out and its errors are
 * appended to errors, as is a second pipeline with the same name.  Returns
 * -1 with err only if dir cannot be read. */
int sl_pipelines_load_dir(const char *dir, const sl_sched_config *groups, sl_pipeline ***out,
                          size_t *n, sl_yerrors *errors, sl_err *err);
void sl_pipelines_free(sl_pipeline **list, size_t n);

/* Index of step id, or -1. */
int sl_pipeline_step(const sl_pipeline *p, const char *id);

/* Appends a YAML node as JSON: scalars typed as YAML's core schema reads
 * them (plain 12 is an int, "12" a string), string scalars rendered as
 * templates through resolve (which may be NULL for no templating).
 * Returns -1 with err if a template cannot be rendered (err names path). */
int sl_pipeline_node_json(const sl_pipeline *p, const sl_ynode *node, sl_ref_resolve_fn resolve,
                          void *arg, const char *path, sl_buf *out, sl_err *err);

/* An approver written "group:NAME" names a group of the configuration
 * (`groups:`); anything else is a user name.  Returns NAME for a group,
 * NULL for a user. */
#define SL_GROUP_PREFIX "group:"
const char *sl_pipeline_group_name(const char *approver);

/* The gate's approvers, groups expanded (through groups, may be NULL) and
 * duplicates removed: a NULL-terminated owned array of owned strings, *n
 * entries; free with sl_pipeline_users_free.  A group that groups does
 * not define (validation refuses one, but the configuration may change
 * after a run started) contributes nobody. */
char **sl_pipeline_gate_users(const sl_pgate *g, const sl_sched_config *groups, size_t *n);
void sl_pipeline_users_free(char **users);

/* The channels the events of gate g of pipeline p go to: the gate's
 * `notify:`, else the pipeline's, else the configuration's notify.default
 * (nc may be NULL: none).  Returns a borrowed array of *n names. */
const char *const *sl_pipeline_gate_channels(const sl_pipeline *p, const sl_pgate *g,
                                             const struct sl_notify_config *nc, size_t *n);

#endif
