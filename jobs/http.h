/* http.h: one HTTP request with libcurl, as the kinds make them (deploy
 * webhooks and health checks, provision endpoints).
 *
 * Only http and https are spoken, redirects are never followed (a webhook
 * that redirects is a configuration error the operator should see), the
 * response body is kept up to a bound, and the request stops early when the
 * job is cancelled.  The importer, which streams large bodies to disk and
 * follows redirects under an allow-list, drives libcurl itself.
 *
 * curl_global_init must have been called (sluice-worker does it before
 * forking). */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config_jobs.h"
#include "err.h"

typedef struct sl_http_req {
    const char *method;          /* "GET" or "POST" */
    const char *url;
    const char *body;            /* POST body, may be NULL */
    size_t body_len;
    const char *const *headers;  /* "Name: value" strings ended by NULL, or NULL */
    int64_t timeout_ms;          /* whole request */
    size_t max_response;         /* bytes of the body kept; the rest is dropped */
    const volatile sig_atomic_t *cancelled;  /* may be NULL */
    bool guard;                  /* check the address every connection reaches (netguard.h):
                                    internal ones are refused unless allow covers them */
    const sl_cidr *allow;        /* with guard: ranges allowed anyway, nallow of them */
    size_t nallow;
    const char *allow_key;       /* with guard: the configuration key a refusal names */
} sl_http_req;

typedef struct sl_http_resp {
    long status;                 /* HTTP status */
    sl_buf body;                 /* first max_response bytes; caller frees with sl_buf_free */
} sl_http_resp;

/* Makes the request.  Returns 0 when an HTTP response arrived, whatever its
 * status, or -1 when none did: err SL_EJOB "METHOD URL: reason" (timeout,
 * refused connection, cancelled...), which is worth retrying, or
 * SL_EPERMANENT when guard refused the address (nothing was sent).  resp->body
 * must be initialised (SL_BUF_INIT) and is appended to. */
int sl_http_request(const sl_http_req *req, sl_http_resp *resp, sl_err *err);

/* Reads a JSON object answer and returns its member key as a new string
 * (a string as is, a number as its digits, a boolean as true/false), or NULL when the body is not a
 * JSON object or has no such scalar member.  Caller frees. */
char *sl_http_json_member(const sl_buf *body, const char *key);

#endif
