/* test_serve.c: `sluice serve`, the HTTP endpoint, over real sockets:
 * /metrics passes promtool, /healthz and /readyz answer, unknown paths get
 * 404 and other methods 405, and a client that connects and sends nothing
 * does not hold up other scrapes. */
#include "harness.h"

#include "mem.h"
#include "queue.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_MS 20000   /* bound on any single wait (never asserted on) */

typedef struct server {
    pid_t pid;
    int port;
    char *log;
} server;

static bool port_logged(void *arg)
{
    server *s = arg;
    char *text = th_read_file(s->log);
    const char *p = text ? strstr(text, "event=serve.listening") : NULL;
    p = p ? strstr(p, " port=") : NULL;
    if (p)
        s->port = atoi(p + 6);
    free(text);
    return s->port > 0;
}

/* Starts `sluice serve` on a free port of 127.0.0.1 (port 0: the server
 * logs the one it got). */
static void serve_start(server *s, const char *config_text)
{
    char name[64];
    th_name(name, sizeof name, "serve");
    s->log = sl_xasprintf("/tmp/sluice-%s.log", name);
    s->port = 0;
    char *config = th_write_temp("sluice.yaml", config_text);
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
        execl(SLUICE_BIN, SLUICE_BIN, "serve", "--config", config, "--listen", "127.0.0.1:0", (char *)NULL);
        _exit(127);
    }
    free(config);
    cr_assert(th_wait(port_logged, s, IO_TIMEOUT_MS), "serve did not start; log:\n%s", th_read_file(s->log));
}

static void serve_stop(server *s)
{
    int status = th_stop(s->pid, SIGTERM, IO_TIMEOUT_MS);
    char *text = th_read_file(s->log);
    cr_assert_eq(status, 0, "serve exit %d; log:\n%s", status, text);
    cr_assert(text && !strstr(text, "Sanitizer"), "%s", text);
    free(text);
    unlink(s->log);
    free(s->log);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
    return fd;
}

/* Sends one HTTP/1.0 request and reads the whole response (the server
 * closes the connection).  Returns the status code; *body gets the rest. */
static int request(int port, const char *method, const char *path, char **response)
{
    int fd = connect_to(port);
    char req[256];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: localhost\r\n\r\n", method, path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t len = 0, cap = 4096;
    char *buf = sl_xmalloc(cap);
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, IO_TIMEOUT_MS);
        cr_assert_gt(r, 0, "no answer to %s %s within %d ms", method, path, IO_TIMEOUT_MS);
        if (len + 1024 > cap)
            buf = sl_xrealloc(buf, cap *= 2);
        ssize_t got = read(fd, buf + len, cap - len - 1);
        cr_assert_geq(got, 0, "read: %s", strerror(errno));
        if (got == 0)
            break;
        len += (size_t)got;
    }
    buf[len] = '\0';
    close(fd);
    int code = 0;
    cr_assert_eq(sscanf(buf, "HTTP/1.%*d %d", &code), 1, "not an HTTP response:\n%s", buf);
    *response = buf;
    return code;
}

static const char *body_of(const char *response)
{
    const char *b = strstr(response, "\r\n\r\n");
    return b ? b + 4 : "";
}

Test(serve, endpoints_errors_and_promtool, .timeout = 60)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "srv");
    const char *enq[] = { SLUICE_BIN, "enqueue", "noop", "--queue", queue, NULL };
    th_result res = th_run(enq, NULL);
    cr_assert_eq(res.status, 0, "%s", res.err);
    th_result_free(&res);

    server s;
    serve_start(&s, "metrics:\n  request_timeout: 30s\n  max_connections: 16\n");
    char *resp;

    cr_assert_eq(request(s.port, "GET", "/metrics", &resp), 200, "%s", resp);
    cr_assert(strstr(resp, "text/plain; version=0.0.4"), "%s", resp);
    char *want = sl_xasprintf("sluice_queue_depth{queue=\"%s\"} 1\n", queue);
    cr_assert(strstr(resp, want), "no '%s' in:\n%s", want, resp);
    char *path = th_write_temp("scrape.txt", body_of(resp));
    char *cmd = sl_xasprintf("promtool check metrics < '%s'", path);
    const char *sh[] = { "/bin/sh", "-c", cmd, NULL };
    th_result check = th_run(sh, NULL);
    cr_assert_eq(check.status, 0, "promtool check metrics failed:\n%s%s", check.out, check.err);
    th_result_free(&check);
    free(resp);

    cr_assert_eq(request(s.port, "GET", "/healthz", &resp), 200, "%s", resp);
    cr_assert(strstr(resp, "redis: ok") && strstr(resp, "postgres: ok"), "%s", resp);
    free(resp);
    cr_assert_eq(request(s.port, "GET", "/readyz", &resp), 200, "%s", resp);
    free(resp);
    cr_assert_eq(request(s.port, "HEAD", "/metrics", &resp), 200, "%s", resp);
    free(resp);
    cr_assert_eq(request(s.port, "GET", "/nope", &resp), 404, "%s", resp);
    free(resp);
    /* / is the web pages' entry (docs/web.md): signed out, to the sign-in page */
    cr_assert_eq(request(s.port, "GET", "/", &resp), 303, "%s", resp);
    cr_assert(strstr(resp, "Location: /login?next=/gates"), "%s", resp);
    free(resp);
    cr_assert_eq(request(s.port, "POST", "/metrics", &resp), 405, "%s", resp);
    cr_assert(strstr(resp, "Allow: GET, HEAD"), "%s", resp);
    free(resp);
    cr_assert_eq(request(s.port, "DELETE", "/healthz", &resp), 405, "%s", resp);
    free(resp);

    serve_stop(&s);
    free(cmd);
    free(path);
    free(want);
}

Test(serve, slow_client_does_not_block_scrapes, .timeout = 60)
{
    th_migrate();
    server s;
    serve_start(&s, "metrics:\n  request_timeout: 30s\n");
    /* Clients that connect and send nothing (or half a request)... */
    int idle = connect_to(s.port);
    int half = connect_to(s.port);
    const char *partial = "GET /metr";
    cr_assert_eq(write(half, partial, strlen(partial)), (ssize_t)strlen(partial));
    /* ...while other scrapes are answered in full. */
    for (int i = 0; i < 3; i++) {
        char *resp;
        cr_assert_eq(request(s.port, "GET", "/metrics", &resp), 200, "%s", resp);
        cr_assert(strstr(resp, "# TYPE sluice_queue_depth gauge"), "%s", resp);
        free(resp);
    }
    close(idle);
    close(half);
    serve_stop(&s);
}

Test(serve, unreachable_redis_fails_healthz, .timeout = 60)
{
    th_migrate();
    server s;
    /* Nothing listens on port 1: the environment's Redis is overridden. */
    setenv("SLUICE_REDIS_URL", "redis://127.0.0.1:1/0", 1);
    serve_start(&s, "");
    char *resp;
    cr_assert_eq(request(s.port, "GET", "/healthz", &resp), 503, "%s", resp);
    cr_assert(strstr(resp, "redis:") && strstr(resp, "postgres: ok"), "%s", resp);
    free(resp);
    cr_assert_eq(request(s.port, "GET", "/metrics", &resp), 503, "%s", resp);
    free(resp);
    serve_stop(&s);
}

Test(serve, bad_listen_address_is_a_usage_error)
{
    const char *argv[] = { SLUICE_BIN, "serve", "--listen", "no-port-here", NULL };
    th_result res = th_run(argv, NULL);
    cr_assert_eq(res.status, 2, "%s", res.err);
    th_result_free(&res);
    const char *help[] = { SLUICE_BIN, "serve", "--help", NULL };
    res = th_run(help, NULL);
    cr_assert_eq(res.status, 0);
    cr_assert(strstr(res.out, "/healthz"));
    th_result_free(&res);
}

/* Numbers in the exposition print every digit (the shortest text that
 * reads back as the value): a dead letter of 1,000,001 entries is not
 * "1e+06", and throttled time keeps its milliseconds. */
Test(serve, large_values_print_every_digit, .timeout = 60)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "big");
    sl_redis *r = th_redis();
    char dead[SL_KEY_MAX], stats[SL_KEY_MAX];
    sl_queue_key(dead, queue, "dead");
    sl_queue_key(stats, queue, "stats");
    /* 10,000 entries per script call (some milliseconds each), so that
     * the other tests sharing this Redis are never kept waiting. */
    const char *fill[] = { "EVAL", "for i = 1, tonumber(ARGV[1]) do redis.call('XADD', KEYS[1], '*', 'j', 'x') end",
                           "1", dead, "10000" };
    const char *one[] = { "XADD", dead, "*", "j", "x" };
    const char *sadd[] = { "SADD", SL_QUEUES_KEY, queue };
    const char *hset[] = { "HSET", stats, "throttled_ms", "1234567891" };
    const char *const *cmds[] = { one, sadd, hset };
    const int argcs[] = { 5, 3, 4 };
    for (int k = 0; k < 100; k++) {
        sl_err err;
        redisReply *rep = sl_redis_command(r, 5, fill, NULL, &err);
        cr_assert_not_null(rep, "%s", err.msg);
        freeReplyObject(rep);
    }
    for (int i = 0; i < 3; i++) {
        sl_err err;
        redisReply *rep = sl_redis_command(r, argcs[i], (const char **)cmds[i], NULL, &err);
        cr_assert_not_null(rep, "%s", err.msg);
        freeReplyObject(rep);
    }
    server s;
    serve_start(&s, "metrics:\n  request_timeout: 30s\n");
    char *resp;
    cr_assert_eq(request(s.port, "GET", "/metrics", &resp), 200, "%s", resp);
    char *want = sl_xasprintf("sluice_queue_dead{queue=\"%s\"} 1000001\n", queue);
    char *want2 = sl_xasprintf("sluice_queue_throttled_seconds_total{queue=\"%s\"} 1234567.891\n", queue);
    cr_assert(strstr(resp, want), "no '%s' in the scrape", want);
    cr_assert(strstr(resp, want2), "no '%s' in the scrape", want2);
    free(want);
    free(want2);
    free(resp);
    serve_stop(&s);
    const char *del[] = { "DEL", dead, stats };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 3, del, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    freeReplyObject(rep);
    sl_redis_free(r);
}
