/* engine.h: runs of pipelines, driven from PostgreSQL.
 *
 * PostgreSQL holds every run (sluice_runs), step (sluice_run_steps) and
 * gate (sluice_gates); the engine keeps no state of its own between calls,
 * so a scheduler killed at any instant is replaced by one that reads the
 * same rows and carries on.  docs/pipelines.md describes the semantics;
 * in short:
 *
 *   - a run is `queued` until its concurrency group is free, then
 *     `running`, then `succeeded`, `failed` or `cancelled`;
 *   - a step is `pending` until every step it needs has finished: if all
 *     succeeded (and its `if` holds) it is `queued` (a job) or `waiting` (a
 *     gate); if a need was skipped, or its `if` is false, it is `skipped`;
 *   - a step whose job fails (after the worker's retries) or whose gate is
 *     rejected is `failed`, which fails the run: every step not finished
 *     becomes `cancelled` (queued jobs get a cancellation request);
 *   - a run is requested by pipeline name; the leader accepts it by
 *     resolving the name against the pipelines it loaded itself
 *     (sl_engine_set_pipelines), copying that text and its SHA-256 into the
 *     run; nothing a client wrote is ever parsed, and a run whose text no
 *     longer matches its hash fails;
 *   - enqueueing is idempotent: the job id is RUN.STEP.1.RANDOM (the
 *     random part makes it unguessable), recorded with the step in one
 *     transaction together with what is enqueued (kind, queue, SHA-256 of
 *     the args), and `enqueued` is set after the XADD;
 *     a step found queued but not known to be enqueued (the scheduler died
 *     in between) is enqueued again only if neither its queue's stream nor
 *     sluice_jobs holds that job id;
 *   - a job is encoded as an envelope when it is built, inside the run's
 *     transaction: one the envelope refuses (args rendered too deep, say)
 *     fails its step with the reason, and so the run; only a Redis failure
 *     leaves a step queued for the next pass to enqueue;
 *   - a job enqueued to a queue that no live worker pool reads (the worker
 *     registry, lib/workerreg.h) is logged as step.queue_unserved.
 *
 *   - a step's result counts only if the recorded job (sluice_jobs) has the
 *     kind, queue and args the scheduler enqueued; otherwise the step fails;
 *   - with a signing key (sl_engine_set_signer) every step's envelope
 *     carries the scheduler's Ed25519 signature (lib/jobsig.h), which
 *     workers require for protected jobs (worker/protect.h).
 *
 * The engine is used only by the leading scheduler (advisory lock), except
 * sl_run_create and sl_run_cancel, which the CLI and the API call. */
#ifndef SL_ENGINE_H
#define SL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "err.h"
#include "pipeline.h"
#include "redis.h"
#include "sign.h"

#define SL_RUN_ID_MAX 40

/* Requests a run of the installed pipeline called `pipeline` and notifies
 * the scheduler: the run is `queued` with no source and no steps until the
 * leader accepts it (or fails it: no such pipeline installed, an undeclared
 * variable).  vars[0..nvars) are "NAME=VALUE" overrides of declared
 * variables (values are strings; the last of a name wins).  triggered_by
 * is the (authenticated) principal.  run_id receives the new run's id.
 * Returns -1 with err (SL_EINVAL for a malformed name or variable). */
int sl_run_create(sl_db *db, const char *pipeline, char *const *vars, size_t nvars,
                  const char *triggered_by, char run_id[SL_RUN_ID_MAX], sl_err *err);

/* Cancels a queued or running run: it becomes `cancelled`, its unfinished
 * steps too, open gates are closed and queued jobs get a cancellation
 * request.  Returns -1 with SL_ENOTFOUND for an unknown run, SL_EINVAL for
 * one that already ended. */
int sl_run_cancel(sl_db *db, const char *run_id, const char *by, sl_err *err);

typedef struct sl_engine sl_engine;

/* An engine over db and redis (both borrowed), reading approver groups
 * from cfg (borrowed).  Free with sl_engine_free. */
sl_engine *sl_engine_new(const sl_config *cfg, sl_db *db, sl_redis *redis);
void sl_engine_free(sl_engine *e);

/* The installed pipelines (borrowed; the caller keeps them alive and calls
 * this again after reloading) that requested runs are resolved against. */
void sl_engine_set_pipelines(sl_engine *e, sl_pipeline *const *pipelines, size_t n);

/* The key (borrowed) that signs every step's envelope; NULL: unsigned. */
void sl_engine_set_signer(sl_engine *e, const sl_sign_key *key);

/* Moves run_id forward as far as it can go now (see above). */
int sl_engine_advance(sl_engine *e, const char *run_id, sl_err *err);

/* Accepts requested runs (see sl_run_create), then starts queued runs
 * whose concurrency group is free. */
int sl_engine_start_queued(sl_engine *e, sl_err *err);

/* Starts queued runs and advances every running one: the pass a new leader
 * makes, and the periodic safety net for missed notifications. */
int sl_engine_reconcile(sl_engine *e, sl_err *err);

/* Closes open gates whose deadline has passed, as their on_timeout says. */
int sl_engine_expire_gates(sl_engine *e, sl_err *err);

/* Starts the due cron runs of pipelines[0..n) at time now_ms (injectable
 * for tests): at most one run per pipeline per call, for the latest fire
 * time <= now_ms not yet started; a pipeline seen for the first time
 * starts counting from now_ms.  *started (may be NULL) gets the count. */
int sl_engine_fire_cron(sl_engine *e, sl_pipeline *const *pipelines, size_t n, int64_t now_ms,
                        int *started, sl_err *err);

/* Moves due delayed (retrying) jobs of every known queue into their
 * streams. */
int sl_engine_promote(sl_engine *e, sl_err *err);

#endif
