/* test_web.c: the web pages of `sluice serve` over real sockets, against
 * the test PostgreSQL and Redis: the one escaping function with hostile
 * strings; every page redirecting to sign-in without a session and
 * rendering with one, with the security headers; hostile names, outputs,
 * instructions and comments coming back inert; POSTs without the CSRF token
 * or from another site refused with nothing decided; decisions recorded
 * as the session's principal and method, a second decision shown refused
 * with its reason; session cookie flags, expiry and sign-out; token
 * sign-in failures rate limited; the reverse-proxy header trusted only from
 * the configured address; and OIDC sign-in against a small local provider. */
#include "apiserver.h"
#include "harness.h"
#include "httpd.h"

#include "base64.h"
#include "buf.h"
#include "html.h"
#include "mem.h"
#include "redis.h"
#include "sha256.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static char dir[64];     /* this test's files */
static char *config;     /* its configuration */

/* Writes the configuration with extra lines for api: (indented by two). */
static void write_config(const char *api_extra)
{
    free(config);
    config = sl_xasprintf("%s/sluice.config", dir);
    char *text = sl_xasprintf("scheduler:\n  pipelines: %s\napi:\n  rate_limit: 10000\n  rate_burst: 10000\n%s",
                              dir, api_extra ? api_extra : "");
    th_write_file(config, text);
    free(text);
}

static void setup(void)
{
    th_migrate();
    snprintf(dir, sizeof dir, "/tmp/sluice-web-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    write_config(NULL);
}

static void teardown(void)
{
    free(config);
    config = NULL;
}

TestSuite(web, .init = setup, .fini = teardown, .timeout = 120);
TestSuite(html, .timeout = 30);

/* ---- the escaping function ---------------------------------------------------- */

static char *escaped(const char *s, size_t n)
{
    sl_buf b = SL_BUF_INIT;
    sl_html_text(&b, s, n);
    sl_buf_puts(&b, "");
    return sl_buf_detach(&b);
}

Test(html, hostile_strings_become_inert_text)
{
    static const char *const hostile[] = {
        "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "' onmouseover='alert(1)",
        "</textarea><script>x()</script>", "<!-- -->", "&lt;already&gt;", "javascript:alert(1)",
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        char *e = escaped(hostile[i], strlen(hostile[i]));
        cr_assert(strpbrk(e, "<>\"'") == NULL, "'%s' escaped to '%s'", hostile[i], e);
        /* every & starts a character reference we wrote */
        for (const char *p = strchr(e, '&'); p; p = strchr(p + 1, '&'))
            cr_assert(strncmp(p, "&amp;", 5) == 0 || strncmp(p, "&lt;", 4) == 0 || strncmp(p, "&gt;", 4) == 0 ||
                      strncmp(p, "&quot;", 6) == 0 || strncmp(p, "&#39;", 5) == 0, "%s", e);
        free(e);
    }
    char *e = escaped("<b>&\"'", 6);
    cr_assert_str_eq(e, "&lt;b&gt;&amp;&quot;&#39;");
    free(e);
    /* control characters are shown, not passed through; tab and newline stay */
    e = escaped("a\x1b[31mb\x01\x7f\tc\nd", strlen("a\x1b[31mb\x01\x7f\tc\nd"));
    cr_assert_str_eq(e, "a\\x1b[31mb\\x01\\x7f\tc\nd");
    free(e);
    /* a NUL inside the length is shown too */
    e = escaped("a\0b", 3);
    cr_assert_str_eq(e, "a\\x00b");
    free(e);
    /* malformed UTF-8 becomes U+FFFD; well-formed passes */
    e = escaped("\xff<\xc3\xa9\xe2\x82", 6);
    cr_assert_str_eq(e, "\xef\xbf\xbd&lt;\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd");
    free(e);
    /* path segments: only unreserved characters survive */
    sl_buf b = SL_BUF_INIT;
    sl_html_seg(&b, "a/b?c=\"d\"<e> f");
    cr_assert_str_eq(sl_buf_str(&b), "a%2Fb%3Fc%3D%22d%22%3Ce%3E%20f");
    sl_buf_free(&b);
}

Test(html, form_decoding)
{
    const char *body = "csrf=abc&comment=a+b%3Cc%3E&input.x=1&input.x=2&bad=%zz&nul=a%00b";
    char *v = sl_html_form_get(body, strlen(body), "comment");
    cr_assert_str_eq(v, "a b<c>");
    free(v);
    v = sl_html_form_get(body, strlen(body), "input.x");
    cr_assert_str_eq(v, "2", "the last occurrence wins (a checkbox after its hidden default)");
    free(v);
    cr_assert_null(sl_html_form_get(body, strlen(body), "bad"));
    cr_assert_null(sl_html_form_get(body, strlen(body), "nul"));
    cr_assert_null(sl_html_form_get(body, strlen(body), "missing"));
    cr_assert_null(sl_html_form_decode("%4", 2));
}

/* ---- HTTP with cookies ---------------------------------------------------------- */

typedef struct reply {
    long status;
    char *body;
    char *headers;
} reply;

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    sl_buf_append(arg, data, size * n);
    return size * n;
}

static const char *source_ip;   /* connect from this address (NULL: default) */
static const char *ca_file;     /* trust this CA for https (NULL: none) */

/* method url with optional Cookie header value, form body and up to two
 * more headers. */
static reply req(const char *method, const char *url, const char *cookie, const char *form, const char *h1,
                 const char *h2)
{
    reply r = { 0 };
    sl_buf b = SL_BUF_INIT, h = SL_BUF_INIT;
    struct curl_slist *hs = NULL;
    char *ck = cookie ? sl_xasprintf("Cookie: %s", cookie) : NULL;
    if (ck)
        hs = curl_slist_append(hs, ck);
    if (form)
        hs = curl_slist_append(hs, "Content-Type: application/x-www-form-urlencoded");
    if (h1)
        hs = curl_slist_append(hs, h1);
    if (h2)
        hs = curl_slist_append(hs, h2);
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    if (source_ip)
        curl_easy_setopt(c, CURLOPT_INTERFACE, source_ip);
    if (ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
    if (form)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    CURLcode cc = curl_easy_perform(c);
    cr_assert_eq(cc, CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hs);
    free(ck);
    sl_buf_puts(&b, "");
    sl_buf_puts(&h, "");
    r.body = sl_buf_detach(&b);
    r.headers = sl_buf_detach(&h);
    return r;
}

static void reply_free(reply *r)
{
    free(r->body);
    free(r->headers);
}

/* The value of header name (case-insensitive) in r (caller frees), the
 * nth one of that name (0: first), or NULL. */
static char *header(const reply *r, const char *name, int nth)
{
    size_t n = strlen(name);
    for (const char *p = r->headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > n && strncasecmp(p, name, n) == 0 && p[n] == ':' && nth-- == 0) {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            return sl_xstrndup(v, len - (size_t)(v - p));
        }
        p = eol ? eol + 2 : p + len;
    }
    return NULL;
}

/* The value of cookie name set by r (caller frees), or NULL; *line gets
 * the whole Set-Cookie line when line is not NULL. */
static char *set_cookie(const reply *r, const char *name, char **line)
{
    for (int i = 0; i < 4; i++) {
        char *v = header(r, "Set-Cookie", i);
        if (v == NULL)
            break;
        size_t n = strlen(name);
        if (strncmp(v, name, n) == 0 && v[n] == '=') {
            char *val = sl_xstrndup(v + n + 1, strcspn(v + n + 1, ";"));
            if (line)
                *line = v;
            else
                free(v);
            return val;
        }
        free(v);
    }
    return NULL;
}

/* The value="" of the hidden csrf field in a page (caller frees). */
static char *csrf_of(const char *body)
{
    const char *p = strstr(body, "name=\"csrf\" value=\"");
    cr_assert_not_null(p, "no csrf field in:\n%s", body);
    p += strlen("name=\"csrf\" value=\"");
    return sl_xstrndup(p, strcspn(p, "\""));
}

static char *page_url(const th_server *s, const char *path) { return sl_xasprintf("%s%s", s->url, path); }

static reply get(const th_server *s, const char *path, const char *session)
{
    char *u = page_url(s, path);
    char *ck = session ? sl_xasprintf("sluice_session=%s", session) : NULL;
    reply r = req("GET", u, ck, NULL, NULL, NULL);
    free(ck);
    free(u);
    return r;
}

/* POSTs form to path with the session cookie and an Origin of this server. */
static reply post(const th_server *s, const char *path, const char *session, const char *form, const char *extra)
{
    char *u = page_url(s, path);
    char *ck = session ? sl_xasprintf("sluice_session=%s", session) : NULL;
    char *origin = sl_xasprintf("Origin: %s", s->url);
    reply r = req("POST", u, ck, form, origin, extra);
    free(origin);
    free(ck);
    free(u);
    return r;
}

/* Token sign-in through the form; returns the session cookie's value,
 * or NULL when refused (*status gets the answer's status). */
static char *sign_in(const th_server *s, const char *token, long *status)
{
    reply r = get(s, "/login?next=/gates", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char *pre = set_cookie(&r, "sluice_pre", NULL);
    cr_assert_not_null(pre, "%s", r.headers);
    char *csrf = csrf_of(r.body);
    reply_free(&r);
    char *u = page_url(s, "/login");
    char *ck = sl_xasprintf("sluice_pre=%s", pre);
    char *form = sl_xasprintf("csrf=%s&next=%%2Fgates&token=%s", csrf, token);
    char *origin = sl_xasprintf("Origin: %s", s->url);
    r = req("POST", u, ck, form, origin, NULL);
    if (status)
        *status = r.status;
    char *session = r.status == 303 ? set_cookie(&r, "sluice_session", NULL) : NULL;
    if (r.status == 303) {
        char *loc = header(&r, "Location", 0);
        cr_assert_str_eq(loc, "/gates");
        free(loc);
    }
    reply_free(&r);
    free(origin);
    free(form);
    free(ck);
    free(u);
    free(csrf);
    free(pre);
    return session;
}

/* ---- a run waiting at a gate, written as the scheduler would ------------------------- */

static const char *seed_db;   /* a private database to seed (NULL: the shared one) */

static void sql(const char *text, int n, const char *const *params)
{
    char *wrapped = sl_xasprintf("WITH x AS (%s RETURNING 1) SELECT count(*) FROM x", text);
    if (seed_db == NULL) {
        cr_assert_geq(th_pg_number(wrapped, n, params), 0);
    } else {
        char *url = th_pg_url("sluice", seed_db);
        PGconn *c = PQconnectdb(url);
        PGresult *res = PQexecParams(c, wrapped, n, NULL, params, NULL, NULL, 0);
        cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
        PQclear(res);
        PQfinish(c);
        free(url);
    }
    free(wrapped);
}

/* Makes run `run` of pipeline `pipeline`, triggered by `by`, whose step
 * `build` succeeded with output `out` and whose gate `g` (approvers a and
 * b, `required` approvals, instructions `instr`, inputs: a string with a
 * default and a bool) is open. */
static void seed(const char *run, const char *pipeline, const char *by, const char *out, const char *instr,
                 const char *approvers, const char *required)
{
    char *source = sl_xasprintf("name: %s\nsteps:\n  - {id: build, kind: noop}\n"
                                "  - id: g\n    needs: [build]\n    approval: {approvers: [alice, bob]}\n", pipeline);
    const char *pr[] = { run, pipeline, source, by };
    sql("INSERT INTO sluice_runs (id, pipeline, source_name, source, triggered_by, status, started_at)"
        " VALUES ($1, $2, 'web.yaml', $3, $4, 'running', now())", 4, pr);
    char *job = sl_xasprintf("%s.build.1.x", run);
    const char *ps[] = { run, job, out };
    sql("INSERT INTO sluice_run_steps (run_id, step_id, position, status, job_id, attempt, queued_at, finished_at,"
        " outputs) VALUES ($1, 'build', 0, 'succeeded', $2, 1, now() - interval '3 seconds', now(),"
        " jsonb_build_object('log', $3::text))", 3, ps);
    sql("INSERT INTO sluice_run_steps (run_id, step_id, position, status) VALUES ($1, 'g', 1, 'waiting')", 1, ps);
    sql("INSERT INTO sluice_jobs (id, queue, kind, status, attempts, run_id, step_id, outputs)"
        " VALUES ($2, 'web-q', 'noop', 'succeeded', 1, $1, 'build', jsonb_build_object('log', $3::text))", 3, ps);
    const char *pg[] = { run, approvers, required, by, instr };
    sql("INSERT INTO sluice_gates (run_id, gate_id, status, approvers, required, triggered_by, input_spec,"
        " instructions, deadline) VALUES ($1, 'g', 'open', string_to_array($2, ','), $3::integer, $4,"
        " '[{\"name\": \"target\", \"type\": \"string\", \"default\": \"eu-1\"},"
        "   {\"name\": \"canary\", \"type\": \"bool\", \"default\": true}]', $5, now() + interval '1 hour')", 5, pg);
    free(job);
    free(source);
}

static long long audit_count(const char *run, const char *decision)
{
    const char *p[] = { run, decision };
    return th_pg_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1 AND decision = $2", 2, p);
}

static char *new_run(const char *prefix)
{
    char name[64];
    th_name(name, sizeof name, prefix);
    return sl_xstrdup(name);
}

/* ---- the pages ---------------------------------------------------------------------- */

static const char *const pages[] = { "/gates", "/runs", "/queues", "/runs/RUN", "/runs/RUN/gates/g",
                                     "/runs/RUN/audit", "/jobs/RUN.build.1.x" };

/* path with RUN replaced by run (caller frees). */
static char *page_of(const char *path, const char *run)
{
    const char *at = strstr(path, "RUN");
    return at ? sl_xasprintf("%.*s%s%s", (int)(at - path), path, run, at + 3) : sl_xstrdup(path);
}

Test(web, signed_out_pages_redirect_to_sign_in)
{
    th_server s;
    th_serve_start(&s, config, false, NULL);
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        char *path = page_of(pages[i], "somerun");
        reply r = get(&s, path, NULL);
        cr_assert_eq(r.status, 303, "%s: %ld", path, r.status);
        char *loc = header(&r, "Location", 0);
        cr_assert(loc && strncmp(loc, "/login?next=", 12) == 0, "%s -> %s", path, loc ? loc : "(none)");
        free(loc);
        reply_free(&r);
        /* a made-up session cookie is no better */
        r = get(&s, path, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        cr_assert_eq(r.status, 303, "%s with a made-up session: %ld", path, r.status);
        reply_free(&r);
        free(path);
    }
    reply r = get(&s, "/", NULL);
    cr_assert_eq(r.status, 303);
    char *loc = header(&r, "Location", 0);
    cr_assert_str_eq(loc, "/login?next=/gates");
    free(loc);
    reply_free(&r);
    /* the sign-in page: security headers, and only same-site relative next paths */
    r = get(&s, "/login?next=//evil.example/x", NULL);
    cr_assert_eq(r.status, 200);
    char *csp = header(&r, "Content-Security-Policy", 0);
    cr_assert(csp && strstr(csp, "default-src 'none'") && strstr(csp, "script-src 'self'") &&
              strstr(csp, "frame-ancestors 'none'"), "%s", csp ? csp : "(none)");
    free(csp);
    char *xfo = header(&r, "X-Frame-Options", 0), *rp = header(&r, "Referrer-Policy", 0);
    char *nos = header(&r, "X-Content-Type-Options", 0), *cc = header(&r, "Cache-Control", 0);
    cr_assert(xfo && strcmp(xfo, "DENY") == 0 && rp && nos && strcmp(nos, "nosniff") == 0 && cc &&
              strcmp(cc, "no-store") == 0, "%s", r.headers);
    free(xfo);
    free(rp);
    free(nos);
    free(cc);
    cr_assert(strstr(r.body, "<form id=\"login-token\" method=\"post\" action=\"/login\">"), "%s", r.body);
    cr_assert(strstr(r.body, "name=\"next\" value=\"/gates\""), "%s", r.body);
    cr_assert(!strstr(r.body, "evil.example"), "%s", r.body);
    cr_assert(!strstr(r.body, "login-oidc"), "no OIDC link without api.oidc");
    reply_free(&r);
    /* the stylesheet and script are served; a POST without a session changes nothing */
    r = get(&s, "/static/sluice.css", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "@media"), "a stylesheet for phones too");
    reply_free(&r);
    r = get(&s, "/static/sluice.js", NULL);
    cr_assert_eq(r.status, 200);
    reply_free(&r);
    r = post(&s, "/logout", NULL, "csrf=x", NULL);
    cr_assert_eq(r.status, 303);
    reply_free(&r);
    /* a cross-site form (its cookies stay home: SameSite) or one without a token: 403, not a redirect */
    r = post(&s, "/runs/x/gates/g/decide", NULL, "decision=approve", NULL);
    cr_assert_eq(r.status, 403, "%ld", r.status);
    cr_assert(strstr(r.body, "<p id=\"flash\" class=\"error\">"), "%s", r.body);
    reply_free(&r);
    r = post(&s, "/runs/x/gates/g/decide", NULL, "csrf=x&decision=approve", "Sec-Fetch-Site: cross-site");
    cr_assert_eq(r.status, 403, "%ld", r.status);
    reply_free(&r);
    th_serve_stop(&s);
}

Test(web, every_page_renders_for_a_signed_in_approver)
{
    char *run = new_run("webpages");
    seed(run, "webpipe", "carol", "built ok", "Check the build, then approve.", "alice,bob", "1");
    th_server s;
    th_serve_start(&s, config, false, NULL);
    char *token = th_token(config, "alice", "read,approve", NULL);
    char *session = sign_in(&s, token, NULL);
    cr_assert_not_null(session);
    static const char *const marks[] = { "<table id=\"my-gates\">", "<table id=\"runs\">", "<table id=\"queues\">",
                                         "<ol id=\"timeline\">", "<dl id=\"gate-info\">", "<table id=\"audit\">",
                                         "<dl id=\"job-info\">" };
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        char *path = page_of(pages[i], run);
        reply r = get(&s, path, session);
        cr_assert_eq(r.status, 200, "%s: %ld\n%s", path, r.status, r.body);
        cr_assert(strstr(r.body, marks[i]), "%s lacks %s:\n%s", path, marks[i], r.body);
        cr_assert(strstr(r.body, "<nav>") && strstr(r.body, "<form id=\"logout\" method=\"post\" action=\"/logout\">"),
                  "%s", path);
        cr_assert(strstr(r.body, "name=\"viewport\""), "%s", path);
        char *csp = header(&r, "Content-Security-Policy", 0);
        cr_assert_not_null(csp, "%s", path);
        free(csp);
        free(path);
        reply_free(&r);
    }
    /* My gates lists the gate with a link and a deadline */
    reply r = get(&s, "/gates", session);
    char *link = sl_xasprintf("<a class=\"gate-link\" href=\"/runs/%s/gates/g\">", run);
    cr_assert(strstr(r.body, link), "%s", r.body);
    cr_assert(strstr(r.body, "<tr class=\"gate\">") && strstr(r.body, "<time class=\"deadline\" datetime=\""),
              "%s", r.body);
    reply_free(&r);
    free(link);
    /* the gate page: status, instructions, evidence with its output and job, the form with typed inputs */
    char *gp = sl_xasprintf("/runs/%s/gates/g", run);
    r = get(&s, gp, session);
    cr_assert(strstr(r.body, "<dd id=\"gate-status\" class=\"status\">open</dd>"), "%s", r.body);
    cr_assert(strstr(r.body, "<div id=\"instructions\">Check the build, then approve.</div>"), "%s", r.body);
    cr_assert(strstr(r.body, "<div class=\"evidence-step\" data-step=\"build\" data-status=\"succeeded\">"), "%s",
              r.body);
    cr_assert(strstr(r.body, "built ok") && strstr(r.body, "class=\"job-link\" href=\"/jobs/"), "%s", r.body);
    cr_assert(strstr(r.body, "name=\"input.target\" value=\"eu-1\""), "%s", r.body);
    cr_assert(strstr(r.body, "type=\"checkbox\"") && strstr(r.body, "name=\"input.canary\" value=\"true\" checked"),
              "%s", r.body);
    cr_assert(strstr(r.body, "<button name=\"decision\" value=\"approve\" id=\"approve\"") &&
              strstr(r.body, "<textarea id=\"comment\" name=\"comment\""), "%s", r.body);
    cr_assert(strstr(r.body, "<p id=\"approvers-left\">0 of 1 approvals; 1 more needed, from: alice, bob."), "%s",
              r.body);
    reply_free(&r);
    /* the session cookie's flags; the database holds only its hash */
    r = get(&s, "/login", NULL);
    reply_free(&r);
    long status = 0;
    char *pre_line = NULL;
    reply lr = get(&s, "/login", NULL);
    char *pre = set_cookie(&lr, "sluice_pre", &pre_line);
    cr_assert(pre_line && strstr(pre_line, "HttpOnly") && strstr(pre_line, "SameSite=Lax"), "%s", pre_line);
    char *csrf = csrf_of(lr.body);
    char *form = sl_xasprintf("csrf=%s&next=%%2Fruns&token=%s", csrf, token);
    char *ck = sl_xasprintf("sluice_pre=%s", pre);
    char *u = page_url(&s, "/login");
    char *origin = sl_xasprintf("Origin: %s", s.url);
    reply pr = req("POST", u, ck, form, origin, NULL);
    status = pr.status;
    cr_assert_eq(status, 303, "%s", pr.body);
    char *line = NULL;
    char *again = set_cookie(&pr, "sluice_session", &line);
    cr_assert_not_null(again);
    cr_assert_eq(strlen(again), 64, "256 random bits: %s", again);
    cr_assert(strstr(line, "HttpOnly") && strstr(line, "SameSite=Lax") && strstr(line, "Path=/") &&
              strstr(line, "Max-Age=28800"), "%s", line);
    cr_assert(!strstr(line, "Secure"), "not Secure over plain http: %s", line);
    char *loc = header(&pr, "Location", 0);
    cr_assert_str_eq(loc, "/runs");
    const char *pa[] = { again };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_web_sessions WHERE id_hash = $1 OR csrf = $1", 1, pa), 0);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_web_sessions WHERE"
                              " id_hash = encode(sha256(convert_to($1, 'UTF8')), 'hex')", 1, pa), 1);
    free(loc);
    free(line);
    free(again);
    reply_free(&pr);
    free(origin);
    free(u);
    free(ck);
    free(form);
    free(csrf);
    free(pre);
    free(pre_line);
    reply_free(&lr);
    th_serve_stop(&s);
    free(gp);
    free(session);
    free(token);
    free(run);
}

Test(web, hostile_strings_come_back_inert)
{
    char *run = new_run("webxss");
    const char *evil = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>'\x1b[2J";
    seed(run, "webxss", "<script>alert('trigger')</script>", evil, "<b>Read</b> <script>alert(3)</script>\x1b[2J",
         "alice,bob", "2");
    th_server s;
    th_serve_start(&s, config, false, NULL);
    char *token = th_token(config, "alice", "read,approve", NULL);
    char *session = sign_in(&s, token, NULL);
    cr_assert_not_null(session);
    /* a comment with markup, through the form */
    reply r = get(&s, "/gates", session);
    char *csrf = csrf_of(r.body);
    reply_free(&r);
    char *dp = sl_xasprintf("/runs/%s/gates/g/decide", run);
    char *form = sl_xasprintf("csrf=%s&decision=approve&input.target=%%3Cscript%%3Ealert(4)%%3C%%2Fscript%%3E"
                              "&comment=%%3C%%2Fq%%3E%%3Cscript%%3Ealert(5)%%3C%%2Fscript%%3E", csrf);
    r = post(&s, dp, session, form, NULL);
    cr_assert_eq(r.status, 303, "%s", r.body);
    reply_free(&r);
    cr_assert_eq(audit_count(run, "approve"), 1);
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        char *path = page_of(pages[i], run);
        r = get(&s, path, session);
        cr_assert_eq(r.status, 200, "%s", path);
        cr_assert(!strstr(r.body, "<script>alert") && !strstr(r.body, "<img") && !strstr(r.body, "\x1b"),
                  "%s shows markup it was given:\n%s", path, r.body);
        cr_assert(!strstr(r.body, "<b>Read"), "%s", path);
        free(path);
        reply_free(&r);
    }
    /* ... and shows it as text */
    char *gp = sl_xasprintf("/runs/%s/gates/g", run);
    r = get(&s, gp, session);
    cr_assert(strstr(r.body, "&lt;script&gt;alert(1)&lt;/script&gt;"), "%s", r.body);
    cr_assert(strstr(r.body, "&lt;img src=x onerror=alert(2)&gt;"), "%s", r.body);
    cr_assert(strstr(r.body, "&lt;b&gt;Read&lt;/b&gt; &lt;script&gt;alert(3)&lt;/script&gt;"), "%s", r.body);
    cr_assert(strstr(r.body, "&lt;script&gt;alert(&#39;trigger&#39;)&lt;/script&gt;"), "%s", r.body);
    cr_assert(strstr(r.body, "&lt;/q&gt;&lt;script&gt;alert(5)&lt;/script&gt;"), "%s", r.body);
    cr_assert(strstr(r.body, "&lt;/script&gt;\\x1b[2J</div>"), "the escape character is shown: %s", r.body);
    cr_assert(strstr(r.body, "\\u001b[2J"), "in outputs, as JSON writes it: %s", r.body);
    reply_free(&r);
    th_serve_stop(&s);
    free(gp);
    free(form);
    free(dp);
    free(csrf);
    free(session);
    free(token);
    free(run);
}

Test(web, posts_need_the_csrf_token_and_this_site)
{
    char *run = new_run("webcsrf");
    seed(run, "webcsrf", "carol", "ok", "", "alice,bob", "1");
    th_server s;
    th_serve_start(&s, config, false, NULL);
    char *token = th_token(config, "alice", "read,approve", NULL);
    char *session = sign_in(&s, token, NULL);
    cr_assert_not_null(session);
    char *gp = sl_xasprintf("/runs/%s/gates/g", run);
    reply r = get(&s, gp, session);
    char *csrf = csrf_of(r.body);
    reply_free(&r);
    char *dp = sl_xasprintf("%s/decide", gp);
    char *good = sl_xasprintf("csrf=%s&decision=approve&input.target=eu-2", csrf);
    char *wrong = sl_xasprintf("csrf=%.63s%c&decision=approve", csrf, csrf[63] == 'a' ? 'b' : 'a');
    /* no token, a wrong token, another user's page token: 403, nothing decided */
    const char *bad[] = { "decision=approve", wrong, "csrf=&decision=approve" };
    for (size_t i = 0; i < 3; i++) {
        r = post(&s, dp, session, bad[i], NULL);
        cr_assert_eq(r.status, 403, "%s: %ld", bad[i], r.status);
        cr_assert(strstr(r.body, "<p id=\"flash\" class=\"error\">"), "%s", r.body);
        reply_free(&r);
    }
    /* the right token from another site */
    char *u = page_url(&s, dp);
    char *ck = sl_xasprintf("sluice_session=%s", session);
    r = req("POST", u, ck, good, "Origin: http://evil.example", NULL);
    cr_assert_eq(r.status, 403, "cross-site Origin: %ld", r.status);
    reply_free(&r);
    r = req("POST", u, ck, good, "Origin: null", NULL);
    cr_assert_eq(r.status, 403, "opaque Origin: %ld", r.status);
    reply_free(&r);
    r = post(&s, dp, session, good, "Sec-Fetch-Site: cross-site");
    cr_assert_eq(r.status, 403, "Sec-Fetch-Site: cross-site: %ld", r.status);
    reply_free(&r);
    /* sign-out without the token does not sign out */
    r = post(&s, "/logout", session, "csrf=nope", NULL);
    cr_assert_eq(r.status, 403);
    reply_free(&r);
    const char *p[] = { run };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1", 1, p), 0, "nothing decided");
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_gates WHERE run_id = $1 AND status = 'open'", 1, p), 1);
    /* with everything right: decided as alice, method web-token, the input recorded */
    r = post(&s, dp, session, good, "Sec-Fetch-Site: same-origin");
    cr_assert_eq(r.status, 303, "%s", r.body);
    char *loc = header(&r, "Location", 0);
    cr_assert_str_eq(loc, gp);
    free(loc);
    reply_free(&r);
    char *method = sl_xasprintf("web-token:%.16s", token + 4);
    const char *pm[] = { run, method };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1 AND actor = 'alice' AND"
                              " decision = 'approve' AND method = $2 AND address = '127.0.0.1'", 2, pm), 1);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_gates WHERE run_id = $1 AND status = 'approved'"
                              " AND inputs->>'target' = 'eu-2' AND inputs->>'canary' = 'true'", 1, p), 1);
    /* the flash, once */
    r = get(&s, gp, session);
    cr_assert(strstr(r.body, "<p id=\"flash\" class=\"ok\">"), "%s", r.body);
    cr_assert(strstr(r.body, "<dd id=\"gate-status\" class=\"status\">approved</dd>"), "%s", r.body);
    reply_free(&r);
    r = get(&s, gp, session);
    cr_assert(!strstr(r.body, "id=\"flash\""), "the flash is shown once");
    reply_free(&r);
    th_serve_stop(&s);
    free(method);
    free(ck);
    free(u);
    free(wrong);
    free(good);
    free(dp);
    free(csrf);
    free(gp);
    free(session);
    free(token);
    free(run);
}

Test(web, a_second_decision_shows_the_refusal)
{
    char *run = new_run("webrace");
    seed(run, "webrace", "carol", "ok", "", "alice,bob,dave", "1");
    /* the server signs the audit rows of decisions: the audit page checks them */
    char *priv = sl_xasprintf("%s/audit.key", dir), *pub = sl_xasprintf("%s/audit.pub", dir);
    const char *kg[] = { SLUICE_BIN, "audit", "keygen", "--private", priv, "--public", pub, NULL };
    th_result k = th_run(kg, NULL);
    cr_assert_eq(k.status, 0, "%s", k.err);
    th_result_free(&k);
    char *extra = sl_xasprintf("  audit_key_file: %s\n", priv);
    write_config(extra);
    th_server s;
    th_serve_start(&s, config, false, NULL);
    char *ta = th_token(config, "alice", "read,approve", NULL);
    char *tb = th_token(config, "bob", "read,approve", NULL);
    char *sa = sign_in(&s, ta, NULL), *sb = sign_in(&s, tb, NULL);
    cr_assert(sa && sb);
    char *gp = sl_xasprintf("/runs/%s/gates/g", run), *dp = sl_xasprintf("/runs/%s/gates/g/decide", run);
    /* both have the page open */
    reply ra = get(&s, gp, sa), rb = get(&s, gp, sb);
    char *ca = csrf_of(ra.body), *cb = csrf_of(rb.body);
    cr_assert(strcmp(ca, cb) != 0, "each session has its own CSRF token");
    reply_free(&ra);
    reply_free(&rb);
    /* dave may read but not decide: his token lacks the approve scope */
    char *td = th_token(config, "dave", "read", NULL);
    char *sd = sign_in(&s, td, NULL);
    reply rd = get(&s, gp, sd);
    char *cd = csrf_of(rd.body);
    reply_free(&rd);
    char *fd = sl_xasprintf("csrf=%s&decision=approve", cd);
    rd = post(&s, dp, sd, fd, NULL);
    cr_assert_eq(rd.status, 303);
    reply_free(&rd);
    rd = get(&s, gp, sd);
    cr_assert(strstr(rd.body, "<p id=\"flash\" class=\"refused\">") && strstr(rd.body, "approve"), "%s", rd.body);
    reply_free(&rd);
    const char *pr[] = { run };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1", 1, pr), 0);
    free(fd);
    free(cd);
    free(sd);
    free(td);
    /* alice's token is not bob's */
    char *form = sl_xasprintf("csrf=%s&decision=approve", ca);
    reply r = post(&s, dp, sb, form, NULL);
    cr_assert_eq(r.status, 403);
    reply_free(&r);
    r = post(&s, dp, sa, form, NULL);
    cr_assert_eq(r.status, 303);
    reply_free(&r);
    free(form);
    form = sl_xasprintf("csrf=%s&decision=reject&comment=too+late", cb);
    r = post(&s, dp, sb, form, NULL);
    cr_assert_eq(r.status, 303);
    reply_free(&r);
    r = get(&s, gp, sb);
    cr_assert(strstr(r.body, "<p id=\"flash\" class=\"refused\">gate &#39;g&#39; of run"), "%s", r.body);
    cr_assert(strstr(r.body, "is not open: it was approved</p>"), "%s", r.body);
    reply_free(&r);
    cr_assert_eq(audit_count(run, "approve"), 1);
    cr_assert_eq(audit_count(run, "reject"), 0);
    cr_assert_eq(audit_count(run, "refused"), 1);
    /* the audit page shows both rows with principal, method and address */
    char *ap = sl_xasprintf("/runs/%s/audit", run);
    r = get(&s, ap, sa);
    cr_assert(strstr(r.body, "<tr class=\"audit-row\" data-decision=\"approve\">") &&
              strstr(r.body, "<tr class=\"audit-row\" data-decision=\"refused\">"), "%s", r.body);
    cr_assert(strstr(r.body, "<td>bob</td>") && strstr(r.body, "<td>127.0.0.1</td>") && strstr(r.body, "web-token:"),
              "%s", r.body);
    cr_assert(strstr(r.body, "<td class=\"sig\" data-verified=\"yes\">") &&
              !strstr(r.body, "data-verified=\"no\"") && !strstr(r.body, "data-verified=\"unsigned\""),
              "every row signed by the server's key: %s", r.body);

    reply_free(&r);
    /* a rejection needs a comment, as in the API */
    free(form);
    form = sl_xasprintf("csrf=%s&decision=reject&comment=+", cb);
    r = post(&s, dp, sb, form, NULL);
    cr_assert_eq(r.status, 303);
    reply_free(&r);
    r = get(&s, gp, sb);
    cr_assert(strstr(r.body, "<p id=\"flash\" class=\"refused\">A rejection needs a comment saying why.</p>"),
              "%s", r.body);
    reply_free(&r);
    cr_assert_eq(audit_count(run, "refused"), 1, "refused before reaching the gate");
    th_serve_stop(&s);
    free(extra);
    free(priv);
    free(pub);
    free(ap);
    free(form);
    free(ca);
    free(cb);
    free(gp);
    free(dp);
    free(sa);
    free(sb);
    free(ta);
    free(tb);
    free(run);
}

Test(web, sessions_expire_and_sign_out_ends_them)
{
    write_config("  web:\n    session_ttl: 2s\n");
    th_server s;
    th_serve_start(&s, config, false, NULL);
    char *token = th_token(config, "dave", "read", NULL);
    char *session = sign_in(&s, token, NULL);
    cr_assert_not_null(session);
    reply r = get(&s, "/gates", session);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "<p id=\"no-gates\">"), "%s", r.body);
    reply_free(&r);
    /* a token that may not read makes no session */
    char *enq = th_token(config, "dave", "enqueue", NULL);
    long st = 0;
    char *none = sign_in(&s, enq, &st);
    cr_assert_null(none);
    cr_assert_eq(st, 403, "%ld", st);
    free(enq);
    sleep(3);
    r = get(&s, "/gates", session);
    cr_assert_eq(r.status, 303, "an expired session signs nobody in");
    reply_free(&r);
    th_serve_stop(&s);
    /* sign-out */
    write_config(NULL);
    th_serve_start(&s, config, false, NULL);
    free(session);
    session = sign_in(&s, token, NULL);
    r = get(&s, "/runs", session);
    char *csrf = csrf_of(r.body);
    reply_free(&r);
    char *form = sl_xasprintf("csrf=%s", csrf);
    r = post(&s, "/logout", session, form, NULL);
    cr_assert_eq(r.status, 303);
    char *loc = header(&r, "Location", 0);
    cr_assert_str_eq(loc, "/login");
    char *line = NULL;
    char *cleared = set_cookie(&r, "sluice_session", &line);
    cr_assert(cleared && *cleared == '\0' && strstr(line, "Max-Age=0"), "%s", r.headers);
    reply_free(&r);
    r = get(&s, "/runs", session);
    cr_assert_eq(r.status, 303, "the old cookie no longer works");
    reply_free(&r);
    const char *p[] = { session };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_web_sessions WHERE"
                              " id_hash = encode(sha256(convert_to($1, 'UTF8')), 'hex')", 1, p), 0);
    th_serve_stop(&s);
    free(line);
    free(cleared);
    free(loc);
    free(form);
    free(csrf);
    free(session);
    free(token);
}

Test(web, bad_tokens_fail_and_are_rate_limited)
{
    write_config("  auth_failures: 3\n  auth_lockout: 60s\n");
    th_server s;
    th_serve_start(&s, config, false, NULL);
    char *good = th_token(config, "erin", "read", NULL);
    /* the sign-in form needs its pre-session cookie and token */
    char *u = page_url(&s, "/login");
    reply r = req("POST", u, NULL, "csrf=x&token=whatever", NULL, NULL);
    cr_assert_eq(r.status, 403, "%ld", r.status);
    reply_free(&r);
    long status = 0;
    char *bad = sl_xstrdup(good);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == 'A' ? 'B' : 'A';
    for (int i = 0; i < 3; i++) {
        char *sess = sign_in(&s, i == 0 ? bad : "not-a-token", &status);
        cr_assert_null(sess);
        cr_assert_eq(status, 401, "attempt %d: %ld", i + 1, status);
    }
    /* locked out now, even with a good token */
    char *sess = sign_in(&s, good, &status);
    cr_assert_null(sess);
    cr_assert_eq(status, 429, "%ld", status);
    const char *cnt[] = { "erin" };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_web_sessions WHERE principal = $1", 1, cnt), 0);
    char *log = th_read_file(s.log);
    cr_assert(log && strstr(log, "event=web.sign_in_failed address=127.0.0.1"), "%s", log);
    free(log);
    th_serve_stop(&s);
    free(u);
    free(bad);
    free(good);
}

Test(web, proxy_header_is_trusted_only_from_the_proxy)
{
    write_config("  web:\n    proxy_header: X-Forwarded-User\n    proxy_groups_header: X-Forwarded-Groups\n"
                 "    proxy_addresses: 127.0.0.2\n");
    char *run = new_run("webproxy");
    seed(run, "webproxy", "carol", "ok", "", "alice,bob", "1");
    th_server s;
    th_serve_start(&s, config, false, NULL);
    char *u = page_url(&s, "/gates");
    /* from an address that is not the proxy: ignored (and logged) */
    reply r = req("GET", u, NULL, NULL, "X-Forwarded-User: bob", NULL);
    cr_assert_eq(r.status, 303, "%ld", r.status);
    reply_free(&r);
    char *log = th_read_file(s.log);
    cr_assert(log && strstr(log, "event=web.proxy_ignored address=127.0.0.1"), "%s", log);
    free(log);
    /* from the proxy: bob, with a session */
    source_ip = "127.0.0.2";
    r = req("GET", u, NULL, NULL, "X-Forwarded-User: bob", "X-Forwarded-Groups: ops, leads");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert(strstr(r.body, "<span class=\"who\">bob</span>"), "%s", r.body);
    char *session = set_cookie(&r, "sluice_session", NULL);
    cr_assert_not_null(session);
    char *csrf = csrf_of(r.body);
    reply_free(&r);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_web_sessions WHERE principal = 'bob' AND"
                              " method = 'web-proxy:X-Forwarded-User' AND groups = '{ops,leads}'", 0, NULL), 1);
    /* a decision through the proxy is bob's, method web-proxy */
    char *dp = sl_xasprintf("/runs/%s/gates/g/decide", run);
    char *du = page_url(&s, dp);
    char *form = sl_xasprintf("csrf=%s&decision=approve", csrf);
    char *ck = sl_xasprintf("sluice_session=%s", session);
    char *origin = sl_xasprintf("Origin: %s", s.url);
    r = req("POST", du, ck, form, origin, "X-Forwarded-User: bob");
    cr_assert_eq(r.status, 303, "%ld %s", r.status, r.body);
    reply_free(&r);
    const char *p[] = { run };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1 AND actor = 'bob' AND"
                              " method = 'web-proxy:X-Forwarded-User' AND decision = 'approve'", 1, p), 1);
    /* bob's cookie with the proxy now naming mallory: mallory's own session, not bob's */
    r = req("GET", u, ck, NULL, "X-Forwarded-User: mallory", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "<span class=\"who\">mallory</span>"), "%s", r.body);
    reply_free(&r);
    source_ip = NULL;
    th_serve_stop(&s);
    free(origin);
    free(ck);
    free(form);
    free(du);
    free(dp);
    free(csrf);
    free(session);
    free(u);
    free(run);
}

/* ---- OIDC against a small local provider ------------------------------------------------ */

static void b64(const void *in, size_t n, sl_buf *out)
{
    char enc[1024];
    sl_base64_encode(in, n, SL_BASE64URL, enc, sizeof enc);
    sl_buf_puts(out, enc);
}

/* An ES256 JWT of payload signed by key with kid. */
static char *es256(EVP_PKEY *key, const char *kid, const char *payload)
{
    sl_buf t = SL_BUF_INIT;
    char *hdr = sl_xasprintf("{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    b64(hdr, strlen(hdr), &t);
    sl_buf_putc(&t, '.');
    b64(payload, strlen(payload), &t);
    unsigned char der[128], raw[64];
    size_t dlen = sizeof der;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    cr_assert_eq(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
    cr_assert_eq(EVP_DigestSign(ctx, der, &dlen, (const unsigned char *)t.data, t.len), 1);
    EVP_MD_CTX_free(ctx);
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
    cr_assert_not_null(es);
    BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
    ECDSA_SIG_free(es);
    sl_buf_putc(&t, '.');
    b64(raw, sizeof raw, &t);
    free(hdr);
    return sl_buf_detach(&t);
}

static char *jwks_of(EVP_PKEY *key, const char *kid)
{
    unsigned char pt[65];
    size_t n = 0;
    cr_assert_eq(EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &n), 1);
    sl_buf b = SL_BUF_INIT;
    sl_buf_printf(&b, "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"%s\",\"use\":\"sig\",\"crv\":\"P-256\",\"x\":\"", kid);
    b64(pt + 1, 32, &b);
    sl_buf_puts(&b, "\",\"y\":\"");
    b64(pt + 33, 32, &b);
    sl_buf_puts(&b, "\"}]}");
    return sl_buf_detach(&b);
}

/* Query parameter name of url, decoded (caller frees), or NULL. */
static char *qparam(const char *url, const char *name)
{
    const char *q = strchr(url, '?');
    return q ? sl_html_form_get(q + 1, strlen(q + 1), name) : NULL;
}

typedef struct idp {
    th_httpd *h;
    char *iss;
    EVP_PKEY *key;
    const char *kid;
} idp;

/* The sign-in through the provider up to its redirect: returns the
 * authorization URL's state (caller frees); *nonce and *challenge too. */
static char *oidc_begin(const th_server *s, const char *pre, char **nonce, char **challenge)
{
    char *u = page_url(s, "/login/oidc?next=%2Fruns");
    char *ck = sl_xasprintf("sluice_pre=%s", pre);
    reply r = req("GET", u, ck, NULL, NULL, NULL);
    cr_assert_eq(r.status, 302, "%ld %s\n%s", r.status, r.body, th_read_file(s->log));
    char *loc = header(&r, "Location", 0);
    cr_assert_not_null(loc);
    char *state = qparam(loc, "state");
    *nonce = qparam(loc, "nonce");
    *challenge = qparam(loc, "code_challenge");
    char *method = qparam(loc, "code_challenge_method"), *scope = qparam(loc, "scope");
    char *client = qparam(loc, "client_id"), *rt = qparam(loc, "response_type");
    cr_assert(state && *nonce && *challenge && strlen(state) >= 43, "%s", loc);
    cr_assert_str_eq(method, "S256");
    cr_assert_str_eq(client, "sluice");
    cr_assert_str_eq(rt, "code");
    cr_assert(scope && strstr(scope, "openid") && strstr(scope, "groups"), "%s", scope);
    free(method);
    free(scope);
    free(client);
    free(rt);
    free(loc);
    reply_free(&r);
    free(ck);
    free(u);
    return state;
}

/* The provider's token endpoint answers with an ID token for nonce,
 * signed with its current key (kid). */
static void idp_token(idp *p, const char *nonce, const char *aud)
{
    long now = (long)time(NULL);
    char *claims = sl_xasprintf("{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"u-9\",\"preferred_username\":\"olivia\","
                                "\"groups\":[\"ops\"],\"nonce\":\"%s\",\"exp\":%ld,\"iat\":%ld}", p->iss, aud, nonce,
                                now + 300, now);
    char *jwt = es256(p->key, p->kid, claims);
    char *body = sl_xasprintf("{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"id_token\":\"%s\"}", jwt);
    th_route tr = { .status = 200, .body = body, .content_type = "application/json" };
    th_httpd_route(p->h, "/token", &tr);
    free(body);
    free(jwt);
    free(claims);
}

static reply callback(const th_server *s, const char *pre, const char *state)
{
    char *path = sl_xasprintf("/login/oidc/callback?code=the-code&state=%s", state);
    char *u = page_url(s, path);
    char *ck = sl_xasprintf("sluice_pre=%s", pre);
    reply r = req("GET", u, ck, NULL, NULL, NULL);
    free(ck);
    free(u);
    free(path);
    return r;
}

Test(web, oidc_sign_in_with_pkce_state_and_nonce)
{
    idp p = { .h = th_httpd_start(), .kid = "k1" };
    p.iss = th_httpd_url(p.h, "");
    p.key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    cr_assert_not_null(p.key);
    char *disc = sl_xasprintf("{\"issuer\":\"%s\",\"authorization_endpoint\":\"%s/authorize\",\"token_endpoint\":"
                              "\"%s/token\",\"jwks_uri\":\"%s/jwks\",\"response_types_supported\":[\"code\"],"
                              "\"code_challenge_methods_supported\":[\"S256\"]}", p.iss, p.iss, p.iss, p.iss);
    th_route dr = { .status = 200, .body = disc, .content_type = "application/json" };
    th_httpd_route(p.h, "/.well-known/openid-configuration", &dr);
    char *jwks = jwks_of(p.key, "k1");
    th_route jr = { .status = 200, .body = jwks, .content_type = "application/json" };
    th_httpd_route(p.h, "/jwks", &jr);
    char *secret = sl_xasprintf("%s/oidc-secret", dir);
    th_write_file(secret, "s3cret\n");
    char *extra = sl_xasprintf("  oidc:\n    issuer: %s\n    client_id: sluice\n    client_secret_file: %s\n"
                               "    redirect_url: http://127.0.0.1/login/oidc/callback\n"
                               "    user_claim: preferred_username\n    groups_claim: groups\n"
                               "    groups_scope: groups\n    allow_http: true\n", p.iss, secret);
    write_config(extra);
    th_server s;
    th_serve_start(&s, config, false, NULL);
    reply r = get(&s, "/login", NULL);
    cr_assert(strstr(r.body, "<a id=\"login-oidc\" href=\"/login/oidc?next="), "%s", r.body);
    char *pre = set_cookie(&r, "sluice_pre", NULL);
    reply_free(&r);
    /* an unknown state signs nobody in */
    r = callback(&s, pre, "0000000000000000000000000000000000000000000000000000000000000000");
    cr_assert_eq(r.status, 401, "%ld", r.status);
    reply_free(&r);
    /* the whole flow */
    char *nonce, *challenge;
    char *state = oidc_begin(&s, pre, &nonce, &challenge);
    idp_token(&p, nonce, "sluice");
    r = callback(&s, pre, state);
    cr_assert_eq(r.status, 303, "%ld %s\n%s", r.status, r.body, th_read_file(s.log));
    char *loc = header(&r, "Location", 0);
    cr_assert_str_eq(loc, "/runs");
    free(loc);
    char *session = set_cookie(&r, "sluice_session", NULL);
    cr_assert_not_null(session);
    reply_free(&r);
    r = get(&s, "/runs", session);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "<span class=\"who\">olivia</span>"), "%s", r.body);
    reply_free(&r);
    char *method = sl_xasprintf("web-oidc:%s#u-9", p.iss);
    const char *pm[] = { method };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_web_sessions WHERE principal = 'olivia' AND method = $1"
                              " AND groups = '{ops}'", 1, pm), 1);
    /* the token request carried the PKCE verifier of the challenge, the code and the client's secret */
    char *body = th_httpd_last_body(p.h, "/token");
    char *auth = th_httpd_last_header(p.h, "/token", "Authorization");
    char *verifier = sl_html_form_get(body, strlen(body), "code_verifier");
    char *code = sl_html_form_get(body, strlen(body), "code");
    cr_assert(verifier && code && strcmp(code, "the-code") == 0, "%s", body);
    unsigned char d[SL_SHA256_LEN];
    sl_sha256_digest(verifier, strlen(verifier), d);
    sl_buf want = SL_BUF_INIT;
    b64(d, sizeof d, &want);
    cr_assert_str_eq(sl_buf_str(&want), challenge);
    cr_assert(auth && strncmp(auth, "Basic ", 6) == 0, "client_secret_basic: %s", auth ? auth : "(none)");
    sl_buf_free(&want);
    free(verifier);
    free(code);
    free(auth);
    free(body);
    /* the same state again: used once */
    r = callback(&s, pre, state);
    cr_assert_eq(r.status, 401);
    reply_free(&r);
    free(state);
    free(nonce);
    free(challenge);
    /* an ID token with another nonce (replayed from elsewhere) */
    state = oidc_begin(&s, pre, &nonce, &challenge);
    idp_token(&p, "not-the-nonce", "sluice");
    r = callback(&s, pre, state);
    cr_assert_eq(r.status, 401);
    reply_free(&r);
    free(state);
    free(nonce);
    free(challenge);
    /* an ID token for another client */
    state = oidc_begin(&s, pre, &nonce, &challenge);
    idp_token(&p, nonce, "another-client");
    r = callback(&s, pre, state);
    cr_assert_eq(r.status, 401);
    reply_free(&r);
    free(state);
    free(nonce);
    free(challenge);
    /* a state begun in another browser (its pre-session cookie) */
    state = oidc_begin(&s, pre, &nonce, &challenge);
    idp_token(&p, nonce, "sluice");
    char other[65];
    memset(other, 'a', 64);
    other[64] = '\0';
    r = callback(&s, other, state);
    cr_assert_eq(r.status, 401);
    reply_free(&r);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_web_sessions WHERE principal = 'olivia'", 0, NULL), 1,
                 "only the good sign-in made a session");
    free(state);
    free(nonce);
    free(challenge);
    /* the provider rotates its key: a token naming the new kid makes sluice fetch the JWKS again
       (at most every ten seconds, so wait that out first) */
    EVP_PKEY_free(p.key);
    p.key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    p.kid = "k2";
    free(jwks);
    jwks = jwks_of(p.key, "k2");
    jr.body = jwks;
    th_httpd_route(p.h, "/jwks", &jr);
    int fetched = th_httpd_hits(p.h, "/jwks");
    sleep(11);
    state = oidc_begin(&s, pre, &nonce, &challenge);
    idp_token(&p, nonce, "sluice");
    r = callback(&s, pre, state);
    cr_assert_eq(r.status, 303, "%ld %s", r.status, r.body);
    reply_free(&r);
    cr_assert_eq(th_httpd_hits(p.h, "/jwks"), fetched + 1, "the JWKS was fetched again for the new kid");
    char *log = th_read_file(s.log);
    cr_assert(log && strstr(log, "nonce") && strstr(log, "another browser"), "%s", log);
    free(log);
    th_serve_stop(&s);
    free(state);
    free(nonce);
    free(challenge);
    free(method);
    free(session);
    free(pre);
    free(extra);
    free(secret);
    free(jwks);
    free(disc);
    EVP_PKEY_free(p.key);
    free(p.iss);
    th_httpd_free(p.h);
}

/* ---- least privilege ----------------------------------------------------------------- */

Test(web, the_api_role_can_sign_in_show_and_decide)
{
    char db[96], login[96];
    th_private_db(db, sizeof db, "web");
    th_runtime_login(db, "api", login, sizeof login);
    seed_db = db;
    char *run = new_run("webrole");
    seed(run, "webrole", "carol", "ok", "", "alice,bob", "1");
    seed_db = NULL;
    char *owner = th_pg_url("sluice", db), *api = th_pg_url(login, db);
    char *e1 = sl_xasprintf("SLUICE_DATABASE_URL=%s", owner), *e2 = sl_xasprintf("DATABASE_URL=%s", owner);
    const char *env_owner[] = { e1, e2, NULL };
    const char *tc[] = { SLUICE_BIN, "token", "create", "--config", config, "--user", "alice", "--scopes",
                         "read,approve", NULL };
    th_result t = th_run(tc, env_owner);
    cr_assert_eq(t.status, 0, "%s", t.err);
    char *token = sl_xstrndup(t.out, strcspn(t.out, "\n"));
    th_result_free(&t);
    char *a1 = sl_xasprintf("SLUICE_DATABASE_URL=%s", api), *a2 = sl_xasprintf("DATABASE_URL=%s", api);
    const char *env_api[] = { a1, a2, NULL };
    th_server s;
    th_serve_start(&s, config, false, env_api);
    char *session = sign_in(&s, token, NULL);
    cr_assert_not_null(session, "sign-in as the api role; log:\n%s", th_read_file(s.log));
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        if (strcmp(pages[i], "/queues") == 0)
            continue;   /* Redis, not the role */
        char *path = page_of(pages[i], run);
        reply r = get(&s, path, session);
        cr_assert_eq(r.status, 200, "%s: %ld %s", path, r.status, r.body);
        reply_free(&r);
        free(path);
    }
    char *gp = sl_xasprintf("/runs/%s/gates/g", run), *dp = sl_xasprintf("/runs/%s/gates/g/decide", run);
    reply r = get(&s, gp, session);
    char *csrf = csrf_of(r.body);
    reply_free(&r);
    char *form = sl_xasprintf("csrf=%s&decision=approve", csrf);
    r = post(&s, dp, session, form, NULL);
    cr_assert_eq(r.status, 303);
    reply_free(&r);
    r = get(&s, gp, session);
    cr_assert(strstr(r.body, "<p id=\"flash\" class=\"ok\">"), "%s", r.body);
    reply_free(&r);
    free(form);
    form = sl_xasprintf("csrf=%s", csrf);
    r = post(&s, "/logout", session, form, NULL);
    cr_assert_eq(r.status, 303);
    reply_free(&r);
    r = get(&s, gp, session);
    cr_assert_eq(r.status, 303);
    reply_free(&r);
    char *log = th_read_file(s.log);
    cr_assert(log && !strstr(log, "permission denied"), "%s", log);
    free(log);
    th_serve_stop(&s);
    char *q = sl_xasprintf("SELECT count(*) FROM sluice_audit WHERE run_id = '%s' AND actor = 'alice' AND"
                           " db_role = '%s' AND method LIKE 'web-token:%%'", run, login);
    cr_assert_eq(th_pg_db_number(db, q), 1);
    free(q);
    free(form);
    free(csrf);
    free(gp);
    free(dp);
    free(session);
    free(token);
    free(a1);
    free(a2);
    free(e1);
    free(e2);
    free(owner);
    free(api);
    free(run);
    th_private_db_drop(db);
}

/* ---- Queues ---------------------------------------------------------------------------- */

static void redis_cmd(sl_redis *r, int argc, const char **argv)
{
    sl_err err;
    redisReply *rep = sl_redis_command(r, argc, argv, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    freeReplyObject(rep);
}

Test(web, queues_show_the_snapshot_and_rates)
{
    char q[64];
    th_name(q, sizeof q, "webq");
    char *stats = sl_xasprintf("sluice:{%s}:stats", q);
    sl_redis *redis = th_redis();
    const char *add[] = { "SADD", "sluice:queues", q };
    redis_cmd(redis, 3, add);
    const char *set[] = { "HSET", stats, "processed:noop", "10" };
    redis_cmd(redis, 4, set);
    th_server s;
    th_serve_start(&s, config, false, NULL);
    char *token = th_token(config, "erin", "read", NULL);
    char *session = sign_in(&s, token, NULL);
    char *row = sl_xasprintf("<tr class=\"queue\" data-queue=\"%s\"><td>%s</td>", q, q);
    reply r = get(&s, "/queues", session);
    cr_assert_eq(r.status, 200);
    const char *at = strstr(r.body, row);
    cr_assert_not_null(at, "%s", r.body);
    cr_assert(strstr(at, "<td>10</td><td>0</td><td>\xe2\x80\x94</td>"),
              "processed, failed, and no rate before a second view: %s", at);
    reply_free(&r);
    sleep(2);
    const char *incr[] = { "HINCRBY", stats, "processed:noop", "20" };
    redis_cmd(redis, 4, incr);
    r = get(&s, "/queues", session);
    at = strstr(r.body, row);
    cr_assert_not_null(at, "%s", r.body);
    cr_assert(strstr(at, "<td>30</td><td>0</td><td>"), "%s", at);
    const char *rate = strstr(at, "<td>30</td><td>0</td><td>") + strlen("<td>30</td><td>0</td><td>");
    cr_assert(strtod(rate, NULL) > 0 && strncmp(strchr(rate, '/'), "/s</td>", 7) == 0,
              "a processed rate over the interval: %s", rate);
    reply_free(&r);
    const char *del[] = { "DEL", stats };
    redis_cmd(redis, 2, del);
    const char *rem[] = { "SREM", "sluice:queues", q };
    redis_cmd(redis, 3, rem);
    sl_redis_free(redis);
    th_serve_stop(&s);
    free(row);
    free(session);
    free(token);
    free(stats);
}

/* ---- configuration ------------------------------------------------------------------------ */

/* `sluice serve` with api_extra refuses to start, saying want. */
static void refused_config(const char *api_extra, const char *want)
{
    write_config(api_extra);
    const char *argv[] = { SLUICE_BIN, "serve", "--config", config, "--listen", "127.0.0.1:0", NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_neq(r.status, 0, "started with:\n%s", api_extra);
    cr_assert(strstr(r.err, want), "want '%s' in:\n%s", want, r.err);
    th_result_free(&r);
}

Test(web, unusable_sign_in_settings_stop_the_server)
{
    refused_config("  web:\n    proxy_header: X-Forwarded-User\n", "needs proxy_addresses");
    refused_config("  web:\n    session_ttl: 0s\n", "session_ttl");
    refused_config("  web:\n    colour: blue\n", "unknown key 'colour'");
    refused_config("  oidc:\n    issuer: https://id.example\n    redirect_url: https://s/cb\n",
                   "needs issuer, client_id and redirect_url");
    refused_config("  oidc:\n    issuer: http://id.example\n    client_id: c\n    redirect_url: https://s/cb\n",
                   "https is required");
    refused_config("  oidc:\n    issuer: https://id.example\n    client_id: c\n    redirect_url: https://s/cb\n"
                   "    client_secret: a\n    client_secret_file: /nonexistent\n", "not both");
    refused_config("  oidc:\n    issuer: https://id.example\n    client_id: c\n    redirect_url: https://s/cb\n"
                   "    client_secret_file: /nonexistent/secret\n", "/nonexistent/secret");
}

Test(web, cookies_are_secure_over_tls)
{
    char *cert = sl_xasprintf("%s/tls.crt", dir), *key = sl_xasprintf("%s/tls.key", dir);
    char *cmd = sl_xasprintf("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1"
                             " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout '%s' -out '%s'"
                             " 2>&1", key, cert);
    const char *sh[] = { "/bin/sh", "-c", cmd, NULL };
    th_result g = th_run(sh, NULL);
    cr_assert_eq(g.status, 0, "openssl: %s", g.out);
    th_result_free(&g);
    char *extra = sl_xasprintf("  tls_cert: %s\n  tls_key: %s\n", cert, key);
    write_config(extra);
    th_server s;
    th_serve_start(&s, config, true, NULL);
    ca_file = cert;
    char *token = th_token(config, "tina", "read", NULL);
    reply r = get(&s, "/login", NULL);
    char *line = NULL;
    char *pre = set_cookie(&r, "sluice_pre", &line);
    cr_assert(pre && strstr(line, "; Secure"), "%s", r.headers);
    free(line);
    free(pre);
    reply_free(&r);
    char *u = page_url(&s, "/login");
    r = get(&s, "/login", NULL);
    pre = set_cookie(&r, "sluice_pre", NULL);
    char *csrf = csrf_of(r.body);
    reply_free(&r);
    char *ck = sl_xasprintf("sluice_pre=%s", pre);
    char *form = sl_xasprintf("csrf=%s&next=%%2Fgates&token=%s", csrf, token);
    char *origin = sl_xasprintf("Origin: %s", s.url);
    r = req("POST", u, ck, form, origin, NULL);
    cr_assert_eq(r.status, 303, "%ld %s", r.status, r.body);
    char *session = set_cookie(&r, "sluice_session", &line);
    cr_assert(session && strstr(line, "; Secure") && strstr(line, "HttpOnly"), "%s", r.headers);
    reply_free(&r);
    ca_file = NULL;
    th_serve_stop(&s);
    free(line);
    free(session);
    free(origin);
    free(form);
    free(ck);
    free(csrf);
    free(pre);
    free(u);
    free(token);
    free(extra);
    free(cmd);
    free(cert);
    free(key);
}
