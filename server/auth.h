/* auth.h: who is calling — the API server's authentication.
 *
 * A request carries `Authorization: Bearer CREDENTIAL`, either an API token
 * (tokens.h; its shape says so) or a JWT from the configured identity
 * provider (jwt.h).  The principal is what the credential proves and
 * nothing the client asserts: the token's user, or the JWT's user claim;
 * the method records how ("token:ID", "jwt:ISSUER#SUBJECT"); the address is
 * the peer's.  Every failure counts against the client's address
 * (limiter.h): after api.auth_failures of them the address gets 429 with
 * Retry-After for api.auth_lockout.  The reason of a refusal is logged
 * (serve.auth_failed), never told to the client. */
#ifndef SL_AUTH_H
#define SL_AUTH_H

#include "http.h"

/* Authenticates r.  Returns 0 with r->who, r->scopes and r->authenticated
 * set; -1 with resp filled (401, 429, or 503 when the token table cannot
 * be read). */
int sl_auth(sl_request *r, sl_response *resp);

/* Frees what authentication stored in r (the groups). */
void sl_auth_clear(sl_request *r);

#endif
