/* audit.h: the audit trail of gate decisions — row hashes, signatures,
 * verification, the signed head.
 *
 * Rows are appended only by the SECURITY DEFINER functions of migration
 * 006 (gate decisions, timeouts, break-glass), each in the deciding
 * transaction.  Each row's hash covers its fields and the previous row's
 * hash.  Version 1 rows (before 006) joined the fields with a separator;
 * version 2 rows length-prefix every field (netstring style: "LEN:bytes,"
 * or "~" for NULL), so no two different rows hash alike, and add the
 * principal's authentication method, client address and database role.
 *
 * A v2 row is signed before its transaction commits by whoever appended
 * it, with the key set on the connection (sl_db_set_audit_key): the API
 * server's key for decisions, the scheduler's for timeouts, a break-glass
 * key for break-glass decisions.  The signature (Ed25519, lib/sign.h) is
 * over "sluice-audit-v2 " followed by the row's hex hash, so it covers the
 * whole chain up to that row; the row records the signing key's id.
 *
 * Verification recomputes every hash here, in C, never with the
 * database's functions (whoever owns the database could replace them), and
 * checks each v2 row's signature against the public keys it is given: a
 * chain recomputed by the database owner hashes fine but its signatures
 * do not verify.
 *
 * Retention (retention.audit) removes the oldest rows, a prefix of the
 * chain, together with a checkpoint that the scheduler signs with its
 * audit key: the first row kept, and the hash and time of the last row
 * removed (migration 015).  Verification then starts from that checkpoint:
 * the oldest remaining row must chain to its hash and its signature must
 * verify, so rows removed any other way show as missing. */
#ifndef SL_AUDIT_H
#define SL_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"
#include "err.h"
#include "sha256.h"
#include "sign.h"

/* One row's hashed fields as text (NULL for SQL NULL); all borrowed. */
typedef struct sl_audit_row {
    int version;            /* 1 or 2 */
    const char *seq;        /* decimal */
    const char *at_us;      /* microseconds since the epoch, decimal */
    const char *run_id, *gate_id, *actor, *decision, *comment;
    const char *inputs;     /* jsonb as PostgreSQL prints it */
    const char *reason;
    const char *method, *address, *db_role;   /* v2 only */
    const char *prev_hash;
} sl_audit_row;

/* The row's hash in its version's format, as 64 hex digits. */
void sl_audit_row_hash(const sl_audit_row *row, char hex[SL_SHA256_HEX]);

/* Inside the transaction that appended row seq with hash: signs it with
 * the connection's audit key and stores the signature (sluice_audit_sign).
 * Does nothing when the connection has no key.  0, or -1 with err. */
int sl_audit_sign_row(sl_db *db, const char *seq, const char *hash, sl_err *err);

/* True if one row verifies on its own: its fields hash to hash and sighex
 * (hex) is key's signature of it.  For showing a row (the web pages);
 * sl_audit_verify checks the whole chain. */
bool sl_audit_row_verifies(const sl_audit_row *row, const char *hash, const char *sighex,
                           const sl_sign_key *key);

typedef struct sl_audit_report {
    bool ok;                /* every check passed */
    long long rows;         /* rows read */
    long long legacy;       /* version 1 rows (separator hash, unsigned) */
    long long legacy_anchored; /* of those, how many a signed row's chain covers */
    long long signed_ok;    /* v2 rows whose signature verified */
    long long unchecked;    /* v2 rows whose signature was not checked (no keys given) */
    long long bad_seq;      /* the first row that failed, when !ok */
    long long checkpoint_seq; /* > 0: rows before it were removed behind a checkpoint */
    long long checkpoint_last_at_us; /* when the last removed row was appended */
    bool checkpoint_verified; /* its signature verified (false: no keys given) */
    char why[256];          /* what failed, when !ok */
} sl_audit_report;

/* Checks the chain from its first row, or — when retention removed rows —
 * from the signed checkpoint that accounts for them: consecutive seqs, each hash recomputed, each row
 * chained to the one before, no v1 row after a v2 row, and — when nkeys >
 * 0 — every v2 row signed by one of keys[0..nkeys) with a valid signature.
 * Returns 0 with *rep filled (rep->ok says whether it verified); -1 with
 * err if the database failed. */
int sl_audit_verify(sl_db *db, sl_sign_key *const *keys, size_t nkeys, sl_audit_report *rep,
                    sl_err *err);

typedef struct sl_audit_head {
    long long seq;          /* 0: the trail is empty */
    char hash[SL_SHA256_HEX];
    char key_id[SL_SIGN_ID_HEX];   /* "" when the head row is not signed */
    char sig[2 * SL_SIGN_LEN + 1]; /* hex, "" when not signed */
} sl_audit_head;

/* Retention: removes up to batch of the oldest audit rows appended more
 * than keep_ms ago (a prefix of the chain, never the newest row), behind a
 * checkpoint signed with the connection's audit key, in one transaction.
 * *removed gets the number removed (0: nothing old enough).  -1 with err
 * when the connection has no audit key or the database refused. */
int sl_audit_cut(sl_db *db, long long keep_ms, int batch, long long *removed, sl_err *err);

/* The newest row: what to record outside the database.  0, or -1 with err. */
int sl_audit_head_get(sl_db *db, sl_audit_head *head, sl_err *err);

/* Whether one row's signature verifies. */
typedef enum sl_audit_sig {
    SL_AUDIT_SIG_OK,         /* its hash recomputes and one of the given keys signed it */
    SL_AUDIT_SIG_BAD,        /* its hash does not recompute, or the signature does not verify
                                by any of the given keys */
    SL_AUDIT_SIG_UNSIGNED,   /* a legacy row, or one appended without an audit key */
    SL_AUDIT_SIG_UNCHECKED,  /* signed, but no public key was given to check it */
} sl_audit_sig;

/* "yes", "no", "unsigned", "unchecked". */
const char *sl_audit_sig_name(sl_audit_sig v);

/* One row of a run's audit trail, for people: every decision, refusal and
 * timeout with who, how, from where and when.  Strings owned; NULL where
 * the row has none. */
typedef struct sl_audit_entry {
    long long seq;
    char *at;              /* ISO 8601 UTC, microseconds */
    char *gate;
    char *principal;       /* the actor: user name, or the scheduler for timeouts */
    char *decision;        /* approve, reject, timeout-approve, timeout-reject, refused */
    char *comment, *inputs, *reason;
    char *method, *address;   /* how the principal was authenticated, the client address */
    char *key_id;          /* the signing key's id, or NULL */
    sl_audit_sig sig;
} sl_audit_entry;

/* The audit rows of run run_id, oldest first, each with whether its
 * signature verifies against keys[0..nkeys) (the whole chain is `sl_audit_verify`'s
 * business).  Returns 0 with *out (free with sl_audit_entries_free) and *n,
 * or -1 with err. */
int sl_audit_run(sl_db *db, const char *run_id, sl_sign_key *const *keys, size_t nkeys,
                 sl_audit_entry **out, size_t *n, sl_err *err);
void sl_audit_entries_free(sl_audit_entry *e, size_t n);

#endif
