/* leader.h: which scheduler leads.
 *
 * Several sluice-scheduler processes may run; the one holding a
 * session-level PostgreSQL advisory lock leads and the others poll for it.
 * The lock dies with its connection, so when a leader is killed (or loses
 * its connection) PostgreSQL releases it and a standby's next poll takes
 * over.  A leader that finds its connection broken must stop acting at
 * once: it no longer holds the lock. */
#ifndef SL_LEADER_H
#define SL_LEADER_H

#include <stdbool.h>

#include "db.h"
#include "err.h"

#define SL_LEADER_LOCK_KEY 0x736c7363686564LL   /* "slsched" */

/* Tries to take the lock on db's session; *leading says whether it holds
 * it now (true again if it already did).  Returns -1 with err if the
 * database failed. */
int sl_leader_try(sl_db *db, bool *leading, sl_err *err);

#endif
