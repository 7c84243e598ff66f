/* mem.c: see mem.h. */
#include "mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *check(void *p, size_t n)
{
    if (p == NULL && n != 0) {
        fprintf(stderr, "sluice: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

void *sl_xmalloc(size_t n) { return check(malloc(n ? n : 1), n ? n : 1); }
void *sl_xcalloc(size_t count, size_t size) { return check(calloc(count ? count : 1, size ? size : 1), 1); }
void *sl_xrealloc(void *p, size_t n) { return check(realloc(p, n ? n : 1), n ? n : 1); }

char *sl_xstrdup(const char *s)
{
    return s ? sl_xstrndup(s, strlen(s)) : NULL;
}

char *sl_xstrndup(const char *s, size_t n)
{
    char *p = sl_xmalloc(n + 1);
    if (n > 0)
        memcpy(p, s, n); /* s may be NULL when n is 0 */
    p[n] = '\0';
    return p;
}

char *sl_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = NULL;
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fprintf(stderr, "sluice: out of memory formatting a string\n");
        abort();
    }
    return p;
}
