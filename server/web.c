/* web.c: the web pages (see web.h, docs/web.md).
 *
 * Each page handler starts with signed_in(), which finds the session of
 * the request (or makes one for a user vouched for by a trusted reverse
 * proxy) and otherwise answers 303 to the sign-in page.  Each POST handler
 * calls post_allowed() before and after finding the session: it refuses
 * cross-site requests and a missing or wrong CSRF token with a 403 page
 * before anything is changed.  Pages read with parameterised SQL and print every value with
 * sl_html_text; literal markup is the only unescaped output. */
#include "web.h"

#include <msgpack.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "audit.h"
#include "clock.h"
#include "db.h"
#include "gate.h"
#include "html.h"
#include "jsonval.h"
#include "limiter.h"
#include "log.h"
#include "mem.h"
#include "numfmt.h"
#include "oidc.h"
#include "session.h"
#include "snapshot.h"
#include "tokens.h"
#include "webstatic.h"

#define COOKIE_SESSION "sluice_session"
#define COOKIE_PRE "sluice_pre"

/* ISO-8601 UTC of a timestamptz column, NULL stays NULL. */
#define ISO(col) "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* ---- responses ------------------------------------------------------------- */

/* open, then text escaped, then close (open and close are markup). */
static void el(sl_buf *b, const char *open, const char *text, const char *close)
{
    sl_buf_puts(b, open);
    sl_html_puts(b, text);
    sl_buf_puts(b, close);
}

static void html(sl_response *resp, unsigned status, sl_buf *b)
{
    sl_buf_free(&resp->body);
    resp->body = *b;
    *b = (sl_buf)SL_BUF_INIT;
    resp->status = status;
    resp->content_type = "text/html; charset=utf-8";
}

static void redirect(sl_response *resp, const char *location)
{
    sl_buf_reset(&resp->body);
    resp->status = 303;
    resp->content_type = "text/plain; charset=utf-8";
    snprintf(resp->location, sizeof resp->location, "%s", location);
}

/* A page that only says msg (escaped) in a flash of class cls. */
static void message_page(sl_response *resp, unsigned status, const char *title, const char *cls, const char *msg,
                         const sl_session *s)
{
    sl_buf b = SL_BUF_INIT;
    sl_html_begin(&b, title, s ? s->principal : NULL, s ? s->csrf : NULL);
    el(&b, "<h1>", title, "</h1>\n");
    sl_html_flash(&b, cls, msg);
    sl_html_end(&b);
    html(resp, status, &b);
}

static void backend_page(sl_request *r, sl_response *resp, const sl_err *err, const sl_session *s)
{
    char q[600];
    SL_WARN("web.backend_error", "path=%s error=%s", r->path, sl_log_quote(q, sizeof q, err->msg));
    message_page(resp, 503, "Unavailable", "error", "A backend is unavailable; try again.", s);
    resp->retry_after = 1;
}

/* The Set-Cookie value of cookie name=value for max_age seconds (0:
 * delete it). */
static void set_cookie(sl_request *r, sl_response *resp, const char *name, const char *value, long max_age)
{
    char c[400];
    bool secure = sl_server_tls(r->srv) || strncmp(sl_api_public_url(sl_api_config_of(r->cfg)), "https:", 6) == 0;
    snprintf(c, sizeof c, "%s=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%ld%s", name, value, max_age,
             secure ? "; Secure" : "");
    sl_http_set_cookie(resp, c);
}

/* True if next is a same-site relative path: "/" then not "/" or "\",
 * printable ASCII only. */
static bool next_ok(const char *next)
{
    if (next == NULL || next[0] != '/' || next[1] == '/' || next[1] == '\\' || strlen(next) > 256)
        return false;
    for (const char *p = next; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '\\')
            return false;
    }
    return true;
}

static void to_login(sl_request *r, sl_response *resp)
{
    sl_buf loc = SL_BUF_INIT;
    sl_buf_puts(&loc, "/login?next=");
    sl_html_seg(&loc, next_ok(r->path) ? r->path : "/gates");
    redirect(resp, sl_buf_str(&loc));
    sl_buf_free(&loc);
}

/* ---- who is signed in ---------------------------------------------------------- */

/* True if addr is one of the comma-separated addresses in list. */
static bool address_listed(const char *list, const char *addr)
{
    size_t n = strlen(addr);
    for (const char *p = list; p && *p;) {
        p += strspn(p, " ,");
        size_t k = strcspn(p, " ,");
        if (k > 0 && k == n && strncmp(p, addr, n) == 0)
            return true;
        p += k;
    }
    return false;
}

/* Signs in the user a trusted reverse proxy names (proxy_header), making
 * or reusing a session.  Returns 1 with *s filled, 0 when the request has
 * no such header or comes from elsewhere (then ignored, and logged), -1 with
 * err. */
static int proxy_session(sl_request *r, sl_response *resp, sl_db *db, bool take_flash, sl_session *s, sl_err *err)
{
    const sl_api_config *api = sl_api_config_of(r->cfg);
    const char *user = api->web.proxy_header ? sl_http_header(r, api->web.proxy_header) : NULL;
    if (user == NULL || *user == '\0')
        return 0;
    char q[300];
    if (!address_listed(api->web.proxy_addresses, r->address)) {
        SL_WARN("web.proxy_ignored", "address=%s header=%s user=%s reason=\"not from api.web.proxy_addresses\"",
                r->address, api->web.proxy_header, sl_log_quote(q, sizeof q, user));
        return 0;
    }
    if (strlen(user) > 200)
        return 0;
    char method[300];
    snprintf(method, sizeof method, "web-proxy:%s", api->web.proxy_header);
    const char *cookie = sl_http_cookie(r, COOKIE_SESSION);
    int rc = cookie ? sl_session_get(db, api, cookie, take_flash, s, err) : 0;
    if (rc < 0)
        return -1;
    if (rc == 1 && strcmp(s->principal, user) == 0 && strcmp(s->method, method) == 0)
        return 1;
    sl_session_clear(s);
    char *groups[SL_SESSION_GROUPS];
    size_t ngroups = 0;
    const char *gh = api->web.proxy_groups_header ? sl_http_header(r, api->web.proxy_groups_header) : NULL;
    for (const char *p = gh; p && *p && ngroups < SL_SESSION_GROUPS;) {
        p += strspn(p, " ,");
        size_t k = strcspn(p, ",");
        while (k > 0 && p[k - 1] == ' ')
            k--;
        if (k > 0)
            groups[ngroups++] = sl_xstrndup(p, k);
        p += k;
        p += strcspn(p, ",");
    }
    unsigned scopes = 0;
    char fresh[SL_SESSION_HEX];
    rc = sl_scopes_parse(api->web.scopes, &scopes, err);
    if (rc == 0)
        rc = sl_session_create(db, api, user, method, groups, ngroups, scopes, r->address, fresh, err);
    for (size_t i = 0; i < ngroups; i++)
        free(groups[i]);
    if (rc < 0)
        return -1;
    SL_INFO("web.signed_in", "user=%s method=%s address=%s", sl_log_quote(q, sizeof q, user), method, r->address);
    set_cookie(r, resp, COOKIE_SESSION, fresh, api->web.session_ttl_ms / 1000);
    rc = sl_session_get(db, api, fresh, take_flash, s, err);
    return rc < 0 ? -1 : rc;
}

/* Finds the request's session into *s (clear it with sl_session_clear).
 * Returns the database with true when signed in; otherwise false with
 * resp answered (303 to the sign-in page, or 503). */
static bool signed_in(sl_request *r, sl_response *resp, bool take_flash, sl_session *s, sl_db **dbp)
{
    sl_err err;
    memset(s, 0, sizeof *s);
    sl_db *db = sl_backends_db(r->be, &err);
    if (db == NULL) {
        backend_page(r, resp, &err, NULL);
        return false;
    }
    int rc = proxy_session(r, resp, db, take_flash, s, &err);
    if (rc == 0) {
        const char *cookie = sl_http_cookie(r, COOKIE_SESSION);
        rc = cookie ? sl_session_get(db, sl_api_config_of(r->cfg), cookie, take_flash, s, &err) : 0;
    }
    if (rc < 0) {
        backend_page(r, resp, &err, NULL);
        return false;
    }
    if (rc == 0) {
        to_login(r, resp);
        return false;
    }
    if (!sl_scopes_allow(s->scopes, SL_SCOPE_READ)) {
        message_page(resp, 403, "Forbidden", "error", "Your sign-in lacks the 'read' scope the pages need.", s);
        sl_session_clear(s);
        return false;
    }
    *dbp = db;
    return true;
}

/* True unless the request says it comes from another site: Sec-Fetch-Site
 * other than same-origin/none, or an Origin that is not this server's
 * (the Host it was sent to, or api.public_url). */
static bool same_site(sl_request *r)
{
    const char *sfs = sl_http_header(r, "Sec-Fetch-Site");
    if (sfs && strcmp(sfs, "same-origin") != 0 && strcmp(sfs, "none") != 0)
        return false;
    const char *origin = sl_http_header(r, "Origin");
    if (origin == NULL)
        return true;   /* not a browser's cross-site form (those send Origin); the CSRF token still decides */
    const char *host = sl_http_header(r, "Host");
    if (host) {
        const char *rest = strncmp(origin, "http://", 7) == 0 ? origin + 7
                           : strncmp(origin, "https://", 8) == 0 ? origin + 8 : NULL;
        if (rest && strcmp(rest, host) == 0)
            return true;
    }
    const char *pub = sl_api_public_url(sl_api_config_of(r->cfg));
    const char *slash = strchr(pub, '/');
    slash = slash && slash[1] == '/' ? strchr(slash + 2, '/') : NULL;
    size_t n = slash ? (size_t)(slash - pub) : strlen(pub);
    return strlen(origin) == n && strncmp(origin, pub, n) == 0;
}

/* Checks a POST: same site and the CSRF token of the form (want; NULL
 * before the session is known: only that there is one, so a cross-site or
 * token-less POST gets 403 whether or not a cookie came with it).  False
 * with a 403 page when refused. */
static bool post_allowed(sl_request *r, sl_response *resp, const char *want, const sl_session *s)
{
    const char *why = NULL;
    char *csrf = sl_html_form_get(r->body, r->body_len, "csrf");
    if (!same_site(r))
        why = "This form was sent from another site; nothing was done.";
    else if (want ? !sl_session_secret_eq(csrf, want) : csrf == NULL || *csrf == '\0')
        why = "The form's security token is missing or wrong (an old page, or another site); nothing was done. "
              "Reload the page and try again.";
    free(csrf);
    if (why == NULL)
        return true;
    SL_WARN("web.post_refused", "address=%s path=%s reason=\"%s\"", r->address, r->path,
            same_site(r) ? "csrf token" : "cross-site");
    message_page(resp, 403, "Refused", "error", why, s);
    return false;
}

/* ---- formatting ------------------------------------------------------------------ */

/* "in 2h 5m", "in 40s", "overdue by 3m" for secs seconds from now. */
static void countdown(sl_buf *b, long long secs)
{
    bool late = secs < 0;
    long long a = late ? -secs : secs;
    sl_buf_puts(b, late ? "overdue by " : "in ");
    if (a >= 86400)
        sl_buf_printf(b, "%lldd %lldh", a / 86400, a % 86400 / 3600);
    else if (a >= 3600)
        sl_buf_printf(b, "%lldh %lldm", a / 3600, a % 3600 / 60);
    else if (a >= 60)
        sl_buf_printf(b, "%lldm %llds", a / 60, a % 60);
    else
        sl_buf_printf(b, "%llds", a);
}

/* A deadline cell: <time class="deadline" datetime=ISO>countdown</time>. */
static void deadline(sl_buf *b, const PGresult *res, int row, int iso_col, int secs_col)
{
    if (PQgetisnull(res, row, iso_col)) {
        sl_buf_puts(b, "<span class=\"deadline none\">no deadline</span>");
        return;
    }
    el(b, "<time class=\"deadline\" datetime=\"", PQgetvalue(res, row, iso_col), "\">");
    countdown(b, strtoll(PQgetvalue(res, row, secs_col), NULL, 10));
    sl_buf_puts(b, "</time>");
}

/* A duration in seconds as "1.5s", "2m 3s". */
static void duration(sl_buf *b, const char *secs)
{
    if (secs == NULL || *secs == '\0') {
        sl_buf_puts(b, "\xe2\x80\x94");
        return;
    }
    double d = strtod(secs, NULL);
    if (d < 60) {
        sl_buf_printf(b, "%.1fs", d);
        return;
    }
    long long s = (long long)d;
    if (s < 3600)
        sl_buf_printf(b, "%lldm %llds", s / 60, s % 60);
    else
        sl_buf_printf(b, "%lldh %lldm", s / 3600, s % 3600 / 60);
}

/* Closes a table, then says none (markup-free text) when it had no row. */
static void end_table(sl_buf *b, bool empty, const char *none)
{
    sl_buf_puts(b, "</tbody>\n</table>\n");
    if (empty)
        el(b, "<p class=\"none\">", none, "</p>\n");
}

/* Ends the page in b and answers it (200); clears the session s. */
static void page_done(sl_response *resp, sl_buf *b, sl_session *s)
{
    sl_html_end(b);
    html(resp, 200, b);
    sl_session_clear(s);
}

static void cell(sl_buf *b, const char *v) { el(b, "<td>", v, "</td>"); }

/* Outputs (pretty JSON text, may be "") in <pre class="output">. */
static void output_pre(sl_buf *b, const char *text)
{
    if (text == NULL || *text == '\0')
        return;
    el(b, "<pre class=\"output\">", text, "</pre>\n");
}

static void run_link(sl_buf *b, const char *run)
{
    sl_buf_puts(b, "<a href=\"/runs/");
    sl_html_seg(b, run);
    el(b, "\">", run, "</a>");
}

static void job_link(sl_buf *b, const char *job)
{
    if (job == NULL || *job == '\0')
        return;
    sl_buf_puts(b, "<a class=\"job-link\" href=\"/jobs/");
    sl_html_seg(b, job);
    el(b, "\">job ", job, "</a>");
}

/* ---- /, /login, /logout ------------------------------------------------------------ */

static void get_root(sl_request *r, sl_response *resp)
{
    sl_session s;
    sl_db *db;
    if (!signed_in(r, resp, false, &s, &db)) {
        if (resp->status == 303)
            redirect(resp, "/login?next=/gates");
        return;
    }
    redirect(resp, "/gates");
    sl_session_clear(&s);
}

/* The browser's pre-session cookie into pre, made (and set on resp) when
 * it has none.  False with a 503 page if no random id could be made. */
static bool pre_cookie(sl_request *r, sl_response *resp, char pre[SL_SESSION_HEX])
{
    const char *have = sl_http_cookie(r, COOKIE_PRE);
    sl_err err;
    if (have && strlen(have) == 64 && strspn(have, "0123456789abcdef") == 64) {
        snprintf(pre, SL_SESSION_HEX, "%s", have);
        return true;
    }
    if (sl_session_random(pre, &err) < 0) {
        backend_page(r, resp, &err, NULL);
        return false;
    }
    set_cookie(r, resp, COOKIE_PRE, pre, 3600);
    return true;
}

/* The sign-in page, with flash (may be NULL) of class error. */
static void login_page(sl_request *r, sl_response *resp, unsigned status, const char *next, const char *flash)
{
    char pre[SL_SESSION_HEX], csrf[SL_SESSION_HEX];
    if (!pre_cookie(r, resp, pre))
        return;
    sl_session_login_csrf(pre, csrf);
    if (!next_ok(next))
        next = "/gates";
    sl_buf b = SL_BUF_INIT;
    sl_html_begin(&b, "Sign in", NULL, NULL);
    sl_buf_puts(&b, "<h1>Sign in to sluice</h1>\n");
    sl_html_flash(&b, "error", flash);
    sl_buf_puts(&b, "<form id=\"login-token\" method=\"post\" action=\"/login\">\n"
                "<input type=\"hidden\" name=\"csrf\" value=\"");
    sl_html_puts(&b, csrf);
    sl_buf_puts(&b, "\">\n<input type=\"hidden\" name=\"next\" value=\"");
    sl_html_puts(&b, next);
    sl_buf_puts(&b, "\">\n<label for=\"token\">API token</label>\n"
                "<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required "
                "placeholder=\"slk_\xe2\x80\xa6\">\n<button type=\"submit\">Sign in</button>\n</form>\n");
    if (sl_server_oidc(r->srv)) {
        sl_buf_puts(&b, "<p class=\"alt\"><a id=\"login-oidc\" href=\"/login/oidc?next=");
        sl_html_seg(&b, next);
        sl_buf_puts(&b, "\">Sign in with your identity provider</a></p>\n");
    }
    sl_html_end(&b);
    html(resp, status, &b);
}

static void get_login(sl_request *r, sl_response *resp) { login_page(r, resp, 200, sl_http_query(r, "next"), NULL); }

/* Too many failed sign-ins from this address: true with a 429 page. */
static bool login_locked(sl_request *r, sl_response *resp, const char *next)
{
    int retry;
    if (!sl_limiter_locked(sl_server_limiter(r->srv), r->address, sl_monotonic_ms(), &retry))
        return false;
    login_page(r, resp, 429, next, "Too many failed sign-ins from this address; wait and try again.");
    resp->retry_after = retry;
    return true;
}

static void post_login(sl_request *r, sl_response *resp)
{
    char *csrf = sl_html_form_get(r->body, r->body_len, "csrf");
    char *token = sl_html_form_get(r->body, r->body_len, "token");
    char *next = sl_html_form_get(r->body, r->body_len, "next");
    const char *pre = sl_http_cookie(r, COOKIE_PRE);
    char want[SL_SESSION_HEX] = "";
    sl_err err;
    if (pre)
        sl_session_login_csrf(pre, want);
    if (!same_site(r) || !sl_session_secret_eq(csrf, want)) {
        SL_WARN("web.post_refused", "address=%s path=/login reason=\"%s\"", r->address,
                same_site(r) ? "login csrf token" : "cross-site");
        message_page(resp, 403, "Refused", "error", "The sign-in form's security token is missing or wrong; "
                     "reload the sign-in page and try again.", NULL);
        goto cleanup;
    }
    if (login_locked(r, resp, next))
        goto cleanup;
    sl_db *db = sl_backends_db(r->be, &err);
    sl_token_info info;
    int rc = db == NULL ? -1 : token && sl_token_shaped(token) ? sl_token_verify(db, token, &info, &err) : 0;
    if (rc < 0) {
        backend_page(r, resp, &err, NULL);
        goto cleanup;
    }
    if (rc == 0) {
        SL_WARN("web.sign_in_failed", "address=%s method=token reason=\"unknown, revoked or expired API token\"",
                r->address);
        sl_limiter_auth_failed(sl_server_limiter(r->srv), r->address, sl_monotonic_ms());
        login_page(r, resp, 401, next, "That token is not valid (unknown, revoked or expired).");
        goto cleanup;
    }
    if (!sl_scopes_allow(info.scopes, SL_SCOPE_READ)) {
        login_page(r, resp, 403, next, "That token lacks the 'read' scope the pages need.");
        goto cleanup;
    }
    char method[64], cookie[SL_SESSION_HEX];
    snprintf(method, sizeof method, "web-token:%s", info.id);
    if (sl_session_create(db, sl_api_config_of(r->cfg), info.user, method, NULL, 0, info.scopes, r->address, cookie, &err) < 0) {
        backend_page(r, resp, &err, NULL);
        goto cleanup;
    }
    char q[300];
    SL_INFO("web.signed_in", "user=%s method=%s address=%s", sl_log_quote(q, sizeof q, info.user), method,
            r->address);
    set_cookie(r, resp, COOKIE_SESSION, cookie, sl_api_config_of(r->cfg)->web.session_ttl_ms / 1000);
    redirect(resp, next_ok(next) ? next : "/gates");
cleanup:
    free(csrf);
    free(token);
    free(next);
}

static void post_logout(sl_request *r, sl_response *resp)
{
    sl_session s;
    sl_db *db;
    sl_err err;
    if (!post_allowed(r, resp, NULL, NULL) || !signed_in(r, resp, false, &s, &db))
        return;
    if (post_allowed(r, resp, s.csrf, &s)) {
        const char *cookie = sl_http_cookie(r, COOKIE_SESSION);
        if (cookie && sl_session_delete(db, cookie, &err) < 0) {
            backend_page(r, resp, &err, &s);
        } else {
            char q[300];
            SL_INFO("web.signed_out", "user=%s address=%s", sl_log_quote(q, sizeof q, s.principal), r->address);
            resp->set_cookie[0][0] = resp->set_cookie[1][0] = '\0';
            set_cookie(r, resp, COOKIE_SESSION, "", 0);
            redirect(resp, "/login");
        }
    }
    sl_session_clear(&s);
}

/* ---- OIDC --------------------------------------------------------------------------- */

static void get_login_oidc(sl_request *r, sl_response *resp)
{
    sl_oidc *o = sl_server_oidc(r->srv);
    if (o == NULL) {
        message_page(resp, 404, "Not found", "error", "Sign-in with an identity provider is not configured.", NULL);
        return;
    }
    char pre[SL_SESSION_HEX];
    sl_err err;
    if (!pre_cookie(r, resp, pre))
        return;
    const char *next = sl_http_query(r, "next");
    sl_db *db = sl_backends_db(r->be, &err);
    sl_buf url = SL_BUF_INIT;
    if (db == NULL || sl_oidc_begin(o, db, pre, next_ok(next) ? next : "/gates", &url, &err) < 0) {
        char q[600];
        SL_WARN("web.oidc_failed", "step=begin error=%s", sl_log_quote(q, sizeof q, err.msg));
        login_page(r, resp, 502, next, "The identity provider cannot be reached now; try again or use a token.");
    } else {
        sl_buf_reset(&resp->body);
        resp->status = 302;
        resp->content_type = "text/plain; charset=utf-8";
        snprintf(resp->location, sizeof resp->location, "%s", sl_buf_str(&url));
        if (url.len >= sizeof resp->location)
            login_page(r, resp, 502, next, "The identity provider's address is too long.");
    }
    sl_buf_free(&url);
}

static void get_login_oidc_callback(sl_request *r, sl_response *resp)
{
    sl_oidc *o = sl_server_oidc(r->srv);
    if (o == NULL) {
        message_page(resp, 404, "Not found", "error", "Sign-in with an identity provider is not configured.", NULL);
        return;
    }
    if (login_locked(r, resp, NULL))
        return;
    sl_err err;
    sl_oidc_identity id;
    memset(&id, 0, sizeof id);
    const char *state = sl_http_query(r, "state"), *code = sl_http_query(r, "code");
    const char *pre = sl_http_cookie(r, COOKIE_PRE);
    sl_db *db = sl_backends_db(r->be, &err);
    if (db == NULL) {
        backend_page(r, resp, &err, NULL);
        return;
    }
    if (state == NULL || code == NULL || pre == NULL || sl_oidc_finish(o, db, pre, state, code, &id, &err) < 0) {
        char q[600];
        SL_WARN("web.sign_in_failed", "address=%s method=oidc reason=%s", r->address,
                sl_log_quote(q, sizeof q, state && code && pre ? err.msg
                                                               : "missing state, code or pre-session cookie"));
        sl_limiter_auth_failed(sl_server_limiter(r->srv), r->address, sl_monotonic_ms());
        const char *why = sl_http_query(r, "error");
        login_page(r, resp, 401, NULL, why ? "The identity provider refused the sign-in."
                                           : "The sign-in with the identity provider could not be verified.");
        sl_oidc_identity_clear(&id);
        return;
    }
    unsigned scopes = 0;
    char cookie[SL_SESSION_HEX];
    if (sl_scopes_parse(sl_api_config_of(r->cfg)->web.scopes, &scopes, &err) < 0 ||
        sl_session_create(db, sl_api_config_of(r->cfg), id.user, id.method, id.groups, id.ngroups, scopes, r->address, cookie,
                          &err) < 0) {
        backend_page(r, resp, &err, NULL);
    } else {
        char q[300];
        SL_INFO("web.signed_in", "user=%s method=oidc address=%s", sl_log_quote(q, sizeof q, id.user), r->address);
        set_cookie(r, resp, COOKIE_SESSION, cookie, sl_api_config_of(r->cfg)->web.session_ttl_ms / 1000);
        redirect(resp, next_ok(id.next) ? id.next : "/gates");
    }
    sl_oidc_identity_clear(&id);
}

/* ---- My gates ---------------------------------------------------------------------- */

static void get_gates(sl_request *r, sl_response *resp)
{
    sl_session s;
    sl_db *db;
    sl_err err;
    if (!signed_in(r, resp, true, &s, &db))
        return;
    const char *p[] = { s.principal };
    PGresult *res = sl_db_exec(db, "my gates",
        "SELECT g.run_id, g.gate_id, r.pipeline, " ISO("g.opened_at") ", " ISO("g.deadline") ","
        " extract(epoch FROM g.deadline - now())::bigint, (SELECT count(*) FROM sluice_audit a WHERE"
        " a.run_id = g.run_id AND a.gate_id = g.gate_id AND a.decision = 'approve'), g.required, r.triggered_by"
        " FROM sluice_gates g JOIN sluice_runs r ON r.id = g.run_id"
        " WHERE g.status = 'open' AND $1 = ANY (g.approvers) AND (g.allow_self OR g.triggered_by <> $1)"
        " AND NOT EXISTS (SELECT 1 FROM sluice_audit a WHERE a.run_id = g.run_id AND a.gate_id = g.gate_id"
        " AND a.actor = $1 AND a.decision IN ('approve', 'reject'))"
        " ORDER BY g.opened_at, g.run_id, g.gate_id", 1, p, &err);
    if (res == NULL) {
        backend_page(r, resp, &err, &s);
        sl_session_clear(&s);
        return;
    }
    sl_buf b = SL_BUF_INIT;
    sl_html_begin(&b, "My gates", s.principal, s.csrf);
    sl_buf_puts(&b, "<h1>My gates</h1>\n");
    sl_html_flash(&b, s.flash_class, s.flash);
    if (PQntuples(res) == 0) {
        sl_buf_puts(&b, "<p id=\"no-gates\">No gate is waiting for you.</p>\n");
    } else {
        sl_buf_puts(&b, "<table id=\"my-gates\">\n<thead><tr><th>Gate</th><th>Pipeline</th><th>Run</th>"
                    "<th>Triggered by</th><th>Approvals</th><th>Opened</th><th>Deadline</th></tr></thead>\n<tbody>\n");
        for (int i = 0; i < PQntuples(res); i++) {
            const char *run = PQgetvalue(res, i, 0), *gate = PQgetvalue(res, i, 1);
            sl_buf_puts(&b, "<tr class=\"gate\"><td><a class=\"gate-link\" href=\"/runs/");
            sl_html_seg(&b, run);
            sl_buf_puts(&b, "/gates/");
            sl_html_seg(&b, gate);
            el(&b, "\">", gate, "</a></td>");
            cell(&b, PQgetvalue(res, i, 2));
            sl_buf_puts(&b, "<td>");
            run_link(&b, run);
            sl_buf_puts(&b, "</td>");
            cell(&b, PQgetvalue(res, i, 8));
            el(&b, "<td>", PQgetvalue(res, i, 6), " of ");
            sl_html_puts(&b, PQgetvalue(res, i, 7));
            sl_buf_puts(&b, "</td>");
            cell(&b, PQgetvalue(res, i, 3));
            sl_buf_puts(&b, "<td>");
            deadline(&b, res, i, 4, 5);
            sl_buf_puts(&b, "</td></tr>\n");
        }
        sl_buf_puts(&b, "</tbody>\n</table>\n");
    }
    PQclear(res);
    page_done(resp, &b, &s);
}

/* ---- Gate ---------------------------------------------------------------------------- */

/* A JSON scalar as text (default values of inputs); NULL for others. */
static char *scalar(const msgpack_object *v)
{
    char num[SL_NUMFMT_MAX];
    switch (v->type) {
    case MSGPACK_OBJECT_STR: return sl_xstrndup(v->via.str.ptr, v->via.str.size);
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return sl_xasprintf("%llu", (unsigned long long)v->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return sl_xasprintf("%lld", (long long)v->via.i64);
    case MSGPACK_OBJECT_FLOAT64: return sl_xstrdup(sl_fmt_double(v->via.f64, num));
    case MSGPACK_OBJECT_BOOLEAN: return sl_xstrdup(v->via.boolean ? "true" : "false");
    default: return NULL;
    }
}

/* The string member name of map o (caller frees), or NULL. */
static char *member(const msgpack_object *o, const char *name)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(name) &&
            memcmp(k->via.str.ptr, name, k->via.str.size) == 0)
            return scalar(&o->via.map.ptr[i].val);
    }
    return NULL;
}

/* One form field per typed input of spec (the gate's input_spec JSON). */
static void input_fields(sl_buf *b, const char *spec)
{
    sl_jsonval j;
    sl_jsonval_init(&j, spec);
    for (uint32_t i = 0; j.ok && j.up.data.type == MSGPACK_OBJECT_ARRAY && i < j.up.data.via.array.size; i++) {
        const msgpack_object *in = &j.up.data.via.array.ptr[i];
        char *name = member(in, "name"), *type = member(in, "type"), *dflt = member(in, "default");
        if (name == NULL)
            goto next;
        sl_buf_puts(b, "<p class=\"input\"><label for=\"input-");
        sl_html_seg(b, name);
        sl_buf_puts(b, "\">");
        sl_html_puts(b, name);
        sl_buf_puts(b, dflt ? "" : " <span class=\"required\">(required)</span>");
        sl_buf_puts(b, "</label> ");
        if (type && strcmp(type, "bool") == 0) {
            /* An unchecked box sends nothing: the hidden "false" comes first, a checked box's "true" after it. */
            el(b, "<input type=\"hidden\" name=\"input.", name,
               "\" value=\"false\"><input type=\"checkbox\" id=\"input-");
            sl_html_seg(b, name);
            sl_buf_puts(b, "\" name=\"input.");
            sl_html_puts(b, name);
            sl_buf_printf(b, "\" value=\"true\"%s>", dflt && strcmp(dflt, "true") == 0 ? " checked" : "");
        } else {
            bool num = type && strcmp(type, "int") == 0;
            sl_buf_printf(b, "<input type=\"%s\"%s id=\"input-", num ? "number" : "text", num ? " step=\"1\"" : "");
            sl_html_seg(b, name);
            el(b, "\" name=\"input.", name, "\" value=\"");
            sl_html_puts(b, dflt);
            sl_buf_puts(b, "\">");
        }
        sl_buf_puts(b, "</p>\n");
    next:
        free(name);
        free(type);
        free(dflt);
    }
    sl_jsonval_free(&j);
}

/* The gate's decisions so far, one <li> each. */
static int decisions(sl_buf *b, sl_db *db, const char *run, const char *gate, const char *id, sl_err *err)
{
    const char *p[] = { run, gate };
    PGresult *res = sl_db_exec(db, "decisions",
        "SELECT actor, decision, coalesce(comment, ''), " ISO("at") ", coalesce(method, ''),"
        " coalesce(inputs::text, '') FROM sluice_audit WHERE run_id = $1 AND gate_id = $2"
        " AND decision <> 'refused' ORDER BY seq", 2, p, err);
    if (res == NULL)
        return -1;
    sl_buf_puts(b, "<ul");
    if (id)
        sl_buf_printf(b, " id=\"%s\"", id);
    sl_buf_puts(b, " class=\"decisions\">\n");
    for (int i = 0; i < PQntuples(res); i++) {
        el(b, "<li class=\"decision\" data-decision=\"", PQgetvalue(res, i, 1), "\"><strong>");
        sl_html_puts(b, PQgetvalue(res, i, 0));
        el(b, "</strong> ", PQgetvalue(res, i, 1), " <time datetime=\"");
        sl_html_puts(b, PQgetvalue(res, i, 3));
        el(b, "\">", PQgetvalue(res, i, 3), "</time>");
        if (*PQgetvalue(res, i, 2)) {
            el(b, ": <q class=\"comment\">", PQgetvalue(res, i, 2), "</q>");
        }
        if (*PQgetvalue(res, i, 5) && strcmp(PQgetvalue(res, i, 5), "{}") != 0) {
            el(b, " <code class=\"inputs\">", PQgetvalue(res, i, 5), "</code>");
        }
        sl_buf_puts(b, "</li>\n");
    }
    if (PQntuples(res) == 0)
        sl_buf_puts(b, "<li class=\"none\">No decision yet.</li>\n");
    sl_buf_puts(b, "</ul>\n");
    PQclear(res);
    return 0;
}

static void get_gate(sl_request *r, sl_response *resp)
{
    sl_session s;
    sl_db *db;
    sl_err err;
    if (!signed_in(r, resp, true, &s, &db))
        return;
    const char *run = r->params[0], *gate = r->params[1];
    PGresult *res = NULL, *ev = NULL;
    char *needs = NULL;
    sl_buf b = SL_BUF_INIT;
    const char *p[] = { run, gate };
    res = sl_db_exec(db, "gate",
        "SELECT g.status, r.pipeline, r.triggered_by, coalesce(g.instructions, ''), g.required,"
        " (SELECT count(*) FROM sluice_audit a WHERE a.run_id = g.run_id AND a.gate_id = g.gate_id"
        "  AND a.decision = 'approve'),"
        " array_to_string(ARRAY(SELECT x FROM unnest(g.approvers) x WHERE (g.allow_self OR x <> g.triggered_by)"
        "  AND NOT EXISTS (SELECT 1 FROM sluice_audit a WHERE a.run_id = g.run_id AND a.gate_id = g.gate_id"
        "  AND a.actor = x AND a.decision IN ('approve', 'reject'))), ', '),"
        " g.input_spec::text, " ISO("g.deadline") ", extract(epoch FROM g.deadline - now())::bigint,"
        " g.on_timeout, " ISO("g.opened_at") ", " ISO("g.decided_at")
        " FROM sluice_gates g JOIN sluice_runs r ON r.id = g.run_id WHERE g.run_id = $1 AND g.gate_id = $2",
        2, p, &err);
    if (res == NULL)
        goto failed;
    if (PQntuples(res) == 0) {
        message_page(resp, 404, "No such gate", "error",
                     "No such gate (it opens when the steps it needs succeed).", &s);
        goto cleanup;
    }
    const char *status = PQgetvalue(res, 0, 0);
    bool open = strcmp(status, "open") == 0;
    sl_html_begin(&b, gate, s.principal, s.csrf);
    el(&b, "<h1>Gate ", gate, "</h1>\n");
    sl_html_flash(&b, s.flash_class, s.flash);
    sl_buf_puts(&b, "<dl id=\"gate-info\">\n<dt>Run</dt><dd>");
    run_link(&b, run);
    el(&b, "</dd>\n<dt>Pipeline</dt><dd>", PQgetvalue(res, 0, 1), "</dd>\n<dt>Triggered by</dt><dd>");
    sl_html_puts(&b, PQgetvalue(res, 0, 2));
    el(&b, "</dd>\n<dt>Status</dt><dd id=\"gate-status\" class=\"status\">", status, "</dd>\n<dt>Opened</dt><dd>");
    sl_html_puts(&b, PQgetvalue(res, 0, 11));
    sl_buf_puts(&b, "</dd>\n<dt>Deadline</dt><dd>");
    deadline(&b, res, 0, 8, 9);
    if (!PQgetisnull(res, 0, 8)) {
        el(&b, " (then ", PQgetvalue(res, 0, 10), ")");
    }
    el(&b, "</dd>\n</dl>\n<div id=\"instructions\">", PQgetvalue(res, 0, 3), "</div>\n<h2>Approvals</h2>\n");
    if (decisions(&b, db, run, gate, "approvals", &err) < 0)
        goto failed;
    long approvals = strtol(PQgetvalue(res, 0, 5), NULL, 10), required = strtol(PQgetvalue(res, 0, 4), NULL, 10);
    sl_buf_puts(&b, "<p id=\"approvers-left\">");
    if (open) {
        sl_buf_printf(&b, "%ld of %ld approvals; %ld more needed", approvals, required,
                      required - approvals > 0 ? required - approvals : 0);
        sl_buf_puts(&b, *PQgetvalue(res, 0, 6) ? ", from: " : " (nobody left who may approve)");
        sl_html_puts(&b, PQgetvalue(res, 0, 6));
        sl_buf_puts(&b, ".");
    } else {
        sl_buf_puts(&b, "The gate is ");
        sl_html_puts(&b, status);
        sl_buf_printf(&b, " (%ld of %ld approvals).", approvals, required);
    }
    sl_buf_puts(&b, "</p>\n");
    /* evidence */
    needs = sl_api_gate_needs(db, r->cfg, run, gate, &err);
    if (needs == NULL)
        goto failed;
    const char *pe[] = { run, needs };
    ev = sl_db_exec(db, "evidence", "SELECT step_id, status, coalesce(jsonb_pretty(outputs), ''),"
                    " coalesce(job_id, ''), coalesce(error, ''), attempt FROM sluice_run_steps"
                    " WHERE run_id = $1 AND step_id = ANY ($2::text[]) ORDER BY position", 2, pe, &err);
    if (ev == NULL)
        goto failed;
    sl_buf_puts(&b, "<section id=\"evidence\">\n<h2>Evidence</h2>\n");
    for (int i = 0; i < PQntuples(ev); i++) {
        el(&b, "<div class=\"evidence-step\" data-step=\"", PQgetvalue(ev, i, 0), "\" data-status=\"");
        sl_html_puts(&b, PQgetvalue(ev, i, 1));
        el(&b, "\">\n<h3>", PQgetvalue(ev, i, 0), " <span class=\"status\">");
        sl_html_puts(&b, PQgetvalue(ev, i, 1));
        sl_buf_puts(&b, "</span></h3>\n");
        job_link(&b, PQgetvalue(ev, i, 3));
        output_pre(&b, PQgetvalue(ev, i, 2));
        if (*PQgetvalue(ev, i, 4)) {
            el(&b, "<p class=\"error\">", PQgetvalue(ev, i, 4), "</p>\n");
        }
        sl_buf_puts(&b, "</div>\n");
    }
    if (PQntuples(ev) == 0)
        sl_buf_puts(&b, "<p class=\"none\">This gate needs no earlier step.</p>\n");
    sl_buf_puts(&b, "</section>\n");
    if (open) {
        sl_buf_puts(&b, "<h2>Decide</h2>\n<form id=\"decide\" method=\"post\" action=\"/runs/");
        sl_html_seg(&b, run);
        sl_buf_puts(&b, "/gates/");
        sl_html_seg(&b, gate);
        el(&b, "/decide\">\n<input type=\"hidden\" name=\"csrf\" value=\"", s.csrf, "\">\n");
        input_fields(&b, PQgetvalue(res, 0, 7));
        sl_buf_puts(&b, "<p><label for=\"comment\">Comment</label>\n<textarea id=\"comment\" name=\"comment\" "
                    "rows=\"3\" placeholder=\"required to reject\"></textarea></p>\n<p class=\"buttons\">"
                    "<button name=\"decision\" value=\"approve\" id=\"approve\" type=\"submit\">Approve</button>\n"
                    "<button name=\"decision\" value=\"reject\" id=\"reject\" type=\"submit\">Reject</button></p>\n"
                    "</form>\n");
    }
    sl_html_end(&b);
    html(resp, 200, &b);
    goto cleanup;
failed:
    backend_page(r, resp, &err, &s);
cleanup:
    PQclear(res);
    PQclear(ev);
    free(needs);
    sl_buf_free(&b);
    sl_session_clear(&s);
}

/* The names of the gate's typed inputs (owned strings, *n of them). */
static int input_names(sl_db *db, const char *run, const char *gate, char ***names, size_t *n, sl_err *err)
{
    *names = NULL;
    *n = 0;
    const char *p[] = { run, gate };
    PGresult *res = sl_db_exec(db, "inputs", "SELECT e->>'name' FROM sluice_gates g,"
                               " jsonb_array_elements(g.input_spec) e WHERE g.run_id = $1 AND g.gate_id = $2",
                               2, p, err);
    if (res == NULL)
        return -1;
    *names = sl_xcalloc((size_t)PQntuples(res) + 1, sizeof **names);
    for (int i = 0; i < PQntuples(res); i++) {
        if (!PQgetisnull(res, i, 0))
            (*names)[(*n)++] = sl_xstrdup(PQgetvalue(res, i, 0));
    }
    PQclear(res);
    return 0;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void post_decide(sl_request *r, sl_response *resp)
{
    sl_session s;
    sl_db *db;
    sl_err err;
    if (!post_allowed(r, resp, NULL, NULL) || !signed_in(r, resp, false, &s, &db))
        return;
    const char *run = r->params[0], *gate = r->params[1];
    char *decision = NULL, *comment = NULL, **names = NULL, **inputs = NULL;
    size_t nnames = 0, ninputs = 0;
    const char *cookie = sl_http_cookie(r, COOKIE_SESSION);
    if (!post_allowed(r, resp, s.csrf, &s))
        goto cleanup;
    decision = sl_html_form_get(r->body, r->body_len, "decision");
    comment = sl_html_form_get(r->body, r->body_len, "comment");
    bool approve = decision && strcmp(decision, "approve") == 0;
    const char *cls = "refused", *msg = NULL;
    sl_gate_result res;
    memset(&res, 0, sizeof res);
    if (decision == NULL || (!approve && strcmp(decision, "reject") != 0)) {
        msg = "Choose approve or reject.";
    } else if (!sl_scopes_allow(s.scopes, SL_SCOPE_APPROVE)) {
        msg = "Your sign-in does not allow decisions (its token lacks the 'approve' scope).";
    } else if (!approve && (comment == NULL || comment[strspn(comment, " \t\r\n")] == '\0')) {
        msg = "A rejection needs a comment saying why.";
    } else {
        if (approve && input_names(db, run, gate, &names, &nnames, &err) < 0)
            goto failed;
        inputs = sl_xcalloc(nnames + 1, sizeof *inputs);
        for (size_t i = 0; i < nnames; i++) {
            char field[300];
            snprintf(field, sizeof field, "input.%s", names[i]);
            char *v = sl_html_form_get(r->body, r->body_len, field);
            if (v && *v)
                inputs[ninputs++] = sl_xasprintf("%s=%s", names[i], v);
            free(v);
        }
        sl_principal who = { .name = s.principal, .method = s.method, .address = r->address,
                             .groups = (const char *const *)s.groups, .ngroups = s.ngroups };
        if (sl_gate_decide(db, run, gate, &who, approve, comment && *comment ? comment : NULL, inputs, ninputs,
                           &res, &err) < 0)
            goto failed;
        SL_INFO("web.decision", "run=%s gate=%s by=%s method=%s address=%s decision=%s refused=%s", run, gate,
                s.principal, s.method, r->address, approve ? "approve" : "reject", res.refused ? "yes" : "no");
        cls = res.refused ? "refused" : "ok";
        msg = res.message;
    }
    if (sl_session_set_flash(db, cookie, cls, msg, &err) < 0)
        goto failed;
    sl_buf loc = SL_BUF_INIT;
    sl_buf_puts(&loc, "/runs/");
    sl_html_seg(&loc, run);
    sl_buf_puts(&loc, "/gates/");
    sl_html_seg(&loc, gate);
    redirect(resp, sl_buf_str(&loc));
    sl_buf_free(&loc);
    goto cleanup;
failed:
    backend_page(r, resp, &err, &s);
cleanup:
    free(decision);
    free(comment);
    free_strings(names, nnames);
    free_strings(inputs, ninputs);
    sl_session_clear(&s);
}

/* ---- Runs, Run, Audit, Job ----------------------------------------------------------- */

static void get_runs(sl_request *r, sl_response *resp)
{
    sl_session s;
    sl_db *db;
    sl_err err;
    if (!signed_in(r, resp, true, &s, &db))
        return;
    const char *pipeline = sl_http_query(r, "pipeline"), *status = sl_http_query(r, "status");
    if (pipeline && *pipeline == '\0')
        pipeline = NULL;
    if (status && *status == '\0')
        status = NULL;
    const char *p[] = { pipeline, status };
    PGresult *res = sl_db_exec(db, "runs",
        "SELECT id, pipeline, status, triggered_by, " ISO("created_at") ","
        " extract(epoch FROM coalesce(finished_at, now()) - coalesce(started_at, created_at))::text,"
        " coalesce(error, '') FROM sluice_runs WHERE ($1::text IS NULL OR pipeline = $1)"
        " AND ($2::text IS NULL OR status = $2) ORDER BY created_at DESC, id LIMIT 200", 2, p, &err);
    if (res == NULL) {
        backend_page(r, resp, &err, &s);
        sl_session_clear(&s);
        return;
    }
    sl_buf b = SL_BUF_INIT;
    sl_html_begin(&b, "Runs", s.principal, s.csrf);
    sl_buf_puts(&b, "<h1>Runs</h1>\n");
    sl_html_flash(&b, s.flash_class, s.flash);
    sl_buf_puts(&b, "<form id=\"filters\" method=\"get\" action=\"/runs\">\n<label for=\"f-pipeline\">Pipeline</label>"
                "<input id=\"f-pipeline\" name=\"pipeline\" value=\"");
    sl_html_puts(&b, pipeline);
    sl_buf_puts(&b, "\">\n<label for=\"f-status\">Status</label><select id=\"f-status\" name=\"status\">\n");
    static const char *const statuses[] = { "", "queued", "running", "succeeded", "failed", "cancelled" };
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        sl_buf_printf(&b, "<option value=\"%s\"%s>%s</option>\n", statuses[i],
                      (status ? strcmp(status, statuses[i]) == 0 : i == 0) ? " selected" : "",
                      i == 0 ? "any" : statuses[i]);
    }
    sl_buf_puts(&b, "</select>\n<button type=\"submit\">Filter</button>\n</form>\n");
    sl_buf_puts(&b, "<table id=\"runs\">\n<thead><tr><th>Run</th><th>Pipeline</th><th>Status</th>"
                "<th>Triggered by</th><th>Created</th><th>Duration</th></tr></thead>\n<tbody>\n");
    for (int i = 0; i < PQntuples(res); i++) {
        el(&b, "<tr class=\"run\" data-status=\"", PQgetvalue(res, i, 2), "\"><td>");
        run_link(&b, PQgetvalue(res, i, 0));
        sl_buf_puts(&b, "</td>");
        cell(&b, PQgetvalue(res, i, 1));
        el(&b, "<td class=\"status\">", PQgetvalue(res, i, 2), "</td>");
        cell(&b, PQgetvalue(res, i, 3));
        cell(&b, PQgetvalue(res, i, 4));
        sl_buf_puts(&b, "<td>");
        duration(&b, PQgetvalue(res, i, 5));
        sl_buf_puts(&b, "</td></tr>\n");
    }
    end_table(&b, PQntuples(res) == 0, "No run matches.");
    PQclear(res);
    page_done(resp, &b, &s);
}

static void get_run(sl_request *r, sl_response *resp)
{
    sl_session s;
    sl_db *db;
    sl_err err;
    if (!signed_in(r, resp, true, &s, &db))
        return;
    const char *run = r->params[0];
    const char *p[] = { run };
    PGresult *res = NULL, *st = NULL;
    sl_buf b = SL_BUF_INIT;
    res = sl_db_exec(db, "run", "SELECT pipeline, status, triggered_by, " ISO("created_at") ", vars::text,"
                     " coalesce(error, ''), " ISO("finished_at") " FROM sluice_runs WHERE id = $1", 1, p, &err);
    if (res == NULL)
        goto failed;
    if (PQntuples(res) == 0) {
        message_page(resp, 404, "No such run", "error", "No such run.", &s);
        goto cleanup;
    }
    st = sl_db_exec(db, "steps", "SELECT s.step_id, s.status, s.attempt, coalesce(s.job_id, ''),"
                    " extract(epoch FROM coalesce(s.finished_at, now()) - s.queued_at)::text,"
                    " coalesce(jsonb_pretty(s.outputs), ''), coalesce(s.error, ''),"
                    " EXISTS (SELECT 1 FROM sluice_gates g WHERE g.run_id = s.run_id AND g.gate_id = s.step_id)"
                    " FROM sluice_run_steps s WHERE s.run_id = $1 ORDER BY s.position", 1, p, &err);
    if (st == NULL)
        goto failed;
    sl_html_begin(&b, run, s.principal, s.csrf);
    el(&b, "<h1>Run ", PQgetvalue(res, 0, 0), " <small>");
    sl_html_puts(&b, run);
    sl_buf_puts(&b, "</small></h1>\n");
    sl_html_flash(&b, s.flash_class, s.flash);
    el(&b, "<dl id=\"run-info\">\n<dt>Status</dt><dd id=\"run-status\" class=\"status\">", PQgetvalue(res, 0, 1),
       "</dd>\n<dt>Triggered by</dt><dd>");
    sl_html_puts(&b, PQgetvalue(res, 0, 2));
    el(&b, "</dd>\n<dt>Created</dt><dd>", PQgetvalue(res, 0, 3), "</dd>\n<dt>Variables</dt><dd><code>");
    sl_html_puts(&b, PQgetvalue(res, 0, 4));
    sl_buf_puts(&b, "</code></dd>\n");
    if (*PQgetvalue(res, 0, 5)) {
        el(&b, "<dt>Error</dt><dd class=\"error\">", PQgetvalue(res, 0, 5), "</dd>\n");
    }
    sl_buf_puts(&b, "</dl>\n<p><a id=\"audit-link\" href=\"/runs/");
    sl_html_seg(&b, run);
    sl_buf_puts(&b, "/audit\">Audit trail</a></p>\n<h2>Steps</h2>\n<ol id=\"timeline\">\n");
    for (int i = 0; i < PQntuples(st); i++) {
        const char *step = PQgetvalue(st, i, 0);
        bool is_gate = strcmp(PQgetvalue(st, i, 7), "t") == 0;
        el(&b, "<li class=\"step\" data-step=\"", step, "\" data-status=\"");
        sl_html_puts(&b, PQgetvalue(st, i, 1));
        el(&b, "\">\n<h3>", step, " <span class=\"status\">");
        sl_html_puts(&b, PQgetvalue(st, i, 1));
        el(&b, "</span></h3>\n<p class=\"meta\">attempt ", PQgetvalue(st, i, 2), " \xc2\xb7 ");
        duration(&b, PQgetvalue(st, i, 4));
        sl_buf_puts(&b, " ");
        job_link(&b, PQgetvalue(st, i, 3));
        if (is_gate) {
            sl_buf_puts(&b, " <a class=\"gate-link\" href=\"/runs/");
            sl_html_seg(&b, run);
            sl_buf_puts(&b, "/gates/");
            sl_html_seg(&b, step);
            sl_buf_puts(&b, "\">gate page</a>");
        }
        sl_buf_puts(&b, "</p>\n");
        output_pre(&b, PQgetvalue(st, i, 5));
        if (*PQgetvalue(st, i, 6)) {
            el(&b, "<p class=\"error\">", PQgetvalue(st, i, 6), "</p>\n");
        }
        if (is_gate && decisions(&b, db, run, step, NULL, &err) < 0)
            goto failed;
        sl_buf_puts(&b, "</li>\n");
    }
    sl_buf_puts(&b, "</ol>\n");
    sl_html_end(&b);
    html(resp, 200, &b);
    goto cleanup;
failed:
    backend_page(r, resp, &err, &s);
cleanup:
    PQclear(res);
    PQclear(st);
    sl_buf_free(&b);
    sl_session_clear(&s);
}

static void get_audit(sl_request *r, sl_response *resp)
{
    sl_session s;
    sl_db *db;
    sl_err err;
    if (!signed_in(r, resp, true, &s, &db))
        return;
    const char *run = r->params[0];
    const char *p[] = { run };
    PGresult *res = sl_db_exec(db, "audit",
        "SELECT seq, (extract(epoch FROM at) * 1000000)::bigint, run_id, gate_id, actor, decision,"
        " comment, inputs::text, reason, prev_hash, hash, version, method, address, db_role, key_id, sig, "
        ISO("at") " FROM sluice_audit WHERE run_id = $1 ORDER BY seq", 1, p, &err);
    if (res == NULL) {
        backend_page(r, resp, &err, &s);
        sl_session_clear(&s);
        return;
    }
    const sl_sign_key *key = sl_server_audit_key(r->srv);
    char our_id[SL_SIGN_ID_HEX] = "";
    if (key)
        sl_sign_key_id(key, our_id);
    sl_buf b = SL_BUF_INIT;
    sl_html_begin(&b, "Audit", s.principal, s.csrf);
    sl_buf_puts(&b, "<h1>Audit of run ");
    run_link(&b, run);
    sl_buf_puts(&b, "</h1>\n<table id=\"audit\">\n<thead><tr><th>#</th><th>Time</th><th>Gate</th><th>Principal</th>"
                "<th>Method</th><th>Address</th><th>Action</th><th>Comment / reason</th><th>Signature</th></tr>"
                "</thead>\n<tbody>\n");
    for (int i = 0; i < PQntuples(res); i++) {
        sl_audit_row row = {
            .version = atoi(PQgetvalue(res, i, 11)), .seq = PQgetvalue(res, i, 0),
            .at_us = PQgetvalue(res, i, 1), .run_id = PQgetvalue(res, i, 2),
            .gate_id = PQgetvalue(res, i, 3), .actor = PQgetvalue(res, i, 4),
            .decision = PQgetvalue(res, i, 5), .comment = sl_db_value(res, i, 6),
            .inputs = sl_db_value(res, i, 7), .reason = sl_db_value(res, i, 8),
            .prev_hash = PQgetvalue(res, i, 9), .method = sl_db_value(res, i, 12),
            .address = sl_db_value(res, i, 13), .db_role = sl_db_value(res, i, 14),
        };
        const char *kid = sl_db_value(res, i, 15), *sig = sl_db_value(res, i, 16);
        const char *verified, *label;
        if (sig == NULL) {
            verified = "unsigned";
            label = "unsigned";
        } else if (key && kid && strcmp(kid, our_id) == 0 &&
                   sl_audit_row_verifies(&row, PQgetvalue(res, i, 10), sig, key)) {
            verified = "yes";
            label = "verified";
        } else if (key && kid && strcmp(kid, our_id) == 0) {
            verified = "no";
            label = "does not verify";
        } else {
            verified = "no";
            label = "signed by another key (check with sluice audit verify)";
        }
        el(&b, "<tr class=\"audit-row\" data-decision=\"", row.decision, "\">");
        cell(&b, row.seq);
        cell(&b, PQgetvalue(res, i, 17));
        cell(&b, row.gate_id);
        cell(&b, row.actor);
        cell(&b, row.method);
        cell(&b, row.address);
        cell(&b, row.decision);
        sl_buf_puts(&b, "<td>");
        sl_html_puts(&b, row.comment);
        if (row.reason) {
            sl_buf_puts(&b, row.comment ? " \xe2\x80\x94 " : "");
            sl_html_puts(&b, row.reason);
        }
        sl_buf_printf(&b, "</td><td class=\"sig\" data-verified=\"%s\">", verified);
        sl_html_puts(&b, label);
        sl_buf_puts(&b, "</td></tr>\n");
    }
    end_table(&b, PQntuples(res) == 0, "No decision has been recorded for this run.");
    PQclear(res);
    page_done(resp, &b, &s);
}

static void get_job(sl_request *r, sl_response *resp)
{
    sl_session s;
    sl_db *db;
    sl_err err;
    if (!signed_in(r, resp, true, &s, &db))
        return;
    const char *p[] = { r->params[0] };
    PGresult *res = sl_db_exec(db, "job",
        "SELECT id, queue, kind, status, attempts::text, coalesce(max_attempts::text, ''), coalesce(run_id, ''),"
        " coalesce(step_id, ''), " ISO("enqueued_at") ", " ISO("started_at") ", " ISO("finished_at") ","
        " coalesce(worker, ''), coalesce(jsonb_pretty(outputs), ''), coalesce(error, ''), jsonb_pretty(args)"
        " FROM sluice_jobs WHERE id = $1", 1, p, &err);
    if (res == NULL) {
        backend_page(r, resp, &err, &s);
        sl_session_clear(&s);
        return;
    }
    if (PQntuples(res) == 0) {
        message_page(resp, 404, "No such job", "error",
                     "No finished job with this id (a job still queued or running has no result yet).", &s);
        PQclear(res);
        sl_session_clear(&s);
        return;
    }
    static const char *const labels[] = { "Id", "Queue", "Kind", "Status", "Attempts", "Max attempts", "Run",
                                          "Step", "Enqueued", "Started", "Finished", "Worker" };
    sl_buf b = SL_BUF_INIT;
    sl_html_begin(&b, "Job", s.principal, s.csrf);
    el(&b, "<h1>Job ", PQgetvalue(res, 0, 0), "</h1>\n<dl id=\"job-info\">\n");
    for (int c = 0; c < 12; c++) {
        sl_buf_printf(&b, "<dt>%s</dt><dd%s>", labels[c], c == 3 ? " id=\"job-status\" class=\"status\"" : "");
        if (c == 6 && *PQgetvalue(res, 0, 6))
            run_link(&b, PQgetvalue(res, 0, 6));
        else
            sl_html_puts(&b, PQgetvalue(res, 0, c));
        sl_buf_puts(&b, "</dd>\n");
    }
    el(&b, "</dl>\n<h2>Arguments</h2>\n<pre class=\"args\">", PQgetvalue(res, 0, 14), "</pre>\n<h2>Outputs</h2>\n");
    output_pre(&b, PQgetvalue(res, 0, 12));
    if (*PQgetvalue(res, 0, 13)) {
        el(&b, "<h2>Error</h2>\n<p id=\"job-error\" class=\"error\">", PQgetvalue(res, 0, 13), "</p>\n");
    }
    PQclear(res);
    page_done(resp, &b, &s);
}

/* ---- Queues ------------------------------------------------------------------------------ */

typedef struct rate_rec {
    char name[SL_NAME_MAX + 1];
    long long processed, failed;
} rate_rec;

struct sl_web_rates {
    pthread_mutex_t mu;   /* guards the rest */
    int64_t at_ms;        /* when recs were taken (Unix ms), 0: never */
    rate_rec *recs;       /* owned, n of them */
    size_t n;
};

sl_web_rates *sl_web_rates_new(void)
{
    sl_web_rates *w = sl_xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    return w;
}

void sl_web_rates_free(sl_web_rates *w)
{
    if (w == NULL)
        return;
    pthread_mutex_destroy(&w->mu);
    free(w->recs);
    free(w);
}

/* Per-second rates of processed and failed jobs of each queue of sn since
 * the counters recorded before (proc[i], fail[i]; -1 when unknown), then
 * records sn's counters if at least a second has passed. */
static void rates_of(sl_web_rates *w, const snap *sn, double *proc, double *fail)
{
    pthread_mutex_lock(&w->mu);
    double dt = (double)(sn->taken_ms - w->at_ms) / 1000.0;
    for (size_t i = 0; i < sn->nqueues; i++) {
        proc[i] = fail[i] = -1;
        for (size_t k = 0; w->at_ms > 0 && dt >= 1.0 && k < w->n; k++) {
            if (strcmp(w->recs[k].name, sn->queues[i].name) != 0)
                continue;
            long long dp = sn->queues[i].m.totals[SL_M_PROCESSED] - w->recs[k].processed;
            long long df = sn->queues[i].m.totals[SL_M_FAILED] - w->recs[k].failed;
            proc[i] = dp >= 0 ? (double)dp / dt : -1;   /* counters reset: unknown */
            fail[i] = df >= 0 ? (double)df / dt : -1;
        }
    }
    if (w->at_ms == 0 || dt >= 1.0) {
        w->recs = sl_xrealloc(w->recs, (sn->nqueues + 1) * sizeof *w->recs);
        for (size_t i = 0; i < sn->nqueues; i++) {
            snprintf(w->recs[i].name, sizeof w->recs[i].name, "%s", sn->queues[i].name);
            w->recs[i].processed = sn->queues[i].m.totals[SL_M_PROCESSED];
            w->recs[i].failed = sn->queues[i].m.totals[SL_M_FAILED];
        }
        w->n = sn->nqueues;
        w->at_ms = sn->taken_ms;
    }
    pthread_mutex_unlock(&w->mu);
}

/* A rate cell: "12.5/s", or a dash when unknown. */
static void rate_cell(sl_buf *b, double r)
{
    char num[SL_NUMFMT_MAX];
    if (r < 0)
        sl_buf_puts(b, "<td>\xe2\x80\x94</td>");
    else
        sl_buf_printf(b, "<td>%s/s</td>", sl_fmt_double((double)(long long)(r * 10 + 0.5) / 10, num));
}

static void get_queues(sl_request *r, sl_response *resp)
{
    sl_session s;
    sl_db *db;
    sl_err err, pgerr;
    if (!signed_in(r, resp, true, &s, &db))
        return;
    sl_redis *redis = sl_backends_redis(r->be, &err);
    sl_store *store = redis ? sl_backends_store(r->be, &pgerr) : NULL;
    snap sn;
    memset(&sn, 0, sizeof sn);
    if (redis == NULL || snap_take(redis, store, NULL, 0, &sn, &err) < 0) {
        snap_clear(&sn);
        backend_page(r, resp, &err, &s);
        sl_session_clear(&s);
        return;
    }
    double *proc = sl_xcalloc(sn.nqueues + 1, sizeof *proc), *fail = sl_xcalloc(sn.nqueues + 1, sizeof *fail);
    rates_of(sl_server_web_rates(r->srv), &sn, proc, fail);
    sl_buf b = SL_BUF_INIT;
    sl_html_begin(&b, "Queues", s.principal, s.csrf);
    sl_buf_puts(&b, "<h1>Queues</h1>\n<table id=\"queues\">\n<thead><tr><th>Queue</th><th>Waiting</th>"
                "<th>In flight</th><th>Delayed</th><th>Dead</th><th>Workers</th><th>Enqueued</th><th>Processed</th>"
                "<th>Failed</th><th>Processed/s</th><th>Failed/s</th><th>Wait p50</th><th>Run p50</th><th>Run p95</th>"
                "<th>Oldest waiting</th><th>State</th></tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < sn.nqueues; i++) {
        const snap_queue *q = &sn.queues[i];
        el(&b, "<tr class=\"queue\" data-queue=\"", q->name, "\">");
        cell(&b, q->name);
        sl_buf_printf(&b, "<td>%lld</td><td>%lld</td><td>%lld</td><td>%lld</td><td>%lld</td>"
                      "<td>%lld</td><td>%lld</td><td>%lld</td>", q->depth, q->pending, q->delayed, q->dead,
                      q->workers, q->enqueued, q->m.totals[SL_M_PROCESSED], q->m.totals[SL_M_FAILED]);
        rate_cell(&b, proc[i]);
        rate_cell(&b, fail[i]);
        const double qs[] = { sl_histogram_quantile_ms(&q->m.wait, 0.5), sl_histogram_quantile_ms(&q->m.run, 0.5),
                              sl_histogram_quantile_ms(&q->m.run, 0.95) };
        for (size_t k = 0; k < 3; k++) {
            char secs[32];
            snprintf(secs, sizeof secs, "%.3f", qs[k] / 1000.0);
            sl_buf_puts(&b, "<td>");
            duration(&b, qs[k] < 0 ? NULL : secs);
            sl_buf_puts(&b, "</td>");
        }
        sl_buf_puts(&b, "<td>");
        if (q->oldest_ms > 0) {
            char secs[32];
            snprintf(secs, sizeof secs, "%.3f", (double)(sn.taken_ms - q->oldest_ms) / 1000.0);
            duration(&b, secs);
        } else {
            sl_buf_puts(&b, "\xe2\x80\x94");
        }
        sl_buf_printf(&b, "</td><td>%s</td></tr>\n",
                      q->paused ? "paused" : snap_queue_unserved(q) ? "unserved" : "ok");
    }
    end_table(&b, sn.nqueues == 0, "No queue is known yet.");
    sl_buf_printf(&b, "<p class=\"meta\">%zu open gate(s); %zu worker process(es).</p>\n", sn.ngates, sn.nworkers);
    sl_html_end(&b);
    html(resp, 200, &b);
    snap_clear(&sn);
    free(proc);
    free(fail);
    sl_session_clear(&s);
}

/* ---- /static ------------------------------------------------------------------------------- */

static void get_css(sl_request *r, sl_response *resp)
{
    (void)r;
    sl_buf_reset(&resp->body);
    sl_buf_append(&resp->body, sl_web_css, sl_web_css_len);
    resp->status = 200;
    resp->content_type = "text/css; charset=utf-8";
}

static void get_js(sl_request *r, sl_response *resp)
{
    (void)r;
    sl_buf_reset(&resp->body);
    sl_buf_append(&resp->body, sl_web_js, sl_web_js_len);
    resp->status = 200;
    resp->content_type = "text/javascript; charset=utf-8";
}

/* ---- the table ------------------------------------------------------------------------------ */

/* Scope 0 for http.c: these handlers authenticate with the session themselves. */
const sl_route sl_web_routes[] = {
    { "GET", "/", 0, get_root },
    { "GET", "/login", 0, get_login },
    { "POST", "/login", 0, post_login },
    { "GET", "/login/oidc", 0, get_login_oidc },
    { "GET", "/login/oidc/callback", 0, get_login_oidc_callback },
    { "POST", "/logout", 0, post_logout },
    { "GET", "/gates", 0, get_gates },
    { "GET", "/runs", 0, get_runs },
    { "GET", "/runs/{}", 0, get_run },
    { "GET", "/runs/{}/audit", 0, get_audit },
    { "GET", "/runs/{}/gates/{}", 0, get_gate },
    { "POST", "/runs/{}/gates/{}/decide", 0, post_decide },
    { "GET", "/jobs/{}", 0, get_job },
    { "GET", "/queues", 0, get_queues },
    { "GET", "/static/sluice.css", 0, get_css },
    { "GET", "/static/sluice.js", 0, get_js },
};
const size_t sl_web_nroutes = sizeof sl_web_routes / sizeof sl_web_routes[0];
