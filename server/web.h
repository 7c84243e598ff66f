/* web.h: the web pages of `sluice serve` (docs/web.md): My gates, a gate
 * with its evidence and decision form, runs, a run's timeline and audit,
 * a job, the queues; sign-in (API token, OIDC, reverse-proxy header) and
 * sign-out; the stylesheet and script under /static.
 *
 * Pages are rendered on the server from PostgreSQL (and Redis for the
 * queues) and work without JavaScript.  Every value shown goes through
 * html.h's escaping.  A page needs a session (session.h); without one it
 * answers 303 to /login?next=PATH.  Every POST must carry the session's
 * CSRF token (the sign-in form: the pre-session token) and must not come
 * from another site (Origin, Sec-Fetch-Site); otherwise it is answered 403
 * and changes nothing.  A decision on the gate page goes through
 * sl_gate_decide, the same transaction as the API's approve/reject, as the
 * session's principal with method "web-token:ID", "web-oidc:ISSUER#SUB" or
 * "web-proxy:HEADER" recorded in the audit row. */
#ifndef SL_WEB_H
#define SL_WEB_H

#include <stddef.h>

#include "http.h"

/* The Content-Security-Policy of every HTML response (http.c sets it). */
#define SL_WEB_CSP "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; " \
                   "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

/* What the Queues page remembers between views to show rates (processed
 * and failed jobs per second since the previous snapshot it took, as
 * `sluice top` does between refreshes).  One per server, thread-safe;
 * sl_server_web_rates (http.h) gives it to the handlers. */
typedef struct sl_web_rates sl_web_rates;
sl_web_rates *sl_web_rates_new(void);
void sl_web_rates_free(sl_web_rates *w);   /* w may be NULL */

extern const sl_route sl_web_routes[];
extern const size_t sl_web_nroutes;

#endif
