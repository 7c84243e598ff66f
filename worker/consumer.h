/* consumer.h: the body of one worker child.
 *
 * A consumer connects to Redis and PostgreSQL after fork, then loops:
 * read a batch of entries (XREADGROUP over its queues), decode each
 * envelope, skip the ones whose result is already committed (redeliveries),
 * run the rest, record every outcome in one PostgreSQL transaction, and
 * only then acknowledge and delete the entries.  An entry that cannot be
 * decoded, or names a kind this build does not have, goes to its queue's
 * dead letter with the reason; the consumer carries on.
 *
 * If PostgreSQL is unreachable after a batch ran, the consumer holds the
 * finished batch (not acknowledged, not re-run) and retries the commit
 * until it succeeds. */
#ifndef SL_CONSUMER_H
#define SL_CONSUMER_H

#include "config.h"
#include "scoreboard.h"

/* Exit status of a child that hit a configuration or schema problem that
 * restarting cannot fix; the master stops instead of respawning. */
#define SL_EXIT_FATAL 78

/* Runs the consumer loop until SIGTERM (finish the batch in hand, then
 * return 0) or SIGINT/SIGQUIT (exit at once), or until master_fd (the read
 * end of a pipe only the master writes to) reports the master gone.
 * slot_index numbers the child in the pool; slot is its scoreboard entry
 * (heartbeats, the job in hand, held entries), NULL when run alone.
 * Returns the process exit status. */
int sl_consumer_main(const sl_config *cfg, int slot_index, sl_slot *slot, int master_fd);

#endif
