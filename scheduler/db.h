/* db.h: the scheduler's PostgreSQL connection and its few helpers.
 *
 * lib/store.h keeps its connection opaque and speaks for the worker; the
 * scheduler and the CLI commands that manage runs and gates need their own
 * statements, transactions and LISTEN, so they hold a libpq connection
 * through this thin wrapper.  Every statement is parameterised (text
 * parameters); errors come back as sl_err (SL_EPG) naming the statement.
 * A connection must never cross fork(). */
#ifndef SL_DB_H
#define SL_DB_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "err.h"
#include "sign.h"

typedef struct sl_db sl_db;

/* Connects to url.  Returns NULL with err on failure; free with sl_db_free. */
sl_db *sl_db_connect(const char *url, sl_err *err);
void sl_db_free(sl_db *db);   /* db may be NULL */

/* The underlying connection (LISTEN, PQsocket, notifications). */
PGconn *sl_db_conn(sl_db *db);

/* True once the connection is gone. */
bool sl_db_broken(sl_db *db);

/* Runs sql with n text parameters (NULL = SQL NULL).  Returns the result
 * (caller PQclear) for a command or query that succeeded, or NULL with err
 * ("postgres: WHAT: message").  what names the statement in messages. */
PGresult *sl_db_exec(sl_db *db, const char *what, const char *sql, int n,
                     const char *const *params, sl_err *err);

/* Like sl_db_exec for statements whose result is not needed. */
int sl_db_run(sl_db *db, const char *what, const char *sql, int n,
              const char *const *params, sl_err *err);

/* BEGIN, COMMIT, ROLLBACK (rollback never fails loudly: it is cleanup). */
int sl_db_begin(sl_db *db, sl_err *err);
int sl_db_commit(sl_db *db, sl_err *err);
void sl_db_rollback(sl_db *db);

/* The key that signs the audit rows this connection appends (gate
 * decisions, timeouts; scheduler/audit.h).  Borrowed: it must outlive the
 * connection's use.  NULL (the default): rows are left unsigned, which
 * `sluice audit verify --public-key` reports. */
void sl_db_set_audit_key(sl_db *db, const sl_sign_key *key);
const sl_sign_key *sl_db_audit_key(const sl_db *db);

/* Value of row, column as text; NULL for SQL NULL. */
const char *sl_db_value(const PGresult *res, int row, int col);

#endif
