/* expr.h: template references, `${{ … }}` rendering and `if` expressions.
 *
 * A reference names a value a step may use:
 *   vars.NAME                   a pipeline variable (after --var overrides)
 *   steps.ID.outputs.KEY[.SUB…] an output of an earlier step
 *   steps.ID.status             an earlier step's status
 *   run.id, run.triggered_by    the run
 *   gate.ID.inputs.NAME         a value an approver supplied at gate ID
 *
 * Templates: in a string, each `${{ REF }}` is replaced by the value.  A
 * string that is exactly one `${{ REF }}` takes the value's own type (an
 * integer output stays an integer); inside longer text a string is inserted
 * as it is and other values as their JSON text.  A reference that cannot be
 * resolved is an error, never an empty string.
 *
 * Expressions (`if:`): `||`, `&&`, `!`, `==`, `!=`, parentheses, literals
 * ('text', "text", numbers, true, false, null) and references, written bare
 * (steps.a.status == 'succeeded') or as `${{ REF }}`; the whole expression
 * may also be wrapped in one `${{ … }}`.  Precedence, tightest first: `!`,
 * then `==`/`!=` (not chainable), then `&&`, then `||`.  `&&` and `||`
 * short-circuit: references in an operand that cannot change the result
 * are not resolved.  `==` compares numbers as numbers (integers exactly; a
 * string that is exactly a number counts as that number) and anything else
 * by its text, numbers written in their shortest form (so true == 'true',
 * 0.1 == '0.1').  Truth: false, null, 0, "", "false" and "0" are false;
 * everything else is true.  Numbers inserted into text are written in
 * their shortest form too (lib/numfmt.h). 
 *
 * Values are msgpack objects owned by whoever resolves them; they must stay
 * valid until the render or evaluation call returns. */
#ifndef SL_EXPR_H
#define SL_EXPR_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>

#include "buf.h"
#include "err.h"

#define SL_REF_ID_MAX 64
#define SL_REF_KEY_MAX 200

typedef enum sl_ref_kind {
    SL_REF_VAR,
    SL_REF_STEP_OUTPUT,
    SL_REF_STEP_STATUS,
    SL_REF_RUN_ID,
    SL_REF_RUN_TRIGGERED_BY,
    SL_REF_GATE_INPUT,
} sl_ref_kind;

typedef struct sl_ref {
    sl_ref_kind kind;
    char id[SL_REF_ID_MAX + 1];    /* step or gate id; variable name for SL_REF_VAR */
    char key[SL_REF_KEY_MAX + 1];  /* output path ("a" or "a.b"), gate input name */
    char text[SL_REF_KEY_MAX + SL_REF_ID_MAX + 32]; /* the reference as written, for messages */
} sl_ref;

/* Parses a reference ("steps.build.outputs.dir").  Returns -1 with err
 * (SL_EINVAL) naming what is wrong. */
int sl_ref_parse(const char *text, size_t len, sl_ref *out, sl_err *err);

/* Called for each reference found; returns 0, or -1 with err to stop. */
typedef int (*sl_ref_visit_fn)(void *arg, const sl_ref *ref, sl_err *err);

/* Resolves a reference into *out; returns -1 with err if it cannot. */
typedef int (*sl_ref_resolve_fn)(void *arg, const sl_ref *ref, msgpack_object *out, sl_err *err);

/* True if s contains "${{". */
bool sl_tmpl_has_refs(const char *s);

/* Calls visit for each `${{ REF }}` in s.  Returns -1 with err on a syntax
 * error (an unclosed `${{`, a bad reference) or when visit fails. */
int sl_tmpl_refs(const char *s, sl_ref_visit_fn visit, void *arg, sl_err *err);

/* Appends s, rendered, to out as one JSON value (a string, or the value of
 * a lone reference).  Returns -1 with err if a reference cannot be
 * resolved; out may then hold a partial value. */
int sl_tmpl_render(const char *s, sl_ref_resolve_fn resolve, void *arg, sl_buf *out, sl_err *err);

/* Renders s to plain text (no JSON quoting). */
int sl_tmpl_render_text(const char *s, sl_ref_resolve_fn resolve, void *arg, sl_buf *out,
                        sl_err *err);

/* Parses expression s and calls visit for each reference in it (no
 * evaluation).  Returns -1 with err on a syntax error. */
int sl_expr_check(const char *s, sl_ref_visit_fn visit, void *arg, sl_err *err);

/* Evaluates expression s into *out.  Returns -1 with err on a syntax error
 * or an unresolvable reference. */
int sl_expr_eval(const char *s, sl_ref_resolve_fn resolve, void *arg, bool *out, sl_err *err);

#endif
