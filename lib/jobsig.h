/* jobsig.h: the scheduler's signature over a job (envelope field `sig`).
 *
 * The signed message is the job's identity and content, each field
 * length-prefixed so that no two different jobs share a message:
 *
 *   "sluice-job-sig-v1", id, run, step, kind, queue, args
 *
 * each as a 4-byte big-endian length followed by its bytes (run and step
 * empty when absent; args the raw MessagePack bytes of the envelope's args
 * map, which every sluice path carries unchanged).  The attempt number,
 * max_attempts, timeouts, retry settings and enqueued_at are deliberately
 * not covered: the worker renumbers attempts when it retries and `sluice
 * dead retry` does when an operator sends a job back, and neither holds the
 * private key.  docs/wire-format.md says why that is safe (one result per
 * id; worker/protect.h checks retried attempts against recorded history).
 *
 * The scheduler signs with its private key; workers verify with the public
 * keys they are configured with (any one of them may match, for rotation). */
#ifndef SL_JOBSIG_H
#define SL_JOBSIG_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "envelope.h"
#include "err.h"
#include "sign.h"

/* Appends the message signed for job (above) to out. */
void sl_jobsig_message(const sl_job *job, sl_buf *out);

/* Signs job with key and stores the signature in job->sig (replacing any).
 * Returns 0, or -1 with err. */
int sl_jobsig_sign(const sl_sign_key *key, sl_job *job, sl_err *err);

/* True if job carries a signature that one of keys[0..nkeys) verifies. */
bool sl_jobsig_verify(sl_sign_key *const *keys, size_t nkeys, const sl_job *job);

#endif
