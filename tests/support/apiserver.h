/* apiserver.h: the API server (`sluice serve`) in tests: start a real
 * server process on a free port, make tokens with the real `sluice token
 * create`, and talk HTTP(S) to it with libcurl. */
#ifndef TH_APISERVER_H
#define TH_APISERVER_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct th_server {
    pid_t pid;
    int port;
    char *log;        /* the server's stderr (owned) */
    char url[64];     /* http(s)://127.0.0.1:PORT */
} th_server;

/* Starts `sluice serve --config config --listen 127.0.0.1:0` (https when
 * tls is true, for the URL) and waits until it logs its port.  env_extra as
 * th_run's (may be NULL). */
void th_serve_start(th_server *s, const char *config, bool tls, const char *const *env_extra);

/* The same on listen ("127.0.0.1:PORT"), for a test whose configuration
 * must name the server's URL before it starts (api.public_url, OIDC
 * redirect URLs); th_free_port() gives such a port. */
void th_serve_start_on(th_server *s, const char *config, const char *listen, bool tls,
                       const char *const *env_extra);

/* A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
 * closed again). */
int th_free_port(void);

/* Stops it with SIGTERM; asserts a clean exit and no sanitizer report. */
void th_serve_stop(th_server *s);

/* `sluice token create --user user --scopes scopes [--expires expires]`
 * with config; returns the token (caller frees). */
char *th_token(const char *config, const char *user, const char *scopes, const char *expires);

/* One HTTP exchange. */
typedef struct th_http_reply {
    long status;
    char *body;          /* owned, NUL-terminated */
    char *headers;       /* owned: the response headers as received */
} th_http_reply;

/* Sends method url with "Authorization: Bearer token" (token may be NULL),
 * body (JSON, may be NULL) and one extra header (may be NULL).  ca: CA file
 * for https (may be NULL).  Fails the test if no answer came within 30 s. */
th_http_reply th_http(const char *method, const char *url, const char *token, const char *body,
                      const char *header, const char *ca);
void th_http_free(th_http_reply *r);

/* Makes later th_http calls connect from local address ip (another
 * loopback address, "127.0.0.2"), or from the default again (NULL). */
void th_http_source(const char *ip);

/* The value of header name in r (a static buffer), or NULL. */
const char *th_http_header(const th_http_reply *r, const char *name);

#endif
