/* base64.c: see base64.h.  One encoder loop writes both forms (they differ
 * only in two alphabet characters and the padding); the decoder checks the
 * padding of the standard form first, then decodes the rest like base64url. */
#include "base64.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "mem.h"

static const char std_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t sl_base64_len(size_t n, sl_base64_form form)
{
    if (form == SL_BASE64)
        return (n + 2) / 3 * 4;
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

void sl_base64_encode(const void *in, size_t n, sl_base64_form form, char *out, size_t cap)
{
    const unsigned char *p = in;
    const char *alphabet = form == SL_BASE64 ? std_alphabet : url_alphabet;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 6 && o + 1 < cap) {
            bits -= 6;
            out[o++] = alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0 && o + 1 < cap)
        out[o++] = alphabet[(acc << (6 - bits)) & 63];
    while (form == SL_BASE64 && o % 4 != 0 && o + 1 < cap)
        out[o++] = '=';
    if (cap > 0)
        out[o] = '\0';
}

void sl_base64_append(sl_buf *out, const void *in, size_t n, sl_base64_form form)
{
    size_t len = sl_base64_len(n, form);
    char *tmp = sl_xmalloc(len + 1);
    sl_base64_encode(in, n, form, tmp, len + 1);
    sl_buf_append(out, tmp, len);
    free(tmp);
}

static int value_of(char c, sl_base64_form form)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (form == SL_BASE64 ? '+' : '-'))
        return 62;
    if (c == (form == SL_BASE64 ? '/' : '_'))
        return 63;
    return -1;
}

unsigned char *sl_base64_decode(const char *text, size_t len, sl_base64_form form, size_t *n)
{
    if (form == SL_BASE64) {
        if (len % 4 != 0)
            return NULL;   /* the standard form is padded to whole groups */
        for (int pad = 0; pad < 2 && len > 0 && text[len - 1] == '='; pad++)
            len--;         /* at most two '=', only at the end (others fail below) */
    }
    if (len % 4 == 1)
        return NULL;   /* one character cannot end a group */
    unsigned char *out = sl_xmalloc(len * 3 / 4 + 1);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = value_of(text[i], form);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0) {   /* non-canonical trailing bits */
        free(out);
        return NULL;
    }
    *n = o;
    return out;
}
