/* overrun.h: hands a batch's unstarted entries back when one job overruns.
 *
 * A worker child runs its batch's jobs one after another, so a job that
 * runs long holds every entry behind it in the batch hostage, while other
 * processes may be idle.  A watchdog thread in the child watches the job
 * that runs: once it has run SL_OVERRUN_AFTER_MS, the thread drops the
 * claims (PostgreSQL) of the entries that have not started and hands each
 * back to its stream the way a graceful stop does (sl_queue_release: a
 * copy appended, the original acknowledged and deleted, in one MULTI), so
 * that an idle process takes them at once.  It uses connections of its
 * own, opened on the first release.
 *
 * Who runs an entry is decided under one lock: the child marks an entry
 * started (sl_overrun_start) before it runs it, the thread marks it
 * released before it hands it back; whichever comes first wins, so an
 * entry is run here or handed back, never both.  A handing-back that
 * fails (Redis refused or unreachable) returns the entry to this child,
 * which runs it.  A crash of the child at any point leaves each entry
 * either pending (taken over by its replacement, as any batch) or handed
 * back (a new entry that any process runs).
 *
 * A pool of one process has nothing to gain from it: the consumer starts
 * the watchdog only when worker.processes is more than 1.
 *
 * The thread never logs (the logger's job context belongs to the main
 * thread); sl_overrun_end reports what it did. */
#ifndef SL_OVERRUN_H
#define SL_OVERRUN_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "envelope.h"
#include "err.h"
#include "queue.h"

#define SL_OVERRUN_AFTER_MS 20  /* a job running this long releases its batch-mates */

typedef struct sl_overrun sl_overrun;

/* Starts the watchdog thread (signals blocked in it).  cfg is borrowed
 * for the thread's lifetime.  Returns NULL with err if the thread cannot
 * be started. */
sl_overrun *sl_overrun_new(const sl_config *cfg, sl_err *err);

/* Stops and joins the thread, closes its connections; NULL is fine. */
void sl_overrun_free(sl_overrun *o);

/* A new batch of n slots, none releasable until sl_overrun_add. */
void sl_overrun_begin(sl_overrun *o, size_t n);

/* Makes slot i releasable: the entry (borrowed until sl_overrun_end) and
 * its job, claimed by this child and not started. */
void sl_overrun_add(sl_overrun *o, size_t i, const sl_entry *entry, const sl_job *job);

/* Takes slot i for this child before it runs it (running: the watchdog
 * times it from now) or hands it back itself on a graceful stop (running
 * false).  True if the slot is this child's; false if the watchdog handed
 * it back (do nothing more with it).  o may be NULL (always true). */
bool sl_overrun_take(sl_overrun *o, size_t i, bool running);

/* The job taken last with running true has ended. */
void sl_overrun_done(sl_overrun *o);

/* The batch ends (waits for a handing-back in progress).  Returns how many
 * entries were handed back; *failed receives how many could not be, with
 * the last reason in err. */
size_t sl_overrun_end(sl_overrun *o, size_t *failed, sl_err *err);

#endif
