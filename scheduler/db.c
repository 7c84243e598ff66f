/* db.c: see db.h. */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "pgconn.h"

struct sl_db {
    PGconn *conn;   /* owned */
    const sl_sign_key *audit_key;   /* borrowed, may be NULL */
};

sl_db *sl_db_connect(const char *url, sl_err *err)
{
    PGconn *conn = sl_pg_connect(url, "sluice-scheduler", SL_EPG, err);
    if (conn == NULL)
        return NULL;
    sl_db *db = sl_xcalloc(1, sizeof *db);
    db->conn = conn;
    return db;
}

void sl_db_free(sl_db *db)
{
    if (db == NULL)
        return;
    if (db->conn)
        PQfinish(db->conn);
    free(db);
}

PGconn *sl_db_conn(sl_db *db) { return db->conn; }

bool sl_db_broken(sl_db *db) { return PQstatus(db->conn) != CONNECTION_OK; }

PGresult *sl_db_exec(sl_db *db, const char *what, const char *sql, int n,
                     const char *const *params, sl_err *err)
{
    PGresult *res = PQexecParams(db->conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char msg[400];
    snprintf(msg, sizeof msg, "%s", primary ? primary : PQerrorMessage(db->conn));
    msg[strcspn(msg, "\n")] = '\0';
    sl_err_set(err, SL_EPG, "postgres: %s: %s", what, msg[0] ? msg : "unknown error");
    PQclear(res);
    return NULL;
}

int sl_db_run(sl_db *db, const char *what, const char *sql, int n,
              const char *const *params, sl_err *err)
{
    PGresult *res = sl_db_exec(db, what, sql, n, params, err);
    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

int sl_db_begin(sl_db *db, sl_err *err) { return sl_db_run(db, "BEGIN", "BEGIN", 0, NULL, err); }

int sl_db_commit(sl_db *db, sl_err *err) { return sl_db_run(db, "COMMIT", "COMMIT", 0, NULL, err); }

void sl_db_rollback(sl_db *db)
{
    PGresult *res = PQexec(db->conn, "ROLLBACK");
    PQclear(res);
}

const char *sl_db_value(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    return PQgetvalue(res, row, col);
}

void sl_db_set_audit_key(sl_db *db, const sl_sign_key *key)
{
    db->audit_key = key;
}

const sl_sign_key *sl_db_audit_key(const sl_db *db)
{
    return db->audit_key;
}
