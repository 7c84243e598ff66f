/* notify.c: the `notify` kind: delivers one gate event to one channel of
 * notify.channels (docs/notifications.md).
 *
 * The job names the channel; its URL and secret exist only in the worker's
 * configuration, so a job can neither send anywhere else nor learn a
 * secret.  The job's args are the event as the scheduler built it from
 * PostgreSQL; the worker only adds the delivery id (the job id, stable
 * across retries) and, for a webhook, the signature over a timestamp taken
 * when the request is sent.  Since receivers trust what is signed with
 * the channel's secret, a notify job runs only with the scheduler's
 * signature (worker/protect.c protects the kind whatever the
 * configuration says).
 *
 *   webhook  POST the JSON body with X-Sluice-Timestamp: T (Unix seconds)
 *            and X-Sluice-Signature: v1=HEX, HEX being HMAC-SHA256 under
 *            the secret of "T" "." body.
 *   slack    POST {"text": ...}: one line for people, with the gate's link
 *            in Slack's <url|label> form (&, < and > escaped as Slack wants).
 *
 * Every connection is checked at the address it reaches (jobs/netguard.h):
 * internal addresses only when notify.allow_addresses covers them.  A 2xx
 * succeeds; a 5xx or no answer is a failure the pool retries with backoff
 * (then the dead letter); a 4xx, a redirect, a refused address or a
 * channel this worker cannot deliver to fails permanently. */
#include "args.h"
#include "clock.h"
#include "config.h"
#include "config_jobs.h"
#include "http.h"
#include "jobctx.h"
#include "json.h"
#include "kind.h"
#include "mem.h"
#include "sha256.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The string member key of the args, or "" (borrowed from a small pool of
 * copies owned by the caller's strs). */
typedef struct strs {
    char *v[16];
    size_t n;
} strs;

static const char *arg(const sl_job_ctx *ctx, strs *s, const char *key)
{
    char *v = NULL;
    sl_err e;
    if (s->n >= sizeof s->v / sizeof s->v[0] || sl_args_str(ctx->args, key, false, &v, &e) < 0 || v == NULL)
        return "";
    s->v[s->n++] = v;
    return v;
}

static void strs_free(strs *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
}

/* Appends text escaped for Slack's mrkdwn (&, <, > are its markup). */
static void slack_escape(sl_buf *b, const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '&')
            sl_buf_puts(b, "&amp;");
        else if (*p == '<')
            sl_buf_puts(b, "&lt;");
        else if (*p == '>')
            sl_buf_puts(b, "&gt;");
        else
            sl_buf_putc(b, *p);
    }
}

/* A list argument (approvers, approvals) as "a, b", or "nobody". */
static void names(const sl_job_ctx *ctx, const char *key, sl_buf *b)
{
    const msgpack_object *o = sl_args_get(ctx->args, key);
    size_t n = 0;
    for (uint32_t i = 0; o && o->type == MSGPACK_OBJECT_ARRAY && i < o->via.array.size; i++) {
        const msgpack_object *it = &o->via.array.ptr[i];
        if (it->type != MSGPACK_OBJECT_STR)
            continue;
        char *s = sl_xstrndup(it->via.str.ptr, it->via.str.size);
        sl_buf_puts(b, n++ ? ", " : "");
        slack_escape(b, s);
        free(s);
    }
    if (n == 0)
        sl_buf_puts(b, "nobody");
}

static size_t count(const sl_job_ctx *ctx, const char *key)
{
    const msgpack_object *o = sl_args_get(ctx->args, key);
    return o && o->type == MSGPACK_OBJECT_ARRAY ? o->via.array.size : 0;
}

/* The Slack message: {"text": "..."}. */
static void slack_body(const sl_job_ctx *ctx, sl_buf *body)
{
    strs s = { .n = 0 };
    const char *event = arg(ctx, &s, "event"), *deadline = arg(ctx, &s, "deadline");
    sl_buf t = SL_BUF_INIT;
    if (strcmp(event, "opened") == 0)
        sl_buf_puts(&t, "Approval needed: gate ");
    else if (strcmp(event, "reminder") == 0)
        sl_buf_puts(&t, "Reminder, approval still needed: gate ");
    else
        sl_buf_puts(&t, "Gate ");
    sl_buf_putc(&t, '*');
    slack_escape(&t, arg(ctx, &s, "gate"));
    sl_buf_puts(&t, "* of pipeline *");
    slack_escape(&t, arg(ctx, &s, "pipeline"));
    sl_buf_puts(&t, "* (run ");
    slack_escape(&t, arg(ctx, &s, "run"));
    sl_buf_puts(&t, ")");
    int64_t required = 0;
    sl_err e;
    (void)sl_args_int(ctx->args, "required", false, 0, 0, INT64_MAX, &required, &e);
    if (strcmp(event, "decided") == 0 || strcmp(event, "timed_out") == 0) {
        sl_buf_puts(&t, strcmp(event, "timed_out") == 0 ? " timed out and was " : " was ");
        slack_escape(&t, arg(ctx, &s, "decision"));
        const char *by = arg(ctx, &s, "decided_by"), *comment = arg(ctx, &s, "comment");
        if (*by && strcmp(event, "decided") == 0) {
            sl_buf_puts(&t, " by ");
            slack_escape(&t, by);
        }
        if (*comment) {
            sl_buf_puts(&t, ": ");
            slack_escape(&t, comment);
        }
    } else {
        sl_buf_printf(&t, " waits for %zu of %lld approvals from ", count(ctx, "approvals"),
                      (long long)required);
        names(ctx, "approvers", &t);
        if (*deadline) {
            sl_buf_puts(&t, ", deadline ");
            slack_escape(&t, deadline);
        }
    }
    const char *link = arg(ctx, &s, "link");
    if (*link) {
        sl_buf_puts(&t, ". <");
        slack_escape(&t, link);
        sl_buf_puts(&t, "|Open the gate>");
    }
    sl_buf_puts(body, "{\"text\":");
    sl_json_put_string(body, t.data ? t.data : "", t.len);
    sl_buf_putc(body, '}');
    sl_buf_free(&t);
    strs_free(&s);
}

/* The webhook body: {"id": JOB ID, ...the args}. */
static int webhook_body(const sl_job_ctx *ctx, sl_buf *body, sl_err *err)
{
    sl_buf a = SL_BUF_INIT;
    if (sl_json_from_msgpack(ctx->args, &a, err) < 0) {
        sl_buf_free(&a);
        return -1;
    }
    sl_buf_puts(body, "{\"id\":");
    sl_json_put_string(body, ctx->job->id, strlen(ctx->job->id));
    if (a.len > 2)   /* the args map's members after its '{' */
        sl_buf_printf(body, ",%s", a.data + 1);
    else
        sl_buf_putc(body, '}');
    sl_buf_free(&a);
    return 0;
}

/* The signature header of a webhook: "v1=" HMAC-SHA256(secret, ts "." body). */
static char *signature(const sl_notify_channel *c, const char *ts, const sl_buf *body, sl_err *err)
{
    char what[128];
    snprintf(what, sizeof what, "notify.channels.%s.secret", c->name);
    char *secret = sl_jobctx_secret(c->secret_env, c->secret_file, what, err);
    if (secret == NULL)
        return NULL;
    sl_buf msg = SL_BUF_INIT;
    sl_buf_printf(&msg, "%s.", ts);
    sl_buf_append(&msg, body->data ? body->data : "", body->len);
    unsigned char mac[SL_SHA256_LEN];
    char hex[SL_SHA256_HEX];
    sl_hmac_sha256(secret, strlen(secret), msg.data, msg.len, mac);
    sl_jobctx_secret_free(secret);
    sl_buf_free(&msg);
    sl_sha256_hex(mac, hex);
    return sl_xasprintf("X-Sluice-Signature: v1=%s", hex);
}

/* The channel the job names, if this worker can deliver to it. */
static const sl_notify_channel *channel(const sl_job_ctx *ctx, sl_err *err)
{
    char *name;
    if (sl_args_str(ctx->args, "channel", true, &name, err) < 0)
        return NULL;
    const sl_notify_channel *c = sl_config_notify_channel(&sl_config_jobs_of(ctx->cfg)->notify, name), *ok = NULL;
    char shown[100];
    if (c == NULL)
        sl_err_set(err, SL_EPERMANENT, "argument 'channel': no channel '%s' under notify.channels of "
                   "this worker's configuration", sl_jobctx_excerpt(name, strlen(name), shown, 80));
    else if (c->url == NULL)
        sl_err_set(err, SL_EPERMANENT, "notify.channels.%s has no url in this worker's configuration",
                   c->name);
    else if (c->type == SL_NOTIFY_WEBHOOK && c->secret_env == NULL && c->secret_file == NULL)
        sl_err_set(err, SL_EPERMANENT, "notify.channels.%s is a webhook without secret_env or "
                   "secret_file: its notifications could not be verified, so none is sent", c->name);
    else
        ok = c;
    free(name);
    return ok;
}

static int run_notify(sl_job_ctx *ctx, sl_err *err)
{
    const sl_notify_channel *c = channel(ctx, err);
    if (c == NULL)
        return -1;
    sl_buf body = SL_BUF_INIT;
    sl_http_resp resp = { 0, SL_BUF_INIT };
    char *hdrs[6] = { NULL };
    int rc = -1;
    size_t nh = 0;
    hdrs[nh++] = sl_xstrdup("Content-Type: application/json");
    if (c->type == SL_NOTIFY_SLACK) {
        slack_body(ctx, &body);
    } else {
        char ts[32];
        snprintf(ts, sizeof ts, "%" PRId64, sl_now_ms() / 1000);
        strs s = { .n = 0 };
        const char *event = arg(ctx, &s, "event");
        if (*event && strspn(event, "abcdefghijklmnopqrstuvwxyz_") == strlen(event))   /* a header: no CR/LF */
            hdrs[nh++] = sl_xasprintf("X-Sluice-Event: %s", event);
        strs_free(&s);
        hdrs[nh++] = sl_xasprintf("X-Sluice-Delivery: %s", ctx->job->id);
        hdrs[nh++] = sl_xasprintf("X-Sluice-Timestamp: %s", ts);
        if (webhook_body(ctx, &body, err) < 0 || (hdrs[nh++] = signature(c, ts, &body, err)) == NULL)
            goto cleanup;
    }
    int64_t left = sl_jobctx_timeout_ms(ctx);
    sl_http_req req = { .method = "POST", .url = c->url, .body = body.data, .body_len = body.len,
                        .headers = (const char *const *)hdrs,
                        .timeout_ms = left < c->timeout_ms ? left : c->timeout_ms,
                        .max_response = 4096, .cancelled = ctx->cancelled, .guard = true,
                        .allow = sl_config_jobs_of(ctx->cfg)->notify.allow_addresses,
                        .nallow = sl_config_jobs_of(ctx->cfg)->notify.nallow_addresses,
                        .allow_key = "notify.allow_addresses" };
    if (sl_http_request(&req, &resp, err) < 0) {
        sl_err_wrap(err, "notify channel '%s'", c->name);
        goto cleanup;
    }
    char excerpt[200];
    sl_jobctx_excerpt(sl_buf_str(&resp.body), resp.body.len, excerpt, sizeof excerpt);
    if (resp.status >= 500) {
        sl_err_set(err, SL_EJOB, "notify channel '%s': answered %ld: %s", c->name, resp.status, excerpt);
        goto cleanup;
    }
    if (resp.status < 200 || resp.status >= 300) {
        sl_err_set(err, SL_EPERMANENT, "notify channel '%s': answered %ld (not retried; redirects are "
                   "not followed): %s", c->name, resp.status, excerpt);
        goto cleanup;
    }
    sl_jout o;
    sl_jout_begin(&o, ctx->outputs);
    sl_jout_str(&o, "channel", c->name);
    sl_jout_str(&o, "type", c->type == SL_NOTIFY_SLACK ? "slack" : "webhook");
    sl_jout_int(&o, "http_status", resp.status);
    sl_jout_end(&o);
    rc = 0;
cleanup:
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++)
        free(hdrs[i]);
    sl_buf_free(&body);
    sl_buf_free(&resp.body);
    return rc;
}

/* Only the scheduler enqueues notify jobs; it passes the event's fields,
 * which are data. */
static const sl_kind_arg notify_args[] = { { "channel", true, NULL }, { NULL, false, NULL } };

const sl_kind sl_kind_notify = { "notify", "delivers a gate event to a channel of notify.channels "
                                 "(scheduler-signed only)", run_notify, notify_args, true, NULL };
