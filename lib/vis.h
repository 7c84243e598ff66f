/* vis.h: values from elsewhere (job arguments, outputs and errors, run
 * variables, trigger and approver names, host names, database errors) made
 * safe to print on a terminal, after BSD vis(3).
 *
 * A terminal obeys the control characters it is sent: ESC and the C1
 * controls start sequences that move the cursor, clear or recolour the
 * screen and retitle the window; CR and BS overwrite what was printed; a
 * newline starts a line that looks like sluice's own.  A value printed raw
 * could therefore repaint an approver's screen ("approvals: 2 of 2").  Every
 * human-readable output of `sluice` passes each such value through this
 * module, which renders:
 *   - C0 controls and DEL as C escapes: \n \r \t \b \f \v \a, \e for ESC,
 *     \xNN for the others;
 *   - C1 controls (U+0080..U+009F), the bidirectional formatting
 *     characters (U+200E/F, U+202A..U+202E, U+2066..U+2069) and the line and
 *     paragraph separators (U+2028/9) as \uNNNN, so that text can neither
 *     control the terminal nor reorder itself on screen;
 *   - bytes that are not well-formed UTF-8 as \xNN;
 * and copies everything else, backslash included (so "\e" may also be
 * literal text; --json output gives the exact value).
 *
 * JSON text that sluice wrote (--json outputs) is already free of C0
 * controls inside strings (the encoder escapes them); sl_vis_json escapes
 * what JSON allows raw but a terminal may obey (DEL, C1, bidi controls),
 * giving JSON that decodes to the same values. */
#ifndef SL_VIS_H
#define SL_VIS_H

#include <stddef.h>
#include <stdio.h>

#include "buf.h"

/* Appends s[0..len) to out, rendered visibly (see above). */
void sl_vis_append(sl_buf *out, const char *s, size_t len);

/* Writes s (NUL-terminated; NULL prints as "") rendered visibly into buf of
 * n bytes and returns buf.  A value that does not fit is cut at a character
 * boundary and ends in "...". */
const char *sl_vis(char *buf, size_t n, const char *s);

/* The same for s[0..len) (a MessagePack str, say: no NUL needed). */
const char *sl_vis_mem(char *buf, size_t n, const char *s, size_t len);

/* Writes s (NUL-terminated, whole, however long) rendered visibly to f;
 * returns what fputs returns. */
int sl_vis_fputs(const char *s, FILE *f);

/* A visible copy of s in a buffer that lives until the end of the
 * enclosing block: for printf arguments.  Values are cut at SL_VIS_MAX. */
#define SL_VIS_MAX 1024
#define SL_VIS(s) sl_vis((char[SL_VIS_MAX]){ 0 }, SL_VIS_MAX, (s))

/* Appends JSON text json[0..len) (as sluice's encoder writes it) to out,
 * with DEL, C1 and bidi controls as \u escapes and any stray C0 control
 * other than \t, \n and \r as \u00NN. */
void sl_vis_json(sl_buf *out, const char *json, size_t len);

#endif
