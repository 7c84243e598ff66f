/* vis.c: see vis.h.
 *
 * One scanner decides, character by character, whether to copy or escape;
 * the three entry points differ only in where the text goes (a growing
 * buffer, a fixed one, JSON).  The fixed-buffer form escapes into a
 * temporary sl_buf and cuts it at a character or escape boundary, so a
 * cut value never ends in half an escape. */
#include "vis.h"
#include "utf8.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Code point of the well-formed sequence u[0..k). */
static uint32_t code_point(const unsigned char *u, size_t k)
{
    if (k == 2)
        return (uint32_t)(u[0] & 0x1f) << 6 | (u[1] & 0x3f);
    if (k == 3)
        return (uint32_t)(u[0] & 0x0f) << 12 | (uint32_t)(u[1] & 0x3f) << 6 | (u[2] & 0x3f);
    return (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3f) << 12 |
           (uint32_t)(u[2] & 0x3f) << 6 | (u[3] & 0x3f);
}

/* True for the characters a terminal may obey or that reorder text. */
static bool invisible(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
           (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* How the C0 control or DEL c is shown. */
static void c0(sl_buf *out, unsigned char c)
{
    static const char names[] = { ['\a'] = 'a', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n',
                                  ['\v'] = 'v', ['\f'] = 'f', ['\r'] = 'r', [27] = 'e' };
    char esc[8];
    if (c < sizeof names && names[c])
        snprintf(esc, sizeof esc, "\\%c", names[c]);
    else
        snprintf(esc, sizeof esc, "\\x%02x", c);
    sl_buf_puts(out, esc);
}

/* Appends s[0..len) visibly; json: as JSON text (see sl_vis_json). */
static void scan(sl_buf *out, const char *s, size_t len, bool json)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t run = i;
        /* Copy the plain run in one append. */
        while (i < len && u[i] >= 0x20 && u[i] < 0x7f)
            i++;
        if (i > run)
            sl_buf_append(out, s + run, i - run);
        if (i >= len)
            break;
        unsigned char c = u[i];
        if (c < 0x80) {
            if (json && (c == '\t' || c == '\n' || c == '\r'))
                sl_buf_putc(out, (char)c);
            else if (json)
                sl_buf_printf(out, "\\u%04x", c);
            else
                c0(out, c);
            i++;
            continue;
        }
        size_t k = sl_utf8_seq(u + i, len - i);
        if (k == 0) {
            if (json)
                sl_buf_puts(out, "\\ufffd");
            else
                sl_buf_printf(out, "\\x%02x", c);
            i++;
            continue;
        }
        uint32_t cp = code_point(u + i, k);
        if (invisible(cp))
            sl_buf_printf(out, "\\u%04x", (unsigned)cp);
        else
            sl_buf_append(out, s + i, k);
        i += k;
    }
}

void sl_vis_append(sl_buf *out, const char *s, size_t len)
{
    if (s)
        scan(out, s, len, false);
}

void sl_vis_json(sl_buf *out, const char *json, size_t len)
{
    if (json)
        scan(out, json, len, true);
}

const char *sl_vis_mem(char *buf, size_t n, const char *s, size_t len)
{
    if (n == 0)
        return buf;
    sl_buf tmp = SL_BUF_INIT;
    if (s)
        scan(&tmp, s, len, false);
    if (tmp.len < n) {
        memcpy(buf, sl_buf_str(&tmp), tmp.len + 1);
        sl_buf_free(&tmp);
        return buf;
    }
    /* Cut: keep what fits before "...", backing off to the start of a
     * character (a UTF-8 lead byte) or of an escape (a backslash we wrote:
     * plain backslashes are copied, so back off to any backslash within an
     * escape's length). */
    size_t keep = n > 4 ? n - 4 : 0;
    while (keep > 0 && ((unsigned char)tmp.data[keep] & 0xc0) == 0x80)
        keep--;
    for (size_t b = keep; b > 0 && keep - b < 6; b--) {
        if (tmp.data[b - 1] == '\\') {
            keep = b - 1;
            break;
        }
    }
    memcpy(buf, tmp.data, keep);
    snprintf(buf + keep, n - keep, "%s", n - keep > 3 ? "..." : "");
    sl_buf_free(&tmp);
    return buf;
}

const char *sl_vis(char *buf, size_t n, const char *s)
{
    return sl_vis_mem(buf, n, s ? s : "", s ? strlen(s) : 0);
}

int sl_vis_fputs(const char *s, FILE *f)
{
    sl_buf b = SL_BUF_INIT;
    if (s)
        scan(&b, s, strlen(s), false);
    int rc = fputs(sl_buf_str(&b), f);
    sl_buf_free(&b);
    return rc;
}
