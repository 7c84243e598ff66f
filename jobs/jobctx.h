/* jobctx.h: what the real kinds (deploy, import, codegen, provision) share
 * about the job they run: its time budget, its cancellation flag, the job
 * as JSON for remote ends, database connections, and writing its outputs
 * as one JSON object.
 *
 * Outputs are built with an sl_jout over ctx->outputs:
 *     sl_jout o;
 *     sl_jout_begin(&o, ctx->outputs);
 *     sl_jout_str(&o, "target", t->name);
 *     sl_jout_int(&o, "exit_code", 0);
 *     sl_jout_end(&o);
 * Strings are escaped by sl_json_put_string; nothing is allocated that the
 * sl_buf does not own. */
#ifndef SL_JOBCTX_H
#define SL_JOBCTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "buf.h"
#include "kind.h"

/* The job's time budget (ctx->timeout_ms, which the worker fills in: the
 * kinds do not read the worker's configuration). */
int64_t sl_jobctx_timeout_ms(const sl_job_ctx *ctx);

/* True once the job has been cancelled (ctx->cancelled may be NULL). */
bool sl_jobctx_cancelled(const sl_job_ctx *ctx);

/* Appends the job as the JSON object that webhooks and endpoints receive:
 * {"id","kind","queue","attempt","args":{…}}.  Returns -1 with err
 * (SL_EINVAL) when the arguments hold a value JSON cannot carry. */
int sl_jobctx_job_json(const sl_job_ctx *ctx, sl_buf *out, sl_err *err);

/* Reads a secret the configuration points to: from file (an absolute path,
 * or a name in $CREDENTIALS_DIRECTORY; one trailing newline dropped) when
 * file is set, else from the environment variable env (through
 * lib/secretenv.h, so also after sluice-worker has taken it out of its
 * environment).  what names the setting in messages.  Returns a new string
 * (caller wipes and frees it with sl_jobctx_secret_free), or NULL with err
 * (SL_EJOB: unset, unreadable, empty or holding a NUL byte). */
char *sl_jobctx_secret(const char *env, const char *file, const char *what, sl_err *err);
void sl_jobctx_secret_free(char *secret);   /* secret may be NULL */

/* Opens a PostgreSQL connection for a kind (url: a libpq URI or conninfo)
 * with a 10 s connect timeout.  Returns it, or NULL with err (SL_EJOB, a
 * retryable failure) naming what for. */
PGconn *sl_jobctx_pg_connect(const char *url, const char *what, sl_err *err);

/* Writes a printable excerpt of data[0..len) into buf (at most n-1 bytes,
 * control characters replaced by spaces) and returns buf: for quoting
 * caller-supplied values, remote answers and command output in error
 * messages, which are one line. */
const char *sl_jobctx_excerpt(const char *data, size_t len, char *buf, size_t n);

/* Appends s[0..n) to out as text PostgreSQL can store: every NUL byte and
 * every byte that does not begin a well-formed UTF-8 sequence is replaced
 * by U+FFFD.  Returns the number of bytes replaced (0 when s was clean). */
size_t sl_jobctx_put_text(sl_buf *out, const char *s, size_t n);

typedef struct sl_jout {
    sl_buf *b;    /* where the object is written */
    bool first;   /* no member written yet */
} sl_jout;

void sl_jout_begin(sl_jout *o, sl_buf *b);
void sl_jout_str(sl_jout *o, const char *key, const char *value);   /* NULL writes null */
void sl_jout_strn(sl_jout *o, const char *key, const char *value, size_t n);
/* Like sl_jout_strn for bytes from outside (command output, remote
 * answers): NULs and invalid UTF-8 become U+FFFD (sl_jobctx_put_text).
 * Returns the number of bytes replaced. */
size_t sl_jout_text(sl_jout *o, const char *key, const char *value, size_t n);
void sl_jout_int(sl_jout *o, const char *key, int64_t value);
void sl_jout_bool(sl_jout *o, const char *key, bool value);
/* Writes key and then lets the caller append a JSON value to o->b. */
void sl_jout_key(sl_jout *o, const char *key);
void sl_jout_end(sl_jout *o);

#endif
