/* buf.h: a growable byte buffer, always NUL-terminated.
 *
 * Used to build JSON text, SQL parameters and log lines.  A zeroed sl_buf
 * (SL_BUF_INIT) is valid and empty; sl_buf_free releases it. */
#ifndef SL_BUF_H
#define SL_BUF_H

#include <stddef.h>

typedef struct sl_buf {
    char *data;  /* NUL-terminated contents, NULL until the first append */
    size_t len;  /* bytes used, not counting the NUL */
    size_t cap;  /* bytes allocated */
} sl_buf;

#define SL_BUF_INIT { NULL, 0, 0 }

void sl_buf_append(sl_buf *b, const void *data, size_t n);
void sl_buf_puts(sl_buf *b, const char *s);
void sl_buf_putc(sl_buf *b, char c);
void sl_buf_printf(sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sl_buf_reset(sl_buf *b);                 /* empties, keeps the allocation */
const char *sl_buf_str(const sl_buf *b);      /* "" when empty, never NULL */
char *sl_buf_detach(sl_buf *b);               /* caller frees; b becomes empty */
void sl_buf_free(sl_buf *b);

#endif
