/* gate.h: approval gates — decisions and timeouts.
 *
 * A gate is opened by the engine when its needs have succeeded
 * (sluice_gates row, status open; the step is `waiting`).  Each decision is
 * one transaction inside a SECURITY DEFINER function of migration 006
 * (sluice_gate_decide): it locks the gate row (SELECT … FOR UPDATE), so two
 * approvers deciding at the same instant are counted one after the other:
 * neither can push the count past `required` twice or release the gate
 * twice.  The decision, or the refusal and its reason, is appended to the
 * audit chain in the same transaction, with the principal, its
 * authentication method and address, and signed with the connection's
 * audit key (scheduler/audit.h) before the commit.
 *
 * Only the database role sluice_api may execute sluice_gate_decide: the
 * function trusts its caller for who the principal is, and the API server
 * is what authenticates principals.  The scheduler's role may only time
 * gates out; sluice_breakglass may only make break-glass decisions.  No
 * runtime role can update sluice_gates or append to sluice_audit directly.
 *
 * Refusals: a user not among the gate's approvers (groups expanded when it
 * opened), self-approval (the run's trigger) when not allowed, a second
 * decision by the same user, a gate that is not open (passed, rejected,
 * timed out, cancelled, or not reached), an unknown input or a value of the
 * wrong type, and an approval that would release the gate while an input
 * without a default has no value.  One rejection rejects the gate and fails
 * the step (and so the run); reaching `required` approvals marks the step
 * succeeded with the gate's inputs as its outputs.  Either wakes the
 * scheduler (NOTIFY sluice_gates). */
#ifndef SL_GATE_H
#define SL_GATE_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"
#include "err.h"

/* Who makes a decision: an authenticated principal, never a typed name.
 * The API server fills it from the credential it verified; the scheduler
 * uses { "sluice-scheduler", "scheduler", NULL } for timeouts.  All fields
 * are borrowed for the duration of the call.  name, method and address are
 * recorded in the audit row; groups are not consulted (a gate's approvers
 * are expanded from the configuration's groups when it opens). */
typedef struct sl_principal {
    const char *name;          /* user name: token owner or the JWT's user claim */
    const char *method;        /* how it was proven: "token:ID", "jwt:ISSUER#SUBJECT", ... */
    const char *address;       /* client address, or NULL when not over the network */
    const char *const *groups; /* groups the credential proves (JWT groups claim), or NULL */
    size_t ngroups;
} sl_principal;

typedef struct sl_gate_result {
    bool refused;        /* the decision was not accepted (and was audited as refused) */
    bool closed;         /* this decision approved or rejected the gate */
    int approvals;       /* approvals counted after this decision */
    int required;
    char message[512];   /* the reason of a refusal, or what happened */
} sl_gate_result;

/* Records who's decision at gate (run_id, gate_id).  inputs[0..ninputs)
 * are "NAME=VALUE" (approvals only).  Returns 0 with *res filled whether
 * accepted or refused; -1 with err when the database failed, the
 * connection's role may not decide (only sluice_api may), or signing
 * failed (then nothing was recorded). */
int sl_gate_decide(sl_db *db, const char *run_id, const char *gate_id, const sl_principal *who,
                   bool approve, const char *comment, char *const *inputs, size_t ninputs,
                   sl_gate_result *res, sl_err *err);

/* Break-glass: a decision by the database login itself (session_user,
 * which must be a member of sluice_breakglass), audited with method
 * "break-glass".  Skips the approver and self-approval checks; an approval
 * releases the gate at once.  comment is mandatory.  Returns like
 * sl_gate_decide. */
int sl_gate_breakglass(sl_db *db, const char *run_id, const char *gate_id, bool approve,
                       const char *comment, char *const *inputs, size_t ninputs,
                       sl_gate_result *res, sl_err *err);

/* Closes every open gate past its deadline as its on_timeout says
 * (audited as timeout-approve / timeout-reject by "sluice-scheduler",
 * method "scheduler", signed with the connection's audit key).
 * *closed (may be NULL) gets how many were closed. */
int sl_gate_expire(sl_db *db, int *closed, sl_err *err);

#endif
