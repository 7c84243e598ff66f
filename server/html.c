/* html.c: see html.h. */
#include "html.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "utf8.h"

void sl_html_text(sl_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t k = sl_utf8_seq(p + i, n - i);
            if (k == 0) {
                sl_buf_puts(b, "\xef\xbf\xbd");   /* U+FFFD */
                i++;
            } else {
                sl_buf_append(b, p + i, k);
                i += k;
            }
            continue;
        }
        switch (c) {
        case '&': sl_buf_puts(b, "&amp;"); break;
        case '<': sl_buf_puts(b, "&lt;"); break;
        case '>': sl_buf_puts(b, "&gt;"); break;
        case '"': sl_buf_puts(b, "&quot;"); break;
        case '\'': sl_buf_puts(b, "&#39;"); break;
        case '\t':
        case '\n':
        case '\r': sl_buf_putc(b, (char)c); break;
        default:
            if (c < 0x20 || c == 0x7f)
                sl_buf_printf(b, "\\x%02x", c);
            else
                sl_buf_putc(b, (char)c);
        }
        i++;
    }
}

void sl_html_puts(sl_buf *b, const char *s)
{
    if (s)
        sl_html_text(b, s, strlen(s));
}

void sl_html_seg(sl_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            sl_buf_putc(b, (char)*p);
        } else {
            char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
            sl_buf_append(b, e, 3);
        }
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *sl_html_form_decode(const char *s, size_t n)
{
    sl_buf out = SL_BUF_INIT;
    sl_buf_puts(&out, "");
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                sl_buf_free(&out);
                return NULL;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0') {
            sl_buf_free(&out);
            return NULL;
        }
        sl_buf_putc(&out, c);
    }
    return sl_buf_detach(&out);
}

char *sl_html_form_get(const char *body, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    char *found = NULL;
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *fend = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(fend - p));
        const char *kend = eq ? eq : fend;
        char *key = sl_html_form_decode(p, (size_t)(kend - p));
        bool hit = key && strlen(key) == nlen && memcmp(key, name, nlen) == 0;
        free(key);
        if (hit) {
            free(found);
            found = eq ? sl_html_form_decode(eq + 1, (size_t)(fend - eq - 1)) : sl_xstrdup("");
        }
        p = fend + 1;
    }
    return found;
}

void sl_html_begin(sl_buf *b, const char *title, const char *user, const char *csrf)
{
    sl_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
    sl_html_puts(b, title);
    sl_buf_puts(b, " \xe2\x80\x94 sluice</title>\n<link rel=\"stylesheet\" href=\"/static/sluice.css\">\n"
                "<script src=\"/static/sluice.js\" defer></script>\n</head>\n<body>\n");
    if (user) {
        sl_buf_puts(b, "<nav>\n<a href=\"/gates\">My gates</a>\n<a href=\"/runs\">Runs</a>\n"
                    "<a href=\"/queues\">Queues</a>\n<span class=\"who\">");
        sl_html_puts(b, user);
        sl_buf_puts(b, "</span>\n<form id=\"logout\" method=\"post\" action=\"/logout\">"
                    "<input type=\"hidden\" name=\"csrf\" value=\"");
        sl_html_puts(b, csrf);
        sl_buf_puts(b, "\"><button type=\"submit\">Sign out</button></form>\n</nav>\n");
    }
    sl_buf_puts(b, "<main>\n");
}

void sl_html_end(sl_buf *b) { sl_buf_puts(b, "</main>\n</body>\n</html>\n"); }

void sl_html_flash(sl_buf *b, const char *cls, const char *msg)
{
    if (msg == NULL || *msg == '\0')
        return;
    sl_buf_puts(b, "<p id=\"flash\" class=\"");
    sl_html_puts(b, cls);
    sl_buf_puts(b, "\">");
    sl_html_puts(b, msg);
    sl_buf_puts(b, "</p>\n");
}
