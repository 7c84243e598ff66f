/* audit.c: see audit.h.  The v2 hash input must stay byte for byte what
 * sluice_audit_hash_v2() in migration 006 builds; tests/test_audit.c
 * checks the two against each other on real rows. */
#include "audit.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define SIG_PREFIX "sluice-audit-v2 "
#define CHECKPOINT_PREFIX "sluice-audit-checkpoint-v1 "

/* What a checkpoint's signature covers: every field is decimal or hex, so
 * single spaces separate them unambiguously. */
static int checkpoint_message(char *out, size_t n, const char *cut_seq, const char *prev_hash,
                              const char *last_at_us)
{
    return snprintf(out, n, CHECKPOINT_PREFIX "%s %s %s", cut_seq, prev_hash, last_at_us);
}

/* v2: "~" for NULL, else "LEN:bytes,". */
static void field(sl_sha256_ctx *h, const char *v)
{
    if (v == NULL) {
        sl_sha256_update(h, "~", 1);
        return;
    }
    char len[24];
    int n = snprintf(len, sizeof len, "%zu:", strlen(v));
    sl_sha256_update(h, len, (size_t)n);
    sl_sha256_update(h, v, strlen(v));
    sl_sha256_update(h, ",", 1);
}

/* v1 (migration 003): fields joined by U+001F, optional ones as 'N' or 'S'||value. */
static void legacy(sl_sha256_ctx *h, const char *v, bool optional, bool first)
{
    if (!first)
        sl_sha256_update(h, "\x1f", 1);
    if (optional)
        sl_sha256_update(h, v == NULL ? "N" : "S", 1);
    if (v != NULL)
        sl_sha256_update(h, v, strlen(v));
}

void sl_audit_row_hash(const sl_audit_row *r, char hex[SL_SHA256_HEX])
{
    sl_sha256_ctx h;
    unsigned char d[SL_SHA256_LEN];
    sl_sha256_init(&h);
    if (r->version == 1) {
        const char *req[] = { r->prev_hash, r->seq, r->at_us, r->run_id, r->gate_id, r->actor,
                              r->decision };
        for (size_t i = 0; i < sizeof req / sizeof *req; i++)
            legacy(&h, req[i] ? req[i] : "", false, i == 0);
        legacy(&h, r->comment, true, false);
        legacy(&h, r->inputs, true, false);
        legacy(&h, r->reason, true, false);
    } else {
        const char *f[] = { r->seq, r->at_us, r->run_id, r->gate_id, r->actor, r->method,
                            r->address, r->db_role, r->decision, r->comment, r->inputs, r->reason,
                            r->prev_hash };
        sl_sha256_update(&h, "sluice-audit-v2\n", 16);
        for (size_t i = 0; i < sizeof f / sizeof *f; i++)
            field(&h, f[i]);
    }
    sl_sha256_final(&h, d);
    sl_sha256_hex(d, hex);
}

static void to_hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes exactly n bytes of lowercase hex; false if s is anything else. */
static bool from_hex(const char *s, unsigned char *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

int sl_audit_sign_row(sl_db *db, const char *seq, const char *hash, sl_err *err)
{
    const sl_sign_key *key = sl_db_audit_key(db);
    if (key == NULL)
        return 0;
    char msg[sizeof SIG_PREFIX + SL_SHA256_HEX], id[SL_SIGN_ID_HEX], hex[2 * SL_SIGN_LEN + 1];
    unsigned char sig[SL_SIGN_LEN];
    int n = snprintf(msg, sizeof msg, SIG_PREFIX "%s", hash);
    if (sl_sign(key, msg, (size_t)n, sig, err) < 0)
        return -1;
    sl_sign_key_id(key, id);
    to_hex(sig, sizeof sig, hex);
    const char *p[] = { seq, id, hex };
    return sl_db_run(db, "sign audit row", "SELECT sluice_audit_sign($1::bigint, $2, $3)", 3, p, err);
}

/* The key among keys[0..nkeys) whose id is kid, or NULL. */
static const sl_sign_key *key_by_id(sl_sign_key *const *keys, size_t nkeys, const char *kid)
{
    for (size_t k = 0; k < nkeys && kid != NULL; k++) {
        char id[SL_SIGN_ID_HEX];
        sl_sign_key_id(keys[k], id);
        if (strcmp(id, kid) == 0)
            return keys[k];
    }
    return NULL;
}

static bool fail(sl_audit_report *rep, long long seq, const char *fmt, const char *arg)
{
    rep->ok = false;
    rep->bad_seq = seq;
    snprintf(rep->why, sizeof rep->why, fmt, seq, arg);
    return false;
}

/* Checks row r's signature; false (with rep filled) if it does not verify. */
static bool check_sig(const PGresult *res, int r, long long seq, const char *hash,
                      sl_sign_key *const *keys, size_t nkeys, sl_audit_report *rep)
{
    const char *kid = sl_db_value(res, r, 15), *sighex = sl_db_value(res, r, 16);
    if (sighex == NULL)
        return fail(rep, seq, "row %lld is not signed%s", "");
    const sl_sign_key *key = key_by_id(keys, nkeys, kid);
    if (key == NULL)
        return fail(rep, seq, "row %lld is signed by key %s, which is not among the public keys given",
                    kid ? kid : "(none)");
    unsigned char sig[SL_SIGN_LEN];
    char msg[sizeof SIG_PREFIX + SL_SHA256_HEX];
    int n = snprintf(msg, sizeof msg, SIG_PREFIX "%s", hash);
    if (!from_hex(sighex, sig, sizeof sig) || !sl_sign_verify(key, msg, (size_t)n, sig, sizeof sig))
        return fail(rep, seq, "row %lld: the signature does not verify (the row or the chain before it "
                    "was rewritten%s)", "");
    rep->signed_ok++;
    return true;
}

bool sl_audit_row_verifies(const sl_audit_row *row, const char *hash, const char *sighex,
                           const sl_sign_key *key)
{
    char hex[SL_SHA256_HEX], msg[sizeof SIG_PREFIX + SL_SHA256_HEX];
    unsigned char sig[SL_SIGN_LEN];
    sl_audit_row_hash(row, hex);
    if (key == NULL || sighex == NULL || hash == NULL || strcmp(hex, hash) != 0)
        return false;
    int n = snprintf(msg, sizeof msg, SIG_PREFIX "%s", hash);
    return from_hex(sighex, sig, sizeof sig) && sl_sign_verify(key, msg, (size_t)n, sig, sizeof sig);
}

/* Checks the checkpoint row of cp (empty when there is none) that must
 * account for the rows before first; false with rep filled if it does not. */
static bool check_checkpoint(const PGresult *cp, const char *first, sl_sign_key *const *keys,
                             size_t nkeys, sl_audit_report *rep)
{
    long long seq = strtoll(first, NULL, 10);
    if (PQntuples(cp) != 1)
        return fail(rep, seq, "row %lld is the oldest, and no signed checkpoint accounts for the rows "
                    "before it (deleted?)%s", "");
    rep->checkpoint_seq = seq;
    rep->checkpoint_last_at_us = strtoll(PQgetvalue(cp, 0, 2), NULL, 10);
    if (nkeys == 0)
        return true;
    const char *kid = PQgetvalue(cp, 0, 3);
    const sl_sign_key *key = key_by_id(keys, nkeys, kid);
    if (key == NULL)
        return fail(rep, seq, "the checkpoint before row %lld is signed by key %s, which is not among "
                    "the public keys given", kid);
    char msg[sizeof CHECKPOINT_PREFIX + 24 + SL_SHA256_HEX + 24];
    int n = checkpoint_message(msg, sizeof msg, PQgetvalue(cp, 0, 0), PQgetvalue(cp, 0, 1),
                               PQgetvalue(cp, 0, 2));
    unsigned char sig[SL_SIGN_LEN];
    if (n < 0 || (size_t)n >= sizeof msg || !from_hex(PQgetvalue(cp, 0, 4), sig, sizeof sig) ||
        !sl_sign_verify(key, msg, (size_t)n, sig, sizeof sig))
        return fail(rep, seq, "the checkpoint before row %lld: the signature does not verify "
                    "(rows were removed or the checkpoint rewritten%s)", "");
    rep->checkpoint_verified = true;
    return true;
}

/* The columns row_of reads, in its order (10: the stored hash, 15: key id,
 * 16: signature, 17: the time as text). */
#define ROW_COLUMNS \
    "seq, (extract(epoch FROM at) * 1000000)::bigint, run_id, gate_id, actor, decision," \
    " comment, inputs::text, reason, prev_hash, hash, version, method, address, db_role," \
    " key_id, sig, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* Row r of a result of ROW_COLUMNS, borrowing its values. */
static sl_audit_row row_of(const PGresult *res, int r)
{
    return (sl_audit_row){
        .version = atoi(PQgetvalue(res, r, 11)), .seq = PQgetvalue(res, r, 0),
        .at_us = PQgetvalue(res, r, 1), .run_id = PQgetvalue(res, r, 2),
        .gate_id = PQgetvalue(res, r, 3), .actor = PQgetvalue(res, r, 4),
        .decision = PQgetvalue(res, r, 5), .comment = sl_db_value(res, r, 6),
        .inputs = sl_db_value(res, r, 7), .reason = sl_db_value(res, r, 8),
        .prev_hash = PQgetvalue(res, r, 9), .method = sl_db_value(res, r, 12),
        .address = sl_db_value(res, r, 13), .db_role = sl_db_value(res, r, 14),
    };
}

int sl_audit_verify(sl_db *db, sl_sign_key *const *keys, size_t nkeys, sl_audit_report *rep,
                    sl_err *err)
{
    memset(rep, 0, sizeof *rep);
    PGresult *res = sl_db_exec(db, "audit chain", "SELECT " ROW_COLUMNS " FROM sluice_audit ORDER BY seq",
                               0, NULL, err);
    if (res == NULL)
        return -1;
    rep->ok = true;
    rep->rows = PQntuples(res);
    const char *prev = "";
    long long expect = 1, legacy_since_signed = 0;
    bool seen_v2 = false;
    PGresult *cp = NULL;
    if (rep->rows > 0 && strcmp(PQgetvalue(res, 0, 0), "1") != 0) {
        /* Rows were removed by retention: start from their checkpoint. */
        const char *first[] = { PQgetvalue(res, 0, 0) };
        cp = sl_db_exec(db, "audit checkpoint", "SELECT cut_seq, prev_hash, last_at_us, key_id, sig"
                        " FROM sluice_audit_checkpoints WHERE cut_seq = $1::bigint", 1, first, err);
        if (cp == NULL) {
            PQclear(res);
            return -1;
        }
        if (check_checkpoint(cp, first[0], keys, nkeys, rep)) {
            prev = PQgetvalue(cp, 0, 1);
            expect = strtoll(first[0], NULL, 10);
        }
    }
    for (int r = 0; r < PQntuples(res) && rep->ok; r++) {
        long long seq = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        sl_audit_row row = row_of(res, r);
        const char *stored = PQgetvalue(res, r, 10);
        char hex[SL_SHA256_HEX];
        sl_audit_row_hash(&row, hex);
        if (seq != expect)
            fail(rep, seq, "row %lld follows a missing row (deleted?)%s", "");
        else if (strcmp(hex, stored) != 0)
            fail(rep, seq, "row %lld does not match its hash (edited?)%s", "");
        else if (strcmp(row.prev_hash, prev) != 0)
            fail(rep, seq, "row %lld does not chain to the row before it%s", "");
        else if (row.version == 1 && seen_v2)
            fail(rep, seq, "row %lld is a legacy (version 1) row after version 2 rows: "
                 "legacy rows predate migration 006%s", "");
        else if (row.version == 1) {
            rep->legacy++;
            legacy_since_signed++;
        } else {
            seen_v2 = true;
            if (nkeys == 0) {
                rep->unchecked++;
            } else if (check_sig(res, r, seq, stored, keys, nkeys, rep)) {
                rep->legacy_anchored += legacy_since_signed;
                legacy_since_signed = 0;
            }
        }
        prev = stored;
        expect = seq + 1;
    }
    PQclear(cp);
    PQclear(res);
    return 0;
}

int sl_audit_head_get(sl_db *db, sl_audit_head *head, sl_err *err)
{
    memset(head, 0, sizeof *head);
    PGresult *res = sl_db_exec(db, "audit head", "SELECT seq, hash, coalesce(key_id, ''),"
                               " coalesce(sig, '') FROM sluice_audit ORDER BY seq DESC LIMIT 1",
                               0, NULL, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 1) {
        head->seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(head->hash, sizeof head->hash, "%s", PQgetvalue(res, 0, 1));
        snprintf(head->key_id, sizeof head->key_id, "%s", PQgetvalue(res, 0, 2));
        snprintf(head->sig, sizeof head->sig, "%s", PQgetvalue(res, 0, 3));
    }
    PQclear(res);
    return 0;
}

int sl_audit_cut(sl_db *db, long long keep_ms, int batch, long long *removed, sl_err *err)
{
    *removed = 0;
    const sl_sign_key *key = sl_db_audit_key(db);
    if (key == NULL)
        return sl_err_set(err, SL_EINVAL, "audit retention needs the scheduler's audit key "
                          "(scheduler.audit_key_file) to sign its checkpoints");
    char keep[24], n[16];
    snprintf(keep, sizeof keep, "%lld", keep_ms);
    snprintf(n, sizeof n, "%d", batch);
    const char *p[] = { keep, n };
    PGresult *res = NULL;
    int rc = -1;
    if (sl_db_begin(db, err) < 0)
        return -1;
    res = sl_db_exec(db, "audit cut candidate", "SELECT cut_seq, prev_hash, last_at_us"
                     " FROM sluice_audit_cut_candidate($1::bigint, $2::integer)", 2, p, err);
    if (res == NULL)
        goto cleanup;
    if (sl_db_value(res, 0, 0) == NULL) {   /* nothing old enough */
        rc = sl_db_commit(db, err);
        goto cleanup;
    }
    const char *cut = PQgetvalue(res, 0, 0), *prev = PQgetvalue(res, 0, 1), *at = PQgetvalue(res, 0, 2);
    char msg[sizeof CHECKPOINT_PREFIX + 24 + SL_SHA256_HEX + 24], id[SL_SIGN_ID_HEX], hex[2 * SL_SIGN_LEN + 1];
    unsigned char sig[SL_SIGN_LEN];
    int len = checkpoint_message(msg, sizeof msg, cut, prev, at);
    if (len < 0 || (size_t)len >= sizeof msg) {
        sl_err_set(err, SL_EINVAL, "audit cut: malformed checkpoint fields");
        goto cleanup;
    }
    if (sl_sign(key, msg, (size_t)len, sig, err) < 0)
        goto cleanup;
    sl_sign_key_id(key, id);
    to_hex(sig, sizeof sig, hex);
    const char *q[] = { cut, prev, at, id, hex, keep };
    PGresult *done = sl_db_exec(db, "audit cut", "SELECT sluice_audit_cut($1::bigint, $2, $3::bigint,"
                                " $4, $5, $6::bigint)", 6, q, err);
    if (done == NULL)
        goto cleanup;
    *removed = strtoll(PQgetvalue(done, 0, 0), NULL, 10);
    PQclear(done);
    rc = sl_db_commit(db, err);
cleanup:
    if (rc < 0)
        sl_db_rollback(db);
    PQclear(res);
    return rc;
}

const char *sl_audit_sig_name(sl_audit_sig v)
{
    switch (v) {
    case SL_AUDIT_SIG_OK: return "yes";
    case SL_AUDIT_SIG_BAD: return "no";
    case SL_AUDIT_SIG_UNSIGNED: return "unsigned";
    case SL_AUDIT_SIG_UNCHECKED: return "unchecked";
    }
    return "?";
}

/* Whether row r (hash recomputed) carries a valid signature by one of keys. */
static sl_audit_sig row_sig(const PGresult *res, int r, sl_sign_key *const *keys, size_t nkeys)
{
    sl_audit_row row = row_of(res, r);
    const char *stored = PQgetvalue(res, r, 10);
    char hex[SL_SHA256_HEX];
    sl_audit_row_hash(&row, hex);
    if (strcmp(hex, stored) != 0)
        return SL_AUDIT_SIG_BAD;   /* edited: whatever its signature says */
    if (row.version == 1 || sl_db_value(res, r, 16) == NULL)
        return SL_AUDIT_SIG_UNSIGNED;
    if (nkeys == 0)
        return SL_AUDIT_SIG_UNCHECKED;
    sl_audit_report rep;
    memset(&rep, 0, sizeof rep);
    return check_sig(res, r, 0, stored, keys, nkeys, &rep) ? SL_AUDIT_SIG_OK : SL_AUDIT_SIG_BAD;
}

static char *dup_or_null(const PGresult *res, int r, int c)
{
    const char *v = sl_db_value(res, r, c);
    return v ? sl_xstrdup(v) : NULL;
}

int sl_audit_run(sl_db *db, const char *run_id, sl_sign_key *const *keys, size_t nkeys,
                 sl_audit_entry **out, size_t *n, sl_err *err)
{
    *out = NULL;
    *n = 0;
    const char *p[] = { run_id };
    PGresult *res = sl_db_exec(db, "audit of a run", "SELECT " ROW_COLUMNS " FROM sluice_audit"
                               " WHERE run_id = $1 ORDER BY seq", 1, p, err);
    if (res == NULL)
        return -1;
    int rows = PQntuples(res);
    sl_audit_entry *e = sl_xcalloc(rows ? (size_t)rows : 1, sizeof *e);
    for (int r = 0; r < rows; r++) {
        e[r].seq = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        e[r].at = sl_xstrdup(PQgetvalue(res, r, 17));
        e[r].gate = sl_xstrdup(PQgetvalue(res, r, 3));
        e[r].principal = sl_xstrdup(PQgetvalue(res, r, 4));
        e[r].decision = sl_xstrdup(PQgetvalue(res, r, 5));
        e[r].comment = dup_or_null(res, r, 6);
        e[r].inputs = dup_or_null(res, r, 7);
        e[r].reason = dup_or_null(res, r, 8);
        e[r].method = dup_or_null(res, r, 12);
        e[r].address = dup_or_null(res, r, 13);
        e[r].key_id = dup_or_null(res, r, 15);
        e[r].sig = row_sig(res, r, keys, nkeys);
    }
    PQclear(res);
    *out = e;
    *n = (size_t)rows;
    return 0;
}

void sl_audit_entries_free(sl_audit_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        free(e[i].at);
        free(e[i].gate);
        free(e[i].principal);
        free(e[i].decision);
        free(e[i].comment);
        free(e[i].inputs);
        free(e[i].reason);
        free(e[i].method);
        free(e[i].address);
        free(e[i].key_id);
    }
    free(e);
}
