/* config_worker.h: the worker pool's sections of etc/sluice.yaml.
 *
 *   worker:
 *     processes: 2               # children of the master
 *     queues: [default]          # queues they read
 *     batch: 1000                # entries per XREADGROUP, at most
 *     block: 1s                  # XREADGROUP BLOCK
 *     shutdown_timeout: 30s      # SIGTERM: jobs finish within this, then KILL
 *     visibility_timeout: 30s    # pending this long with no live owner: reclaimed
 *     max_deliveries: 5          # more without a result: a poison pill, dead
 *     job_timeout: 30m           # jobs whose envelope gives no timeout_ms
 *     max_job_timeout: 24h       # cap of an envelope's timeout_ms
 *     timeout_grace: 5s          # added before the kill
 *     max_attempts: 1            # jobs whose envelope gives no max_attempts
 *     retry_initial: 1s          # first retry delay, doubled per attempt ...
 *     retry_max: 5m              # ... up to this
 *     max_payload: 1048576       # larger entries are dead-lettered undecoded
 *     protected_kinds: [deploy]  # run only with the scheduler's signature
 *     scheduler_public_keys: [/etc/sluice/scheduler.pub]
 *   queues:                      # settings of single queues
 *     deploys: {timeout: 1h, rate: 10/s, concurrency: 2}
 *
 * The pool owns these two top-level sections: sluice-worker (and `sluice`,
 * which checks the whole file) registers them with the core loader
 * (sl_worker_config_register, before sl_config_load); a program that reads
 * the same file but runs no workers (sluice-scheduler) registers the names
 * without a reader.  They are read with the core's key-table reader
 * (lib/config.h): unknown keys, types and ranges are errors at their
 * FILE:LINE:COL.
 *
 * The job kinds never read this section: a job's time budget reaches them
 * in its context (sl_job_ctx.timeout_ms, from sl_worker_job_timeout_ms),
 * filled in by the consumer that runs it. */
#ifndef SL_CONFIG_WORKER_H
#define SL_CONFIG_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "rate.h"

/* Fleet-wide limits of a queue (queues.NAME.rate, queues.NAME.concurrency;
 * lib/ratelimit.h). */
typedef struct sl_queue_limits {
    sl_rate rate;         /* count 0: no rate limit */
    int concurrency;      /* 0: no cap; else at most this many of its jobs run at once */
} sl_queue_limits;

/* queues.NAME: the settings of one queue. */
typedef struct sl_queue_settings {
    char *name;           /* owned */
    int64_t timeout_ms;   /* queues.NAME.timeout, 0: worker.job_timeout */
    sl_queue_limits limits;
} sl_queue_settings;

typedef struct sl_worker_config {
    int processes;        /* worker.processes, default 2, 1..1024 */
    char **queues;        /* worker.queues, default ["default"] (owned) */
    size_t nqueues;
    int batch;            /* worker.batch, default 1000, 1..1000: entries per XREADGROUP */
    int block_ms;         /* worker.block, default 1s: XREADGROUP BLOCK */
    int shutdown_timeout_ms; /* worker.shutdown_timeout, default 30s */
    int visibility_timeout_ms; /* worker.visibility_timeout, default 30s: an entry pending
                                  this long with no live owner is reclaimed */
    int max_deliveries;   /* worker.max_deliveries, default 5: more deliveries than this
                             without a result = poison pill, dead-lettered */
    int job_timeout_ms;   /* worker.job_timeout, default 30m: for jobs without timeout_ms */
    int max_job_timeout_ms; /* worker.max_job_timeout, default 24h, 1ms..7d: cap of an
                               envelope's timeout_ms */
    int timeout_grace_ms; /* worker.timeout_grace, default 5s: added before the kill */
    int max_attempts;     /* worker.max_attempts, default 1: for jobs without max_attempts */
    int retry_initial_ms; /* worker.retry_initial, default 1s: first retry delay */
    int retry_max_ms;     /* worker.retry_max, default 5m: cap of the doubling delay */
    int max_payload;      /* worker.max_payload bytes, default 1048576: larger entries
                             are dead-lettered undecoded */
    char **protected_kinds; /* worker.protected_kinds, default none: kinds whose jobs run
                               only with the scheduler's signature (worker/protect.h) (owned) */
    size_t nprotected_kinds;
    char **scheduler_public_keys; /* worker.scheduler_public_keys: PEM files of the
                                     scheduler's Ed25519 public keys, default none (owned) */
    size_t nscheduler_public_keys;
    sl_queue_settings *queue_settings; /* queues.NAME, in file order (owned) */
    size_t nqueue_settings;
} sl_worker_config;

/* Registers the worker and queues sections with the core loader
 * (lib/config.h); call before sl_config_load.  Idempotent. */
void sl_worker_config_register(void);

/* The pool's configuration of cfg (borrowed from cfg); cfg must have been
 * loaded after sl_worker_config_register. */
sl_worker_config *sl_worker_config_of(const sl_config *cfg);

/* Replaces worker.queues with queues[0..n) (copied): sluice-worker's
 * --queues. */
void sl_worker_config_set_queues(sl_worker_config *w, char *const *queues, size_t n);

/* The time limit of a job of queue whose envelope says timeout_ms (0:
 * none): the envelope's, capped at worker.max_job_timeout, else the
 * queue's `queues.NAME.timeout`, else worker.job_timeout.  Always between
 * 1 ms and 7 days. */
int64_t sl_worker_job_timeout_ms(const sl_worker_config *w, const char *queue, int64_t timeout_ms);

/* The limits of queue, or NULL when it has none. */
const sl_queue_limits *sl_worker_queue_limits(const sl_worker_config *w, const char *queue);

#endif
