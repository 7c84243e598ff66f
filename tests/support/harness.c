/* harness.c: see harness.h. */
#include "harness.h"
#include "config_api.h"
#include "config_jobs.h"
#include "config_sched.h"
#include "config_worker.h"
#include "mem.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *th_env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        cr_assert_fail("%s is not set: run the tests through scripts/test.sh (or scripts/servers.sh ctest)", name);
    return v;
}

sl_redis *th_redis(void)
{
    sl_err err;
    sl_redis *r = sl_redis_connect(th_env("REDIS_URL"), 10000, &err);
    cr_assert_not_null(r, "connect to test redis: %s", err.msg);
    return r;
}

PGconn *th_pg(void)
{
    PGconn *c = PQconnectdb(th_env("DATABASE_URL"));
    cr_assert(PQstatus(c) == CONNECTION_OK, "connect to test postgres: %s", PQerrorMessage(c));
    return c;
}

void th_name(char *buf, size_t n, const char *prefix)
{
    static unsigned counter;
    unsigned r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = (unsigned)time(NULL);
    snprintf(buf, n, "%s-%ld-%u-%04x", prefix, (long)getpid(), counter++, r & 0xffff);
}

long long th_pg_number(const char *sql, int nparams, const char *const *params)
{
    PGconn *c = th_pg();
    PGresult *res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    long long v = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? atoll(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
    PQfinish(c);
    return v;
}

void th_migrate(void)
{
    static bool done;
    if (done)
        return;
    const char *argv[] = { SLUICE_BIN, "migrate", NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0, "sluice migrate failed: %s", r.err);
    th_result_free(&r);
    done = true;
}

char *th_pg_url(const char *user, const char *db)
{
    return sl_xasprintf("postgresql://%s@127.0.0.1:%s/%s", user, th_env("SLUICE_PG_PORT"), db);
}

/* Runs one statement on the test server's main database; fails the test on error. */
static void pg_admin(const char *sql)
{
    PGconn *c = th_pg();
    PGresult *res = PQexec(c, sql);
    cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
}

/* A fresh name from prefix usable unquoted-safe in SQL and URLs ('-' becomes '_'). */
static void sql_name(char *out, size_t n, const char *prefix)
{
    char raw[96];
    th_name(raw, sizeof raw, prefix);
    snprintf(out, n, "%s", raw);
    for (char *p = out; *p; p++)
        *p = *p == '-' ? '_' : *p;
}

/* Runs `sluice migrate ARG1 ARG2 ARG3` (each may be NULL) against database
 * db as the owner; fails the test if it fails. */
static void migrate_db(const char *db, const char *a1, const char *a2, const char *a3)
{
    char *url = th_pg_url("sluice", db);
    char *e1 = sl_xasprintf("SLUICE_DATABASE_URL=%s", url), *e2 = sl_xasprintf("DATABASE_URL=%s", url);
    const char *argv[] = { SLUICE_BIN, "migrate", a1, a2, a3, NULL }, *env[] = { e1, e2, NULL };
    th_result r = th_run(argv, env);
    cr_assert_eq(r.status, 0, "sluice migrate %s %s %s (%s) failed: %s", a1 ? a1 : "", a2 ? a2 : "",
                 a3 ? a3 : "", db, r.err);
    th_result_free(&r);
    free(e1);
    free(e2);
    free(url);
}

void th_empty_db(char *name, size_t n, const char *prefix)
{
    sql_name(name, n, prefix);
    char *sql = sl_xasprintf("CREATE DATABASE \"%s\"", name);
    pg_admin(sql);
    free(sql);
}

void th_private_db(char *name, size_t n, const char *prefix)
{
    th_empty_db(name, n, prefix);
    migrate_db(name, NULL, NULL, NULL);
}

void th_private_db_drop(const char *name)
{
    char *sql = sl_xasprintf("DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
    pg_admin(sql);
    free(sql);
}

char *th_pg_try(const char *user, const char *db, const char *sql)
{
    char *url = th_pg_url(user, db);
    PGconn *c = PQconnectdb(url);
    free(url);
    cr_assert(PQstatus(c) == CONNECTION_OK, "connect as %s: %s", user, PQerrorMessage(c));
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    char *msg = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? NULL : sl_xstrdup(PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
    return msg;
}

long long th_pg_db_number(const char *db, const char *sql)
{
    char *url = th_pg_url("sluice", db);
    PGconn *c = PQconnectdb(url);
    free(url);
    PGresult *res = PQexec(c, sql);
    cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    long long v = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? atoll(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
    PQfinish(c);
    return v;
}

void th_runtime_login(const char *db, const char *role, char *login, size_t n)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "th_%s", role);
    sql_name(login, n, prefix);
    char *sql = sl_xasprintf("CREATE ROLE \"%s\" LOGIN", login);
    pg_admin(sql);
    free(sql);
    char *grant = sl_xasprintf("%s=%s", role, login);
    migrate_db(db, "--create-roles", "--grant", grant);
    free(grant);
}

/* Builds environ plus the extra settings. */
static char **make_env(const char *const *extra)
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (extra && extra[m])
        m++;
    char **env = sl_xcalloc(n + m + 1, sizeof *env);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        bool overridden = false;
        for (size_t k = 0; k < m; k++) {
            size_t klen = strcspn(extra[k], "=");
            if (strncmp(environ[i], extra[k], klen) == 0 && environ[i][klen] == '=')
                overridden = true;
        }
        if (!overridden)
            env[o++] = environ[i];
    }
    for (size_t k = 0; k < m; k++) {
        const char *eq = strchr(extra[k], '=');
        if (eq && eq[1] != '\0')
            env[o++] = (char *)extra[k];
    }
    env[o] = NULL;
    return env;
}

static int exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

th_result th_run(const char *const *argv, const char *const *env_extra)
{
    int out[2], err[2];
    cr_assert(pipe(out) == 0 && pipe(err) == 0, "pipe: %s", strerror(errno));
    char **env = make_env(env_extra);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(out[0]);
        close(err[0]);
        execve(argv[0], (char *const *)argv, env);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    free(env);
    close(out[1]);
    close(err[1]);
    sl_buf bo = SL_BUF_INIT, be = SL_BUF_INIT;
    struct pollfd p[2] = { { out[0], POLLIN, 0 }, { err[0], POLLIN, 0 } };
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[4096];
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            if (n > 0) {
                sl_buf_append(i == 0 ? &bo : &be, buf, (size_t)n);
            } else {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
            }
        }
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    th_result r = { exit_code(status), sl_buf_detach(&bo), sl_buf_detach(&be) };
    return r;
}

void th_result_free(th_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

pid_t th_worker_start(const char *const *args, const char *log_path)
{
    size_t n = 0;
    while (args && args[n])
        n++;
    const char **argv = sl_xcalloc(n + 2, sizeof *argv);
    argv[0] = SLUICE_WORKER_BIN;
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = args[i];
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    free(argv);
    return pid;
}

void th_pool_until(const char *const *args, const char *log_name, bool (*cond)(void *arg), void *arg,
                   const char *what)
{
    char *log = sl_xasprintf("/tmp/sluice-%s.log", log_name);
    pid_t pool = th_worker_start(args, log);
    bool done = th_wait(cond, arg, 60000);
    int status = th_stop(pool, SIGTERM, 30000);
    char *text = th_read_file(log);
    cr_assert(done, "%s after 60 s; worker log:\n%s", what, text ? text : "");
    cr_assert_eq(status, 0, "worker did not stop cleanly (status %d); log:\n%s", status, text ? text : "");
    cr_assert(text && !strstr(text, "Sanitizer"), "a sanitizer reported an error:\n%s", text);
    free(text);
    unlink(log);
    free(log);
}

int th_stop(pid_t pid, int sig, int timeout_ms)
{
    kill(pid, sig);
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        int status;
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            return exit_code(status);
        struct timespec ts = { 0, 20 * 1000000 };
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

bool th_wait(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
    for (int waited = 0;; waited += 20) {
        if (cond(arg))
            return true;
        if (waited >= timeout_ms)
            return cond(arg);
        struct timespec ts = { 0, 20 * 1000000 };
        nanosleep(&ts, NULL);
    }
}

char *th_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    sl_buf b = SL_BUF_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sl_buf_append(&b, buf, n);
    fclose(f);
    return sl_buf_detach(&b);
}

void th_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

char *th_write_temp(const char *name, const char *text)
{
    char dir[] = "/tmp/sluice-test-XXXXXX";
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    char *path = sl_xasprintf("%s/%s", dir, name);
    th_write_file(path, text);
    return path;
}

static void openssl(const char *a, const char *b, const char *c, const char *d, const char *e,
                    const char *f)
{
    const char *argv[] = { "/usr/bin/openssl", a, b, c, d, e, f, NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0, "openssl %s: %s", a, r.err);
    th_result_free(&r);
}

void th_keypair(const char *dir, const char *name)
{
    char *key = sl_xasprintf("%s/%s.key", dir, name), *pub = sl_xasprintf("%s/%s.pub", dir, name);
    openssl("genpkey", "-algorithm", "ed25519", "-out", key, NULL);
    openssl("pkey", "-in", key, "-pubout", "-out", pub);
    free(key);
    free(pub);
}

void th_check_log(const char *path, const char *who)
{
    char *text = th_read_file(path);
    cr_assert(text == NULL || !strstr(text, "Sanitizer"), "a sanitizer reported an error in %s:\n%s", who, text);
    cr_assert(text == NULL || !strstr(text, "runtime error"), "UBSan in %s:\n%s", who, text);
    free(text);
}

void th_register_config_sections(void)
{
    sl_worker_config_register();
    sl_config_jobs_register();
    sl_sched_config_register();
    sl_api_config_register();
}
