/* codegen.h: the codegen kind's template renderer, on its own (the kind
 * itself is sl_kind_codegen in the registry).  For fuzz/codegen.c. */
#ifndef SL_CODEGEN_H
#define SL_CODEGEN_H

#include <stddef.h>

#include <msgpack.h>

#include "buf.h"
#include "err.h"

/* Renders the template text[0..n) with vars (a map) into out, as the kind
 * renders a file, within the default budgets (16 MiB of output, 10,000,000
 * steps of work); file names the template in messages.  Returns -1 with
 * err (SL_EINVAL, "template FILE:LINE:COL: ...") on an error. */
int sl_codegen_render(const char *file, const char *text, size_t n, const msgpack_object *vars,
                      sl_buf *out, sl_err *err);

#endif
