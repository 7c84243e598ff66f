/* config_api.h: the `api:` section of etc/sluice.yaml — the HTTP API server
 * (`sluice serve`) and how the CLI reaches it.
 *
 *   api:
 *     url: http://127.0.0.1:9464   # where `sluice run/approve/reject` send requests
 *     public_url: https://sluice.example.com  # base of links given to people
 *                                  # (web pages, notifications, `sluice open`)
 *     ca_file: /etc/sluice/ca.pem  # CA the CLI trusts for an https url
 *     listen: 127.0.0.1:9464       # where `sluice serve` listens
 *     threads: 4                   # request threads (each with its own backends)
 *     tls_cert: /etc/sluice/tls.crt   # both set: HTTPS
 *     tls_key: /etc/sluice/tls.key
 *     max_connections: 1024
 *     per_ip_connections: 32
 *     connection_timeout: 10s      # idle connection closed
 *     request_deadline: 30s        # whole connection, however it trickles
 *     max_body: 1048576
 *     rate_limit: 50               # requests per second per address
 *     rate_burst: 200
 *     auth_failures: 10            # failed authentications before 429 ...
 *     auth_lockout: 60s            # ... for this long
 *     backend_timeout: 2s          # PostgreSQL connect/statement, Redis timeouts
 *     jwt:
 *       issuer: https://id.example.com
 *       audience: sluice
 *       keys: /etc/sluice/jwks.json   # a JWKS file or a PEM public key
 *       user_claim: preferred_username
 *       groups_claim: groups
 *       clock_skew: 60s
 *       scopes: read,trigger,approve   # what a valid JWT may do
 *     web:                         # the web pages at / (docs/web.md)
 *       session_ttl: 8h            # a session ends this long after sign-in ...
 *       idle_timeout: 1h           # ... or after this long unused
 *       scopes: read,approve       # what OIDC and proxy sessions may do
 *       proxy_header: X-Forwarded-User        # reverse-proxy sign-in, trusted only
 *       proxy_groups_header: X-Forwarded-Groups  # from proxy_addresses
 *       proxy_addresses: 127.0.0.1,::1
 *     oidc:                        # sign-in with an OpenID Connect provider
 *       issuer: https://id.example.com
 *       client_id: sluice
 *       client_secret_file: /etc/sluice/oidc-secret   # or client_secret
 *       redirect_url: https://sluice.example.com/login/oidc/callback
 *       user_claim: preferred_username
 *       groups_claim: groups
 *       groups_scope: groups       # extra scope asked for, optional
 *       allow_http: false          # true only for a loopback test provider
 *
 * The section is registered with the core loader by the programs that use
 * it (sl_api_config_register, before sl_config_load): the API server and
 * the CLI, and the scheduler and the worker, whose messages link to the
 * web pages (api.public_url).  It lives in lib/ rather than server/ for
 * that reason: url, public_url and ca_file say how every layer reaches the
 * API.  It is read with the same strictness as the rest (unknown keys,
 * types, FILE:LINE:COL).  The
 * environment overrides api.url with $SLUICE_API_URL and api.ca_file with
 * $SLUICE_API_CA (sl_api_config_env). */
#ifndef SL_CONFIG_API_H
#define SL_CONFIG_API_H

#include <stdbool.h>

#include "config.h"
#include "err.h"
#include "yamldoc.h"

typedef struct sl_api_config {
    char *url;                 /* api.url, default http://127.0.0.1:9464 (owned) */
    char *public_url;          /* api.public_url, NULL: url (owned); see sl_api_public_url */
    char *ca_file;             /* api.ca_file: CA bundle the CLI trusts for https, or NULL (owned) */
    char *listen;              /* api.listen, NULL: metrics.listen (owned) */
    int threads;               /* api.threads, default 4 (1..64) */
    char *tls_cert;            /* api.tls_cert PEM file, or NULL (owned) */
    char *tls_key;             /* api.tls_key PEM file, or NULL (owned) */
    char *audit_key_file;      /* api.audit_key_file: Ed25519 private key (PEM) that signs the
                                  audit rows of decisions; NULL: they stay unsigned (owned) */
    int max_connections;       /* api.max_connections, default 1024 */
    int per_ip_connections;    /* api.per_ip_connections, default 32: one address cannot take them all */
    int connection_timeout_ms; /* api.connection_timeout, 0: metrics.request_timeout */
    int request_deadline_ms;   /* api.request_deadline, default 30s */
    int max_body;              /* api.max_body bytes, default 1 MiB */
    int rate_limit;            /* api.rate_limit requests/s per address, default 50 */
    int rate_burst;            /* api.rate_burst, default 200 */
    int auth_failures;         /* api.auth_failures before throttling, default 10 */
    int auth_lockout_ms;       /* api.auth_lockout, default 60s */
    int backend_timeout_ms;    /* api.backend_timeout, default 2s */
    struct {
        char *issuer;          /* api.jwt.issuer; NULL: JWTs are not accepted (owned) */
        char *audience;        /* api.jwt.audience (owned) */
        char *keys;            /* api.jwt.keys: JWKS or PEM file (owned) */
        char *user_claim;      /* api.jwt.user_claim, default "sub" (owned) */
        char *groups_claim;    /* api.jwt.groups_claim, default "groups" (owned) */
        int clock_skew_ms;     /* api.jwt.clock_skew, default 60s, at most 5m */
        char *scopes;          /* api.jwt.scopes, default "read,trigger,approve" (owned) */
    } jwt;
    struct {
        int session_ttl_ms;    /* api.web.session_ttl, default 8h */
        int idle_timeout_ms;   /* api.web.idle_timeout, default 1h */
        char *scopes;          /* api.web.scopes: of OIDC and proxy sessions, default "read,approve" (owned) */
        char *proxy_header;    /* api.web.proxy_header, NULL: no proxy sign-in (owned) */
        char *proxy_groups_header; /* api.web.proxy_groups_header, or NULL (owned) */
        char *proxy_addresses; /* api.web.proxy_addresses, comma-separated numeric addresses (owned) */
    } web;
    struct {
        char *issuer;          /* api.oidc.issuer; NULL: no OIDC sign-in (owned) */
        char *client_id;       /* api.oidc.client_id (owned) */
        char *client_secret;   /* api.oidc.client_secret, or NULL (owned) */
        char *client_secret_file; /* api.oidc.client_secret_file, or NULL (owned) */
        char *redirect_url;    /* api.oidc.redirect_url (owned) */
        char *user_claim;      /* api.oidc.user_claim, default "sub" (owned) */
        char *groups_claim;    /* api.oidc.groups_claim, default "groups" (owned) */
        char *groups_scope;    /* api.oidc.groups_scope: extra scope requested, or NULL (owned) */
        bool allow_http;       /* api.oidc.allow_http: accept http:// provider URLs (tests) */
    } oidc;
} sl_api_config;

/* Sets the defaults. */
void sl_api_config_init(sl_api_config *c);

/* Frees what c owns (c itself is not freed). */
void sl_api_config_clear(sl_api_config *c);

/* Reads the `api` section (node is its value) into c.  Returns -1 with err
 * ("FILE:LINE:COL: …") on the first error, including a jwt section without
 * issuer, audience or keys, an oidc section without issuer, client_id or
 * redirect_url, proxy_header without proxy_addresses, and a tls_cert
 * without tls_key. */
int sl_api_config_read(sl_api_config *c, sl_ydoc *doc, const sl_ynode *node, sl_err *err);

/* The base of links given to people (the web pages' address): api.public_url,
 * or api.url when it is not set.  Never NULL; callers append a path such as
 * "/runs/ID" (a trailing '/' of public_url is dropped when it is read). */
const char *sl_api_public_url(const sl_api_config *c);

/* Applies $SLUICE_API_URL and $SLUICE_API_CA. */
void sl_api_config_env(sl_api_config *c);

/* Registers the api section with the core loader (lib/config.h); call
 * before sl_config_load.  Idempotent. */
void sl_api_config_register(void);

/* The api section of cfg (borrowed from cfg); cfg must have been loaded
 * after sl_api_config_register. */
sl_api_config *sl_api_config_of(const sl_config *cfg);

#endif
