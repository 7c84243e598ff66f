/* testkinds.c: kinds that exist to exercise the worker's fault handling:
 *   sleep  waits args.ms milliseconds (0..86400000), then succeeds
 *   fail   fails with args.message (default "failed on purpose")
 *   crash  aborts the worker process mid-job (SIGABRT), like a segfaulting
 *          handler would, so tests can check that nothing is lost */
#include "args.h"
#include "buf.h"
#include "clock.h"
#include "json.h"
#include "kind.h"

#include <stdlib.h>

static int run_sleep(sl_job_ctx *ctx, sl_err *err)
{
    int64_t ms;
    if (sl_args_int(ctx->args, "ms", false, 0, 0, 86400000, &ms, err) < 0)
        return -1;
    /* Sleep in slices so that a cancellation stops it promptly. */
    int64_t end = sl_monotonic_ms() + ms;
    for (int64_t now = sl_monotonic_ms(); now < end; now = sl_monotonic_ms()) {
        if (ctx->cancelled && *ctx->cancelled)
            return sl_err_set(err, SL_EJOB, "cancelled after %lld ms", (long long)(ms - (end - now)));
        sl_sleep_ms(end - now < 20 ? end - now : 20);
    }
    sl_buf_printf(ctx->outputs, "{\"slept_ms\":%lld}", (long long)ms);
    return 0;
}

static int run_fail(sl_job_ctx *ctx, sl_err *err)
{
    char *message;
    if (sl_args_str(ctx->args, "message", false, &message, err) < 0)
        return -1;
    sl_err_set(err, SL_EJOB, "%s", message ? message : "failed on purpose");
    free(message);
    return -1;
}

static int run_crash(sl_job_ctx *ctx, sl_err *err)
{
    (void)ctx;
    (void)err;
    abort();
}

/* Arguments are not declared: tests pass these kinds whatever they like. */
const sl_kind sl_kind_sleep = { "sleep", "sleeps args.ms milliseconds (tests)", run_sleep, NULL, false, NULL };
const sl_kind sl_kind_fail = { "fail", "fails with args.message (tests)", run_fail, NULL, false, NULL };
const sl_kind sl_kind_crash = { "crash", "aborts the worker process (fault tests)", run_crash, NULL, false, NULL };
