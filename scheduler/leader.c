/* leader.c: see leader.h. */
#include "leader.h"

#include <stdio.h>
#include <string.h>

int sl_leader_try(sl_db *db, bool *leading, sl_err *err)
{
    char key[32];
    snprintf(key, sizeof key, "%lld", SL_LEADER_LOCK_KEY);
    const char *p[] = { key };
    PGresult *res = sl_db_exec(db, "leader lock", "SELECT pg_try_advisory_lock($1::bigint)", 1, p, err);
    if (res == NULL)
        return -1;
    *leading = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}
