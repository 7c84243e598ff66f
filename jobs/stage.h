/* stage.h: writing a kind's results aside and publishing them atomically,
 * and clearing away what a killed worker left half-written.
 *
 * import writes a download into a staging file in the destination
 * directory, then renames it to its name; codegen writes a tree into a
 * staging directory, then renames that.  A reader therefore sees a whole
 * result or none.  What a worker killed mid-job (its timeout, a crash) leaves
 * behind must not stay forever either:
 *
 *   - a staging file is, where the file system allows, an O_TMPFILE: it has
 *     no name until it is published, so a crash leaves nothing at all;
 *   - otherwise (and for directories) a staging name carries the pid of the
 *     worker writing it, "<prefix><pid>-XXXXXX", and sl_stage_sweep, run
 *     before each job, removes the entries whose pid no longer exists.
 *
 * Staging names start with '.', so they never collide with published names,
 * which the kinds require not to start with '.'. */
#ifndef SL_STAGE_H
#define SL_STAGE_H

#include "err.h"

/* Removes dir's entries named "<prefix><pid>-…" whose process is gone
 * (files and whole trees; never following symlinks).  Errors are ignored:
 * the sweep is housekeeping and retried by the next job. */
void sl_stage_sweep(const char *dir, const char *prefix);

/* Removes path and, if it is a directory, everything under it, never
 * following symlinks.  Errors are ignored (best effort cleanup). */
void sl_stage_remove(const char *path);

/* Returns a new mkstemp/mkdtemp template "<dir>/<prefix><pid>-XXXXXX";
 * caller frees. */
char *sl_stage_template(const char *dir, const char *prefix);

/* Opens a staging file in dir for reading and writing.  *named is NULL for
 * an unnamed O_TMPFILE, else the path of a named one (caller frees, and
 * unlinks it on failure).  Returns the fd, or -1 with err (SL_EIO). */
int sl_stage_file(const char *dir, const char *prefix, char **named, sl_err *err);

/* Gives the staging file (fd, named as from sl_stage_file) the path final,
 * replacing a file of that name atomically.  On success a named staging
 * file no longer exists under its old name.  Returns 0, or -1 with err. */
int sl_stage_publish(int fd, const char *named, const char *dir, const char *prefix,
                     const char *final, sl_err *err);

#endif
