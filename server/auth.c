/* auth.c: see auth.h. */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "config_api.h"
#include "jwt.h"
#include "limiter.h"
#include "log.h"
#include "mem.h"
#include "problem.h"
#include "tokens.h"

void sl_auth_clear(sl_request *r)
{
    for (size_t i = 0; i < r->ngroups; i++)
        free(r->groups[i]);
    r->ngroups = 0;
    r->authenticated = false;
}

static int refuse(sl_request *r, sl_response *resp, const char *why)
{
    char q[300];
    SL_WARN("serve.auth_failed", "address=%s path=%s reason=%s", r->address, r->path,
            sl_log_quote(q, sizeof q, why));
    sl_limiter_auth_failed(sl_server_limiter(r->srv), r->address, sl_monotonic_ms());
    sl_problem(resp, SL_PROB_UNAUTHORIZED, "a valid bearer token is required");
    resp->challenge = true;
    return -1;
}

static int with_token(sl_request *r, sl_response *resp, const char *token)
{
    sl_err err;
    sl_token_info info;
    sl_db *db = sl_backends_db(r->be, &err);
    int rc = db ? sl_token_verify(db, token, &info, &err) : -1;
    if (rc < 0) {
        sl_problem(resp, SL_PROB_UNAVAILABLE, "credentials cannot be checked now");
        resp->retry_after = 1;
        return -1;
    }
    if (rc == 0)
        return refuse(r, resp, "unknown, revoked or expired API token");
    snprintf(r->name, sizeof r->name, "%s", info.user);
    snprintf(r->how, sizeof r->how, "token:%s", info.id);
    r->scopes = info.scopes;
    return 0;
}

static int with_jwt(sl_request *r, sl_response *resp, const char *token)
{
    const sl_jwt_keys *keys = sl_server_jwt_keys(r->srv);
    if (keys == NULL)
        return refuse(r, resp, "a JWT, but api.jwt is not configured");
    const sl_api_config *api = sl_api_config_of(r->cfg);
    sl_jwt_policy pol = { api->jwt.issuer, api->jwt.audience, api->jwt.user_claim, api->jwt.groups_claim,
                          api->jwt.clock_skew_ms };
    sl_jwt_claims c;
    sl_err err;
    if (sl_jwt_verify(keys, &pol, token, sl_now_ms(), &c, &err) < 0) {
        char why[600];
        snprintf(why, sizeof why, "JWT: %s", err.msg);
        return refuse(r, resp, why);
    }
    snprintf(r->name, sizeof r->name, "%s", c.user);
    snprintf(r->how, sizeof r->how, "jwt:%s#%s", api->jwt.issuer, c.subject);
    for (size_t i = 0; i < c.ngroups && r->ngroups < SL_GROUPS_MAX; i++)
        r->groups[r->ngroups++] = sl_xstrdup(c.groups[i]);
    r->scopes = sl_server_jwt_scopes(r->srv);
    sl_jwt_claims_clear(&c);
    return 0;
}

int sl_auth(sl_request *r, sl_response *resp)
{
    int retry;
    if (sl_limiter_locked(sl_server_limiter(r->srv), r->address, sl_monotonic_ms(), &retry)) {
        sl_problem(resp, SL_PROB_THROTTLED, "too many failed authentications from this address");
        resp->retry_after = retry;
        return -1;
    }
    const char *h = sl_http_header(r, "Authorization");
    if (h == NULL)
        return refuse(r, resp, "no Authorization header");
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return refuse(r, resp, "Authorization is not Bearer");
    const char *cred = h + 7;
    while (*cred == ' ')
        cred++;
    int rc = sl_token_shaped(cred) ? with_token(r, resp, cred) : with_jwt(r, resp, cred);
    if (rc < 0)
        return -1;
    r->who = (sl_principal){ .name = r->name, .method = r->how, .address = r->address,
                             .groups = (const char *const *)r->groups, .ngroups = r->ngroups };
    r->authenticated = true;
    return 0;
}
