/* config_api.c: see config_api.h.  The section reaches this module through
 * the core loader's registry (sl_api_config_register): lib/config.c does
 * not know it. */
#include "config_api.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

void sl_api_config_init(sl_api_config *c)
{
    memset(c, 0, sizeof *c);
    c->url = sl_xstrdup("http://127.0.0.1:9464");
    c->threads = 4;
    c->max_connections = 1024;
    c->per_ip_connections = 32;
    c->request_deadline_ms = 30000;
    c->max_body = 1048576;
    c->rate_limit = 50;
    c->rate_burst = 200;
    c->auth_failures = 10;
    c->auth_lockout_ms = 60000;
    c->backend_timeout_ms = 2000;
    c->jwt.user_claim = sl_xstrdup("sub");
    c->jwt.groups_claim = sl_xstrdup("groups");
    c->jwt.clock_skew_ms = 60000;
    c->jwt.scopes = sl_xstrdup("read,trigger,approve");
    c->web.session_ttl_ms = 8 * 3600000;
    c->web.idle_timeout_ms = 3600000;
    c->web.scopes = sl_xstrdup("read,approve");
    c->oidc.user_claim = sl_xstrdup("sub");
    c->oidc.groups_claim = sl_xstrdup("groups");
}

void sl_api_config_clear(sl_api_config *c)
{
    free(c->url);
    free(c->public_url);
    free(c->listen);
    free(c->ca_file);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->audit_key_file);
    free(c->jwt.issuer);
    free(c->jwt.audience);
    free(c->jwt.keys);
    free(c->jwt.user_claim);
    free(c->jwt.groups_claim);
    free(c->jwt.scopes);
    free(c->web.scopes);
    free(c->web.proxy_header);
    free(c->web.proxy_groups_header);
    free(c->web.proxy_addresses);
    free(c->oidc.issuer);
    free(c->oidc.client_id);
    free(c->oidc.client_secret);
    free(c->oidc.client_secret_file);
    free(c->oidc.redirect_url);
    free(c->oidc.user_claim);
    free(c->oidc.groups_claim);
    free(c->oidc.groups_scope);
    memset(c, 0, sizeof *c);
}

bool sl_api_config_section(const char *name) { return strcmp(name, "api") == 0; }

/* The keys of one mapping: strings, integers and durations by offset. */
enum kind { K_STR, K_INT, K_DURATION, K_BOOL };
typedef struct key {
    const char *name;
    enum kind kind;
    size_t off;
    int64_t min, max;
} key;

static const key api_keys[] = {
    { "url", K_STR, offsetof(sl_api_config, url), 0, 0 },
    { "public_url", K_STR, offsetof(sl_api_config, public_url), 0, 0 },
    { "ca_file", K_STR, offsetof(sl_api_config, ca_file), 0, 0 },
    { "listen", K_STR, offsetof(sl_api_config, listen), 0, 0 },
    { "threads", K_INT, offsetof(sl_api_config, threads), 1, 64 },
    { "tls_cert", K_STR, offsetof(sl_api_config, tls_cert), 0, 0 },
    { "tls_key", K_STR, offsetof(sl_api_config, tls_key), 0, 0 },
    { "audit_key_file", K_STR, offsetof(sl_api_config, audit_key_file), 0, 0 },
    { "max_connections", K_INT, offsetof(sl_api_config, max_connections), 1, 100000 },
    { "per_ip_connections", K_INT, offsetof(sl_api_config, per_ip_connections), 1, 100000 },
    { "connection_timeout", K_DURATION, offsetof(sl_api_config, connection_timeout_ms), 1000, 3600000 },
    { "request_deadline", K_DURATION, offsetof(sl_api_config, request_deadline_ms), 1000, 3600000 },
    { "max_body", K_INT, offsetof(sl_api_config, max_body), 1024, 64 * 1048576 },
    { "rate_limit", K_INT, offsetof(sl_api_config, rate_limit), 1, 1000000 },
    { "rate_burst", K_INT, offsetof(sl_api_config, rate_burst), 1, 1000000 },
    { "auth_failures", K_INT, offsetof(sl_api_config, auth_failures), 1, 1000000 },
    { "auth_lockout", K_DURATION, offsetof(sl_api_config, auth_lockout_ms), 1000, 86400000 },
    { "backend_timeout", K_DURATION, offsetof(sl_api_config, backend_timeout_ms), 100, 60000 },
};

static const key jwt_keys[] = {
    { "issuer", K_STR, offsetof(sl_api_config, jwt.issuer), 0, 0 },
    { "audience", K_STR, offsetof(sl_api_config, jwt.audience), 0, 0 },
    { "keys", K_STR, offsetof(sl_api_config, jwt.keys), 0, 0 },
    { "user_claim", K_STR, offsetof(sl_api_config, jwt.user_claim), 0, 0 },
    { "groups_claim", K_STR, offsetof(sl_api_config, jwt.groups_claim), 0, 0 },
    { "clock_skew", K_DURATION, offsetof(sl_api_config, jwt.clock_skew_ms), 0, 300000 },
    { "scopes", K_STR, offsetof(sl_api_config, jwt.scopes), 0, 0 },
};

static const key web_keys[] = {
    { "session_ttl", K_DURATION, offsetof(sl_api_config, web.session_ttl_ms), 1000, 7 * 86400000LL },
    { "idle_timeout", K_DURATION, offsetof(sl_api_config, web.idle_timeout_ms), 1000, 7 * 86400000LL },
    { "scopes", K_STR, offsetof(sl_api_config, web.scopes), 0, 0 },
    { "proxy_header", K_STR, offsetof(sl_api_config, web.proxy_header), 0, 0 },
    { "proxy_groups_header", K_STR, offsetof(sl_api_config, web.proxy_groups_header), 0, 0 },
    { "proxy_addresses", K_STR, offsetof(sl_api_config, web.proxy_addresses), 0, 0 },
};

static const key oidc_keys[] = {
    { "issuer", K_STR, offsetof(sl_api_config, oidc.issuer), 0, 0 },
    { "client_id", K_STR, offsetof(sl_api_config, oidc.client_id), 0, 0 },
    { "client_secret", K_STR, offsetof(sl_api_config, oidc.client_secret), 0, 0 },
    { "client_secret_file", K_STR, offsetof(sl_api_config, oidc.client_secret_file), 0, 0 },
    { "redirect_url", K_STR, offsetof(sl_api_config, oidc.redirect_url), 0, 0 },
    { "user_claim", K_STR, offsetof(sl_api_config, oidc.user_claim), 0, 0 },
    { "groups_claim", K_STR, offsetof(sl_api_config, oidc.groups_claim), 0, 0 },
    { "groups_scope", K_STR, offsetof(sl_api_config, oidc.groups_scope), 0, 0 },
    { "allow_http", K_BOOL, offsetof(sl_api_config, oidc.allow_http), 0, 0 },
};

static int read_keys(sl_api_config *c, sl_ydoc *doc, const sl_ynode *node, const char *section,
                     const key *keys, size_t nkeys, const char *expected, sl_err *err)
{
    sl_ymap map;
    if (sl_ydoc_map(doc, node, section, &map, err) < 0)
        return -1;
    for (size_t i = 0; i < map.n; i++) {
        const char *k = map.pairs[i].name;
        const sl_ynode *v = map.pairs[i].value;
        if (strcmp(section, "api") == 0 && strcmp(k, "jwt") == 0) {
            if (read_keys(c, doc, v, "api.jwt", jwt_keys, sizeof jwt_keys / sizeof jwt_keys[0],
                          "issuer, audience, keys, user_claim, groups_claim, clock_skew, scopes", err) < 0)
                return -1;
            if (c->jwt.issuer == NULL || c->jwt.audience == NULL || c->jwt.keys == NULL)
                return sl_ydoc_errorf(doc, v, err, "'api.jwt' needs issuer, audience and keys");
            continue;
        }
        if (strcmp(section, "api") == 0 && strcmp(k, "web") == 0) {
            if (read_keys(c, doc, v, "api.web", web_keys, sizeof web_keys / sizeof web_keys[0],
                          "session_ttl, idle_timeout, scopes, proxy_header, proxy_groups_header, "
                          "proxy_addresses", err) < 0)
                return -1;
            if (c->web.proxy_header != NULL && c->web.proxy_addresses == NULL)
                return sl_ydoc_errorf(doc, v, err, "'api.web.proxy_header' needs proxy_addresses "
                                      "(the proxies trusted to set it)");
            continue;
        }
        if (strcmp(section, "api") == 0 && strcmp(k, "oidc") == 0) {
            if (read_keys(c, doc, v, "api.oidc", oidc_keys, sizeof oidc_keys / sizeof oidc_keys[0],
                          "issuer, client_id, client_secret, client_secret_file, redirect_url, "
                          "user_claim, groups_claim, groups_scope, allow_http", err) < 0)
                return -1;
            if (c->oidc.issuer == NULL || c->oidc.client_id == NULL || c->oidc.redirect_url == NULL)
                return sl_ydoc_errorf(doc, v, err, "'api.oidc' needs issuer, client_id and redirect_url");
            if (c->oidc.client_secret != NULL && c->oidc.client_secret_file != NULL)
                return sl_ydoc_errorf(doc, v, err, "'api.oidc': client_secret or client_secret_file, not both");
            continue;
        }
        const key *found = NULL;
        for (size_t j = 0; j < nkeys && found == NULL; j++) {
            if (strcmp(keys[j].name, k) == 0)
                found = &keys[j];
        }
        if (found == NULL)
            return sl_ydoc_errorf(doc, map.pairs[i].key, err, "unknown key '%.60s' in '%s' (expected %s)",
                                  k, section, expected);
        char what[96];
        snprintf(what, sizeof what, "%s.%s", section, k);
        const char *s;
        int64_t n;
        bool yes;
        char *base = (char *)c;
        switch (found->kind) {
        case K_STR:
            if (sl_ydoc_str(doc, v, what, &s, err) < 0)
                return -1;
            if (*s == '\0')
                return sl_ydoc_errorf(doc, v, err, "'%s' must not be empty", what);
            free(*(char **)(base + found->off));
            *(char **)(base + found->off) = sl_xstrdup(s);
            break;
        case K_INT:
            if (sl_ydoc_int(doc, v, what, found->min, found->max, &n, err) < 0)
                return -1;
            *(int *)(base + found->off) = (int)n;
            break;
        case K_DURATION:
            if (sl_ydoc_duration(doc, v, what, found->min, found->max, &n, err) < 0)
                return -1;
            *(int *)(base + found->off) = (int)n;
            break;
        case K_BOOL:
            if (sl_ydoc_bool(doc, v, what, &yes, err) < 0)
                return -1;
            *(bool *)(base + found->off) = yes;
            break;
        }
    }
    return 0;
}

int sl_api_config_read(sl_api_config *c, sl_ydoc *doc, const sl_ynode *node, sl_err *err)
{
    if (read_keys(c, doc, node, "api", api_keys, sizeof api_keys / sizeof api_keys[0],
                  "url, public_url, ca_file, listen, threads, tls_cert, tls_key, audit_key_file, max_connections, per_ip_connections, "
                  "connection_timeout, request_deadline, max_body, rate_limit, rate_burst, "
                  "auth_failures, auth_lockout, backend_timeout, jwt, web, oidc", err) < 0)
        return -1;
    if (c->public_url != NULL) {
        size_t n = strlen(c->public_url);
        while (n > 1 && c->public_url[n - 1] == '/')
            c->public_url[--n] = '\0';
    }
    if ((c->tls_cert == NULL) != (c->tls_key == NULL))
        return sl_ydoc_errorf(doc, node, err, "'api.tls_cert' and 'api.tls_key' go together");
    return 0;
}

void sl_api_config_env(sl_api_config *c)
{
    const char *v = getenv("SLUICE_API_URL");
    if (v && *v) {
        free(c->url);
        c->url = sl_xstrdup(v);
    }
    v = getenv("SLUICE_API_CA");
    if (v && *v) {
        free(c->ca_file);
        c->ca_file = sl_xstrdup(v);
    }
}

const char *sl_api_public_url(const sl_api_config *c)
{
    return c->public_url != NULL ? c->public_url : c->url;
}

/* ---- registration with the core loader (lib/config.h) -------------------- */

static const char *const section_names[] = { "api", NULL };

static void *part_create(void)
{
    sl_api_config *c = sl_xmalloc(sizeof *c);
    sl_api_config_init(c);
    return c;
}

static void part_destroy(void *data)
{
    sl_api_config_clear(data);
    free(data);
}

static int part_read(void *data, sl_ydoc *doc, const char *name, const sl_ynode *node, sl_err *err)
{
    (void)name;
    return sl_api_config_read(data, doc, node, err);
}

static void part_env(void *data) { sl_api_config_env(data); }

static const sl_config_section api_section = {
    .names = section_names, .create = part_create, .destroy = part_destroy, .read = part_read,
    .env = part_env,
};

void sl_api_config_register(void)
{
    sl_config_register(&api_section);
}

sl_api_config *sl_api_config_of(const sl_config *cfg)
{
    return sl_config_part(cfg, &api_section);
}
