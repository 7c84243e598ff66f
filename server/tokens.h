/* tokens.h: API tokens — long-lived bearer credentials for programs and
 * for the CLI.
 *
 * A token is "slk_" + 16 hex digits (its id, public) + "_" + 43 base64url
 * characters (32 random bytes from getrandom(2)).  It is printed once, by
 * `sluice token create`; sluice_api_tokens stores only its id, owner,
 * scopes, expiry and the SHA-256 of the whole token.  Verification looks the
 * row up by id (not secret) and compares the hashes in constant time, so
 * neither timing nor the table reveals a usable token.  A revoked or
 * expired token verifies as nothing.
 *
 * Scopes: enqueue, trigger, approve, read, admin (admin implies the rest). */
#ifndef SL_TOKENS_H
#define SL_TOKENS_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "err.h"

enum {
    SL_SCOPE_ENQUEUE = 1 << 0,
    SL_SCOPE_TRIGGER = 1 << 1,
    SL_SCOPE_APPROVE = 1 << 2,
    SL_SCOPE_READ = 1 << 3,
    SL_SCOPE_ADMIN = 1 << 4,
    SL_SCOPE_ALL = (1 << 5) - 1,
};

#define SL_TOKEN_PREFIX "slk_"
#define SL_TOKEN_MAX 96      /* bytes of a token, NUL included */
#define SL_TOKEN_ID_MAX 24   /* bytes of a token id, NUL included */

/* Parses "read,approve" into a scope mask.  Returns -1 with err (SL_EINVAL)
 * naming an unknown scope or for an empty list. */
int sl_scopes_parse(const char *list, unsigned *mask, sl_err *err);

/* True if mask grants scope (admin grants everything). */
bool sl_scopes_allow(unsigned mask, unsigned scope);

/* The name of one scope bit ("read"), for messages. */
const char *sl_scope_name(unsigned scope);

/* Creates a token for user with scopes, expiring expires_ms from now (0:
 * never).  token receives the secret, id its public id.  Returns -1 with
 * err if the database failed. */
int sl_token_create(sl_db *db, const char *user, unsigned scopes, int64_t expires_ms,
                    char token[SL_TOKEN_MAX], char id[SL_TOKEN_ID_MAX], sl_err *err);

/* What a verified token proves. */
typedef struct sl_token_info {
    char id[SL_TOKEN_ID_MAX];
    char user[256];
    unsigned scopes;
} sl_token_info;

/* True if text has the shape of an API token (prefix, id, secret). */
bool sl_token_shaped(const char *text);

/* Verifies token.  Returns 1 with *info filled for a valid, unrevoked,
 * unexpired token; 0 for anything else (unknown, wrong secret, revoked,
 * expired, malformed); -1 with err if the database failed. */
int sl_token_verify(sl_db *db, const char *token, sl_token_info *info, sl_err *err);

/* Revokes token id.  Returns -1 with SL_ENOTFOUND for an unknown id. */
int sl_token_revoke(sl_db *db, const char *id, sl_err *err);

#endif
