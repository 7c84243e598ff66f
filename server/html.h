/* html.h: HTML output for the web pages — the one escaping function and
 * the page skeleton.
 *
 * Everything a page shows that did not come from a string literal in
 * web.c goes through sl_html_text (element content and quoted attribute
 * values alike): & < > " ' become character references, control
 * characters other than tab, newline and carriage return become a visible
 * "\xNN", and bytes that are not well-formed UTF-8 become U+FFFD.  The
 * result is inert in content and in a double- or single-quoted attribute,
 * whatever the input.  Path segments of links go through sl_html_seg,
 * which percent-encodes everything but unreserved characters (so it is
 * also safe inside an attribute).
 *
 * A page is sl_html_begin … sl_html_end: doctype, viewport meta, the
 * stylesheet and script from /static, a <nav> with the sign-out form when
 * someone is signed in.  The security headers of every HTML response are
 * set by http.c, not here. */
#ifndef SL_HTML_H
#define SL_HTML_H

#include <stddef.h>

#include "buf.h"

/* Appends s[0..n) escaped for HTML text or a quoted attribute. */
void sl_html_text(sl_buf *b, const char *s, size_t n);

/* sl_html_text of a NUL-terminated string; NULL appends nothing. */
void sl_html_puts(sl_buf *b, const char *s);

/* Appends s percent-encoded as one URL path segment or query value. */
void sl_html_seg(sl_buf *b, const char *s);

/* Decodes application/x-www-form-urlencoded text s[0..n) ('+' is a space,
 * %XX a byte) into a new string (caller frees); NULL if it holds a NUL
 * byte or a malformed escape. */
char *sl_html_form_decode(const char *s, size_t n);

/* The value of field name in a form-encoded body (caller frees), or NULL
 * when absent or malformed.  The last occurrence wins (a checkbox comes
 * after the hidden field that stands for it unchecked). */
char *sl_html_form_get(const char *body, size_t len, const char *name);

/* Opens a page titled title.  user (may be NULL: nobody signed in) is
 * shown in the <nav>, with a sign-out form carrying csrf. */
void sl_html_begin(sl_buf *b, const char *title, const char *user, const char *csrf);

/* Closes the page. */
void sl_html_end(sl_buf *b);

/* Appends <p id="flash" class="cls">msg</p> (msg escaped); nothing when
 * msg is NULL or empty. */
void sl_html_flash(sl_buf *b, const char *cls, const char *msg);

#endif
