/* master.h: the prefork master of sluice-worker.
 *
 * The master forks cfg->worker.processes children (each runs
 * sl_consumer_main), then supervises them: it reaps exits in its loop
 * (signal handlers only set flags and write to a self-pipe), restarts a
 * crashed child with exponential backoff per slot, and stops the pool on
 * signals:
 *   TERM       graceful: children finish the batch in hand, commit,
 *              acknowledge and exit; after worker.shutdown_timeout the rest
 *              are killed
 *   INT, QUIT  fast: children exit at once (their unacknowledged entries
 *              stay pending in Redis and are redelivered)
 * A child exiting with SL_EXIT_FATAL is not restarted: the master stops the
 * pool and exits non-zero. */
#ifndef SL_MASTER_H
#define SL_MASTER_H

#include "config.h"

/* Runs the pool until it is stopped.  Returns the master's exit status. */
int sl_master_run(const sl_config *cfg);

#endif
