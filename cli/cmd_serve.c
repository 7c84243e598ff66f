/* cmd_serve.c: `sluice serve`: a small HTTP server for Prometheus and for
 * health checks (libmicrohttpd).
 *
 *   GET /metrics  the text exposition of a fresh snapshot (snapshot.h)
 *   GET /healthz  200 if Redis and PostgreSQL answer, else 503 naming which
 *   GET /readyz   200 if, in addition, the schema is the one this build
 *                 knows (`sluice migrate` has run), else 503
 * HEAD is accepted wherever GET is; another method gets 405 (with Allow),
 * another path 404.
 *
 * Design: one libmicrohttpd daemon with one internal polling thread
 * (poll(2)) serves every connection, so a client that connects and sends
 * nothing only holds a socket: other requests are served meanwhile, and
 * the idle one is closed after metrics.request_timeout.  At most
 * metrics.max_connections are accepted at once.  Requests are answered one
 * at a time on that thread, which alone owns the Redis and PostgreSQL
 * connections (reopened after a failure); a snapshot takes two Redis round
 * trips plus one query, so serialising scrapes costs little and never
 * multiplies the load on the servers.  The main thread only waits for
 * SIGINT/SIGTERM (blocked in every thread, taken with sigwait) and then
 * stops the daemon. */
#include "cli.h"
#include "log.h"
#include "snapshot.h"
#include "store.h"

#include <errno.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CMD "serve"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: sluice serve [OPTIONS]\n"
        "\n"
        "Serves, over HTTP, GET /metrics (the Prometheus text exposition, as\n"
        "'sluice metrics' prints it), GET /healthz (200 when Redis and PostgreSQL\n"
        "answer) and GET /readyz (200 when, in addition, the schema is current).\n"
        "Runs in the foreground until SIGINT or SIGTERM; logs to stderr.\n"
        "\n"
        "Options:\n"
        "  -l, --listen ADDR   address to bind, HOST:PORT (default: metrics.listen,\n"
        "                      127.0.0.1:9464); [V6ADDR]:PORT for IPv6; port 0\n"
        "                      picks a free port (logged in serve.listening)\n"
        "  -c, --config FILE   configuration file (metrics.request_timeout,\n"
        "                      metrics.max_connections)\n"
        "  -h, --help          show this help\n");
}

/* What the request handler needs; touched only by the daemon's thread. */
typedef struct server {
    snap_conn conn;
} server;

/* Splits "host:port" / "[v6]:port" and resolves it (numeric only). */
static int resolve(const char *listen, struct sockaddr_storage *ss, socklen_t *len, bool *v6,
                   sl_err *err)
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
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int code, const char *type,
                             const char *body, size_t len, bool allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ok = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned int code, const char *msg, bool allow)
{
    return reply(c, code, "text/plain; charset=utf-8", msg, strlen(msg), allow);
}

/* /healthz (ready false) and /readyz (ready true). */
static enum MHD_Result health(server *s, struct MHD_Connection *c, bool ready)
{
    sl_buf msg = SL_BUF_INIT;
    sl_err err;
    bool ok = true;
    if (s->conn.redis && sl_redis_broken(s->conn.redis)) {
        sl_redis_free(s->conn.redis);
        s->conn.redis = NULL;
    }
    if (s->conn.redis == NULL)
        s->conn.redis = sl_redis_connect(s->conn.cfg->redis_url, 5000, &err);
    const char *ping[] = { "PING" };
    redisReply *rep = s->conn.redis ? sl_redis_command(s->conn.redis, 1, ping, NULL, &err) : NULL;
    if (rep) {
        freeReplyObject(rep);
        sl_buf_puts(&msg, "redis: ok\n");
    } else {
        ok = false;
        sl_buf_printf(&msg, "redis: %s\n", err.msg);
    }
    if (s->conn.store && sl_store_broken(s->conn.store)) {
        sl_store_free(s->conn.store);
        s->conn.store = NULL;
    }
    if (s->conn.store == NULL)
        s->conn.store = sl_store_connect(s->conn.cfg->database_url, &err);
    if (s->conn.store == NULL) {
        ok = false;
        sl_buf_printf(&msg, "postgres: %s\n", err.msg);
    } else if (sl_store_check_schema(s->conn.store, &err) == 0) {
        sl_buf_puts(&msg, "postgres: ok\n");
    } else if (sl_store_broken(s->conn.store)) {
        ok = false;
        sl_buf_printf(&msg, "postgres: %s\n", err.msg);
    } else {
        ok = ok && !ready;   /* reachable; the schema only matters for readiness */
        sl_buf_printf(&msg, "postgres: reachable; schema: %s\n", err.msg);
    }
    enum MHD_Result r = text(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, sl_buf_str(&msg), false);
    sl_buf_free(&msg);
    return r;
}

static enum MHD_Result metrics(server *s, struct MHD_Connection *c)
{
    snap sn;
    sl_err err;
    enum MHD_Result r;
    if (snap_conn_take(&s->conn, NULL, 0, &sn, &err) < 0) {
        char q[600];
        SL_WARN("serve.scrape_failed", "error=%s", sl_log_quote(q, sizeof q, err.msg));
        char msg[600];
        snprintf(msg, sizeof msg, "snapshot failed: %s\n", err.msg);
        r = text(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg, false);
    } else {
        sl_buf b = SL_BUF_INIT;
        snap_prometheus(&sn, &b);
        r = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", sl_buf_str(&b), b.len, false);
        sl_buf_free(&b);
    }
    snap_clear(&sn);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    server *s = cls;
    /* Respond once the request (and any body) has been read. */
    if (*req_cls == NULL) {
        *req_cls = s;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0;   /* a body is ignored: no endpoint takes one */
        return MHD_YES;
    }
    bool known = strcmp(url, "/metrics") == 0 || strcmp(url, "/healthz") == 0 ||
                 strcmp(url, "/readyz") == 0;
    if (!known)
        return text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n", false);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET\n", true);
    if (strcmp(url, "/metrics") == 0)
        return metrics(s, c);
    return health(s, c, strcmp(url, "/readyz") == 0);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512], q[600];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    SL_WARN("serve.http", "message=%s", sl_log_quote(q, sizeof q, msg));
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL, *listen = NULL;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":l:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 'c': config = optarg; break;
        case 'h': usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    sl_config *cfg = cli_load_config(CMD, config);
    if (cfg == NULL)
        return CLI_FAILED;
    sl_log_setup("serve", cfg->log_level);
    if (listen == NULL)
        listen = cfg->metrics.listen;
    struct sockaddr_storage addr;
    socklen_t addrlen = 0;
    bool v6 = false;
    sl_err err;
    if (resolve(listen, &addr, &addrlen, &v6, &err) < 0) {
        sl_config_free(cfg);
        return cli_usage_error(CMD, "%s", err.msg);
    }
    /* Block the stop signals in every thread (the daemon's inherits the
     * mask); the main thread takes them with sigwait. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    server srv = { .conn = { .cfg = cfg } };
    unsigned int timeout_s = (unsigned int)((cfg->metrics.request_timeout_ms + 999) / 1000);
    unsigned int flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &srv,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->metrics.max_connections,
        MHD_OPTION_END);
    int status = CLI_FAILED;
    if (d == NULL) {
        cli_fail(CMD, "cannot listen on %s: %s", listen, errno ? strerror(errno) : "libmicrohttpd refused");
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    SL_INFO("serve.listening", "address=%s port=%u timeout_s=%u max_connections=%d", listen,
            info ? (unsigned)info->port : 0u, timeout_s, cfg->metrics.max_connections);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    SL_INFO("serve.stopping", "signal=%d", sig);
    MHD_stop_daemon(d);
    status = CLI_OK;
out:
    snap_conn_close(&srv.conn);
    sl_config_free(cfg);
    return status;
}
