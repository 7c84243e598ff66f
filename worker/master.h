/* master.h: the prefork master of sluice-worker.
 *
 * The master forks worker.processes children (each runs sl_consumer_main),
 * then supervises them: it reaps exits in its loop (signal handlers only
 * set flags and write to a self-pipe), restarts a crashed child with
 * exponential backoff per slot, SIGKILLs a child whose job overran its
 * deadline (the scoreboard, scoreboard.h), renews the leases of the entries
 * its children hold and publishes the pool in the worker registry
 * (supervise.h).  Signals:
 *   TERM       graceful: children finish the batch in hand, commit,
 *              acknowledge and exit; after worker.shutdown_timeout the rest
 *              are killed
 *   INT, QUIT  fast: children exit at once (their unacknowledged entries
 *              stay pending in Redis and are redelivered)
 *   HUP        reload the configuration, then replace the children one at
 *              a time (TERM one, wait for it, fork its replacement)
 *   TTIN/TTOU  one child more / less (never fewer than one)
 *   USR1       reopen the log file and tell the children to do the same
 * A child exiting with SL_EXIT_FATAL is not restarted: the master stops the
 * pool and exits with SL_EXIT_FATAL too.  docs/operations.md is the
 * operator's version of this. */
#ifndef SL_MASTER_H
#define SL_MASTER_H

#include <stdbool.h>

#include "config.h"
#include "err.h"

/* Loads the configuration afresh (for SIGHUP): the file plus the command
 * line's overrides.  Returns a config the master owns, or NULL with err. */
typedef sl_config *(*sl_config_loader)(void *arg, sl_err *err);

typedef struct sl_master_opts {
    const char *pidfile;     /* --pidfile PATH, or NULL */
    sl_config_loader reload; /* for SIGHUP; NULL: HUP only replaces the children */
    void *reload_arg;        /* passed to reload */
} sl_master_opts;

/* Runs the pool until it is stopped.  Takes ownership of cfg (freed on
 * return; replaced on each successful reload).  Returns the master's exit
 * status: 0 after a clean stop, 1 if it could not start, SL_EXIT_FATAL if a
 * child hit a configuration or schema error. */
int sl_master_run(sl_config *cfg, const sl_master_opts *opts);

#endif
