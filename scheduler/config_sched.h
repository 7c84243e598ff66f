/* config_sched.h: the scheduler's sections of etc/sluice.yaml.
 *
 *   scheduler:
 *     pipelines: pipelines     # directory of *.yaml pipeline files
 *     reconcile: 5s            # full pass over active runs at least this often
 *     standby_poll: 1s         # how often a standby scheduler tries to lead
 *     audit_key_file: FILE     # Ed25519 private key (PEM) signing gate timeouts
 *   groups:                    # approver groups, usable in `approvers:`
 *     release-managers: [alice, bob]
 *   retention:                 # what the leader removes (scheduler/retention.h)
 *     succeeded: 7d            # succeeded job results; 0: kept forever
 *     failed: 30d              # failed, dead and cancelled results
 *     runs: 90d                # finished runs, their steps and gates
 *     audit: 400d              # audit rows: 0 (forever), else at least 1h and
 *                              # at least runs (a kept run keeps its gates' rows)
 *     batch: 1000              # rows removed per statement
 *
 * The scheduler owns these three top-level sections: a program that runs or
 * checks pipelines registers them with the core loader
 * (sl_sched_config_register, before sl_config_load), which hands them to
 * this module; it reads them with the core's key-table reader (unknown
 * keys, types, ranges: FILE:LINE:COL).  sluice-worker, which reads the
 * same file, registers their names without a reader. */
#ifndef SL_CONFIG_SCHED_H
#define SL_CONFIG_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "yamldoc.h"

typedef struct sl_group {
    char *name;      /* owned */
    char **users;    /* owned, nusers names */
    size_t nusers;
} sl_group;

/* The `retention` section, applied by the scheduler's leader. */
typedef struct sl_retention_config {
    int64_t succeeded_ms; /* retention.succeeded, default 7d: succeeded job results kept; 0 forever */
    int64_t failed_ms;    /* retention.failed, default 30d: failed, dead, cancelled results */
    int64_t runs_ms;      /* retention.runs, default 90d: finished runs, their steps and gates */
    int64_t audit_ms;     /* retention.audit, default 400d: audit rows (0 forever; else at
                             least 1h and at least runs), removed behind a signed checkpoint */
    int batch;            /* retention.batch, default 1000: rows removed per statement */
} sl_retention_config;

typedef struct sl_sched_config {
    char *pipelines;      /* scheduler.pipelines, default "pipelines" */
    int reconcile_ms;     /* scheduler.reconcile, default 5s (100ms..1h) */
    int standby_poll_ms;  /* scheduler.standby_poll, default 1s (50ms..1m) */
    char *audit_key_file; /* scheduler.audit_key_file, owned; NULL: timeouts audited unsigned */
    char *signing_key_file; /* scheduler.signing_key_file: PEM Ed25519 private key that signs
                               the jobs it enqueues; NULL: jobs go unsigned */
    sl_group *groups;     /* groups: owned, ngroups entries */
    size_t ngroups;
    sl_retention_config retention; /* retention */
    const struct sl_notify_config *notify; /* borrowed: the notify section (config_jobs.h),
                                              whose channels pipelines may name; NULL: not
                                              checked */
} sl_sched_config;

/* Sets the defaults. */
void sl_sched_config_init(sl_sched_config *c);

/* Frees what c owns (c itself is not freed). */
void sl_sched_config_clear(sl_sched_config *c);

/* Reads top-level section `name` (node is its value) into c.  Returns -1
 * with err ("FILE:LINE:COL: …") on the first error. */
int sl_sched_config_read(sl_sched_config *c, sl_ydoc *doc, const char *name, const sl_ynode *node,
                         sl_err *err);

/* The group called name, or NULL. */
const sl_group *sl_sched_config_group(const sl_sched_config *c, const char *name);

/* Registers the scheduler's sections with the core loader (lib/config.h);
 * call before sl_config_load.  Idempotent. */
void sl_sched_config_register(void);

/* The scheduler's configuration of cfg (borrowed from cfg); cfg must have
 * been loaded after sl_sched_config_register. */
sl_sched_config *sl_sched_config_of(const sl_config *cfg);

#endif
