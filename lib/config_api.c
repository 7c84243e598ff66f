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

/* The keys of api and of its sub-sections, read by sl_config_read_keys. */
static const sl_config_key jwt_keys[] = {
    SL_CONFIG_KEY("issuer", SL_CONFIG_STRING, sl_api_config, jwt.issuer, 0, 0),
    SL_CONFIG_KEY("audience", SL_CONFIG_STRING, sl_api_config, jwt.audience, 0, 0),
    SL_CONFIG_KEY("keys", SL_CONFIG_STRING, sl_api_config, jwt.keys, 0, 0),
    SL_CONFIG_KEY("user_claim", SL_CONFIG_STRING, sl_api_config, jwt.user_claim, 0, 0),
    SL_CONFIG_KEY("groups_claim", SL_CONFIG_STRING, sl_api_config, jwt.groups_claim, 0, 0),
    SL_CONFIG_KEY("clock_skew", SL_CONFIG_DURATION, sl_api_config, jwt.clock_skew_ms, 0, 300000),
    SL_CONFIG_KEY("scopes", SL_CONFIG_STRING, sl_api_config, jwt.scopes, 0, 0),
};

static const sl_config_key web_keys[] = {
    SL_CONFIG_KEY("session_ttl", SL_CONFIG_DURATION, sl_api_config, web.session_ttl_ms, 1000, 7 * 86400000LL),
    SL_CONFIG_KEY("idle_timeout", SL_CONFIG_DURATION, sl_api_config, web.idle_timeout_ms, 1000, 7 * 86400000LL),
    SL_CONFIG_KEY("scopes", SL_CONFIG_STRING, sl_api_config, web.scopes, 0, 0),
    SL_CONFIG_KEY("proxy_header", SL_CONFIG_STRING, sl_api_config, web.proxy_header, 0, 0),
    SL_CONFIG_KEY("proxy_groups_header", SL_CONFIG_STRING, sl_api_config, web.proxy_groups_header, 0, 0),
    SL_CONFIG_KEY("proxy_addresses", SL_CONFIG_STRING, sl_api_config, web.proxy_addresses, 0, 0),
};

static const sl_config_key oidc_keys[] = {
    SL_CONFIG_KEY("issuer", SL_CONFIG_STRING, sl_api_config, oidc.issuer, 0, 0),
    SL_CONFIG_KEY("client_id", SL_CONFIG_STRING, sl_api_config, oidc.client_id, 0, 0),
    SL_CONFIG_KEY("client_secret", SL_CONFIG_STRING, sl_api_config, oidc.client_secret, 0, 0),
    SL_CONFIG_KEY("client_secret_file", SL_CONFIG_STRING, sl_api_config, oidc.client_secret_file, 0, 0),
    SL_CONFIG_KEY("redirect_url", SL_CONFIG_STRING, sl_api_config, oidc.redirect_url, 0, 0),
    SL_CONFIG_KEY("user_claim", SL_CONFIG_STRING, sl_api_config, oidc.user_claim, 0, 0),
    SL_CONFIG_KEY("groups_claim", SL_CONFIG_STRING, sl_api_config, oidc.groups_claim, 0, 0),
    SL_CONFIG_KEY("groups_scope", SL_CONFIG_STRING, sl_api_config, oidc.groups_scope, 0, 0),
    SL_CONFIG_KEY("allow_http", SL_CONFIG_BOOL, sl_api_config, oidc.allow_http, 0, 0),
};

#define ROWS(t) t, sizeof t / sizeof t[0]

/* What a sub-section needs as a whole, checked once it has been read. */
static int check_jwt(const sl_api_config *c, sl_ydoc *doc, const sl_ynode *node, sl_err *err)
{
    if (c->jwt.issuer == NULL || c->jwt.audience == NULL || c->jwt.keys == NULL)
        return sl_ydoc_errorf(doc, node, err, "'api.jwt' needs issuer, audience and keys");
    return 0;
}

static int check_web(const sl_api_config *c, sl_ydoc *doc, const sl_ynode *node, sl_err *err)
{
    if (c->web.proxy_header != NULL && c->web.proxy_addresses == NULL)
        return sl_ydoc_errorf(doc, node, err, "'api.web.proxy_header' needs proxy_addresses "
                              "(the proxies trusted to set it)");
    return 0;
}

static int check_oidc(const sl_api_config *c, sl_ydoc *doc, const sl_ynode *node, sl_err *err)
{
    if (c->oidc.issuer == NULL || c->oidc.client_id == NULL || c->oidc.redirect_url == NULL)
        return sl_ydoc_errorf(doc, node, err, "'api.oidc' needs issuer, client_id and redirect_url");
    if (c->oidc.client_secret != NULL && c->oidc.client_secret_file != NULL)
        return sl_ydoc_errorf(doc, node, err, "'api.oidc': client_secret or client_secret_file, not both");
    return 0;
}

static const struct sub {
    const char *name;
    const sl_config_key *keys;
    size_t nkeys;
    int (*check)(const sl_api_config *c, sl_ydoc *doc, const sl_ynode *node, sl_err *err);
} subs[] = {
    { "jwt", ROWS(jwt_keys), check_jwt },
    { "web", ROWS(web_keys), check_web },
    { "oidc", ROWS(oidc_keys), check_oidc },
};

/* api.jwt, api.web, api.oidc: a table of their own, then their check. */
static int read_sub(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                    const sl_ynode *node, sl_err *err)
{
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(subs[i].name, row->name) == 0)
            return sl_config_read_keys(subs[i].keys, subs[i].nkeys, data, doc, what, node, err) < 0 ? -1
                   : subs[i].check(data, doc, node, err);
    }
    return sl_err_set(err, SL_ECONFIG, "config: '%s' has no reader", what);
}

static const sl_config_key api_keys[] = {
    SL_CONFIG_KEY("url", SL_CONFIG_STRING, sl_api_config, url, 0, 0),
    SL_CONFIG_KEY("public_url", SL_CONFIG_STRING, sl_api_config, public_url, 0, 0),
    SL_CONFIG_KEY("ca_file", SL_CONFIG_STRING, sl_api_config, ca_file, 0, 0),
    SL_CONFIG_KEY("listen", SL_CONFIG_STRING, sl_api_config, listen, 0, 0),
    SL_CONFIG_KEY("threads", SL_CONFIG_INT, sl_api_config, threads, 1, 64),
    SL_CONFIG_KEY("tls_cert", SL_CONFIG_STRING, sl_api_config, tls_cert, 0, 0),
    SL_CONFIG_KEY("tls_key", SL_CONFIG_STRING, sl_api_config, tls_key, 0, 0),
    SL_CONFIG_KEY("audit_key_file", SL_CONFIG_STRING, sl_api_config, audit_key_file, 0, 0),
    SL_CONFIG_KEY("max_connections", SL_CONFIG_INT, sl_api_config, max_connections, 1, 100000),
    SL_CONFIG_KEY("per_ip_connections", SL_CONFIG_INT, sl_api_config, per_ip_connections, 1, 100000),
    SL_CONFIG_KEY("connection_timeout", SL_CONFIG_DURATION, sl_api_config, connection_timeout_ms, 1000, 3600000),
    SL_CONFIG_KEY("request_deadline", SL_CONFIG_DURATION, sl_api_config, request_deadline_ms, 1000, 3600000),
    SL_CONFIG_KEY("max_body", SL_CONFIG_INT, sl_api_config, max_body, 1024, 64 * 1048576),
    SL_CONFIG_KEY("rate_limit", SL_CONFIG_INT, sl_api_config, rate_limit, 1, 1000000),
    SL_CONFIG_KEY("rate_burst", SL_CONFIG_INT, sl_api_config, rate_burst, 1, 1000000),
    SL_CONFIG_KEY("auth_failures", SL_CONFIG_INT, sl_api_config, auth_failures, 1, 1000000),
    SL_CONFIG_KEY("auth_lockout", SL_CONFIG_DURATION, sl_api_config, auth_lockout_ms, 1000, 86400000),
    SL_CONFIG_KEY("backend_timeout", SL_CONFIG_DURATION, sl_api_config, backend_timeout_ms, 100, 60000),
    SL_CONFIG_KEY_FN("jwt", sl_api_config, jwt, read_sub),
    SL_CONFIG_KEY_FN("web", sl_api_config, web, read_sub),
    SL_CONFIG_KEY_FN("oidc", sl_api_config, oidc, read_sub),
};

int sl_api_config_read(sl_api_config *c, sl_ydoc *doc, const sl_ynode *node, sl_err *err)
{
    if (sl_config_read_keys(ROWS(api_keys), c, doc, "api", node, err) < 0)
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
