/* b64url.h: base64url without padding (RFC 4648 section 5), as JWTs and
 * JWKs use it and as API tokens carry their secret.  The decoder is strict:
 * only the URL-safe alphabet, no padding, no whitespace, and the unused low
 * bits of the last character must be zero, so one text decodes one way. */
#ifndef SL_B64URL_H
#define SL_B64URL_H

#include <stddef.h>

/* Encodes in[0..n) into out (cap bytes, NUL-terminated).  out must hold
 * (4n+2)/3 + 1 bytes; the output is truncated to fit otherwise. */
void sl_b64url_encode(const unsigned char *in, size_t n, char *out, size_t cap);

/* Decodes text[0..len) into a new buffer (caller frees) of *n bytes.
 * Returns NULL for anything that is not canonical base64url. */
unsigned char *sl_b64url_decode(const char *text, size_t len, size_t *n);

#endif
