/* oidc.h: sign-in with an OpenID Connect provider for the web pages —
 * the authorization code flow with PKCE (RFC 7636, S256).
 *
 * sl_oidc_begin makes a random state, nonce and PKCE verifier, keeps them
 * in sluice_web_oidc (migration 012) bound to the browser's pre-session
 * cookie for ten minutes, and gives the provider's authorization URL.
 * sl_oidc_finish takes the row back by state (once: it is deleted), checks
 * the pre-session cookie matches (so a code cannot be planted in another
 * browser), exchanges the code at the token endpoint with libcurl
 * (client_secret_basic, or client_secret_post when that is all the
 * provider offers), and verifies the ID token with jwt.h against the
 * provider's JWKS: signature (RS256/ES256), iss = api.oidc.issuer, aud
 * contains client_id, exp/nbf, and the nonce.
 *
 * The provider's discovery document (ISSUER/.well-known/openid-configuration)
 * and its JWKS are fetched on first use and cached; the JWKS is fetched
 * again when a token names a key id it does not hold (key rotation), at
 * most once every ten seconds.  Every fetch is https only (http only with
 * api.oidc.allow_http, for a loopback test provider), follows no
 * redirects, and is bounded in time and size.  Thread-safe (one mutex). */
#ifndef SL_OIDC_H
#define SL_OIDC_H

#include <stddef.h>

#include "buf.h"
#include "config_api.h"
#include "db.h"
#include "err.h"

typedef struct sl_oidc sl_oidc;

/* A client for api's oidc section (borrowed; it must outlive the client).
 * Reads client_secret_file; fetches nothing yet.  NULL with err when the
 * section is unusable (an http issuer without allow_http, an unreadable
 * secret file).  curl_global_init is called here: make it before threads. */
sl_oidc *sl_oidc_new(const sl_api_config *api, sl_err *err);
void sl_oidc_free(sl_oidc *o);   /* o may be NULL */

/* Starts a sign-in for the browser with pre-session cookie pre, which
 * returns to next afterwards: the authorization URL into url.  -1 with err
 * when the provider cannot be reached or the database failed. */
int sl_oidc_begin(sl_oidc *o, sl_db *db, const char *pre, const char *next, sl_buf *url, sl_err *err);

/* Who signed in. */
typedef struct sl_oidc_identity {
    char user[256];        /* the user claim */
    char method[600];      /* "web-oidc:ISSUER#SUB" */
    char next[300];        /* where the sign-in was going */
    char **groups;         /* owned, ngroups */
    size_t ngroups;
} sl_oidc_identity;

void sl_oidc_identity_clear(sl_oidc_identity *id);

/* Finishes the sign-in that state started, with the provider's code, for
 * the browser holding pre.  0 with *id filled (clear it); -1 with err
 * saying why (for the log, not for the browser). */
int sl_oidc_finish(sl_oidc *o, sl_db *db, const char *pre, const char *state, const char *code,
                   sl_oidc_identity *id, sl_err *err);

#endif
