/* pgconn.c: see pgconn.h. */
#include "pgconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void discard_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *sl_pg_connect(const char *url, const char *application_name, int code, sl_err *err)
{
    /* Defaults come first so that settings in the URL (expanded from
     * dbname, libpq's expand_dbname) override them.  GSSAPI encryption
     * only when asked for: probing for Kerberos credentials costs every
     * connection a lookup and each worker child about 0.9 MiB of Kerberos
     * libraries; a default given here would also override $PGGSSENCMODE,
     * so it is left out when that is set. */
    const char *const keys[] = { "gssencmode", "connect_timeout", "keepalives_idle", "keepalives_interval",
                                 "keepalives_count", "application_name", "dbname", NULL };
    const char *const vals[] = { "disable", "10", "10", "5", "3", application_name, url, NULL };
    size_t skip = getenv("PGGSSENCMODE") != NULL;
    PGconn *c = PQconnectdbParams(keys + skip, vals + skip, 1);
    if (c != NULL && PQstatus(c) == CONNECTION_OK) {
        PQsetNoticeProcessor(c, discard_notice, NULL);
        return c;
    }
    char msg[400];
    snprintf(msg, sizeof msg, "%s", c ? PQerrorMessage(c) : "out of memory");
    msg[strcspn(msg, "\n")] = '\0';
    PQfinish(c);
    sl_err_set(err, code, "postgres: connect: %s", msg);
    return NULL;
}
