/* oidc.c: see oidc.h. */
#include "oidc.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "base64.h"
#include "clock.h"
#include "html.h"
#include "jsonval.h"
#include "jwt.h"
#include "mem.h"
#include "session.h"
#include "sha256.h"

#define FETCH_MAX (1024 * 1024)   /* bytes of a provider's answer */
#define FETCH_TIMEOUT_MS 10000L
#define STATE_TTL_MS 600000       /* an authorization request lives ten minutes */

struct sl_oidc {
    const sl_api_config *api;     /* borrowed */
    char *secret;                 /* owned, NULL for a public client */
    pthread_mutex_t mu;           /* guards everything below */
    bool discovered;
    char *auth_endpoint, *token_endpoint, *jwks_uri;   /* owned */
    bool secret_post;             /* the provider offers only client_secret_post */
    sl_jwt_keys *keys;            /* owned, NULL until fetched */
    int64_t keys_at_ms;           /* monotonic: when keys were fetched */
};

/* ---- fetching -------------------------------------------------------------- */

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    sl_buf *b = arg;
    if (b->len + size * n > FETCH_MAX)
        return 0;   /* too big: libcurl fails the transfer */
    sl_buf_append(b, data, size * n);
    return size * n;
}

static bool url_allowed(const sl_oidc *o, const char *url)
{
    return strncmp(url, "https://", 8) == 0 || (o->api->oidc.allow_http && strncmp(url, "http://", 7) == 0);
}

/* GETs url (or POSTs form when not NULL, with basic auth user:secret when
 * given) into out as a NUL-terminated string.  -1 with err unless the
 * answer is 200. */
static int fetch(const sl_oidc *o, const char *url, const char *form, const char *user, const char *secret,
                 sl_buf *out, sl_err *err)
{
    if (!url_allowed(o, url))
        return sl_err_set(err, SL_EINVAL, "%s: only https URLs are accepted (api.oidc.allow_http is for tests)", url);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return sl_err_set(err, SL_EIO, "curl_easy_init failed");
    struct curl_slist *hs = curl_slist_append(NULL, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, FETCH_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, o->api->oidc.allow_http ? "http,https" : "https");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (form) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
        if (user) {
            curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
            curl_easy_setopt(c, CURLOPT_USERNAME, user);
            curl_easy_setopt(c, CURLOPT_PASSWORD, secret ? secret : "");
        }
    }
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hs);
    sl_buf_puts(out, "");
    if (cc != CURLE_OK)
        return sl_err_set(err, SL_EIO, "%s: %s", url, curl_easy_strerror(cc));
    if (status != 200)
        return sl_err_set(err, SL_EIO, "%s answered HTTP %ld", url, status);
    return 0;
}

/* A string member of a JSON object (caller frees), or NULL. */
static char *json_member(const char *text, const char *name)
{
    sl_jsonval j;
    sl_jsonval_init(&j, text);
    char *v = NULL;
    if (j.ok && j.up.data.type == MSGPACK_OBJECT_MAP)
        sl_args_str(&j.up.data, name, false, &v, NULL);
    sl_jsonval_free(&j);
    return v;
}

/* Fetches the discovery document once.  Under o->mu. */
static int discover(sl_oidc *o, sl_err *err)
{
    if (o->discovered)
        return 0;
    const char *iss = o->api->oidc.issuer;
    size_t n = strlen(iss);
    while (n > 0 && iss[n - 1] == '/')
        n--;
    char *url = sl_xasprintf("%.*s/.well-known/openid-configuration", (int)n, iss);
    sl_buf b = SL_BUF_INIT;
    int rc = fetch(o, url, NULL, NULL, NULL, &b, err);
    char *issuer = NULL, *auth = NULL, *token = NULL, *jwks = NULL;
    if (rc == 0) {
        issuer = json_member(sl_buf_str(&b), "issuer");
        auth = json_member(sl_buf_str(&b), "authorization_endpoint");
        token = json_member(sl_buf_str(&b), "token_endpoint");
        jwks = json_member(sl_buf_str(&b), "jwks_uri");
        if (issuer == NULL || strcmp(issuer, iss) != 0)
            rc = sl_err_set(err, SL_EINVAL, "%s: its issuer is not api.oidc.issuer (%s)", url, iss);
        else if (auth == NULL || token == NULL || jwks == NULL)
            rc = sl_err_set(err, SL_EINVAL, "%s lacks authorization_endpoint, token_endpoint or jwks_uri", url);
        else if (!url_allowed(o, auth) || !url_allowed(o, token) || !url_allowed(o, jwks))
            rc = sl_err_set(err, SL_EINVAL, "%s names endpoints that are not https", url);
    }
    if (rc == 0) {
        const char *text = sl_buf_str(&b);
        /* The default method is client_secret_basic; use post only if basic is not offered. */
        const char *methods = strstr(text, "\"token_endpoint_auth_methods_supported\"");
        o->secret_post = methods && strstr(methods, "client_secret_post") &&
                         !strstr(methods, "client_secret_basic");
        o->auth_endpoint = auth;
        o->token_endpoint = token;
        o->jwks_uri = jwks;
        auth = token = jwks = NULL;
        o->discovered = true;
    }
    free(issuer);
    free(auth);
    free(token);
    free(jwks);
    free(url);
    sl_buf_free(&b);
    return rc;
}

/* Fetches the JWKS again.  Under o->mu. */
static int fetch_keys(sl_oidc *o, sl_err *err)
{
    sl_buf b = SL_BUF_INIT;
    int rc = fetch(o, o->jwks_uri, NULL, NULL, NULL, &b, err);
    if (rc == 0) {
        sl_jwt_keys *k = sl_jwt_keys_parse(o->jwks_uri, sl_buf_str(&b), err);
        if (k == NULL) {
            rc = -1;
        } else {
            sl_jwt_keys_free(o->keys);
            o->keys = k;
            o->keys_at_ms = sl_monotonic_ms();
        }
    }
    sl_buf_free(&b);
    return rc;
}

/* ---- the client --------------------------------------------------------------- */

sl_oidc *sl_oidc_new(const sl_api_config *api, sl_err *err)
{
    if (strncmp(api->oidc.issuer, "https://", 8) != 0 &&
        !(api->oidc.allow_http && strncmp(api->oidc.issuer, "http://", 7) == 0)) {
        sl_err_set(err, SL_ECONFIG, "issuer %s: https is required (allow_http: true only for a loopback "
                   "test provider)", api->oidc.issuer);
        return NULL;
    }
    char *secret = NULL;
    if (api->oidc.client_secret_file) {
        FILE *f = fopen(api->oidc.client_secret_file, "r");
        if (f == NULL) {
            sl_err_set(err, SL_ECONFIG, "client_secret_file %s: %s", api->oidc.client_secret_file, strerror(errno));
            return NULL;
        }
        char line[1024];
        if (fgets(line, sizeof line, f) == NULL)
            line[0] = '\0';
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') {
            sl_err_set(err, SL_ECONFIG, "client_secret_file %s is empty", api->oidc.client_secret_file);
            return NULL;
        }
        secret = sl_xstrdup(line);
    } else if (api->oidc.client_secret) {
        secret = sl_xstrdup(api->oidc.client_secret);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sl_oidc *o = sl_xcalloc(1, sizeof *o);
    o->api = api;
    o->secret = secret;
    pthread_mutex_init(&o->mu, NULL);
    return o;
}

void sl_oidc_free(sl_oidc *o)
{
    if (o == NULL)
        return;
    free(o->secret);
    free(o->auth_endpoint);
    free(o->token_endpoint);
    free(o->jwks_uri);
    sl_jwt_keys_free(o->keys);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

void sl_oidc_identity_clear(sl_oidc_identity *id)
{
    for (size_t i = 0; i < id->ngroups; i++)
        free(id->groups[i]);
    free(id->groups);
    id->groups = NULL;
    id->ngroups = 0;
}

/* name=value& with value percent-encoded. */
static void form_field(sl_buf *b, const char *name, const char *value)
{
    if (b->len)
        sl_buf_putc(b, '&');
    sl_buf_puts(b, name);
    sl_buf_putc(b, '=');
    sl_html_seg(b, value);
}

int sl_oidc_begin(sl_oidc *o, sl_db *db, const char *pre, const char *next, sl_buf *url, sl_err *err)
{
    char state[SL_SESSION_HEX], nonce[SL_SESSION_HEX], verifier[SL_SESSION_HEX];
    char state_hash[SL_SESSION_HEX], pre_hash[SL_SESSION_HEX], ttl[24];
    if (sl_session_random(state, err) < 0 || sl_session_random(nonce, err) < 0 ||
        sl_session_random(verifier, err) < 0)
        return -1;
    pthread_mutex_lock(&o->mu);
    int rc = discover(o, err);
    char *endpoint = rc == 0 ? sl_xstrdup(o->auth_endpoint) : NULL;
    pthread_mutex_unlock(&o->mu);
    if (rc < 0)
        return -1;
    sl_session_hash(state, state_hash);
    sl_session_hash(pre, pre_hash);
    snprintf(ttl, sizeof ttl, "%d", STATE_TTL_MS);
    const char *p[] = { state_hash, pre_hash, nonce, verifier, next, ttl };
    rc = sl_db_run(db, "oidc expire", "DELETE FROM sluice_web_oidc WHERE expires_at < now()", 0, NULL, err);
    if (rc == 0)
        rc = sl_db_run(db, "oidc begin", "INSERT INTO sluice_web_oidc (state_hash, pre_hash, nonce, verifier, next,"
                       " expires_at) VALUES ($1, $2, $3, $4, $5, now() + $6::bigint * interval '1 millisecond')",
                       6, p, err);
    if (rc == 0) {
        unsigned char d[SL_SHA256_LEN];
        char challenge[64];
        sl_sha256_digest(verifier, strlen(verifier), d);
        sl_base64_encode(d, sizeof d, SL_BASE64URL, challenge, sizeof challenge);
        char *scope = sl_xasprintf("openid profile%s%s", o->api->oidc.groups_scope ? " " : "",
                                   o->api->oidc.groups_scope ? o->api->oidc.groups_scope : "");
        sl_buf q = SL_BUF_INIT;
        form_field(&q, "response_type", "code");
        form_field(&q, "client_id", o->api->oidc.client_id);
        form_field(&q, "redirect_uri", o->api->oidc.redirect_url);
        form_field(&q, "scope", scope);
        form_field(&q, "state", state);
        form_field(&q, "nonce", nonce);
        form_field(&q, "code_challenge", challenge);
        form_field(&q, "code_challenge_method", "S256");
        sl_buf_reset(url);
        sl_buf_puts(url, endpoint);
        sl_buf_putc(url, strchr(endpoint, '?') ? '&' : '?');
        sl_buf_puts(url, sl_buf_str(&q));
        sl_buf_free(&q);
        free(scope);
    }
    free(endpoint);
    return rc;
}

/* Verifies id_token with the provider's keys, fetching them first or again
 * when the token's key is unknown (at most every ten seconds). */
static int verify(sl_oidc *o, const char *id_token, sl_jwt_claims *c, sl_err *err)
{
    const sl_api_config *api = o->api;
    sl_jwt_policy pol = { api->oidc.issuer, api->oidc.client_id, api->oidc.user_claim, api->oidc.groups_claim,
                          60000 };
    pthread_mutex_lock(&o->mu);
    int rc = o->keys ? 0 : fetch_keys(o, err);
    if (rc == 0)
        rc = sl_jwt_verify(o->keys, &pol, id_token, sl_now_ms(), c, err);
    if (rc < 0 && o->keys && strstr(err->msg, "key") && sl_monotonic_ms() - o->keys_at_ms > 10000) {
        sl_err again;
        if (fetch_keys(o, &again) == 0)
            rc = sl_jwt_verify(o->keys, &pol, id_token, sl_now_ms(), c, err);
    }
    pthread_mutex_unlock(&o->mu);
    return rc;
}

int sl_oidc_finish(sl_oidc *o, sl_db *db, const char *pre, const char *state, const char *code,
                   sl_oidc_identity *id, sl_err *err)
{
    memset(id, 0, sizeof *id);
    char state_hash[SL_SESSION_HEX], pre_hash[SL_SESSION_HEX];
    sl_session_hash(state, state_hash);
    sl_session_hash(pre, pre_hash);
    const char *p[] = { state_hash };
    PGresult *res = sl_db_exec(db, "oidc finish", "DELETE FROM sluice_web_oidc WHERE state_hash = $1"
                               " RETURNING pre_hash, nonce, verifier, next, expires_at > now()", 1, p, err);
    if (res == NULL)
        return -1;
    int rc = -1;
    sl_buf form = SL_BUF_INIT, answer = SL_BUF_INIT;
    char *id_token = NULL, *endpoint = NULL;
    sl_jwt_claims c;
    memset(&c, 0, sizeof c);
    if (PQntuples(res) != 1) {
        sl_err_set(err, SL_EINVAL, "unknown or already used state");
        goto cleanup;
    }
    if (strcmp(PQgetvalue(res, 0, 4), "t") != 0) {
        sl_err_set(err, SL_EINVAL, "the sign-in took longer than ten minutes");
        goto cleanup;
    }
    if (!sl_session_secret_eq(PQgetvalue(res, 0, 0), pre_hash)) {
        sl_err_set(err, SL_EINVAL, "the state belongs to another browser (pre-session cookie differs)");
        goto cleanup;
    }
    pthread_mutex_lock(&o->mu);
    int drc = discover(o, err);
    endpoint = drc == 0 ? sl_xstrdup(o->token_endpoint) : NULL;
    bool post = o->secret_post;
    pthread_mutex_unlock(&o->mu);
    if (drc < 0)
        goto cleanup;
    form_field(&form, "grant_type", "authorization_code");
    form_field(&form, "code", code);
    form_field(&form, "redirect_uri", o->api->oidc.redirect_url);
    form_field(&form, "code_verifier", PQgetvalue(res, 0, 2));
    form_field(&form, "client_id", o->api->oidc.client_id);
    if (post && o->secret)
        form_field(&form, "client_secret", o->secret);
    /* client_secret_basic: id and secret form-encoded, then Basic (RFC 6749 2.3.1) */
    sl_buf user = SL_BUF_INIT, pass = SL_BUF_INIT;
    sl_html_seg(&user, o->api->oidc.client_id);
    sl_html_seg(&pass, o->secret ? o->secret : "");
    int frc = fetch(o, endpoint, sl_buf_str(&form), !post && o->secret ? sl_buf_str(&user) : NULL,
                    sl_buf_str(&pass), &answer, err);
    sl_buf_free(&user);
    sl_buf_free(&pass);
    if (frc < 0)
        goto cleanup;
    id_token = json_member(sl_buf_str(&answer), "id_token");
    if (id_token == NULL) {
        sl_err_set(err, SL_EINVAL, "the token endpoint's answer has no id_token");
        goto cleanup;
    }
    if (verify(o, id_token, &c, err) < 0) {
        sl_err_wrap(err, "ID token");
        goto cleanup;
    }
    if (!sl_session_secret_eq(c.nonce, PQgetvalue(res, 0, 1))) {
        sl_err_set(err, SL_EINVAL, "ID token: the nonce is missing or not ours (a replayed token?)");
        goto cleanup;
    }
    snprintf(id->user, sizeof id->user, "%s", c.user);
    snprintf(id->method, sizeof id->method, "web-oidc:%s#%s", o->api->oidc.issuer, c.subject);
    snprintf(id->next, sizeof id->next, "%s", PQgetvalue(res, 0, 3));
    id->groups = c.groups;
    id->ngroups = c.ngroups;
    c.groups = NULL;
    c.ngroups = 0;
    rc = 0;
cleanup:
    sl_jwt_claims_clear(&c);
    PQclear(res);
    free(id_token);
    free(endpoint);
    sl_buf_free(&form);
    sl_buf_free(&answer);
    return rc;
}
