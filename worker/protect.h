/* protect.h: protected jobs, checked by a worker before it runs anything.
 *
 * The operator marks kinds (worker.protected_kinds) and deploy targets
 * (deploy.targets.NAME.protected) as protected; the `notify` kind always
 * is (the worker signs its webhooks with the channel's secret, so a forged
 * job would make receivers trust a fake decision).  A job of a protected kind,
 * or a deploy whose args.target is a protected target, runs only if its
 * envelope carries the scheduler's Ed25519 signature (lib/jobsig.h) that
 * one of worker.scheduler_public_keys verifies.  The scheduler signs a job
 * only when it enqueues a pipeline step, which happens only after every
 * step the step needs (gates included) succeeded; a producer, `sluice
 * enqueue`, a raw XADD or a worker holds no private key and cannot mint a
 * signature.  What the signature covers, and why not the attempt number:
 * lib/jobsig.h.
 *
 * Attempts after the first are admitted only when the results store
 * already records the previous attempt of the same job
 * (sl_protect_admit_attempt): a signed envelope copied out of a stream
 * cannot be replayed with a made-up attempt number to run it again.
 *
 * Invariant: a refused job is not run and not recorded (a refused job's id
 * must not take a row that the real job would need); it goes to the dead
 * letter with the reason. */
#ifndef SL_PROTECT_H
#define SL_PROTECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "envelope.h"
#include "err.h"

typedef struct sl_protect sl_protect;

/* Reads what cfg (borrowed, must outlive the result) protects and loads the
 * public keys.  Returns NULL with err (SL_ECONFIG) if a key file cannot be
 * loaded, or if something is protected but no public key is configured.
 * Free with sl_protect_free. */
sl_protect *sl_protect_new(const sl_config *cfg, sl_err *err);
void sl_protect_free(sl_protect *p);

/* True if job is protected (a protected kind, or a deploy to a protected
 * target). */
bool sl_protect_required(const sl_protect *p, const sl_job *job);

/* True if job may run as far as its signature goes: it is not protected,
 * or it carries a valid scheduler signature.  Otherwise writes the reason
 * (one line, for the dead letter) into why. */
bool sl_protect_admit(const sl_protect *p, const sl_job *job, char *why, size_t whysz);

/* For a protected job whose attempt is > 1: true if the results store
 * records `recorded_attempts` (>= attempt - 1) earlier attempts of this same
 * job (has_row: the store has a row for its id).  Otherwise writes the
 * reason into why.  Unprotected jobs and first attempts always pass. */
bool sl_protect_admit_attempt(const sl_protect *p, const sl_job *job, bool has_row,
                              int64_t recorded_attempts, char *why, size_t whysz);

#endif
