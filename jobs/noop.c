/* noop.c: the kind that does nothing; used by benchmarks and tests to
 * measure the queue's own cost. */
#include "kind.h"

static int run_noop(sl_job_ctx *ctx, sl_err *err)
{
    (void)ctx;
    (void)err;
    return 0;
}

/* Takes anything and reads nothing: its arguments are not declared. */
const sl_kind sl_kind_noop = { "noop", "does nothing (benchmarks, smoke tests)", run_noop, NULL, false, NULL };
