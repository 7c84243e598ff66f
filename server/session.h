/* session.h: the web pages' sessions and CSRF tokens.
 *
 * A session is made when someone signs in (token, OIDC or reverse proxy):
 * its id is 32 random bytes from OpenSSL's RAND_bytes, given to the
 * browser as 64 hex digits in the cookie `sluice_session` and stored only
 * as its SHA-256 (sluice_web_sessions, migration 012), so the table alone
 * signs nobody in.  A session ends api.web.session_ttl after sign-in, or
 * after api.web.idle_timeout without a request, or at sign-out (the row is
 * deleted: the old cookie then finds nothing).
 *
 * Each session has its own CSRF token (another 32 random bytes), put in a
 * hidden field of every form and compared in constant time on every POST.
 * Before anyone is signed in, the sign-in form is protected by a
 * double-submit token: the browser gets a random pre-session cookie
 * `sluice_pre`, the form carries HMAC-SHA256(pre, "sluice-login"), and the
 * POST must present both.
 *
 * A session can carry one message for the next page it shows (the
 * "flash": the outcome of a decision), taken when read. */
#ifndef SL_SESSION_H
#define SL_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "config_api.h"
#include "db.h"
#include "err.h"

#define SL_SESSION_HEX 65       /* a session id or CSRF token: 64 hex digits plus NUL */
#define SL_SESSION_GROUPS 64

typedef struct sl_session {
    char principal[256];
    char method[600];           /* web-token:ID, web-oidc:ISSUER#SUB, web-proxy:HEADER */
    char *groups[SL_SESSION_GROUPS]; /* owned, ngroups of them */
    size_t ngroups;
    unsigned scopes;            /* tokens.h scope bits */
    char csrf[SL_SESSION_HEX];
    char flash[512];            /* "" when none */
    char flash_class[16];
} sl_session;

/* Frees what s owns (the groups). */
void sl_session_clear(sl_session *s);

/* Fills out with 32 random bytes as 64 hex digits.  Returns -1 with err
 * when the random generator fails (nothing is made from a weak secret). */
int sl_session_random(char out[SL_SESSION_HEX], sl_err *err);

/* Makes a session for principal (method, groups, scopes) signed in from
 * address; cookie receives its id.  Also removes sessions past their end.
 * Returns 0, or -1 with err. */
int sl_session_create(sl_db *db, const sl_api_config *api, const char *principal, const char *method,
                      char *const *groups, size_t ngroups, unsigned scopes, const char *address,
                      char cookie[SL_SESSION_HEX], sl_err *err);

/* Finds the live session of cookie and marks it used.  take_flash: also
 * take (and clear) its flash.  Returns 1 with *s filled (clear it with
 * sl_session_clear), 0 when there is none (unknown, expired, idle,
 * signed out, malformed cookie), -1 with err if the database failed. */
int sl_session_get(sl_db *db, const sl_api_config *api, const char *cookie, bool take_flash,
                   sl_session *s, sl_err *err);

/* Ends the session of cookie (nothing when there is none).  0, or -1. */
int sl_session_delete(sl_db *db, const char *cookie, sl_err *err);

/* Sets the flash of cookie's session: cls ("ok", "refused", "error") and
 * msg.  0, or -1 with err. */
int sl_session_set_flash(sl_db *db, const char *cookie, const char *cls, const char *msg, sl_err *err);

/* The sign-in form's token for pre-session cookie pre. */
void sl_session_login_csrf(const char *pre, char out[SL_SESSION_HEX]);

/* True if a and b are equal, non-empty and of the same length, compared
 * in constant time (for secrets). */
bool sl_session_secret_eq(const char *a, const char *b);

/* The hex SHA-256 of text (how ids are stored). */
void sl_session_hash(const char *text, char out[SL_SESSION_HEX]);

#endif
