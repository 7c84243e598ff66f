/* httpd.h: a small scripted HTTP server for the job kinds' tests
 * (libmicrohttpd, one thread per connection, bound to 127.0.0.1 on a free
 * port), standing in for webhooks, download hosts, health checks and
 * provisioning endpoints.
 *
 * Each path answers as its th_route says: a status and body, after a delay,
 * 500 for the first N requests, a redirect, a large generated body (with or
 * without Content-Length), or a signature check.  Every request is counted
 * and the last one's body and headers are kept for assertions. */
#ifndef TH_HTTPD_H
#define TH_HTTPD_H

#include <stddef.h>

typedef struct th_httpd th_httpd;

typedef struct th_route {
    int status;               /* answer, default 200 */
    const char *body;         /* answer body, default "" */
    const char *content_type; /* default text/plain */
    int delay_ms;             /* wait this long before answering */
    int fail_first;           /* answer 500 to this many requests first */
    const char *location;     /* with status 3xx: the Location header */
    size_t generate;          /* >0: answer this many bytes of 'x' instead of body */
    int chunked;              /* with generate: no Content-Length */
    const char *hmac_secret;  /* answer 401 unless X-Sluice-Signature matches the body */
} th_route;

/* Starts a server (the test fails if it cannot).  Free with th_httpd_free. */
th_httpd *th_httpd_start(void);
void th_httpd_free(th_httpd *s);

/* Sets how path (e.g. "/hook") answers; replaces an earlier route.  An
 * unrouted path answers 404.  Strings are copied. */
void th_httpd_route(th_httpd *s, const char *path, const th_route *r);

/* "http://127.0.0.1:PORT" + path, in a new string the caller frees. */
char *th_httpd_url(th_httpd *s, const char *path);

/* Requests received for path. */
int th_httpd_hits(th_httpd *s, const char *path);

/* The last request to path: its body and the value of header name (NULL if
 * absent), as new strings the caller frees. */
char *th_httpd_last_body(th_httpd *s, const char *path);
char *th_httpd_last_header(th_httpd *s, const char *path, const char *name);

#endif
