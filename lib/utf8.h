/* utf8.h: UTF-8 validation, shared by the wire codec and the JSON codec. */
#ifndef SL_UTF8_H
#define SL_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the well-formed UTF-8 sequence at s[0..n) (n > 0), or 0 if the
 * bytes there are not one (overlong forms, surrogates and code points above
 * U+10FFFF are not). */
size_t sl_utf8_seq(const unsigned char *s, size_t n);

/* True if s[0..n) is entirely well-formed UTF-8. */
bool sl_utf8_valid(const char *s, size_t n);

#endif
