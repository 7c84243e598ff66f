/* http.c: see http.h. */
#include "http.h"
#include "args.h"
#include "json.h"
#include "mem.h"
#include "netguard.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

typedef struct sink {
    sl_buf *body;
    size_t max;
} sink;

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    sink *s = arg;
    size_t n = size * nmemb;
    if (s->body->len < s->max)
        sl_buf_append(s->body, data, n < s->max - s->body->len ? n : s->max - s->body->len);
    return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    const volatile sig_atomic_t *cancelled = arg;
    return cancelled && *cancelled ? 1 : 0;
}

typedef struct guard {
    const sl_http_req *req;
    char refused[200];    /* why a connection was refused, "" if none was */
} guard;

/* libcurl's open-socket callback: every connection passes here with the
 * address it will reach (after DNS), so a refused one gets no socket. */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    guard *g = arg;
    char text[64];
    const char *why = purpose != CURLSOCKTYPE_IPCXN ? "not a plain connection"
                      : sl_netguard_refusal(&a->addr, g->req->allow, g->req->nallow);
    if (why) {
        snprintf(g->refused, sizeof g->refused, "address %s is %s: refused (%s does not allow it)",
                 sl_netguard_addr_text(&a->addr, text, sizeof text), why,
                 g->req->allow_key ? g->req->allow_key : "the configuration");
        return CURL_SOCKET_BAD;
    }
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

int sl_http_request(const sl_http_req *req, sl_http_resp *resp, sl_err *err)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        return sl_err_set(err, SL_EJOB, "%s %s: curl_easy_init failed", req->method, req->url);
    struct curl_slist *hdrs = NULL;
    int rc = -1;
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        struct curl_slist *n = curl_slist_append(hdrs, req->headers[i]);
        if (n == NULL) {
            sl_err_set(err, SL_EJOB, "%s %s: out of memory", req->method, req->url);
            goto cleanup;
        }
        hdrs = n;
    }
    sink s = { &resp->body, req->max_response };
    guard g = { req, "" };
    char curl_err[CURL_ERROR_SIZE] = "";
    long timeout = req->timeout_ms > 0 ? (long)req->timeout_ms : 1;
    CURLcode cc = CURLE_OK;
    /* each setopt below takes a valid option and value; the first failure is kept */
#define SETOPT(opt, val) do { if (cc == CURLE_OK) cc = curl_easy_setopt(h, opt, val); } while (0)
    SETOPT(CURLOPT_URL, req->url);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_TIMEOUT_MS, timeout);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, timeout);
    SETOPT(CURLOPT_HTTPHEADER, hdrs);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, &s);
    SETOPT(CURLOPT_ERRORBUFFER, curl_err);
    SETOPT(CURLOPT_NOPROGRESS, 0L);
    SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
    SETOPT(CURLOPT_XFERINFODATA, (void *)req->cancelled);
    SETOPT(CURLOPT_USERAGENT, "sluice/" SLUICE_VERSION);
    if (req->guard) {
        SETOPT(CURLOPT_OPENSOCKETFUNCTION, open_socket);
        SETOPT(CURLOPT_OPENSOCKETDATA, &g);
    }
    if (strcmp(req->method, "POST") == 0) {
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDS, req->body ? req->body : "");
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
#undef SETOPT
    if (cc != CURLE_OK) {
        sl_err_set(err, SL_EJOB, "%s %s: %s", req->method, req->url, curl_easy_strerror(cc));
        goto cleanup;
    }
    cc = curl_easy_perform(h);
    if (cc == CURLE_ABORTED_BY_CALLBACK) {
        sl_err_set(err, SL_EJOB, "%s %s: cancelled", req->method, req->url);
        goto cleanup;
    }
    if (cc != CURLE_OK && g.refused[0]) {
        sl_err_set(err, SL_EPERMANENT, "%s %s: %s", req->method, req->url, g.refused);
        goto cleanup;
    }
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        sl_err_set(err, SL_EJOB, "%s %s: no answer within %lld ms", req->method, req->url,
                   (long long)req->timeout_ms);
        goto cleanup;
    }
    if (cc != CURLE_OK) {
        sl_err_set(err, SL_EJOB, "%s %s: %s", req->method, req->url,
                   curl_err[0] ? curl_err : curl_easy_strerror(cc));
        goto cleanup;
    }
    if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status) != CURLE_OK) {
        sl_err_set(err, SL_EJOB, "%s %s: no HTTP status", req->method, req->url);
        goto cleanup;
    }
    rc = 0;

cleanup:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc;
}

char *sl_http_json_member(const sl_buf *body, const char *key)
{
    if (body->len == 0)
        return NULL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char *value = NULL;
    sl_err e;
    if (sl_json_to_msgpack(body->data, body->len, &pk, &e) == 0) {
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        if (msgpack_unpack_next(&up, sb.data, sb.size, NULL) == MSGPACK_UNPACK_SUCCESS) {
            const msgpack_object *v = sl_args_get(&up.data, key);
            if (v && v->type == MSGPACK_OBJECT_STR && !memchr(v->via.str.ptr, '\0', v->via.str.size))
                value = sl_xstrndup(v->via.str.ptr, v->via.str.size);
            else if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                value = sl_xasprintf("%llu", (unsigned long long)v->via.u64);
            else if (v && v->type == MSGPACK_OBJECT_BOOLEAN)
                value = sl_xstrdup(v->via.boolean ? "true" : "false");
            else if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                value = sl_xasprintf("%lld", (long long)v->via.i64);
        }
        msgpack_unpacked_destroy(&up);
    }
    msgpack_sbuffer_destroy(&sb);
    return value;
}
