/* redis.c: see redis.h.
 *
 * URL parsing (libcurl's URL API for each host, a short branch for unix
 * sockets, and the host lists of redis+cluster:// and redis+sentinel://
 * split by hand, since a URL has one host), then a dispatch: one server
 * and a Sentinel's master are one connection (redis_conn.h), a cluster is
 * redis_cluster.h.  Sentinel is consulted only when connecting: after a
 * failover the old master's connection breaks (or it answers READONLY as a
 * replica), the caller reconnects, and the sentinels name the new one. */
#include "redis.h"
#include "duration.h"
#include "mem.h"
#include "redis_cluster.h"
#include "redis_conn.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sl_redis {
    sl_rconn *conn;        /* one server or a Sentinel's master, owned; or NULL */
    sl_rcluster *cluster;  /* a Redis Cluster, owned; or NULL */
    char address[300];     /* for messages: host:port, socket path, "cluster …" */
    int wait_replicas;     /* ?wait_replicas=N: 0, or WAIT after each enqueue */
    int wait_timeout_ms;   /* ?wait_timeout=DURATION, default 1s */
};

#define MAX_HOSTS 16  /* seeds of a cluster, sentinels */

enum url_mode { URL_SINGLE, URL_CLUSTER, URL_SENTINEL };

typedef struct redis_url {
    enum url_mode mode;
    char *host;      /* NULL for unix sockets; IPv6 without brackets */
    int port;
    char *path;      /* socket path, NULL for TCP */
    char *user;      /* NULL: none */
    char *password;  /* NULL: none */
    int db;
    size_t nhosts;             /* cluster seeds / sentinels (host, port above unused) */
    char *hosts[MAX_HOSTS];    /* owned */
    int ports[MAX_HOSTS];
    char *master;              /* Sentinel's master name, owned */
    int wait_replicas;         /* ?wait_replicas=N (0: off) */
    int wait_timeout_ms;       /* ?wait_timeout=DURATION */
} redis_url;

static void url_clear(redis_url *u)
{
    free(u->host);
    free(u->path);
    free(u->user);
    if (u->password)
        explicit_bzero(u->password, strlen(u->password));
    free(u->password);
    for (size_t i = 0; i < u->nhosts; i++)
        free(u->hosts[i]);
    free(u->master);
    memset(u, 0, sizeof *u);
}

/* A decimal number in [min, max] with nothing else: no sign, no spaces. */
static bool strict_number(const char *s, long min, long max, long *out)
{
    if (*s == '\0' || strlen(s) > 9)
        return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    long v = strtol(s, NULL, 10);
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

static int parse_db(const char *s, int *db, sl_err *err)
{
    long v;
    if (!strict_number(s, 0, 100000, &v))
        return sl_err_set(err, SL_EINVAL, "redis URL: bad database number (a decimal number expected)");
    *db = (int)v;
    return 0;
}

/* Copies a curl URL part (NULL when absent) into a new string. */
static char *url_part(CURLU *h, CURLUPart what, unsigned flags)
{
    char *part = NULL;
    if (curl_url_get(h, what, &part, flags) != CURLUE_OK || part == NULL)
        return NULL;
    char *copy = sl_xstrdup(part);
    curl_free(part);
    return copy;
}

/* The options after '?': KEY=VALUE pairs joined by '&', each at most once.
 *   db=N                 the database (unix:// and redis+sentinel://; a
 *                        redis:// URL names it in its path)
 *   wait_replicas=N      1..100: after each enqueue, WAIT until N replicas
 *                        have the job (queue.h), else the enqueue fails
 *   wait_timeout=DUR     1ms..1h, default 1s: how long that WAIT may take */
static int parse_options(const char *q, bool db_allowed, redis_url *u, sl_err *err)
{
    bool seen_db = false, seen_wait = false, seen_timeout = false;
    while (*q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        if (eq == NULL)
            return sl_err_set(err, SL_EINVAL, "redis URL: option '%.*s' needs =VALUE",
                              (int)(len > 40 ? 40 : len), q);
        size_t klen = (size_t)(eq - q);
        char value[32];
        if (len - klen - 1 >= sizeof value)
            return sl_err_set(err, SL_EINVAL, "redis URL: option '%.*s': value too long",
                              (int)(klen > 40 ? 40 : klen), q);
        snprintf(value, sizeof value, "%.*s", (int)(len - klen - 1), eq + 1);
        long v;
        int64_t ms;
        if (klen == 2 && strncmp(q, "db", 2) == 0 && db_allowed && !seen_db) {
            seen_db = true;
            if (parse_db(value, &u->db, err) < 0)
                return -1;
        } else if (klen == 13 && strncmp(q, "wait_replicas", 13) == 0 && !seen_wait) {
            seen_wait = true;
            if (!strict_number(value, 0, 100, &v))
                return sl_err_set(err, SL_EINVAL, "redis URL: wait_replicas must be a number "
                                  "of replicas, 0 to 100");
            u->wait_replicas = (int)v;
        } else if (klen == 12 && strncmp(q, "wait_timeout", 12) == 0 && !seen_timeout) {
            seen_timeout = true;
            sl_err e;
            if (sl_duration_parse(value, &ms, &e) < 0 || ms < 1 || ms > 3600000)
                return sl_err_set(err, SL_EINVAL, "redis URL: wait_timeout must be a duration "
                                  "from 1ms to 1h (\"500ms\", \"2s\")");
            u->wait_timeout_ms = (int)ms;
        } else {
            return sl_err_set(err, SL_EINVAL, "redis URL: unknown or repeated option '%.*s' "
                              "(valid: %swait_replicas, wait_timeout)", (int)(klen > 40 ? 40 : klen),
                              q, db_allowed ? "db, " : "");
        }
        q += len;
        if (*q == '&' && *++q == '\0')
            return sl_err_set(err, SL_EINVAL, "redis URL: empty option after '&'");
    }
    return 0;
}

/* unix://[[USER]:PASSWORD@]/absolute/path[?db=N] -- parsed by hand: libcurl
 * has no notion of a socket path.  The credentials are percent-decoded. */
static int parse_unix(const char *rest, redis_url *u, sl_err *err)
{
    const char *at = strchr(rest, '@');
    const char *q = strchr(rest, '?');
    if (at && (q == NULL || at < q)) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon == NULL)
            return sl_err_set(err, SL_EINVAL, "redis URL: unix:// credentials must be [USER]:PASSWORD@");
        int n;
        char *user = curl_easy_unescape(NULL, rest, (int)(colon - rest), &n);
        char *pass = curl_easy_unescape(NULL, colon + 1, (int)(at - colon - 1), &n);
        if (user == NULL || pass == NULL) {
            curl_free(user);
            curl_free(pass);
            return sl_err_set(err, SL_EINVAL, "redis URL: bad credentials");
        }
        u->user = user[0] ? sl_xstrdup(user) : NULL;
        u->password = sl_xstrdup(pass);
        explicit_bzero(pass, strlen(pass));
        curl_free(user);
        curl_free(pass);
        rest = at + 1;
    }
    u->path = q ? sl_xstrndup(rest, (size_t)(q - rest)) : sl_xstrdup(rest);
    if (u->path[0] != '/')
        return sl_err_set(err, SL_EINVAL, "redis URL: unix socket path must be absolute");
    return q ? parse_options(q + 1, true, u, err) : 0;
}

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] with libcurl's URL parser
 * (IPv6 literals in brackets, percent-decoding, strict ports).  Messages
 * never repeat the URL: it may carry a password. */
static int parse_tcp(const char *url, int default_port, redis_url *u, sl_err *err)
{
    int rc = -1;
    char *port = NULL, *path = NULL, *query = NULL;
    CURLU *h = curl_url();
    if (h == NULL)
        return sl_err_set(err, SL_EIO, "redis URL: curl_url: out of memory");
    CURLUcode uc = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc != CURLUE_OK) {
        sl_err_set(err, SL_EINVAL, "redis URL: %s", uc == CURLUE_NO_HOST ? "missing host" :
                   uc == CURLUE_BAD_PORT_NUMBER ? "bad port (1-65535)" : curl_url_strerror(uc));
        goto cleanup;
    }
    u->host = url_part(h, CURLUPART_HOST, CURLU_URLDECODE);
    if (u->host == NULL || u->host[0] == '\0') {
        sl_err_set(err, SL_EINVAL, "redis URL: missing host");
        goto cleanup;
    }
    size_t hl = strlen(u->host);
    if (u->host[0] == '[' && hl > 2 && u->host[hl - 1] == ']') {   /* IPv6 literal */
        memmove(u->host, u->host + 1, hl - 2);
        u->host[hl - 2] = '\0';
    }
    u->user = url_part(h, CURLUPART_USER, CURLU_URLDECODE);
    u->password = url_part(h, CURLUPART_PASSWORD, CURLU_URLDECODE);
    if (u->user && u->user[0] == '\0') {
        free(u->user);
        u->user = NULL;
    }
    if (u->user && u->password == NULL) {
        /* redis://secret@host: a lone credential is the password, as redis-cli reads it */
        u->password = u->user;
        u->user = NULL;
    }
    port = url_part(h, CURLUPART_PORT, 0);
    long pv = default_port;
    if (port && !strict_number(port, 1, 65535, &pv)) {
        sl_err_set(err, SL_EINVAL, "redis URL: bad port (1-65535)");
        goto cleanup;
    }
    u->port = (int)pv;
    path = url_part(h, CURLUPART_PATH, 0);
    if (path && strcmp(path, "/") != 0 && path[0] == '/' && parse_db(path + 1, &u->db, err) < 0)
        goto cleanup;
    query = url_part(h, CURLUPART_QUERY, 0);
    if (query && parse_options(query, false, u, err) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    free(port);
    free(path);
    free(query);
    curl_url_cleanup(h);
    return rc;
}

/* The part after the host list: "/0" or nothing for a cluster (it has
 * database 0 only); "/MASTER[?db=N]" for Sentinel. */
static int parse_tail(const char *tail, redis_url *u, sl_err *err)
{
    if (u->mode == URL_CLUSTER) {
        size_t plen = strcspn(tail, "?");
        if (plen == 0 || (plen == 1 && tail[0] == '/') || (plen == 2 && strncmp(tail, "/0", 2) == 0))
            return tail[plen] == '?' ? parse_options(tail + plen + 1, false, u, err) : 0;
        return sl_err_set(err, SL_EINVAL, "redis URL: a Redis Cluster has database 0 only");
    }
    const char *name = tail[0] == '/' ? tail + 1 : tail;
    size_t len = strcspn(name, "?");
    if (tail[0] != '/' || len == 0 || len > 200)
        return sl_err_set(err, SL_EINVAL, "redis URL: redis+sentinel:// needs /MASTERNAME after "
                          "the sentinels");
    for (size_t i = 0; i < len; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
              (name[i] >= '0' && name[i] <= '9') || strchr("._-", name[i])))
            return sl_err_set(err, SL_EINVAL, "redis URL: bad Sentinel master name (letters, "
                              "digits, '.', '_', '-')");
    u->master = sl_xstrndup(name, len);
    const char *q = name + len;
    return *q == '?' ? parse_options(q + 1, true, u, err) : 0;
}

/* redis+cluster://[CREDENTIALS@]HOST[:PORT][,HOST[:PORT]…][/0] and
 * redis+sentinel://[CREDENTIALS@]HOST[:PORT][,…]/MASTER[?db=N]: each host
 * is parsed as redis://CREDENTIALS@HOST would be (the credentials are the
 * data nodes', the same for every host). */
static int parse_multi(const char *rest, redis_url *u, sl_err *err)
{
    int default_port = u->mode == URL_SENTINEL ? 26379 : 6379;
    size_t alen = strcspn(rest, "/?#");
    const char *at = NULL;
    for (const char *p = rest; p < rest + alen; p++)
        if (*p == '@')
            at = p;
    const char *list = at ? at + 1 : rest;
    size_t ulen = at ? (size_t)(at - rest) + 1 : 0;   /* "userinfo@" */
    if (list == rest + alen)
        return sl_err_set(err, SL_EINVAL, "redis URL: missing host");
    for (const char *h = list; h < rest + alen;) {
        size_t hlen = strcspn(h, ",/?#");
        if (hlen == 0)
            return sl_err_set(err, SL_EINVAL, "redis URL: empty host in the host list");
        if (u->nhosts == MAX_HOSTS)
            return sl_err_set(err, SL_EINVAL, "redis URL: more than %d hosts", MAX_HOSTS);
        char *one = sl_xasprintf("redis://%.*s%.*s", (int)ulen, rest, (int)hlen, h);
        redis_url hu;
        memset(&hu, 0, sizeof hu);
        int rc = parse_tcp(one, default_port, &hu, err);
        explicit_bzero(one, strlen(one));
        free(one);
        if (rc < 0) {
            url_clear(&hu);
            return -1;
        }
        u->hosts[u->nhosts] = hu.host;
        u->ports[u->nhosts++] = hu.port;
        hu.host = NULL;
        if (u->nhosts == 1) {
            u->user = hu.user, u->password = hu.password;
            hu.user = hu.password = NULL;
        }
        url_clear(&hu);
        h += hlen;
        if (*h == ',')
            h++;
    }
    return parse_tail(rest + alen, u, err);
}

static int parse_url(const char *url, redis_url *u, sl_err *err)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    u->wait_timeout_ms = 1000;
    int rc;
    if (strncmp(url, "rediss://", 9) == 0)
        rc = sl_err_set(err, SL_EINVAL,
                        "redis URL: rediss:// (TLS) is not supported by this build's hiredis");
    else if (strncmp(url, "unix://", 7) == 0)
        rc = parse_unix(url + 7, u, err);
    else if (strncmp(url, "redis://", 8) == 0)
        rc = parse_tcp(url, 6379, u, err);
    else if (strncmp(url, "redis+cluster://", 16) == 0)
        u->mode = URL_CLUSTER, rc = parse_multi(url + 16, u, err);
    else if (strncmp(url, "redis+sentinel://", 17) == 0)
        u->mode = URL_SENTINEL, rc = parse_multi(url + 17, u, err);
    else
        rc = sl_err_set(err, SL_EINVAL, "redis URL must start with redis://, unix://, "
                        "redis+cluster:// or redis+sentinel://");
    if (rc < 0)
        url_clear(u);
    return rc;
}

int sl_redis_url_check(const char *url, sl_err *err)
{
    redis_url u;
    if (parse_url(url, &u, err) < 0)
        return -1;
    url_clear(&u);
    return 0;
}

/* Asks one sentinel for the master's address.  -1 with err. */
static int ask_sentinel(const redis_url *u, size_t i, int timeout_ms, char *host, size_t hn,
                        int *port, sl_err *err)
{
    sl_rconn_addr a = { .host = u->hosts[i], .port = u->ports[i], .timeout_ms = timeout_ms };
    sl_rconn *s = sl_rconn_open(&a, err);
    if (s == NULL)
        return -1;
    int rc = -1;
    const char *argv[] = { "SENTINEL", "get-master-addr-by-name", u->master };
    redisReply *rep = sl_rconn_command(s, 3, argv, NULL, err);
    if (rep == NULL)
        goto cleanup;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING) {
        sl_err_set(err, SL_EREDIS, "redis sentinel %s: does not know master %s",
                   sl_rconn_address(s), u->master);
        goto cleanup;
    }
    long p = strtol(rep->element[1]->str, NULL, 10);
    if (p < 1 || p > 65535) {
        sl_err_set(err, SL_EREDIS, "redis sentinel %s: bad port for master %s",
                   sl_rconn_address(s), u->master);
        goto cleanup;
    }
    snprintf(host, hn, "%s", rep->element[0]->str);
    *port = (int)p;
    rc = 0;
cleanup:
    if (rep)
        freeReplyObject(rep);
    sl_rconn_free(s);
    return rc;
}

/* True if ROLE says the server is a master; false with err otherwise. */
static bool is_master(sl_rconn *c, const char *name, sl_err *err)
{
    const char *argv[] = { "ROLE" };
    redisReply *rep = sl_rconn_command(c, 1, argv, NULL, err);
    if (rep == NULL)
        return false;
    bool ok = rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
              rep->element[0]->type == REDIS_REPLY_STRING &&
              strcmp(rep->element[0]->str, "master") == 0;
    if (!ok)
        sl_err_set(err, SL_EREDIS, "redis %s: named master %s by a sentinel, but its ROLE is not "
                   "master (a failover in progress?)", sl_rconn_address(c), name);
    freeReplyObject(rep);
    return ok;
}

/* Asks each sentinel in turn for the master, connects to it and checks
 * that it is one.  NULL with the last error when none gives a master. */
static sl_rconn *sentinel_master(const redis_url *u, int timeout_ms, sl_err *err)
{
    for (size_t i = 0; i < u->nhosts; i++) {
        char host[256];
        int port;
        if (ask_sentinel(u, i, timeout_ms, host, sizeof host, &port, err) < 0)
            continue;
        sl_rconn_addr a = { .host = host, .port = port, .user = u->user,
                            .password = u->password, .db = u->db, .timeout_ms = timeout_ms };
        sl_rconn *c = sl_rconn_open(&a, err);
        if (c && is_master(c, u->master, err))
            return c;
        sl_rconn_free(c);
    }
    sl_err_wrap(err, "redis sentinel: no sentinel of %zu named a reachable master %s (last error)",
                u->nhosts, u->master);
    return NULL;
}

sl_redis *sl_redis_connect(const char *url, int timeout_ms, sl_err *err)
{
    redis_url u;
    if (parse_url(url, &u, err) < 0)
        return NULL;
    sl_redis *r = sl_xcalloc(1, sizeof *r);
    timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    if (u.mode == URL_CLUSTER) {
        sl_rconn_addr seeds[MAX_HOSTS];
        for (size_t i = 0; i < u.nhosts; i++)
            seeds[i] = (sl_rconn_addr){ .host = u.hosts[i], .port = u.ports[i], .user = u.user,
                                        .password = u.password, .timeout_ms = timeout_ms };
        r->cluster = sl_rcluster_open(seeds, u.nhosts, err);
        snprintf(r->address, sizeof r->address, "cluster %s:%d%s", u.hosts[0], u.ports[0],
                 u.nhosts > 1 ? ",…" : "");
    } else if (u.mode == URL_SENTINEL) {
        r->conn = sentinel_master(&u, timeout_ms, err);
        if (r->conn)
            snprintf(r->address, sizeof r->address, "%s", sl_rconn_address(r->conn));
    } else {
        sl_rconn_addr a = { .host = u.host, .port = u.port, .path = u.path, .user = u.user,
                            .password = u.password, .db = u.db, .timeout_ms = timeout_ms };
        r->conn = sl_rconn_open(&a, err);
        if (r->conn)
            snprintf(r->address, sizeof r->address, "%s", sl_rconn_address(r->conn));
    }
    r->wait_replicas = u.wait_replicas;
    r->wait_timeout_ms = u.wait_timeout_ms;
    url_clear(&u);
    if (r->conn == NULL && r->cluster == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

void sl_redis_free(sl_redis *r)
{
    if (r == NULL)
        return;
    sl_rconn_free(r->conn);
    sl_rcluster_free(r->cluster);
    free(r);
}

redisReply *sl_redis_command(sl_redis *r, int argc, const char **argv, const size_t *lens,
                             sl_err *err)
{
    if (r->cluster)
        return sl_rcluster_command(r->cluster, 0, argc, argv, lens, err);
    return sl_rconn_command(r->conn, argc, argv, lens, err);
}

redisReply *sl_redis_command_blocking(sl_redis *r, int block_ms, int argc, const char **argv,
                                      const size_t *lens, sl_err *err)
{
    if (r->cluster)
        return sl_rcluster_command(r->cluster, block_ms, argc, argv, lens, err);
    int base = sl_rconn_timeout(r->conn);
    if (sl_rconn_set_timeout(r->conn, base + block_ms, err) < 0)
        return NULL;
    redisReply *rep = sl_rconn_command(r->conn, argc, argv, lens, err);
    if (!sl_rconn_broken(r->conn) && sl_rconn_set_timeout(r->conn, base, err) < 0) {
        if (rep)
            freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

int sl_redis_append(sl_redis *r, int argc, const char **argv, const size_t *lens, sl_err *err)
{
    if (r->cluster)
        return sl_rcluster_append(r->cluster, argc, argv, lens, err);
    return sl_rconn_append(r->conn, argc, argv, lens, err);
}

redisReply *sl_redis_reply(sl_redis *r, sl_err *err)
{
    if (r->cluster)
        return sl_rcluster_reply(r->cluster, err);
    return sl_rconn_reply(r->conn, err);
}

int sl_redis_broken(const sl_redis *r)
{
    return r->cluster ? sl_rcluster_broken(r->cluster) : sl_rconn_broken(r->conn);
}

const char *sl_redis_address(const sl_redis *r) { return r->address; }

void sl_redis_close_fds(const sl_redis *r)
{
    if (r->cluster)
        sl_rcluster_close_fds(r->cluster);
    else if (sl_rconn_fd(r->conn) >= 0)
        close(sl_rconn_fd(r->conn));
}

int sl_redis_slot_address(const sl_redis *r, int slot, char *buf, size_t n)
{
    if (r->cluster)
        return sl_rcluster_slot_address(r->cluster, slot, buf, n);
    snprintf(buf, n, "%s", r->address);
    return 0;
}

bool sl_redis_is_cluster(const sl_redis *r) { return r->cluster != NULL; }

void sl_redis_redirections(const sl_redis *r, long *moved, long *asked)
{
    *moved = *asked = 0;
    if (r->cluster)
        sl_rcluster_redirections(r->cluster, moved, asked);
}

int sl_redis_append_wait(sl_redis *r, sl_err *err)
{
    if (r->wait_replicas == 0)
        return 0;
    char n[16], ms[16];
    snprintf(n, sizeof n, "%d", r->wait_replicas);
    snprintf(ms, sizeof ms, "%d", r->wait_timeout_ms);
    const char *argv[] = { "WAIT", n, ms };
    return sl_redis_append(r, 3, argv, NULL, err) < 0 ? -1 : 1;
}

int sl_redis_wait_result(const sl_redis *r, const redisReply *rep, sl_err *err)
{
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer >= r->wait_replicas)
        return 0;
    if (rep->type == REDIS_REPLY_ERROR)
        return sl_err_set(err, SL_EREDIS, "redis %s: WAIT: %s", r->address, rep->str);
    return sl_err_set(err, SL_EREDIS, "redis %s: written, but %lld of the %d replicas asked for "
                      "(wait_replicas) acknowledged it within %d ms: it is not yet safe from a "
                      "failover; enqueuing the same job id again is safe", r->address,
                      rep->type == REDIS_REPLY_INTEGER ? (long long)rep->integer : 0LL,
                      r->wait_replicas, r->wait_timeout_ms);
}
