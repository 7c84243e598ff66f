/* notify.h: gate events turned into notification jobs (docs/notifications.md).
 *
 * The leading scheduler emits one job of kind `notify` on the queue
 * notify.queue per (event, channel) of every gate that records channels
 * (sluice_gates.notify, fixed when it opened).  Events: `opened`,
 * `reminder` (notify.remind_before ahead of the deadline), `decided`
 * (approved or rejected, by the API's decision transaction) and
 * `timed_out`.  Events are found by comparing the gates' state with the
 * book of what was emitted (sluice_notifications, migration 013), not
 * from whatever code path changed a gate: a decision made by the API
 * server while no scheduler leads is found by the next leader, and an
 * event is never lost to a crash.
 *
 * Why not emit "decided" from the decision transaction itself: that
 * function runs as the API server's role for the API server's principal,
 * and a notification job must carry the scheduler's signature (the worker
 * runs `notify` only when signed, worker/protect.h); the API server holds
 * no signing key and must not.  The scheduler already wakes on the
 * decision's NOTIFY, so the event goes out within the same pass.
 *
 * Exactly once per (run, gate, event, channel):
 *   1. in one transaction, the row is inserted (primary key: the tuple)
 *      with the job id and args; a second leader's or a restarted
 *      leader's attempt conflicts and emits nothing;
 *   2. after the commit the job is XADDed, then the row marked enqueued;
 *   3. rows found not enqueued (the scheduler died between 1 and 2) are
 *      sent again with the same job id: if the first XADD had happened,
 *      the worker's one-run-per-id claim makes the copy a no-op.
 * The job id is a function of the tuple and the scheduler's key
 * ("notify." + 40 hex digits of SHA-256 over the Ed25519 signature of the
 * tuple, which is deterministic): the same for every re-emission, and
 * unguessable to a producer who would pre-record a result under it.
 *
 * Without scheduler.signing_key_file nothing is emitted (a worker would
 * refuse every unsigned notify job); the leader logs that once. */
#ifndef SL_SCHED_NOTIFY_H
#define SL_SCHED_NOTIFY_H

#include <stdbool.h>

#include "config.h"
#include "db.h"
#include "err.h"
#include "redis.h"
#include "sign.h"

/* Test builds only (SLUICE_TEST_KINDS=1): the scheduler SIGKILLs itself
 * when this variable says "before_xadd" (the row committed, nothing sent)
 * or "after_xadd" (sent, not yet marked), to prove a restart neither
 * loses nor repeats the event. */
#define SL_NOTIFY_CRASH_ENV "SLUICE_TEST_NOTIFY_CRASH"

/* One pass: sends again what was recorded but not known enqueued, then
 * emits every event not emitted yet.  full: also look at gates decided
 * long ago (a new leader's first pass and the periodic reconcile); else
 * only open gates and those decided in the last hour.  signer (borrowed)
 * signs the jobs; NULL: nothing is emitted.  Returns -1 with err on a
 * database or Redis failure (what was recorded is sent by a later pass). */
int sl_notify_pass(sl_db *db, sl_redis *redis, const sl_config *cfg, const sl_sign_key *signer,
                   bool full, sl_err *err);

/* Writes the job id of (run, gate, event, channel) under key into out
 * ("notify." + 40 hex digits + NUL).  Returns -1 with err if signing
 * fails. */
#define SL_NOTIFY_ID_LEN 48
int sl_notify_job_id(const sl_sign_key *key, const char *run, const char *gate, const char *event,
                     const char *channel, char out[SL_NOTIFY_ID_LEN], sl_err *err);

#endif
