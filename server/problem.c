/* problem.c: see problem.h. */
#include "problem.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

#define URN "urn:sluice:problem:"

static const struct {
    const char *uri;
    unsigned status;
    const char *title;
} types[] = {
    [SL_PROB_BAD_REQUEST] = { URN "bad-request", 400, "Bad request" },
    [SL_PROB_UNAUTHORIZED] = { URN "unauthorized", 401, "Authentication required" },
    [SL_PROB_FORBIDDEN] = { URN "forbidden", 403, "Not allowed with this credential" },
    [SL_PROB_NOT_FOUND] = { URN "not-found", 404, "Not found" },
    [SL_PROB_METHOD] = { URN "method-not-allowed", 405, "Method not allowed" },
    [SL_PROB_REFUSED] = { URN "decision-refused", 409, "Decision refused" },
    [SL_PROB_CONFLICT] = { URN "idempotency-conflict", 409, "Idempotency-Key already used" },
    [SL_PROB_TOO_LARGE] = { URN "too-large", 413, "Request body too large" },
    [SL_PROB_UNSUPPORTED] = { URN "unsupported-media-type", 415, "Body must be application/json" },
    [SL_PROB_INVALID] = { URN "invalid", 422, "Invalid request" },
    [SL_PROB_THROTTLED] = { URN "throttled", 429, "Too many requests" },
    [SL_PROB_UNAVAILABLE] = { URN "unavailable", 503, "Service unavailable" },
    [SL_PROB_INTERNAL] = { URN "internal", 500, "Internal error" },
};

const char *sl_problem_uri(sl_problem_type t) { return types[t].uri; }

void sl_problem(sl_response *resp, sl_problem_type t, const char *fmt, ...)
{
    char detail[512] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    sl_buf_reset(&resp->body);
    sl_buf_puts(&resp->body, "{\"type\":");
    sl_json_put_string(&resp->body, sl_problem_uri(t), strlen(sl_problem_uri(t)));
    sl_buf_puts(&resp->body, ",\"title\":");
    sl_json_put_string(&resp->body, types[t].title, strlen(types[t].title));
    sl_buf_printf(&resp->body, ",\"status\":%u", types[t].status);
    if (detail[0]) {
        sl_buf_puts(&resp->body, ",\"detail\":");
        sl_json_put_string(&resp->body, detail, strlen(detail));
    }
    sl_buf_puts(&resp->body, "}");
    resp->status = types[t].status;
    resp->content_type = "application/problem+json";
}
