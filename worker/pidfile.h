/* pidfile.h: sluice-worker's --pidfile.
 *
 * The file holds the master's pid and a newline.  It is written once the
 * master is up and removed when it exits (only if it still holds the
 * master's own pid: a newer master may have taken it over).  A pidfile that
 * names a live sluice-worker process stops a second master from starting;
 * one left behind by a crash (no such process, a zombie, or a process with
 * another name — the pid was reused) is replaced. */
#ifndef SL_PIDFILE_H
#define SL_PIDFILE_H

#include "err.h"

/* Fails with err (SL_EINVAL) if path names a live sluice-worker other than
 * this process; the message gives its pid.  Call it before starting
 * anything, then sl_pidfile_write once running. */
int sl_pidfile_check(const char *path, sl_err *err);

/* Writes this process's pid to path atomically (a temporary file in the
 * same directory, then rename(2)), after checking again as
 * sl_pidfile_check does.  Returns -1 with err (SL_EIO naming the call, or
 * SL_EINVAL for a live owner). */
int sl_pidfile_write(const char *path, sl_err *err);

/* Removes path if it holds this process's pid. */
void sl_pidfile_remove(const char *path);

#endif
