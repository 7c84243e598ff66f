/* http.c: the API server's HTTP layer (libmicrohttpd).
 *
 * Threads.  The daemon runs api.threads polling threads (a thread pool,
 * epoll or poll as libmicrohttpd picks); each serves many connections, so
 * idle or slow clients hold only sockets, and each request runs on one of
 * them with its own slot of backend connections (backends.h), whose every
 * call is bounded by api.backend_timeout.  A stalled backend therefore
 * holds at most one thread for that long, and a backend found down fails
 * requests at once for a second.
 *
 * Limits, in the order a connection meets them: api.max_connections in
 * all, api.per_ip_connections per address (libmicrohttpd refuses more);
 * 32 KiB of request line and headers (connection memory limit); an idle
 * connection closed after api.connection_timeout; a request that is not
 * complete api.request_deadline after the connection opened (or after the
 * previous request on it ended) has its socket shut down by the reaper
 * thread, so a client trickling a byte at a time cannot stretch its
 * request forever; api.rate_limit requests per second per address (429);
 * a body over api.max_body (413, refused as soon as Content-Length says so).
 *
 * Then the route is matched (404 / 405 with Allow), credentials verified
 * for non-public routes (auth.h: 401, 429), the route's scope checked
 * (403), and the handler called.  The web pages' routes (web.h) are
 * matched the same way but authenticate with their session cookie
 * themselves.  Every response has Cache-Control: no-store; every HTML
 * response also the strict Content-Security-Policy, X-Frame-Options and
 * Referrer-Policy of docs/web.md; errors of the API are
 * application/problem+json (problem.h).
 *
 * Shutdown: SIGINT/SIGTERM/SIGHUP are blocked in every thread and taken by
 * sigwait in sl_server_run, which stops the daemon (finishing requests in
 * progress), then the reaper, then frees the backends. */
#include "http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "api.h"
#include "auth.h"
#include "clock.h"
#include "config_api.h"
#include "jwt.h"
#include "limiter.h"
#include "oidc.h"
#include "log.h"
#include "mem.h"
#include "problem.h"
#include "server.h"
#include "sign.h"
#include "tokens.h"
#include "web.h"

/* One open connection, for the reaper. */
typedef struct conn_rec {
    int fd;
    int64_t since_ms;          /* monotonic: opened, or the previous request ended */
    bool shut;                 /* the reaper shut it down already */
    struct conn_rec *prev, *next;
} conn_rec;

struct sl_server {
    const sl_config *cfg;      /* borrowed */
    sl_pool *pool;             /* owned */
    sl_limiter *limiter;       /* owned */
    sl_jwt_keys *jwt;          /* owned, NULL without api.jwt */
    unsigned jwt_scopes;
    sl_sign_key *audit_key;    /* owned, NULL without api.audit_key_file */
    sl_oidc *oidc;             /* owned, NULL without api.oidc */
    sl_web_rates *rates;       /* owned: the Queues page's previous counters */
    bool tls;
    pthread_mutex_t mu;        /* guards conns and stopping */
    pthread_cond_t wake;
    conn_rec *conns;
    bool stopping;
    pthread_t reaper;
};

/* Per request, from the first call of the handler to the completion callback. */
typedef struct pending {
    sl_buf body;
    bool too_big;
    char address[64];
} pending;

sl_limiter *sl_server_limiter(sl_server *s) { return s->limiter; }
const sl_jwt_keys *sl_server_jwt_keys(sl_server *s) { return s->jwt; }
unsigned sl_server_jwt_scopes(sl_server *s) { return s->jwt_scopes; }
const sl_sign_key *sl_server_audit_key(sl_server *s) { return s->audit_key; }
sl_oidc *sl_server_oidc(sl_server *s) { return s->oidc; }
bool sl_server_tls(sl_server *s) { return s->tls; }
sl_web_rates *sl_server_web_rates(sl_server *s) { return s->rates; }

const char *sl_http_cookie(const sl_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, name);
}

void sl_http_set_cookie(sl_response *resp, const char *value)
{
    for (size_t i = 0; i < sizeof resp->set_cookie / sizeof resp->set_cookie[0]; i++) {
        if (resp->set_cookie[i][0] == '\0') {
            snprintf(resp->set_cookie[i], sizeof resp->set_cookie[i], "%s", value);
            return;
        }
    }
}

const char *sl_http_header(const sl_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *sl_http_query(const sl_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

void sl_http_json(sl_response *resp, unsigned status, sl_buf *json)
{
    sl_buf_free(&resp->body);
    resp->body = *json;
    *json = (sl_buf)SL_BUF_INIT;
    resp->status = status;
    resp->content_type = "application/json";
}

/* ---- listen address ------------------------------------------------------- */

static int resolve(const char *listen, struct sockaddr_storage *ss, bool *v6, sl_err *err)
{
    char host[256], port[16];
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon[1] == '\0')
        return sl_err_set(err, SL_EINVAL, "listen address '%s': expected HOST:PORT", listen);
    size_t hlen = (size_t)(colon - listen);
    const char *h = listen;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof host || strlen(colon + 1) >= sizeof port)
        return sl_err_set(err, SL_EINVAL, "listen address '%s': expected HOST:PORT", listen);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    snprintf(port, sizeof port, "%s", colon + 1);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || res == NULL)
        return sl_err_set(err, SL_EINVAL, "listen address '%s': %s", listen, gai_strerror(rc));
    if (ss) {
        memset(ss, 0, sizeof *ss);
        memcpy(ss, res->ai_addr, res->ai_addrlen);
    }
    if (v6)
        *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

int sl_server_check_listen(const char *listen, sl_err *err) { return resolve(listen, NULL, NULL, err); }

/* ---- connections and the reaper --------------------------------------------- */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    sl_server *s = cls;
    pthread_mutex_lock(&s->mu);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_rec *rec = sl_xcalloc(1, sizeof *rec);
        rec->fd = ci ? ci->connect_fd : -1;
        rec->since_ms = sl_monotonic_ms();
        rec->next = s->conns;
        if (s->conns)
            s->conns->prev = rec;
        s->conns = rec;
        *socket_context = rec;
    } else if (*socket_context) {
        /* Called before libmicrohttpd closes the socket: under mu, the
         * reaper can never shut down a descriptor that was reused. */
        conn_rec *rec = *socket_context;
        if (rec->prev)
            rec->prev->next = rec->next;
        else
            s->conns = rec->next;
        if (rec->next)
            rec->next->prev = rec->prev;
        free(rec);
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&s->mu);
}

static void *reaper(void *arg)
{
    sl_server *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        int64_t now = sl_monotonic_ms();
        for (conn_rec *r = s->conns; r; r = r->next) {
            if (!r->shut && r->fd >= 0 && now - r->since_ms > sl_api_config_of(s->cfg)->request_deadline_ms) {
                shutdown(r->fd, SHUT_RDWR);
                r->shut = true;
                SL_INFO("serve.deadline", "fd=%d after_ms=%lld", r->fd, (long long)(now - r->since_ms));
            }
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->wake, &s->mu, &until);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    sl_server *s = cls;
    pending *p = *req_cls;
    if (p) {
        sl_buf_free(&p->body);
        free(p);
        *req_cls = NULL;
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    pthread_mutex_lock(&s->mu);
    if (ci && ci->socket_context)
        ((conn_rec *)ci->socket_context)->since_ms = sl_monotonic_ms();   /* the next request's clock */
    pthread_mutex_unlock(&s->mu);
}

/* ---- responses ----------------------------------------------------------- */

static enum MHD_Result send_response(struct MHD_Connection *c, sl_response *resp)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(resp->body.len, resp->body.data ? resp->body.data : "",
                                                             MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type ? resp->content_type
                                                                                : "text/plain; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (resp->content_type && strncmp(resp->content_type, "text/html", 9) == 0) {
        MHD_add_response_header(r, "Content-Security-Policy", SL_WEB_CSP);
        MHD_add_response_header(r, "X-Frame-Options", "DENY");
        MHD_add_response_header(r, "Referrer-Policy", "same-origin");
    }
    for (size_t i = 0; i < sizeof resp->set_cookie / sizeof resp->set_cookie[0]; i++) {
        if (resp->set_cookie[i][0])
            MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, resp->set_cookie[i]);
    }
    if (resp->allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp->allow);
    if (resp->location[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, resp->location);
    if (resp->challenge)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"sluice\"");
    if (resp->retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", resp->retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    enum MHD_Result ok = MHD_queue_response(c, resp->status ? resp->status : 500, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_problem(struct MHD_Connection *c, sl_problem_type t, int retry, const char *detail)
{
    sl_response resp = { 0 };
    sl_problem(&resp, t, "%s", detail);
    resp.retry_after = retry;
    enum MHD_Result ok = send_response(c, &resp);
    sl_buf_free(&resp.body);
    return ok;
}

/* ---- routing --------------------------------------------------------------- */

/* True if path matches pattern; params get the {} segments (pointing into
 * copy, a writable copy of path). */
static bool match(const char *pattern, char *copy, const char **params)
{
    size_t np = 0;
    const char *p = pattern;
    char *q = copy;
    while (*p && *q) {
        if (p[0] == '{' && p[1] == '}') {
            size_t n = strcspn(q, "/");
            if (n == 0 || np >= SL_ROUTE_PARAMS)
                return false;
            params[np++] = q;
            q += n;
            p += 2;
            if (*q == '/') {
                if (*p != '/')
                    return false;
                *q++ = '\0';
                p++;
            }
            continue;
        }
        if (*p != *q)
            return false;
        p++;
        q++;
    }
    return *p == '\0' && *q == '\0';
}

static void dispatch(sl_server *s, sl_request *r, sl_response *resp)
{
    const sl_route *found = NULL;
    bool path_known = false;
    const char *method = strcmp(r->method, "HEAD") == 0 ? "GET" : r->method;
    char allow[64] = "";
    char *copy = sl_xstrdup(r->path);
    const sl_route *const tables[] = { sl_api_routes, sl_web_routes };
    const size_t sizes[] = { sl_api_nroutes, sl_web_nroutes };
    for (size_t t = 0; t < 2 && found == NULL; t++) {
        for (size_t i = 0; i < sizes[t] && found == NULL; i++) {
            const sl_route *rt = &tables[t][i];
            strcpy(copy, r->path);
            const char *params[SL_ROUTE_PARAMS] = { 0 };
            if (!match(rt->pattern, copy, params))
                continue;
            path_known = true;
            size_t len = strlen(allow);
            snprintf(allow + len, sizeof allow - len, "%s%s%s", len ? ", " : "", rt->method,
                     strcmp(rt->method, "GET") == 0 ? ", HEAD" : "");
            if (strcmp(rt->method, method) == 0) {
                found = rt;
                memcpy(r->params, params, sizeof params);
            }
        }
    }
    if (found == NULL) {
        if (path_known) {
            sl_problem(resp, SL_PROB_METHOD, "use %s", allow);
            snprintf(resp->allow_buf, sizeof resp->allow_buf, "%s", allow);
            resp->allow = resp->allow_buf;
        } else {
            sl_problem(resp, SL_PROB_NOT_FOUND, "no such endpoint; see /v1/openapi.json");
        }
        free(copy);
        return;
    }
    r->be = sl_pool_take(s->pool);
    if (r->be == NULL) {
        sl_problem(resp, SL_PROB_UNAVAILABLE, "the server is busy");
        resp->retry_after = 1;
    } else if (found->scope != 0 && sl_auth(r, resp) < 0) {
        /* resp says why */
    } else if (found->scope != 0 && found->scope != SL_ROUTE_AUTH && !sl_scopes_allow(r->scopes, found->scope)) {
        sl_problem(resp, SL_PROB_FORBIDDEN, "this credential lacks the '%s' scope", sl_scope_name(found->scope));
    } else {
        found->handler(r, resp);
    }
    sl_pool_give(s->pool, r->be);
    r->be = NULL;
    sl_auth_clear(r);
    free(copy);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    (void)version;
    sl_server *s = cls;
    pending *p = *req_cls;
    if (p == NULL) {
        p = sl_xcalloc(1, sizeof *p);
        *req_cls = p;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = ci ? ci->client_addr : NULL;
        snprintf(p->address, sizeof p->address, "unknown");
        if (sa && sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, p->address, sizeof p->address);
        else if (sa && sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, p->address, sizeof p->address);
        int retry;
        if (!sl_limiter_request(s->limiter, p->address, sl_monotonic_ms(), &retry))
            return send_problem(c, SL_PROB_THROTTLED, retry, "request rate limit of this address exceeded");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)sl_api_config_of(s->cfg)->max_body)
            return send_problem(c, SL_PROB_TOO_LARGE, 0, "the body exceeds api.max_body");
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (p->body.len + *upload_data_size > (size_t)sl_api_config_of(s->cfg)->max_body)
            p->too_big = true;
        else
            sl_buf_append(&p->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (p->too_big)
        return send_problem(c, SL_PROB_TOO_LARGE, 0, "the body exceeds api.max_body");
    sl_request r = { .srv = s, .cfg = s->cfg, .conn = c, .method = method, .path = url,
                     .body = sl_buf_str(&p->body), .body_len = p->body.len };
    snprintf(r.address, sizeof r.address, "%s", p->address);
    sl_response resp = { 0 };
    dispatch(s, &r, &resp);
    enum MHD_Result ok = send_response(c, &resp);
    if (resp.status >= 500 || resp.status == 401 || resp.status == 403 || resp.status == 429)
        SL_INFO("serve.request", "address=%s method=%s path=%s status=%u", r.address, method, url, resp.status);
    sl_buf_free(&resp.body);
    return ok;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512], q[600];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    SL_WARN("serve.http", "message=%s", sl_log_quote(q, sizeof q, msg));
}

/* ---- start and stop --------------------------------------------------------- */

static char *read_small_file(const char *what, const char *path, sl_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        sl_err_set(err, SL_ECONFIG, "%s: %s: %s", what, path, strerror(errno));
        return NULL;
    }
    sl_buf b = SL_BUF_INIT;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < 1048576)
        sl_buf_append(&b, chunk, got);
    fclose(f);
    if (b.len == 0) {
        sl_err_set(err, SL_ECONFIG, "%s: %s is empty", what, path);
        sl_buf_free(&b);
        return NULL;
    }
    return sl_buf_detach(&b);
}

int sl_server_run(const sl_config *cfg, const char *listen, sl_err *err)
{
    const sl_api_config *api = sl_api_config_of(cfg);
    /* Block the stop signals before any thread starts (they inherit the
     * mask); they are taken with sigwait below. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (listen == NULL)
        listen = api->listen ? api->listen : cfg->metrics.listen;
    struct sockaddr_storage addr;
    bool v6 = false;
    if (resolve(listen, &addr, &v6, err) < 0)
        return -1;
    int rc = -1;
    char *cert = NULL, *key = NULL;
    struct MHD_Daemon *d = NULL;
    bool reaper_started = false;
    sl_server s = { .cfg = cfg };
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.wake, NULL);
    s.limiter = sl_limiter_new(api);
    s.rates = sl_web_rates_new();
    s.pool = sl_pool_new(cfg, (size_t)api->threads);
    if (api->audit_key_file == NULL) {
        SL_WARN("serve.audit_unsigned", "reason=\"api.audit_key_file is not set: the audit rows of "
                "decisions are not signed and audit verify --public-key will refuse them\"");
    } else if ((s.audit_key = sl_sign_load_private(api->audit_key_file, err)) == NULL) {
        sl_err_wrap(err, "api.audit_key_file");
        err->code = SL_ECONFIG;
        goto cleanup;
    }
    sl_pool_set_audit_key(s.pool, s.audit_key);
    if (api->jwt.issuer) {
        if ((s.jwt = sl_jwt_keys_load(api->jwt.keys, err)) == NULL ||
            sl_scopes_parse(api->jwt.scopes, &s.jwt_scopes, err) < 0) {
            sl_err_wrap(err, "api.jwt");
            goto cleanup;
        }
    }
    if (api->oidc.issuer && (s.oidc = sl_oidc_new(api, err)) == NULL) {
        sl_err_wrap(err, "api.oidc");
        err->code = SL_ECONFIG;
        goto cleanup;
    }
    bool tls = api->tls_cert != NULL;
    s.tls = tls;
    if (tls) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            sl_err_set(err, SL_ECONFIG, "api.tls_cert: this libmicrohttpd was built without TLS; "
                       "serve plain HTTP behind a TLS reverse proxy instead (docs/api.md)");
            goto cleanup;
        }
        if ((cert = read_small_file("api.tls_cert", api->tls_cert, err)) == NULL ||
            (key = read_small_file("api.tls_key", api->tls_key, err)) == NULL)
            goto cleanup;
    }
    int max_conn = api->max_connections;
    int idle_ms = api->connection_timeout_ms ? api->connection_timeout_ms : cfg->metrics.request_timeout_ms;
    if (max_conn < api->threads)
        max_conn = api->threads;   /* libmicrohttpd divides the limit among the threads */
    struct MHD_OptionItem opts[] = {
        { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL },
        { MHD_OPTION_SOCK_ADDR, 0, &addr },
        { MHD_OPTION_THREAD_POOL_SIZE, api->threads, NULL },
        { MHD_OPTION_CONNECTION_TIMEOUT, (idle_ms + 999) / 1000, NULL },
        { MHD_OPTION_CONNECTION_LIMIT, max_conn, NULL },
        { MHD_OPTION_PER_IP_CONNECTION_LIMIT, api->per_ip_connections, NULL },
        { MHD_OPTION_CONNECTION_MEMORY_LIMIT, 32 * 1024, NULL },
        { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, &s },
        { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, &s },
        { tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, cert },
        { MHD_OPTION_HTTPS_MEM_KEY, 0, key },
        { MHD_OPTION_END, 0, NULL },
    };
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0) |
                     (tls ? MHD_USE_TLS : 0);
    errno = 0;
    d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &s, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (d == NULL) {
        sl_err_set(err, SL_EIO, "cannot listen on %s: %s", listen, errno ? strerror(errno) : "libmicrohttpd refused");
        goto cleanup;
    }
    if (pthread_create(&s.reaper, NULL, reaper, &s) != 0) {
        sl_err_set(err, SL_EIO, "pthread_create: cannot start the deadline thread");
        goto cleanup;
    }
    reaper_started = true;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    SL_INFO("serve.listening", "address=%s port=%u tls=%s threads=%d max_connections=%d "
            "per_ip_connections=%d idle_timeout_ms=%d request_deadline_ms=%d jwt=%s", listen,
            info ? (unsigned)info->port : 0u, tls ? "on" : "off", api->threads, max_conn,
            api->per_ip_connections, idle_ms, api->request_deadline_ms, s.jwt ? "on" : "off");
    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    SL_INFO("serve.stopping", "signal=%d", sig);
    rc = 0;
cleanup:
    if (d)
        MHD_stop_daemon(d);
    if (reaper_started) {
        pthread_mutex_lock(&s.mu);
        s.stopping = true;
        pthread_cond_signal(&s.wake);
        pthread_mutex_unlock(&s.mu);
        pthread_join(s.reaper, NULL);
    }
    sl_pool_free(s.pool);
    sl_limiter_free(s.limiter);
    sl_jwt_keys_free(s.jwt);
    sl_sign_key_free(s.audit_key);
    sl_oidc_free(s.oidc);
    sl_web_rates_free(s.rates);
    pthread_cond_destroy(&s.wake);
    pthread_mutex_destroy(&s.mu);
    free(cert);
    free(key);
    return rc;
}
