/* provision.c: the `provision` kind: create a PostgreSQL schema, role or
 * database in the configured admin connection, or ask a configured
 * provisioning endpoint for a resource.  docs/jobs.md is the user's
 * description.
 *
 * PostgreSQL: args.resource must be listed in provision.resources and
 * args.name must match ^[a-z_][a-z0-9_]{0,62}$ (and not start with pg_);
 * even so, every identifier goes through PQescapeIdentifier.  Creating what
 * already exists succeeds with existed: true, so a retried or repeated job
 * is harmless.  A new role gets a password sluice generates (32 random
 * bytes, base64url), sent to the server only as a SCRAM-SHA-256 verifier
 * computed here (PQencryptPasswordConn with the algorithm named, whatever
 * the server's password_encryption says), so the password itself is in no
 * SQL text, no server log, no job output and no sluice log.  It is written
 * to provision.password_dir/<role>.password (0600, under a unique name,
 * then renamed) inside the transaction that creates the role, before its
 * COMMIT, and under a lock on the directory.
 *
 * Idempotence, precisely: for a role name, exactly one job creates the role
 * and writes its file; every other job — repeated, retried or running at
 * the same moment, on this host or another — reports existed: true and
 * changes neither the role nor the file.  A file is written only while its
 * writer holds the uncommitted CREATE ROLE (any other creator waits on it)
 * and the directory lock, and no job ever deletes a published file; so the
 * file always holds the password of the role that exists, except after a
 * failed COMMIT, when it may belong to a role that does not (the next job
 * for that name creates the role and replaces it).
 *
 * http: args.endpoint names provision.endpoints; the job is POSTed as JSON
 * with Idempotency-Key: <job id> (and a bearer token from secret_env), and
 * the `id` of the JSON answer is recorded (and its `existed`, when true).  4xx is permanent, 5xx and
 * network trouble retryable, like deploy webhooks. */
#include "args.h"
#include "base64.h"
#include "clock.h"
#include "config.h"
#include "config_jobs.h"
#include "http.h"
#include "jobctx.h"
#include "kind.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static bool ident_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || !((*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static void set_pg_error(const PGresult *r, sl_err *err);

/* Runs sql with text params; returns the result or NULL with err (SL_EPG). */
static PGresult *query(PGconn *c, const char *sql, int n, const char *const *params,
                       ExecStatusType want, sl_err *err)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == want)
        return r;
    set_pg_error(r, err);
    PQclear(r);
    return NULL;
}

/* Sets err from the failed result r (one line; SQLSTATE class 42 permanent). */
static void set_pg_error(const PGresult *r, sl_err *err)
{
    char msg[400];
    snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    /* 42xxx (syntax, privileges, duplicates) will not change on retry */
    sl_err_set(err, state && strncmp(state, "42", 2) == 0 ? SL_EPERMANENT : SL_EJOB, "%s", msg);
}

static bool exists(PGconn *c, const char *sql, const char *name, bool *out, sl_err *err)
{
    const char *p[] = { name };
    PGresult *r = query(c, sql, 1, p, PGRES_TUPLES_OK, err);
    if (r == NULL)
        return false;
    *out = PQntuples(r) > 0;
    PQclear(r);
    return true;
}

static int new_password(char out[64], sl_err *err)
{
    unsigned char raw[33];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return sl_err_set(err, SL_EIO, "getrandom: %s", strerror(errno));
    sl_base64_encode(raw, sizeof raw, SL_BASE64URL, out, 64);   /* 44 characters */
    explicit_bzero(raw, sizeof raw);
    return 0;
}

/* Writes password to a new file with a unique name in the directory dfd,
 * 0600, synced, and renames it to final_name.  Returns 0, or -1 with err;
 * nothing but the unique staging file is ever removed. */
static int publish_password(int dfd, const char *dir, const char *final_name, const char *password,
                            sl_err *err)
{
    char tmp[96];
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        unsigned char r[6];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
            return sl_err_set(err, SL_EIO, "getrandom: %s", strerror(errno));
        snprintf(tmp, sizeof tmp, ".%s.%02x%02x%02x%02x%02x%02x", final_name, r[0], r[1], r[2], r[3], r[4], r[5]);
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            return sl_err_set(err, SL_EJOB, "provision.password_dir %s: create a file: %s", dir, strerror(errno));
    }
    if (fd < 0)
        return sl_err_set(err, SL_EJOB, "provision.password_dir %s: no unique file name", dir);
    size_t n = strlen(password);
    bool ok = fchmod(fd, 0600) == 0 && write(fd, password, n) == (ssize_t)n && write(fd, "\n", 1) == 1 &&
              fsync(fd) == 0;
    int saved = errno;
    close(fd);
    if (!ok || renameat(dfd, tmp, dfd, final_name) < 0 || fsync(dfd) < 0) {
        if (ok)
            saved = errno;
        (void)unlinkat(dfd, tmp, 0);
        return sl_err_set(err, SL_EJOB, "write %s/%s: %s", dir, final_name, strerror(saved));
    }
    return 0;
}

/* Takes the password directory's lock (flock on the directory): one role
 * creation at a time on this host, so a file is only ever written by the
 * job that creates the role.  Waits while the job has time and is not
 * cancelled.  Returns the locked descriptor (closing it unlocks), or -1. */
static int lock_password_dir(const sl_job_ctx *ctx, const char *dir, sl_err *err)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return sl_err_set(err, SL_EJOB, "provision.password_dir %s: %s", dir, strerror(errno));
    int64_t end = sl_monotonic_ms() + sl_jobctx_timeout_ms(ctx);
    while (flock(dfd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            sl_err_set(err, SL_EJOB, "flock %s: %s", dir, strerror(errno));
            close(dfd);
            return -1;
        }
        if (sl_jobctx_cancelled(ctx) || sl_monotonic_ms() >= end) {
            sl_err_set(err, SL_EJOB, "provision.password_dir %s: still locked by another role creation",
                       dir);
            close(dfd);
            return -1;
        }
        sl_sleep_ms(20);
    }
    return dfd;
}

/* Creates role name (quoted qname) with a fresh password, unless it exists
 * (*existed).  Under the directory lock and inside one transaction: CREATE
 * ROLE with the password's SCRAM-SHA-256 verifier, computed here (never
 * the server's password_encryption, which may say md5), then the password
 * file is published, then COMMIT.  A CREATE ROLE that finds the role made
 * meanwhile (another host) waits for that transaction and fails with
 * duplicate_object: the role existed and its file is not touched.  A
 * failed COMMIT keeps the file: the outcome is unknown and the file may
 * hold the password of a role that exists; a retry finds out. */
static int create_role(PGconn *c, const sl_job_ctx *ctx, const char *name, const char *qname,
                       bool *existed, sl_err *err)
{
    const char *dir = sl_config_jobs_of(ctx->cfg)->provision.password_dir;
    char password[64];
    char final_name[80];
    snprintf(final_name, sizeof final_name, "%s.password", name);
    int rc = -1, dfd = -1;
    bool in_tx = false;
    char *verifier = NULL, *lit = NULL, *sql = NULL;
    PGresult *r = NULL;
    if (new_password(password, err) < 0)
        return -1;
    if ((dfd = lock_password_dir(ctx, dir, err)) < 0)
        goto cleanup;
    if (!exists(c, "SELECT 1 FROM pg_roles WHERE rolname = $1", name, existed, err))
        goto cleanup;
    if (*existed) {
        rc = 0;
        goto cleanup;
    }
    if ((verifier = PQencryptPasswordConn(c, password, name, "scram-sha-256")) == NULL) {
        sl_err_set(err, SL_EJOB, "PQencryptPasswordConn: %s", PQerrorMessage(c));
        goto cleanup;
    }
    if (strncmp(verifier, "SCRAM-SHA-256$", 14) != 0) {
        sl_err_set(err, SL_EPERMANENT, "PQencryptPasswordConn gave no SCRAM-SHA-256 verifier");
        goto cleanup;
    }
    if ((lit = PQescapeLiteral(c, verifier, strlen(verifier))) == NULL) {
        sl_err_set(err, SL_EJOB, "PQescapeLiteral: %s", PQerrorMessage(c));
        goto cleanup;
    }
    if ((r = query(c, "BEGIN", 0, NULL, PGRES_COMMAND_OK, err)) == NULL)
        goto cleanup;
    PQclear(r);
    in_tx = true;
    sql = sl_xasprintf("CREATE ROLE %s LOGIN PASSWORD %s", qname, lit);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "42710") == 0) {
            *existed = true;   /* made meanwhile by a job elsewhere: its password stands */
            rc = 0;
        } else {
            set_pg_error(r, err);
        }
        goto cleanup;
    }
    PQclear(r);
    r = NULL;
    if (publish_password(dfd, dir, final_name, password, err) < 0)
        goto cleanup;
    in_tx = false;
    if ((r = query(c, "COMMIT", 0, NULL, PGRES_COMMAND_OK, err)) == NULL) {
        sl_err_wrap(err, "COMMIT of the new role (its password file %s/%s is kept: a retry tells "
                    "whether the role exists)", dir, final_name);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (in_tx)
        PQclear(PQexec(c, "ROLLBACK"));
    PQclear(r);
    if (dfd >= 0)
        close(dfd);   /* unlocks */
    explicit_bzero(password, sizeof password);
    if (verifier) {
        explicit_bzero(verifier, strlen(verifier));
        PQfreemem(verifier);
    }
    PQfreemem(lit);
    free(sql);
    return rc;
}

static int run_postgres(sl_job_ctx *ctx, const char *resource, sl_err *err)
{
    const sl_jobs_config *jc = sl_config_jobs_of(ctx->cfg);
    if (!sl_config_list_has(jc->provision.resources, jc->provision.nresources, resource))
        return sl_err_set(err, SL_EINVAL, "argument 'resource': '%s' is not enabled on this worker "
                          "(provision.resources)", resource);
    if (jc->provision.admin_url_env == NULL && jc->provision.admin_url_file == NULL)
        return sl_err_set(err, SL_EPERMANENT, "provision.admin_url_env (or admin_url_file) is not configured");
    if (strcmp(resource, "postgres_role") == 0 && jc->provision.password_dir == NULL)
        return sl_err_set(err, SL_EPERMANENT, "provision.password_dir is not configured: a role's "
                          "generated password would be stored nowhere, so no role is created");
    char *url = sl_jobctx_secret(jc->provision.admin_url_env, jc->provision.admin_url_file,
                                 "provision.admin_url", err);
    if (url == NULL)
        return -1;
    char *name = NULL, *qname = NULL, *password_file = NULL, *sql = NULL;
    PGconn *c = NULL;
    int rc = -1;
    int64_t t0 = sl_monotonic_ms();
    if (sl_args_str(ctx->args, "name", true, &name, err) < 0)
        goto cleanup;
    if (!ident_valid(name) || strncmp(name, "pg_", 3) == 0) {
        char shown[120];
        sl_err_set(err, SL_EINVAL, "argument 'name': '%s' is not an allowed identifier (a lower-case "
                   "letter or _, then lower-case letters, digits or _, at most 63; not pg_…)",
                   sl_jobctx_excerpt(name, strlen(name), shown, 100));
        goto cleanup;
    }
    if ((c = sl_jobctx_pg_connect(url, "provision (admin connection)", err)) == NULL)
        goto cleanup;
    char *q = PQescapeIdentifier(c, name, strlen(name));
    if (q == NULL) {
        sl_err_set(err, SL_EJOB, "PQescapeIdentifier: %s", PQerrorMessage(c));
        goto cleanup;
    }
    qname = sl_xstrdup(q);
    PQfreemem(q);
    bool existed = false;
    const char *check = strcmp(resource, "postgres_schema") == 0
                            ? "SELECT 1 FROM pg_namespace WHERE nspname = $1"
                        : strcmp(resource, "postgres_role") == 0 ? "SELECT 1 FROM pg_roles WHERE rolname = $1"
                                                                 : "SELECT 1 FROM pg_database WHERE datname = $1";
    if (!exists(c, check, name, &existed, err))
        goto wrap;
    if (!existed) {
        PGresult *r = NULL;
        if (strcmp(resource, "postgres_schema") == 0) {
            sql = sl_xasprintf("CREATE SCHEMA IF NOT EXISTS %s", qname);
            r = query(c, sql, 0, NULL, PGRES_COMMAND_OK, err);
        } else if (strcmp(resource, "postgres_database") == 0) {
            sql = sl_xasprintf("CREATE DATABASE %s", qname);
            r = query(c, sql, 0, NULL, PGRES_COMMAND_OK, err);
            /* created meanwhile by someone else: that is what we wanted */
            if (r == NULL && exists(c, check, name, &existed, err) && existed)
                sl_err_clear(err);
        } else if (create_role(c, ctx, name, qname, &existed, err) < 0) {
            goto wrap;
        }
        if (r)
            PQclear(r);
        else if (!existed && strcmp(resource, "postgres_role") != 0)
            goto wrap;
    }
    if (strcmp(resource, "postgres_role") == 0) {
        char *path = sl_xasprintf("%s/%s.password", jc->provision.password_dir, name);
        if (access(path, F_OK) == 0)
            password_file = path;
        else
            free(path);
    }
    sl_jout o;
    sl_jout_begin(&o, ctx->outputs);
    sl_jout_str(&o, "resource", resource);
    sl_jout_str(&o, "name", name);
    sl_jout_bool(&o, "existed", existed);
    sl_jout_str(&o, "host", PQhost(c));
    sl_jout_str(&o, "port", PQport(c));
    if (strcmp(resource, "postgres_database") == 0) {
        sl_jout_str(&o, "database", name);
    } else {
        sl_jout_str(&o, "database", PQdb(c));
    }
    if (strcmp(resource, "postgres_role") == 0)
        sl_jout_str(&o, "password_file", password_file);
    sl_jout_int(&o, "duration_ms", sl_monotonic_ms() - t0);
    sl_jout_end(&o);
    rc = 0;
    goto cleanup;
wrap:
    sl_err_wrap(err, "provision %s '%s'", resource, name);
cleanup:
    PQfinish(c);
    sl_jobctx_secret_free(url);
    free(name), free(qname), free(password_file), free(sql);
    return rc;
}

static int run_http(sl_job_ctx *ctx, sl_err *err)
{
    char *ep_name = NULL, *name = NULL, *id = NULL;
    char *hdrs[4] = { NULL };
    sl_buf body = SL_BUF_INIT;
    sl_http_resp resp = { 0, SL_BUF_INIT };
    int rc = -1;
    int64_t t0 = sl_monotonic_ms();
    if (sl_args_str(ctx->args, "endpoint", true, &ep_name, err) < 0 ||
        sl_args_str(ctx->args, "name", false, &name, err) < 0)
        goto cleanup;
    const sl_provision_endpoint *ep = sl_config_provision_endpoint(sl_config_jobs_of(ctx->cfg), ep_name);
    if (ep == NULL) {
        char shown[100];
        sl_err_set(err, SL_EINVAL, "argument 'endpoint': no provisioning endpoint '%s' is configured",
                   sl_jobctx_excerpt(ep_name, strlen(ep_name), shown, 80));
        goto cleanup;
    }
    if (sl_jobctx_job_json(ctx, &body, err) < 0)
        goto cleanup;
    size_t nh = 0;
    hdrs[nh++] = sl_xstrdup("Content-Type: application/json");
    hdrs[nh++] = sl_xasprintf("Idempotency-Key: %s", ctx->job->id);
    if (ep->secret_env || ep->secret_file) {
        char what[128];
        snprintf(what, sizeof what, "provision.endpoints.%s.secret", ep->name);
        char *token = sl_jobctx_secret(ep->secret_env, ep->secret_file, what, err);
        if (token == NULL)
            goto cleanup;
        hdrs[nh++] = sl_xasprintf("Authorization: Bearer %s", token);
        sl_jobctx_secret_free(token);
    }
    int64_t left = sl_jobctx_timeout_ms(ctx);
    sl_http_req req = { .method = "POST", .url = ep->url, .body = body.data, .body_len = body.len,
                        .headers = (const char *const *)hdrs,
                        .timeout_ms = left < ep->timeout_ms ? left : ep->timeout_ms,
                        .max_response = 65536, .cancelled = ctx->cancelled };
    if (sl_http_request(&req, &resp, err) < 0) {
        sl_err_wrap(err, "provision endpoint '%s'", ep->name);
        goto cleanup;
    }
    char excerpt[200];
    sl_jobctx_excerpt(sl_buf_str(&resp.body), resp.body.len, excerpt, sizeof excerpt);
    if (resp.status < 200 || resp.status >= 300) {
        bool retry = resp.status >= 500;
        sl_err_set(err, retry ? SL_EJOB : SL_EPERMANENT, "provision endpoint '%s' answered %ld%s: %s",
                   ep->name, resp.status, retry ? "" : " (not retried)", excerpt);
        goto cleanup;
    }
    if ((id = sl_http_json_member(&resp.body, "id")) == NULL) {
        sl_err_set(err, SL_EJOB, "provision endpoint '%s' answered %ld without an \"id\" in a JSON "
                   "object: %s", ep->name, resp.status, excerpt);
        goto cleanup;
    }
    char *existed = sl_http_json_member(&resp.body, "existed");
    sl_jout o;
    sl_jout_begin(&o, ctx->outputs);
    sl_jout_str(&o, "resource", "http");
    sl_jout_str(&o, "endpoint", ep->name);
    sl_jout_str(&o, "name", name);
    sl_jout_str(&o, "id", id);
    sl_jout_bool(&o, "existed", existed != NULL && strcmp(existed, "true") == 0);
    sl_jout_int(&o, "http_status", resp.status);
    sl_jout_int(&o, "duration_ms", sl_monotonic_ms() - t0);
    sl_jout_end(&o);
    free(existed);
    rc = 0;
cleanup:
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++)
        sl_jobctx_secret_free(hdrs[i]);   /* one holds the token */
    sl_buf_free(&body);
    sl_buf_free(&resp.body);
    free(ep_name), free(name), free(id);
    return rc;
}

static int run_provision(sl_job_ctx *ctx, sl_err *err)
{
    char *resource;
    if (sl_args_str(ctx->args, "resource", true, &resource, err) < 0)
        return -1;
    int rc;
    if (strcmp(resource, "http") == 0) {
        rc = run_http(ctx, err);
    } else if (strcmp(resource, "postgres_schema") == 0 || strcmp(resource, "postgres_role") == 0 ||
               strcmp(resource, "postgres_database") == 0) {
        rc = run_postgres(ctx, resource, err);
    } else {
        char shown[100];
        rc = sl_err_set(err, SL_EINVAL, "argument 'resource': expected postgres_schema, postgres_role, "
                        "postgres_database or http, got '%s'",
                        sl_jobctx_excerpt(resource, strlen(resource), shown, 80));
    }
    free(resource);
    return rc;
}

/* An http endpoint receives the whole job, so it may take arguments of
 * its own: other arguments are accepted (and passed on). */
static const char *const provision_resources[] = { "postgres_schema", "postgres_role", "postgres_database",
                                                   "http", NULL };
static const sl_kind_arg provision_args[] = {
    { "resource", true, provision_resources }, { "name", false, NULL }, { "endpoint", false, NULL },
    { NULL, false, NULL },
};

/* provision.endpoints.NAME.rate, for an http job whose endpoint has one. */
static bool provision_limit(const sl_job_ctx *ctx, char *name, size_t n, sl_rate *rate)
{
    char *endpoint;
    sl_err err;
    if (sl_args_str(ctx->args, "endpoint", false, &endpoint, &err) < 0 || endpoint == NULL)
        return false;
    const sl_provision_endpoint *ep = sl_config_provision_endpoint(sl_config_jobs_of(ctx->cfg), endpoint);
    free(endpoint);
    if (ep == NULL || ep->rate.count == 0)
        return false;
    snprintf(name, n, "provision.endpoints.%s", ep->name);
    *rate = ep->rate;
    return true;
}

const sl_kind sl_kind_provision = { "provision", "creates a PostgreSQL schema/role/database or calls "
                                    "a configured provisioning endpoint", run_provision, provision_args, true,
                                    provision_limit };
