/* apiserver.c: see apiserver.h. */
#include "apiserver.h"

#include "harness.h"
#include "mem.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static bool port_logged(void *arg)
{
    th_server *s = arg;
    char *text = th_read_file(s->log);
    const char *p = text ? strstr(text, "event=serve.listening") : NULL;
    p = p ? strstr(p, " port=") : NULL;
    if (p)
        s->port = atoi(p + 6);
    free(text);
    return s->port > 0;
}

static bool exited(void *arg)
{
    th_server *s = arg;
    return waitpid(s->pid, NULL, WNOHANG) == s->pid;
}

void th_serve_start(th_server *s, const char *config, bool tls, const char *const *env_extra)
{
    th_serve_start_on(s, config, "127.0.0.1:0", tls, env_extra);
}

int th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0,
              "bind 127.0.0.1:0: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

void th_serve_start_on(th_server *s, const char *config, const char *listen, bool tls,
                       const char *const *env_extra)
{
    char name[64];
    th_name(name, sizeof name, "api");
    s->log = sl_xasprintf("/tmp/sluice-%s.log", name);
    s->port = 0;
    s->pid = fork();
    cr_assert(s->pid >= 0);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* a failed test leaves nothing running */
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int devnull = open("/dev/null", O_RDWR);
        if (fd >= 0)
            dup2(fd, 2);
        if (devnull >= 0)
            dup2(devnull, 1);
        for (size_t i = 0; env_extra && env_extra[i]; i++)
            putenv((char *)env_extra[i]);
        execl(SLUICE_BIN, SLUICE_BIN, "serve", "--config", config, "--listen", listen, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000 && !port_logged(s); i++) {
        cr_assert(!exited(s), "sluice serve exited; log:\n%s", th_read_file(s->log));
        usleep(20000);
    }
    cr_assert_gt(s->port, 0, "serve did not start; log:\n%s", th_read_file(s->log));
    snprintf(s->url, sizeof s->url, "%s://127.0.0.1:%d", tls ? "https" : "http", s->port);
}

void th_serve_stop(th_server *s)
{
    int status = th_stop(s->pid, SIGTERM, 20000);
    char *text = th_read_file(s->log);
    cr_expect_eq(status, 0, "serve exit %d; log:\n%s", status, text);
    cr_expect(text && !strstr(text, "Sanitizer") && !strstr(text, "runtime error"), "%s", text);
    free(text);
    unlink(s->log);
    free(s->log);
    s->log = NULL;
}

char *th_token(const char *config, const char *user, const char *scopes, const char *expires)
{
    const char *argv[] = { SLUICE_BIN, "token", "create", "--config", config, "--user", user, "--scopes", scopes,
                           expires ? "--expires" : NULL, expires, NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0, "sluice token create: %s", r.err);
    char *t = sl_xstrdup(r.out);
    t[strcspn(t, "\n")] = '\0';
    cr_assert(strncmp(t, "slk_", 4) == 0, "not a token: %s", t);
    th_result_free(&r);
    return t;
}

static const char *source_ip;   /* th_http_source */

void th_http_source(const char *ip) { source_ip = ip; }

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    sl_buf *b = arg;
    sl_buf_append(b, data, size * n);
    return size * n;
}

th_http_reply th_http(const char *method, const char *url, const char *token, const char *body,
                      const char *header, const char *ca)
{
    th_http_reply r = { 0 };
    sl_buf b = SL_BUF_INIT, h = SL_BUF_INIT;
    struct curl_slist *hs = NULL;
    char *auth = token ? sl_xasprintf("Authorization: Bearer %s", token) : NULL;
    if (auth)
        hs = curl_slist_append(hs, auth);
    if (body)
        hs = curl_slist_append(hs, "Content-Type: application/json");
    if (header)
        hs = curl_slist_append(hs, header);
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    if (source_ip)
        curl_easy_setopt(c, CURLOPT_INTERFACE, source_ip);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    CURLcode cc = curl_easy_perform(c);
    cr_assert_eq(cc, CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hs);
    free(auth);
    sl_buf_puts(&b, "");
    sl_buf_puts(&h, "");
    r.body = sl_buf_detach(&b);
    r.headers = sl_buf_detach(&h);
    return r;
}

void th_http_free(th_http_reply *r)
{
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
}

const char *th_http_header(const th_http_reply *r, const char *name)
{
    static char value[512];
    size_t n = strlen(name);
    for (const char *p = r->headers; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            snprintf(value, sizeof value, "%.*s", (int)len, v);
            return value;
        }
    }
    return NULL;
}
