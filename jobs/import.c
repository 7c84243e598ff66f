/* import.c: the `import` kind: fetch args.url into the configured import
 * root, optionally load it into a configured PostgreSQL table.
 * docs/jobs.md is the user's description.
 *
 * Trust: the URL comes from a caller.  Its scheme must be listed in
 * import.schemes; an http(s) host must match import.hosts and its port
 * import.allow_ports; every connection libcurl opens is checked at the
 * address it really reaches (jobs/netguard.h, from the open-socket
 * callback: internal addresses are refused unless import.allow_addresses
 * covers them), which also covers DNS rebinding and every redirect.  A
 * file: URL is opened by the kernel beneath import.file_root (openat2
 * RESOLVE_BENEATH, so no rename or symlink swapped in during the open can
 * lead outside), non-blocking, and must be a regular file.  Redirects are
 * followed by hand, one hop at a time, and every hop is checked like the
 * original URL (a redirect never reaches file:).  The stored name (args.name) is a
 * plain file name, and a table is chosen by its configured name only.
 *
 * Writing: the body streams into a staging file in the import root itself
 * (jobs/stage.h: an unnamed O_TMPFILE where possible, so even a worker
 * killed mid-download leaves nothing), counted and hashed as it arrives;
 * the transfer is aborted as soon as import.max_bytes is passed.  Only a
 * complete, verified file is published under its name (atomically); on
 * every failure path the staging file is removed, so no partial file
 * remains.
 *
 * CSV: with args.table, the file is loaded with COPY … FROM STDIN inside one
 * transaction that also covers the rename: a bad row rolls everything back
 * and the file is not kept.
 *
 * Failure classes: bad arguments are SL_EINVAL; answers that retrying will
 * not change (4xx, checksum mismatch, too large, a bad CSV row) are
 * SL_EPERMANENT; network trouble and 5xx are SL_EJOB (retryable). */
#include "args.h"
#include "clock.h"
#include "config.h"
#include "config_jobs.h"
#include "http.h"
#include "jobctx.h"
#include "kind.h"
#include "mem.h"
#include "netguard.h"
#include "sha256.h"
#include "stage.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NAME_MAX_LEN 128
#define STAGING_PREFIX ".sluice-staging-"

typedef struct fetch {
    const sl_job_ctx *ctx;
    const sl_jobs_config *jc;
    int fd;                  /* staging file */
    sl_sha256_ctx sha;
    int64_t bytes;
    bool too_big;
    bool write_failed;
    int write_errno;
    char *content_type;      /* owned */
    char *final_url;         /* owned */
    char refused[200];       /* why the open-socket check refused a connection, "" if none */
} fetch;

static bool name_valid(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= NAME_MAX_LEN && s[0] != '.' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

static bool host_allowed(const sl_jobs_config *jc, const char *host)
{
    for (size_t i = 0; i < jc->import.nhosts; i++) {
        const char *h = jc->import.hosts[i];
        if (strncmp(h, "*.", 2) == 0) {
            size_t hl = strlen(host), sl = strlen(h + 1);   /* ".suffix" */
            if (hl > sl && strcmp(host + hl - sl, h + 1) == 0)
                return true;
        } else if (strcmp(h, host) == 0) {
            return true;
        }
    }
    return false;
}

static void reset_sink(fetch *f)
{
    sl_sha256_free(&f->sha);   /* a restarted download starts a new digest */
    sl_sha256_init(&f->sha);
    f->bytes = 0;
}

static int sink(fetch *f, const char *data, size_t n)
{
    if (f->bytes + (int64_t)n > f->jc->import.max_bytes) {
        f->too_big = true;
        return -1;
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(f->fd, data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            f->write_failed = true;
            f->write_errno = errno;
            return -1;
        }
        off += (size_t)w;
    }
    sl_sha256_update(&f->sha, data, n);
    f->bytes += (int64_t)n;
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    size_t n = size * nmemb;
    return sink(arg, data, n) == 0 ? n : 0;   /* 0 makes curl abort the transfer */
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return sl_jobctx_cancelled(((fetch *)arg)->ctx) ? 1 : 0;
}

/* libcurl's open-socket callback: the one place every connection passes,
 * with the address it will actually reach (after DNS, for every redirect
 * hop and every address tried).  A refused address gets no socket, so not
 * one byte is sent to it. */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    fetch *f = arg;
    char text[64];
    const struct sockaddr *sa = &a->addr;
    int port = sa->sa_family == AF_INET ? ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port)
               : sa->sa_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port) : 0;
    const char *why = purpose != CURLSOCKTYPE_IPCXN ? "not a plain connection"
                      : sl_netguard_refusal(sa, f->jc->import.allow_addresses, f->jc->import.nallow_addresses);
    if (why) {
        snprintf(f->refused, sizeof f->refused, "address %s is %s: refused (import.allow_addresses "
                 "does not allow it)", sl_netguard_addr_text(sa, text, sizeof text), why);
        return CURL_SOCKET_BAD;
    }
    if (!sl_netguard_port_allowed(port, f->jc->import.allow_ports, f->jc->import.nallow_ports)) {
        snprintf(f->refused, sizeof f->refused, "port %d is not allowed (import.allow_ports)", port);
        return CURL_SOCKET_BAD;
    }
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/* Checks one http(s) URL (the argument or a redirect target) against the
 * configuration.  Sets *scheme_out to a static name. */
static int check_url(const sl_jobs_config *jc, const char *url, const char *what, bool redirect,
                     const char **scheme_out, char **path_out, sl_err *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *path = NULL;
    int rc = -1;
    int code = redirect ? SL_EPERMANENT : SL_EINVAL;
    if (u == NULL)
        return sl_err_set(err, SL_EJOB, "curl_url: out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        sl_err_set(err, code, "%s: not a valid URL: '%.200s'", what, url);
        goto cleanup;
    }
    for (char *p = scheme; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    static const char *const known[] = { "http", "https", "file" };
    const char *sch = NULL;
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(scheme, known[i]) == 0)
            sch = known[i];
    }
    if (sch == NULL || !sl_config_list_has(jc->import.schemes, jc->import.nschemes, sch) ||
        (redirect && strcmp(sch, "file") == 0)) {
        sl_buf allowed = SL_BUF_INIT;
        for (size_t i = 0; i < jc->import.nschemes; i++)
            sl_buf_printf(&allowed, "%s%s", i ? ", " : "", jc->import.schemes[i]);
        sl_err_set(err, code, "%s: scheme '%.20s' is not allowed (import.schemes: %s)", what, scheme,
                   allowed.len ? allowed.data : "none");
        sl_buf_free(&allowed);
        goto cleanup;
    }
    CURLUcode hc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    if (hc != CURLUE_OK && hc != CURLUE_NO_HOST) {
        sl_err_set(err, code, "%s: bad host in '%.200s'", what, url);
        goto cleanup;
    }
    for (char *p = host; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strcmp(sch, "file") == 0) {
        if (host && *host && strcmp(host, "localhost") != 0) {
            sl_err_set(err, code, "%s: a file: URL may not name a host ('%.80s')", what, host);
            goto cleanup;
        }
        if (curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) != CURLUE_OK) {
            sl_err_set(err, code, "%s: bad path in '%.200s'", what, url);
            goto cleanup;
        }
        *path_out = sl_xstrdup(path);
    } else if (host == NULL || !host_allowed(jc, host)) {
        sl_err_set(err, code, "%s: host '%.100s' is not allowed (not in import.hosts)", what,
                   host ? host : "");
        goto cleanup;
    } else {
        char *port = NULL;
        long pn = 0;
        if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
            pn = strtol(port, NULL, 10);
        curl_free(port);
        if (!sl_netguard_port_allowed((int)pn, jc->import.allow_ports, jc->import.nallow_ports)) {
            sl_buf allowed = SL_BUF_INIT;
            for (size_t i = 0; i < jc->import.nallow_ports; i++)
                sl_buf_printf(&allowed, "%s%d", i ? ", " : "", jc->import.allow_ports[i]);
            sl_err_set(err, code, "%s: port %ld is not allowed (import.allow_ports: %s)", what, pn,
                       allowed.len ? allowed.data : "none");
            sl_buf_free(&allowed);
            goto cleanup;
        }
    }
    *scheme_out = sch;
    rc = 0;

cleanup:
    curl_free(scheme);
    curl_free(host);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

/* The part of path below root (no leading '/'), or NULL when path does not
 * name something under root.  Purely textual: the kernel does the rest. */
static const char *below_root(const char *path, const char *root)
{
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/')
        rl--;
    if (rl == 1 && root[0] == '/')
        rl = 0;
    if (strncmp(path, root, rl) != 0 || path[rl] != '/')
        return NULL;
    path += rl;
    while (*path == '/')
        path++;
    return *path ? path : NULL;
}

/* Opens rel beneath the directory dir_fd, in the kernel's own resolution:
 * RESOLVE_BENEATH refuses every route out ("..", absolute symlinks,
 * symlinks leading outside), whatever is renamed or swapped meanwhile, and
 * RESOLVE_NO_MAGICLINKS refuses /proc-style links.  O_NONBLOCK: opening a
 * FIFO returns at once instead of waiting for a writer. */
static int open_beneath(int dir_fd, const char *rel)
{
    struct open_how how = { .flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
                            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
    for (int tries = 0;; tries++) {
        long fd = syscall(SYS_openat2, dir_fd, rel, &how, sizeof how);
        /* EAGAIN: a rename raced the lookup of ".."; the kernel asks for a retry */
        if (fd >= 0 || (errno != EAGAIN && errno != EINTR) || tries >= 16)
            return (int)fd;
    }
}

/* file: URLs: the file is opened beneath import.file_root by the kernel
 * (open_beneath), then must be a regular file. */
static int fetch_file(fetch *f, const char *path, sl_err *err)
{
    const char *froot = f->jc->import.file_root;
    char real_root[PATH_MAX];
    const char *rel = below_root(path, froot);
    if (rel == NULL && realpath(froot, real_root) != NULL)
        rel = below_root(path, real_root);   /* the root spelled without its symlinks */
    if (rel == NULL)
        return sl_err_set(err, SL_EINVAL, "argument 'url': %s is outside import.file_root", path);
    int root_fd = open(froot, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        return sl_err_set(err, SL_EJOB, "import.file_root %s: %s", froot, strerror(errno));
    int fd = open_beneath(root_fd, rel);
    int saved = errno;
    close(root_fd);
    if (fd < 0 && (saved == EXDEV || saved == ELOOP))
        return sl_err_set(err, SL_EINVAL, "argument 'url': %s is outside import.file_root (it "
                          "leads out of it: '..', a symlink or a mount point)", path);
    if (fd < 0 && saved == ENOSYS)
        return sl_err_set(err, SL_EPERMANENT, "argument 'url': file: imports need openat2 (Linux "
                          "5.6 or later) to stay under import.file_root");
    if (fd < 0)
        return sl_err_set(err, SL_EPERMANENT, "argument 'url': open %s: %s", path, strerror(saved));
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st) < 0) {
        sl_err_set(err, SL_EJOB, "argument 'url': fstat %s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        const char *what = S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISDIR(st.st_mode) ? "a directory"
                           : S_ISSOCK(st.st_mode) ? "a socket" : "a device";
        sl_err_set(err, SL_EPERMANENT, "argument 'url': %s is %s, not a regular file: refused",
                   path, what);
        goto cleanup;
    }
    char buf[65536];
    for (;;) {
        if (sl_jobctx_cancelled(f->ctx)) {
            sl_err_set(err, SL_EJOB, "import cancelled");
            goto cleanup;
        }
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            sl_err_set(err, SL_EJOB, "read %s: %s", path, strerror(errno));
            goto cleanup;
        }
        if (r == 0)
            break;
        if (sink(f, buf, (size_t)r) < 0)
            goto cleanup;   /* the caller explains too_big / write_failed */
    }
    f->final_url = sl_xasprintf("file://%s", path);
    rc = 0;
cleanup:
    close(fd);
    return rc;
}

/* http(s): one request per hop, redirects checked and followed by hand. */
static int fetch_http(fetch *f, const char *url, int64_t deadline, sl_err *err)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        return sl_err_set(err, SL_EJOB, "curl_easy_init failed");
    char *current = sl_xstrdup(url);
    int rc = -1;
    for (int hop = 0;; hop++) {
        int64_t left = deadline - sl_monotonic_ms();
        if (left <= 0) {
            sl_err_set(err, SL_EJOB, "GET %s: out of time", current);
            goto cleanup;
        }
        char cerr[CURL_ERROR_SIZE] = "";
        curl_easy_reset(h);
        CURLcode cc = CURLE_OK;
#define SETOPT(opt, val) do { if (cc == CURLE_OK) cc = curl_easy_setopt(h, opt, val); } while (0)
        SETOPT(CURLOPT_URL, current);
        SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
        SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
        SETOPT(CURLOPT_NOSIGNAL, 1L);
        SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)f->jc->import.connect_timeout_ms);
        SETOPT(CURLOPT_TIMEOUT_MS, (long)left);
        SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->jc->import.max_bytes);
        SETOPT(CURLOPT_WRITEFUNCTION, on_body);
        SETOPT(CURLOPT_WRITEDATA, f);
        SETOPT(CURLOPT_NOPROGRESS, 0L);
        SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
        SETOPT(CURLOPT_XFERINFODATA, f);
        SETOPT(CURLOPT_ERRORBUFFER, cerr);
        SETOPT(CURLOPT_USERAGENT, "sluice/" SLUICE_VERSION);
        SETOPT(CURLOPT_OPENSOCKETFUNCTION, open_socket);
        SETOPT(CURLOPT_OPENSOCKETDATA, f);
        SETOPT(CURLOPT_PROXY, "");   /* no proxy from the environment: connect where the check says */
#undef SETOPT
        if (cc != CURLE_OK) {
            sl_err_set(err, SL_EJOB, "GET %s: %s", current, curl_easy_strerror(cc));
            goto cleanup;
        }
        f->refused[0] = '\0';
        cc = curl_easy_perform(h);
        if (cc != CURLE_OK && f->refused[0]) {
            sl_err_set(err, SL_EPERMANENT, "GET %s: %s", current, f->refused);
            goto cleanup;
        }
        if (cc == CURLE_FILESIZE_EXCEEDED)
            f->too_big = true;
        if (f->too_big || f->write_failed)
            goto cleanup;
        if (cc == CURLE_ABORTED_BY_CALLBACK) {
            sl_err_set(err, SL_EJOB, "GET %s: cancelled", current);
            goto cleanup;
        }
        if (cc == CURLE_OPERATION_TIMEDOUT) {
            sl_err_set(err, SL_EJOB, "GET %s: timed out (%s)", current, cerr);
            goto cleanup;
        }
        if (cc != CURLE_OK) {
            sl_err_set(err, SL_EJOB, "GET %s: %s", current, cerr[0] ? cerr : curl_easy_strerror(cc));
            goto cleanup;
        }
        long status = 0;
        (void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 300 && status < 400) {
            char *next = NULL;
            if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &next) != CURLE_OK || next == NULL) {
                sl_err_set(err, SL_EPERMANENT, "GET %s: answered %ld without a Location", current, status);
                goto cleanup;
            }
            if (hop >= f->jc->import.max_redirects) {
                sl_err_set(err, SL_EPERMANENT, "GET %s: more than %d redirects (import.max_redirects)",
                           url, f->jc->import.max_redirects);
                goto cleanup;
            }
            const char *scheme;
            char *ignored = NULL;
            char what[300];
            snprintf(what, sizeof what, "redirect from %.200s", current);
            if (check_url(f->jc, next, what, true, &scheme, &ignored, err) < 0) {
                free(ignored);
                goto cleanup;
            }
            free(ignored);
            free(current);
            current = sl_xstrdup(next);
            /* the redirect's own body is not the file */
            if (ftruncate(f->fd, 0) < 0 || lseek(f->fd, 0, SEEK_SET) < 0) {
                sl_err_set(err, SL_EIO, "truncate staging file: %s", strerror(errno));
                goto cleanup;
            }
            reset_sink(f);
            continue;
        }
        if (status < 200 || status >= 300) {
            sl_err_set(err, status >= 500 ? SL_EJOB : SL_EPERMANENT, "GET %s: answered %ld%s", current,
                       status, status >= 500 ? "" : " (not retried)");
            goto cleanup;
        }
        char *ct = NULL;
        if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
            f->content_type = sl_xstrdup(ct);
        f->final_url = current;
        current = NULL;
        rc = 0;
        break;
    }
cleanup:
    free(current);
    curl_easy_cleanup(h);
    return rc;
}

static char *quote_ident(PGconn *c, const char *s)
{
    char *q = PQescapeIdentifier(c, s, strlen(s));
    if (q == NULL)
        return NULL;
    char *copy = sl_xstrdup(q);
    PQfreemem(q);
    return copy;
}

static PGresult *exec_ok(PGconn *c, const char *sql, ExecStatusType want, sl_err *err)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != want) {
        sl_err_set(err, SL_EPERMANENT, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* COPY the staging file (fd; named as from sl_stage_file) into t, publish
 * it as final, commit: all or nothing. */
static int load_csv(const sl_job_ctx *ctx, const sl_import_table *t, int sfd, const char *staging,
                    const char *final, int64_t *rows, sl_err *err)
{
    const sl_jobs_config *jc = sl_config_jobs_of(ctx->cfg);
    char *url = jc->import.database_url_env || jc->import.database_url_file
                    ? sl_jobctx_secret(jc->import.database_url_env, jc->import.database_url_file,
                                       "import.database_url", err)
                    : sl_xstrdup(ctx->cfg->database_url);
    if (url == NULL)
        return -1;
    sl_buf sql = SL_BUF_INIT;
    int rc = -1;
    bool in_tx = false;
    PGresult *r = NULL;
    PGconn *c = sl_jobctx_pg_connect(url, "import", err);
    if (c == NULL)
        goto cleanup;
    sl_buf_puts(&sql, "COPY ");
    char *q;
    if (t->schema) {
        if ((q = quote_ident(c, t->schema)) == NULL)
            goto quote_fail;
        sl_buf_printf(&sql, "%s.", q);
        free(q);
    }
    if ((q = quote_ident(c, t->table)) == NULL)
        goto quote_fail;
    sl_buf_puts(&sql, q);
    free(q);
    for (size_t i = 0; i < t->ncolumns; i++) {
        if ((q = quote_ident(c, t->columns[i])) == NULL)
            goto quote_fail;
        sl_buf_printf(&sql, "%s%s", i ? ", " : " (", q);
        free(q);
    }
    if (t->ncolumns)
        sl_buf_putc(&sql, ')');
    sl_buf_printf(&sql, " FROM STDIN WITH (FORMAT csv, HEADER %s)", t->header ? "true" : "false");

    if ((r = exec_ok(c, "BEGIN", PGRES_COMMAND_OK, err)) == NULL)
        goto fail;
    PQclear(r);
    in_tx = true;
    if ((r = exec_ok(c, sql.data, PGRES_COPY_IN, err)) == NULL)
        goto fail;
    PQclear(r);
    r = NULL;
    char buf[65536];
    ssize_t n;
    off_t off = 0;
    while ((n = pread(sfd, buf, sizeof buf, off)) > 0) {
        off += n;
        if (PQputCopyData(c, buf, (int)n) != 1) {
            sl_err_set(err, SL_EJOB, "COPY: %s", PQerrorMessage(c));
            goto fail;
        }
    }
    if (PQputCopyEnd(c, n < 0 ? "read error" : NULL) != 1) {
        sl_err_set(err, SL_EJOB, "COPY: %s", PQerrorMessage(c));
        goto fail;
    }
    r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        sl_err_set(err, SL_EPERMANENT, "%s", PQresultErrorMessage(r));
        goto fail;
    }
    *rows = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
    if (sl_stage_publish(sfd, staging, sl_config_jobs_of(ctx->cfg)->import.root, STAGING_PREFIX, final, err) < 0)
        goto fail;
    if ((r = exec_ok(c, "COMMIT", PGRES_COMMAND_OK, err)) == NULL) {
        (void)unlink(final);   /* the rows are not there, so neither is the file */
        in_tx = false;
        goto fail;
    }
    PQclear(r);
    r = NULL;
    rc = 0;
    goto cleanup;

quote_fail:
    sl_err_set(err, SL_EPG, "PQescapeIdentifier: %s", PQerrorMessage(c));
fail:
    /* one line: PostgreSQL's message may carry DETAIL/CONTEXT lines */
    for (char *p = err->msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
    sl_err_wrap(err, "argument 'table': loading into '%s' failed, nothing was inserted", t->name);
    PQclear(r);
    r = NULL;
    if (in_tx) {
        while ((r = PQgetResult(c)) != NULL)
            PQclear(r);
        PQclear(PQexec(c, "ROLLBACK"));
    }
cleanup:
    PQclear(r);
    sl_buf_free(&sql);
    PQfinish(c);
    sl_jobctx_secret_free(url);
    return rc;
}

static int run_import(sl_job_ctx *ctx, sl_err *err)
{
    const sl_jobs_config *jc = sl_config_jobs_of(ctx->cfg);
    int64_t t0 = sl_monotonic_ms();
    char *url = NULL, *want = NULL, *format = NULL, *name = NULL, *table = NULL, *file_path = NULL;
    char *staging = NULL, *final = NULL;
    fetch f = { .ctx = ctx, .jc = jc, .fd = -1 };
    const sl_import_table *t = NULL;
    int rc = -1;
    int64_t rows = -1;

    if (jc->import.root == NULL)
        return sl_err_set(err, SL_EPERMANENT, "import is not configured on this worker (import.root)");
    if (sl_args_str(ctx->args, "url", true, &url, err) < 0 ||
        sl_args_str(ctx->args, "sha256", false, &want, err) < 0 ||
        sl_args_str(ctx->args, "format", false, &format, err) < 0 ||
        sl_args_str(ctx->args, "name", false, &name, err) < 0 ||
        sl_args_str(ctx->args, "table", false, &table, err) < 0)
        goto cleanup;
    if (want) {
        for (char *p = want; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (strlen(want) != 64 || strspn(want, "0123456789abcdef") != 64) {
            sl_err_set(err, SL_EINVAL, "argument 'sha256': expected 64 hex digits");
            goto cleanup;
        }
    }
    if (format && strcmp(format, "raw") != 0 && strcmp(format, "csv") != 0) {
        sl_err_set(err, SL_EINVAL, "argument 'format': expected raw or csv");
        goto cleanup;
    }
    if (name == NULL)
        name = sl_xstrdup(ctx->job->id);
    if (!name_valid(name)) {
        char shown[100];
        sl_err_set(err, SL_EINVAL, "argument 'name': '%s' is not a plain file name (1-%d of "
                   "A-Z a-z 0-9 . _ : -, not starting with '.')", sl_jobctx_excerpt(name, strlen(name),
                   shown, sizeof shown), NAME_MAX_LEN);
        goto cleanup;
    }
    if (table) {
        if (format == NULL || strcmp(format, "csv") != 0) {
            sl_err_set(err, SL_EINVAL, "argument 'table': only with format csv");
            goto cleanup;
        }
        if ((t = sl_config_import_table(jc, table)) == NULL) {
            char shown[100];
            sl_err_set(err, SL_EINVAL, "argument 'table': no import table '%s' is configured",
                       sl_jobctx_excerpt(table, strlen(table), shown, sizeof shown));
            goto cleanup;
        }
    }
    const char *scheme;
    if (check_url(jc, url, "argument 'url'", false, &scheme, &file_path, err) < 0)
        goto cleanup;

    sl_stage_sweep(jc->import.root, STAGING_PREFIX);
    if ((f.fd = sl_stage_file(jc->import.root, STAGING_PREFIX, &staging, err)) < 0)
        goto cleanup;
    reset_sink(&f);
    int64_t budget = sl_jobctx_timeout_ms(ctx);
    if (budget > jc->import.timeout_ms)
        budget = jc->import.timeout_ms;
    int frc = strcmp(scheme, "file") == 0 ? fetch_file(&f, file_path, err)
                                          : fetch_http(&f, url, t0 + budget, err);
    if (f.too_big) {
        sl_err_set(err, SL_EPERMANENT, "argument 'url': the download exceeds import.max_bytes (%lld "
                   "bytes); aborted, nothing kept", (long long)jc->import.max_bytes);
        goto cleanup;
    }
    if (f.write_failed) {
        sl_err_set(err, SL_EIO, "write a staging file in %s: %s", jc->import.root, strerror(f.write_errno));
        goto cleanup;
    }
    if (frc < 0)
        goto cleanup;
    if (fsync(f.fd) < 0) {
        sl_err_set(err, SL_EIO, "fsync a staging file in %s: %s", jc->import.root, strerror(errno));
        goto cleanup;
    }
    unsigned char digest[SL_SHA256_LEN];
    char hex[SL_SHA256_HEX];
    sl_sha256_final(&f.sha, digest);
    sl_sha256_hex(digest, hex);
    if (want && strcmp(want, hex) != 0) {
        sl_err_set(err, SL_EPERMANENT, "argument 'sha256': checksum mismatch: expected %s, the "
                   "download (%lld bytes) has %s; nothing kept", want, (long long)f.bytes, hex);
        goto cleanup;
    }
    if (fchmod(f.fd, 0644) < 0) {
        sl_err_set(err, SL_EIO, "fchmod a staging file in %s: %s", jc->import.root, strerror(errno));
        goto cleanup;
    }
    final = sl_xasprintf("%s/%s", jc->import.root, name);
    if (t) {
        if (load_csv(ctx, t, f.fd, staging, final, &rows, err) < 0)
            goto cleanup;
    } else if (sl_stage_publish(f.fd, staging, jc->import.root, STAGING_PREFIX, final, err) < 0) {
        goto cleanup;
    }
    free(staging);
    staging = NULL;   /* published: nothing to remove */

    sl_jout o;
    sl_jout_begin(&o, ctx->outputs);
    sl_jout_str(&o, "path", final);
    sl_jout_str(&o, "name", name);
    sl_jout_str(&o, "url", f.final_url);
    sl_jout_int(&o, "bytes", f.bytes);
    sl_jout_str(&o, "sha256", hex);
    sl_jout_str(&o, "format", format ? format : "raw");
    if (t) {
        sl_jout_str(&o, "table", t->name);
        sl_jout_int(&o, "rows", rows);
    }
    sl_jout_str(&o, "content_type", f.content_type);
    sl_jout_int(&o, "duration_ms", sl_monotonic_ms() - t0);
    sl_jout_end(&o);
    rc = 0;

cleanup:
    sl_sha256_free(&f.sha);
    if (f.fd >= 0)
        close(f.fd);
    if (staging)
        (void)unlink(staging);
    free(staging);
    free(final);
    free(f.content_type);
    free(f.final_url);
    free(url), free(want), free(format), free(name), free(table), free(file_path);
    return rc;
}

static const char *const import_formats[] = { "raw", "csv", NULL };
static const sl_kind_arg import_args[] = {
    { "url", true, NULL }, { "sha256", false, NULL }, { "format", false, import_formats },
    { "name", false, NULL }, { "table", false, NULL }, { NULL, false, NULL },
};

const sl_kind sl_kind_import = { "import", "downloads args.url into the import root, "
                                 "optionally COPYing a CSV into a configured table", run_import, import_args, false, NULL };
