/* apiclient.h: the CLI's way to the API server (libcurl).
 *
 * `sluice run`, `approve` and `reject` do not touch the database: they send
 * a request to api.url ($SLUICE_API_URL) with `Authorization: Bearer
 * $SLUICE_TOKEN`, and the server acts as the principal the token proves.
 * Requests time out (10 s to connect, 60 s in all); an https URL is
 * verified against the system CAs or api.ca_file ($SLUICE_API_CA). */
#ifndef SL_APICLIENT_H
#define SL_APICLIENT_H

#include "buf.h"
#include "config.h"
#include "err.h"

typedef struct cli_api_reply {
    long status;        /* HTTP status */
    sl_buf body;        /* the response body (free with sl_buf_free) */
    char detail[512];   /* a problem's detail (or title), "" otherwise */
} cli_api_reply;

/* Sends method path (body: JSON text or NULL) to the API.  Returns 0 with
 * *reply filled whatever the HTTP status; -1 with err when no answer came
 * (no token in the environment, server unreachable, TLS failure). */
int cli_api(const sl_config *cfg, const char *method, const char *path, const char *body,
            cli_api_reply *reply, sl_err *err);

/* Formats a path: each %s of fmt (the only directive) becomes the next
 * argument percent-encoded as one path segment.  Caller frees. */
char *cli_api_path(const char *fmt, ...);

/* Prints "sluice CMD: <what the server said>" for a non-2xx reply and
 * returns CLI_FAILED. */
int cli_api_fail(const char *cmd, const cli_api_reply *reply);

#endif
