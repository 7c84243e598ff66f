/* buf.c: see buf.h. */
#include "buf.h"
#include "mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reserve(sl_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = sl_xrealloc(b->data, cap);
    b->cap = cap;
}

void sl_buf_append(sl_buf *b, const void *data, size_t n)
{
    reserve(b, n);
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sl_buf_puts(sl_buf *b, const char *s) { sl_buf_append(b, s, strlen(s)); }
void sl_buf_putc(sl_buf *b, char c) { sl_buf_append(b, &c, 1); }

void sl_buf_printf(sl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void sl_buf_reset(sl_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

const char *sl_buf_str(const sl_buf *b) { return b->data ? b->data : ""; }

char *sl_buf_detach(sl_buf *b)
{
    char *p = b->data ? b->data : sl_xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void sl_buf_free(sl_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
