/* b64url.c: see b64url.h. */
#include "b64url.h"

#include <stdint.h>
#include <stdlib.h>

#include "mem.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void sl_b64url_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6 && o + 1 < cap) {
            bits -= 6;
            out[o++] = alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0 && o + 1 < cap)
        out[o++] = alphabet[(acc << (6 - bits)) & 63];
    if (cap > 0)
        out[o] = '\0';
}

static int value_of(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

unsigned char *sl_b64url_decode(const char *text, size_t len, size_t *n)
{
    if (len % 4 == 1)
        return NULL;   /* one character cannot end a group */
    unsigned char *out = sl_xmalloc(len * 3 / 4 + 1);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = value_of(text[i]);
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
