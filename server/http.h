/* http.h: what the API server's modules share — one request as the
 * handlers see it and the response they fill.  http.c owns the daemon
 * (libmicrohttpd), reads the body within api.max_body, applies the
 * per-address limits, matches the route, authenticates (auth.c) and
 * checks the route's scope before calling a handler; a handler only reads
 * its parameters and the body, uses the backends of its thread, and fills
 * the response.  Handlers never see the network. */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "backends.h"
#include "buf.h"
#include "config.h"
#include "gate.h"

struct MHD_Connection;
typedef struct sl_server sl_server;

#define SL_ROUTE_PARAMS 3
#define SL_GROUPS_MAX 64

typedef struct sl_request {
    sl_server *srv;                    /* borrowed */
    const sl_config *cfg;              /* borrowed */
    struct MHD_Connection *conn;       /* borrowed: headers and query */
    const char *method;
    const char *path;
    const char *params[SL_ROUTE_PARAMS]; /* the {} segments of the route, in order */
    const char *body;                  /* NUL-terminated, body_len bytes ("" when none) */
    size_t body_len;
    char address[64];                  /* the client's address, numeric */
    sl_backends *be;                   /* this request's backends (backends.h) */
    /* Filled by auth.c once the credential verified: */
    bool authenticated;
    sl_principal who;                  /* points into the fields below */
    unsigned scopes;                   /* tokens.h scope bits */
    char name[256];
    char how[600];                     /* "token:ID" or "jwt:ISSUER#SUBJECT" */
    char *groups[SL_GROUPS_MAX];       /* owned */
    size_t ngroups;
} sl_request;

typedef struct sl_response {
    unsigned status;            /* 0 until set */
    const char *content_type;   /* static string */
    sl_buf body;
    int retry_after;            /* seconds for Retry-After, 0: none */
    const char *allow;          /* Allow header, or NULL */
    char allow_buf[64];         /* storage for allow when computed */
    bool challenge;             /* add WWW-Authenticate: Bearer (401) */
    char location[2048];        /* Location header, or "" (an OIDC authorization URL is long) */
    char set_cookie[2][512];    /* Set-Cookie headers, "" when unused */
} sl_response;

struct sl_limiter;
struct sl_jwt_keys;
struct sl_sign_key;
struct sl_oidc;
struct sl_web_rates;

/* The server's per-address limits and its JWT keys (NULL when api.jwt is
 * not configured), for auth.c. */
struct sl_limiter *sl_server_limiter(sl_server *s);
const struct sl_jwt_keys *sl_server_jwt_keys(sl_server *s);
unsigned sl_server_jwt_scopes(sl_server *s);

/* The key that signs the audit rows of decisions (NULL: unsigned), the
 * OIDC client (NULL without api.oidc), and whether the server speaks TLS. */
const struct sl_sign_key *sl_server_audit_key(sl_server *s);
struct sl_oidc *sl_server_oidc(sl_server *s);
bool sl_server_tls(sl_server *s);
struct sl_web_rates *sl_server_web_rates(sl_server *s);

/* One route: method and path pattern ("/v1/runs/{}/gates/{}"; each {}
 * matches one non-empty segment, given to the handler in params), the
 * scope a credential needs (0: public, no authentication), the handler. */
typedef struct sl_route {
    const char *method;
    const char *pattern;
    unsigned scope;
    void (*handler)(sl_request *r, sl_response *resp);
} sl_route;

/* A request header's value, or NULL. */
const char *sl_http_header(const sl_request *r, const char *name);

/* A cookie's value, or NULL. */
const char *sl_http_cookie(const sl_request *r, const char *name);

/* A query-string argument's value, or NULL. */
const char *sl_http_query(const sl_request *r, const char *name);

/* Adds a Set-Cookie header value to resp (at most two per response). */
void sl_http_set_cookie(sl_response *resp, const char *value);

/* Sets a JSON response: status and the body taken from json (reset). */
void sl_http_json(sl_response *resp, unsigned status, sl_buf *json);

#endif
