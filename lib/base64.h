/* base64.h: the one base64 codec (RFC 4648), in its two forms:
 *   SL_BASE64     standard alphabet (+ /), padded with '=' (section 4): how
 *                 lib/json writes MessagePack bin values as JSON strings;
 *   SL_BASE64URL  URL-safe alphabet (- _), no padding (section 5): what JWTs
 *                 and JWKs use and what API tokens, generated passwords and
 *                 other secrets that travel in URLs and headers carry.
 * The decoder is strict: only the form's alphabet, padding exactly where
 * the form wants it, no whitespace, and the unused low bits of the last
 * character zero, so one text decodes one way (a signature or token cannot
 * be re-spelled). */
#ifndef SL_BASE64_H
#define SL_BASE64_H

#include <stddef.h>

#include "buf.h"

typedef enum sl_base64_form {
    SL_BASE64,      /* A-Z a-z 0-9 + /, '=' padding */
    SL_BASE64URL,   /* A-Z a-z 0-9 - _, no padding */
} sl_base64_form;

/* Length of the encoding of n bytes in form, without a terminating NUL. */
size_t sl_base64_len(size_t n, sl_base64_form form);

/* Encodes in[0..n) into out (cap bytes, always NUL-terminated when cap > 0).
 * out must hold sl_base64_len(n, form) + 1 bytes; the output is truncated
 * to fit otherwise. */
void sl_base64_encode(const void *in, size_t n, sl_base64_form form, char *out, size_t cap);

/* Appends the encoding of in[0..n) to out. */
void sl_base64_append(sl_buf *out, const void *in, size_t n, sl_base64_form form);

/* Decodes text[0..len) into a new buffer (caller frees) of *n bytes.
 * Returns NULL for anything that is not the canonical text of form. */
unsigned char *sl_base64_decode(const char *text, size_t len, sl_base64_form form, size_t *n);

#endif
