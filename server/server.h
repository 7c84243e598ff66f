/* server.h: `sluice serve`, the API server: the /v1/ JSON API (api.h),
 * /metrics, /healthz and /readyz, over HTTP or HTTPS.  See http.c for the
 * design (threads, limits, deadlines) and docs/api.md for the endpoints. */
#ifndef SL_SERVER_H
#define SL_SERVER_H

#include "config.h"
#include "err.h"

/* Parses "HOST:PORT" / "[V6]:PORT" (numeric host).  Returns -1 with err
 * (SL_EINVAL) when it is not one. */
int sl_server_check_listen(const char *listen, sl_err *err);

/* Serves on listen (NULL: api.listen, else metrics.listen) until SIGINT or
 * SIGTERM (blocked in every thread and taken with sigwait here).  Returns
 * 0 after a clean stop; -1 with err if it could not start (address in use,
 * unreadable TLS files or JWT keys, TLS not supported by libmicrohttpd). */
int sl_server_run(const sl_config *cfg, const char *listen, sl_err *err);

#endif
