/* kind.h: the interface between the worker and a job kind.
 *
 * A kind is one file in jobs/ that defines an sl_kind and one line in
 * registry.c that lists it.  The worker decodes the envelope, finds the kind
 * by name, and calls its run function with the decoded arguments; the
 * handler either succeeds, optionally writing a JSON object of outputs
 * (stored with the job row and usable by later pipeline steps), or fails
 * with an error that says which argument or which remote answer was wrong.
 *
 * Arguments are untrusted input from callers (docs/wire-format.md): a
 * handler validates every value it uses and never lets one name a program,
 * a path or a host that the operator's configuration did not allow. */
#ifndef SL_KIND_H
#define SL_KIND_H

#include <msgpack.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "envelope.h"
#include "err.h"

typedef struct sl_job_ctx {
    const sl_job *job;           /* the envelope being run */
    const msgpack_object *args;  /* job->args decoded: always a map */
    const sl_config *cfg;        /* the worker's configuration */
    int64_t timeout_ms;          /* the job's time budget, filled in by the worker: its envelope's
                                    timeout_ms (capped), else its queue's, else worker.job_timeout */
    sl_buf *outputs;             /* handler appends one JSON object, or leaves it empty for {} */
    const volatile sig_atomic_t *cancelled; /* becomes nonzero when the job is cancelled
                                               (`sluice cancel`): a long-running handler
                                               checks it and returns early */
} sl_job_ctx;

/* Runs the job.  Returns 0 on success, or -1 with err (code SL_EJOB for a
 * failure of the job itself, SL_EINVAL for bad arguments). */
typedef int (*sl_kind_run_fn)(sl_job_ctx *ctx, sl_err *err);

/* One argument a kind takes, as `sluice validate` checks a pipeline step
 * against it before anything runs (the handler still checks every value). */
typedef struct sl_kind_arg {
    const char *name;
    bool required;                 /* a step must pass it */
    const char *const *values;     /* NULL-terminated list of the values it may take; NULL: any */
} sl_kind_arg;

typedef struct sl_kind {
    const char *name;     /* the wire `kind`, [a-z0-9_.-] */
    const char *summary;  /* one line for `sluice kinds` and --help */
    sl_kind_run_fn run;
    const sl_kind_arg *args;  /* the arguments it reads, ended by { NULL }; NULL: not declared
                                 (nothing is checked) */
    bool open_args;           /* other arguments are accepted too (passed on as data) */
    /* The fleet-wide rate a job is subject to besides its queue's (its
     * deploy target's, its provisioning endpoint's): writes the limit's
     * name ("deploy.targets.prod") into name (n bytes) and its rate, and
     * returns true; false when the job is not limited, or its arguments
     * name nothing configured (the run then fails saying so).  The worker
     * takes a token before it runs the job, and when none is left puts the
     * job back, unrun and not failed, until the next token is due.  NULL:
     * never limited.  Must not block or change anything. */
    bool (*limit)(const sl_job_ctx *ctx, char *name, size_t n, sl_rate *rate);
} sl_kind;

#endif
