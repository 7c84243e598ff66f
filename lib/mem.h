/* mem.h: allocation that never returns NULL.
 *
 * Running out of memory in a job worker is not a condition we can limp
 * through correctly, so these abort the process loudly (the master restarts
 * the child, and the unacknowledged jobs are redelivered). */
#ifndef SL_MEM_H
#define SL_MEM_H

#include <stddef.h>

void *sl_xmalloc(size_t n);
void *sl_xcalloc(size_t count, size_t size);
void *sl_xrealloc(void *p, size_t n);
char *sl_xstrdup(const char *s);          /* s may be NULL: returns NULL */
char *sl_xstrndup(const char *s, size_t n);
char *sl_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
