/* jwt.h: JSON Web Tokens from an OpenID Connect identity provider, verified
 * with OpenSSL's libcrypto.
 *
 * Only RS256 (RSASSA-PKCS1-v1_5, SHA-256, keys of 2048 bits or more) and
 * ES256 (ECDSA P-256, SHA-256; the JOSE signature is r||s, 64 bytes, turned
 * into DER for EVP_DigestVerify) are accepted, and each only with a key of
 * its own type: "none", HS256 (even "signed" with a public key's bytes) and
 * every other algorithm are refused before any key is touched, so an
 * attacker cannot pick the algorithm.  The keys come from a file the
 * operator configured: a PEM public key (one key, no kid) or a JWKS
 * document (RSA n/e, EC P-256 x/y, each optionally with a kid).  A token
 * naming a kid the set does not hold is refused.
 *
 * Claims checked: iss equals the configured issuer; aud (string or array)
 * contains the configured audience; exp is present and not past, nbf (if
 * present) not in the future, both with the configured clock skew; sub is
 * a string.  The user name comes from a configured claim (a string), the
 * groups from another (an array of strings, optional).  Malformed base64url,
 * JSON, duplicate keys and oversized tokens are refused. */
#ifndef SL_JWT_H
#define SL_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SL_JWT_MAX 8192   /* longest token accepted, in bytes */

typedef struct sl_jwt_keys sl_jwt_keys;

/* Loads the keys of a PEM public key or a JWKS file.  Returns NULL with err
 * (SL_ECONFIG) naming the file and what is wrong; free with sl_jwt_keys_free. */
sl_jwt_keys *sl_jwt_keys_load(const char *path, sl_err *err);
void sl_jwt_keys_free(sl_jwt_keys *keys);   /* keys may be NULL */

/* Loads the keys of a JWKS document held in text (an OIDC provider's
 * jwks_uri); what names the source in errors.  Same rules and result as
 * sl_jwt_keys_load. */
sl_jwt_keys *sl_jwt_keys_parse(const char *what, const char *text, sl_err *err);

/* What the operator requires of a token (all borrowed). */
typedef struct sl_jwt_policy {
    const char *issuer;
    const char *audience;
    const char *user_claim;
    const char *groups_claim;
    int64_t skew_ms;
} sl_jwt_policy;

/* What a verified token proves. */
typedef struct sl_jwt_claims {
    char user[256];      /* the user claim */
    char subject[256];   /* sub */
    char nonce[256];     /* nonce, "" when absent (OIDC ID tokens carry one) */
    char **groups;       /* owned, ngroups names */
    size_t ngroups;
} sl_jwt_claims;

void sl_jwt_claims_clear(sl_jwt_claims *c);

/* Verifies token against keys and policy at now_ms.  Returns 0 with *out
 * filled (free with sl_jwt_claims_clear), or -1 with err (SL_EINVAL) saying
 * why it was refused — for the server's log, not for the client. */
int sl_jwt_verify(const sl_jwt_keys *keys, const sl_jwt_policy *policy, const char *token,
                  int64_t now_ms, sl_jwt_claims *out, sl_err *err);

#endif
