/* apiclient.c: see apiclient.h. */
#include "apiclient.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "config_api.h"
#include "cli.h"
#include "jsonval.h"
#include "mem.h"

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    sl_buf *b = arg;
    if (b->len + size * n > 16 * 1048576)
        return 0;   /* a runaway answer: abort the transfer */
    sl_buf_append(b, data, size * n);
    return size * n;
}

/* Copies a problem's detail (or title) into reply->detail. */
static void read_problem(cli_api_reply *reply)
{
    sl_jsonval j;
    sl_jsonval_init(&j, sl_buf_str(&reply->body));
    char *s = NULL;
    if (j.ok && (sl_args_str(&j.up.data, "detail", false, &s, NULL) == 0 && s == NULL))
        sl_args_str(&j.up.data, "title", false, &s, NULL);
    if (s) {
        size_t n = 0;
        for (const char *p = s; *p && n + 1 < sizeof reply->detail; p++)
            reply->detail[n++] = (*p < 0x20 || *p == 0x7f) ? '?' : *p;   /* no terminal escapes */
        reply->detail[n] = '\0';
    }
    free(s);
    sl_jsonval_free(&j);
}

int cli_api(const sl_config *cfg, const char *method, const char *path, const char *body,
            cli_api_reply *reply, sl_err *err)
{
    memset(reply, 0, sizeof *reply);
    const char *token = getenv("SLUICE_TOKEN");
    if (token == NULL || *token == '\0')
        return sl_err_set(err, SL_ECONFIG, "no API token: set SLUICE_TOKEN (see 'sluice token create')");
    const char *base = sl_api_config_of(cfg)->url;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    char *url = sl_xasprintf("%.*s%s", (int)blen, base, path);
    char *auth = sl_xasprintf("Authorization: Bearer %s", token);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json");
    int rc = -1;
    char ebuf[CURL_ERROR_SIZE] = "";
    CURL *c = curl_easy_init();
    if (c == NULL) {
        sl_err_set(err, SL_EIO, "curl_easy_init failed");
        goto cleanup;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply->body);
    if (sl_api_config_of(cfg)->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, sl_api_config_of(cfg)->ca_file);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        sl_err_set(err, SL_EIO, "API at %.*s: %s", (int)blen, base, ebuf[0] ? ebuf : curl_easy_strerror(cc));
        goto cleanup;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply->status);
    if (reply->status >= 400)
        read_problem(reply);
    rc = 0;
cleanup:
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    free(auth);
    free(url);
    if (rc < 0)
        sl_buf_free(&reply->body);
    return rc;
}

char *cli_api_path(const char *fmt, ...)
{
    sl_buf b = SL_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p; p++) {
        if (p[0] != '%' || p[1] != 's') {
            sl_buf_putc(&b, *p);
            continue;
        }
        p++;
        for (const unsigned char *a = va_arg(ap, const unsigned char *); *a; a++) {
            if ((*a >= 'A' && *a <= 'Z') || (*a >= 'a' && *a <= 'z') || (*a >= '0' && *a <= '9') ||
                strchr("-._~", *a))
                sl_buf_putc(&b, (char)*a);
            else
                sl_buf_printf(&b, "%%%02X", *a);
        }
    }
    va_end(ap);
    return sl_buf_detach(&b);
}

int cli_api_fail(const char *cmd, const cli_api_reply *reply)
{
    if (reply->status == 409)
        return cli_fail(cmd, "refused: %s", reply->detail);
    return cli_fail(cmd, "%s (HTTP %ld)", reply->detail[0] ? reply->detail : "the API server refused",
                    reply->status);
}
