/* httpd.c: see httpd.h. */
#include "httpd.h"
#include "mem.h"
#include "sha256.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_ROUTES 32
#define MAX_HEADERS 16

typedef struct route {
    char *path;
    th_route r;               /* strings owned */
    int hits;
    char *last_body;
    char *hdr_names[MAX_HEADERS];
    char *hdr_values[MAX_HEADERS];
    int nhdrs;
} route;

struct th_httpd {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t lock;
    route routes[MAX_ROUTES];
    int nroutes;
    volatile int stopping;
};

typedef struct request {      /* per connection request, while its body arrives */
    char *body;
    size_t len;
} request;

static route *find(th_httpd *s, const char *path)
{
    for (int i = 0; i < s->nroutes; i++) {
        if (strcmp(s->routes[i].path, path) == 0)
            return &s->routes[i];
    }
    return NULL;
}

static enum MHD_Result keep_header(void *arg, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    route *rt = arg;
    if (rt->nhdrs < MAX_HEADERS) {
        rt->hdr_names[rt->nhdrs] = sl_xstrdup(key);
        rt->hdr_values[rt->nhdrs] = sl_xstrdup(value ? value : "");
        rt->nhdrs++;
    }
    return MHD_YES;
}

static ssize_t generate(void *arg, uint64_t pos, char *buf, size_t max)
{
    size_t total = *(size_t *)arg;
    if (pos >= total)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = total - pos < max ? total - pos : max;
    memset(buf, 'x', n);
    return (ssize_t)n;
}

static void free_size(void *arg)
{
    free(arg);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)method, (void)version;
    th_httpd *s = cls;
    request *rq = *con_cls;
    if (rq == NULL) {
        *con_cls = sl_xcalloc(1, sizeof *rq);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        rq->body = sl_xrealloc(rq->body, rq->len + *upload_size + 1);
        memcpy(rq->body + rq->len, upload, *upload_size);
        rq->len += *upload_size;
        rq->body[rq->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&s->lock);
    route *rt = find(s, url);
    th_route r = { .status = 404, .body = "no such route" };
    int hits = 0;
    char *secret = NULL, *sig = NULL;
    size_t *gen = NULL;
    if (rt) {
        hits = ++rt->hits;
        free(rt->last_body);
        rt->last_body = sl_xstrndup(rq->body ? rq->body : "", rq->len);
        for (int i = 0; i < rt->nhdrs; i++) {
            free(rt->hdr_names[i]);
            free(rt->hdr_values[i]);
        }
        rt->nhdrs = 0;
        MHD_get_connection_values(conn, MHD_HEADER_KIND, keep_header, rt);
        r = rt->r;
        secret = sl_xstrdup(r.hmac_secret);
        const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Sluice-Signature");
        sig = sl_xstrdup(v);
    }
    /* copies of what the answer needs, so the lock can be dropped while waiting */
    char *body = sl_xstrdup(r.body ? r.body : ""), *ctype = sl_xstrdup(r.content_type);
    char *location = sl_xstrdup(r.location);
    pthread_mutex_unlock(&s->lock);

    for (int waited = 0; waited < r.delay_ms && !s->stopping; waited += 10) {
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
    int status = r.status ? r.status : 200;
    if (hits <= r.fail_first)
        status = 500;
    if (secret) {
        unsigned char mac[SL_SHA256_LEN];
        char want[80], hex[SL_SHA256_HEX];
        sl_hmac_sha256(secret, strlen(secret), rq->body ? rq->body : "", rq->len, mac);
        sl_sha256_hex(mac, hex);
        snprintf(want, sizeof want, "sha256=%s", hex);
        if (sig == NULL || strcmp(sig, want) != 0) {
            status = 401;
            free(body);
            body = sl_xstrdup("bad signature");
        }
    }
    struct MHD_Response *resp;
    if (r.generate && status < 300) {
        gen = sl_xmalloc(sizeof *gen);
        *gen = r.generate;
        resp = MHD_create_response_from_callback(r.chunked ? MHD_SIZE_UNKNOWN : r.generate, 65536,
                                                 generate, gen, free_size);
    } else {
        resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
    }
    MHD_add_response_header(resp, "Content-Type", ctype ? ctype : "text/plain");
    if (location)
        MHD_add_response_header(resp, "Location", location);
    enum MHD_Result res = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    free(body);
    free(ctype);
    free(location);
    free(secret);
    free(sig);
    return res;
}

static void done(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode tc)
{
    (void)cls, (void)conn, (void)tc;
    request *rq = *con_cls;
    if (rq) {
        free(rq->body);
        free(rq);
    }
    *con_cls = NULL;
}

th_httpd *th_httpd_start(void)
{
    th_httpd *s = sl_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
                            0, NULL, NULL, answer, s, MHD_OPTION_SOCK_ADDR, &addr,
                            MHD_OPTION_NOTIFY_COMPLETED, done, s, MHD_OPTION_END);
    cr_assert_not_null(s->d, "could not start the test HTTP server");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    cr_assert_not_null(info);
    s->port = info->port;
    return s;
}

void th_httpd_free(th_httpd *s)
{
    if (s == NULL)
        return;
    s->stopping = 1;
    MHD_stop_daemon(s->d);
    for (int i = 0; i < s->nroutes; i++) {
        route *rt = &s->routes[i];
        free(rt->path);
        free((char *)rt->r.body);
        free((char *)rt->r.content_type);
        free((char *)rt->r.location);
        free((char *)rt->r.hmac_secret);
        free(rt->last_body);
        for (int k = 0; k < rt->nhdrs; k++) {
            free(rt->hdr_names[k]);
            free(rt->hdr_values[k]);
        }
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void th_httpd_route(th_httpd *s, const char *path, const th_route *r)
{
    pthread_mutex_lock(&s->lock);
    route *rt = find(s, path);
    if (rt == NULL) {
        cr_assert_lt(s->nroutes, MAX_ROUTES);
        rt = &s->routes[s->nroutes++];
        rt->path = sl_xstrdup(path);
    } else {
        free((char *)rt->r.body);
        free((char *)rt->r.content_type);
        free((char *)rt->r.location);
        free((char *)rt->r.hmac_secret);
    }
    rt->r = *r;
    rt->r.body = sl_xstrdup(r->body);
    rt->r.content_type = sl_xstrdup(r->content_type);
    rt->r.location = sl_xstrdup(r->location);
    rt->r.hmac_secret = sl_xstrdup(r->hmac_secret);
    pthread_mutex_unlock(&s->lock);
}

char *th_httpd_url(th_httpd *s, const char *path)
{
    return sl_xasprintf("http://127.0.0.1:%d%s", s->port, path);
}

int th_httpd_hits(th_httpd *s, const char *path)
{
    pthread_mutex_lock(&s->lock);
    route *rt = find(s, path);
    int n = rt ? rt->hits : 0;
    pthread_mutex_unlock(&s->lock);
    return n;
}

char *th_httpd_last_body(th_httpd *s, const char *path)
{
    pthread_mutex_lock(&s->lock);
    route *rt = find(s, path);
    char *b = rt ? sl_xstrdup(rt->last_body) : NULL;
    pthread_mutex_unlock(&s->lock);
    return b;
}

char *th_httpd_last_header(th_httpd *s, const char *path, const char *name)
{
    char *v = NULL;
    pthread_mutex_lock(&s->lock);
    route *rt = find(s, path);
    for (int i = 0; rt && i < rt->nhdrs && v == NULL; i++) {
        if (strcasecmp(rt->hdr_names[i], name) == 0)
            v = sl_xstrdup(rt->hdr_values[i]);
    }
    pthread_mutex_unlock(&s->lock);
    return v;
}
