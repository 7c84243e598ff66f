/* pgconn.c: see pgconn.h. */
#include "pgconn.h"

#include <stdio.h>
#include <string.h>

static void discard_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *sl_pg_connect(const char *url, const char *application_name, int code, sl_err *err)
{
    /* Defaults come first so that settings in the URL (expanded from
     * dbname, libpq's expand_dbname) override them. */
    const char *const keys[] = { "connect_timeout", "keepalives_idle", "keepalives_interval",
                                 "keepalives_count", "application_name", "dbname", NULL };
    const char *const vals[] = { "10", "10", "5", "3", application_name, url, NULL };
    PGconn *c = PQconnectdbParams(keys, vals, 1);
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
