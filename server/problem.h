/* problem.h: errors as RFC 9457 problem details (application/problem+json).
 *
 * Every error the API returns is one JSON object: a stable `type` URI
 * ("urn:sluice:problem:NAME", listed in docs/api.md — clients branch on it),
 * a `title` that names the type, the HTTP `status`, and a `detail` for
 * humans.  A detail never carries backend hosts, ports, database names or
 * credentials: backend failures are logged server-side and the client is
 * told only that the backend is unavailable. */
#ifndef SL_PROBLEM_H
#define SL_PROBLEM_H

#include "http.h"

typedef enum sl_problem_type {
    SL_PROB_BAD_REQUEST,      /* 400 malformed JSON, bad parameters */
    SL_PROB_UNAUTHORIZED,     /* 401 no, bad, expired or revoked credential */
    SL_PROB_FORBIDDEN,        /* 403 the credential lacks the route's scope */
    SL_PROB_NOT_FOUND,        /* 404 no such route, run, gate, job or pipeline */
    SL_PROB_METHOD,           /* 405 the route exists, the method does not */
    SL_PROB_REFUSED,          /* 409 a gate decision was refused */
    SL_PROB_CONFLICT,         /* 409 the Idempotency-Key was used for another queue */
    SL_PROB_TOO_LARGE,        /* 413 body over api.max_body */
    SL_PROB_UNSUPPORTED,      /* 415 body not application/json */
    SL_PROB_INVALID,          /* 422 well-formed but invalid (unknown variable, kind) */
    SL_PROB_THROTTLED,        /* 429 too many requests or authentication failures */
    SL_PROB_UNAVAILABLE,      /* 503 a backend is unreachable */
    SL_PROB_INTERNAL,         /* 500 */
} sl_problem_type;

/* Fills resp with the problem of type t and a formatted detail (may be
 * NULL for none). */
void sl_problem(sl_response *resp, sl_problem_type t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The type URI of t ("urn:sluice:problem:unauthorized"). */
const char *sl_problem_uri(sl_problem_type t);

#endif
