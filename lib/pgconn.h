/* pgconn.h: the one way sluice opens a PostgreSQL connection.
 *
 * Every component (worker children, scheduler, CLI, job kinds) connects
 * through here, so all of them get the same defaults, which settings in
 * the URL override: connect_timeout 10 s; TCP keepalives (idle 10 s, then
 * every 5 s, 3 probes: a server that vanished without closing the
 * connection is noticed within about 25 s instead of the kernel's two
 * hours); an application_name that says which component this is in
 * pg_stat_activity; no GSSAPI encryption (gssencmode disable) unless the
 * URL or $PGGSSENCMODE asks for it.  Notices are not printed (libpq's
 * default writes them to stderr): callers log what matters. */
#ifndef SL_PGCONN_H
#define SL_PGCONN_H

#include <libpq-fe.h>

#include "err.h"

/* Connects to url (a libpq URI or key=value string).  Returns the open
 * connection (caller closes it with PQfinish), or NULL with err set to
 * `code` and "postgres: connect: <libpq's reason>" (libpq names the host
 * and port, never the password). */
PGconn *sl_pg_connect(const char *url, const char *application_name, int code, sl_err *err);

#endif
