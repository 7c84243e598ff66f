/* test_kinds_provision.c: the provision kind (jobs/provision.c) against the
 * test PostgreSQL (its admin connection is $DATABASE_URL) and the scripted
 * test HTTP server. */
#include "harness.h"
#include "httpd.h"
#include "kindtest.h"

#include "mem.h"
#include "sha256.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *pwdir;

static void setup(void)
{
    pwdir = th_tempdir("passwords");
}

static void teardown(void)
{
    th_rmtree(pwdir);
    free(pwdir);
}

TestSuite(provision, .init = setup, .fini = teardown);

static char *config(const char *resources, bool with_passwords)
{
    return sl_xasprintf("provision:\n  admin_url_env: DATABASE_URL\n  resources: [%s]\n%s%s%s", resources,
                        with_passwords ? "  password_dir: " : "", with_passwords ? pwdir : "",
                        with_passwords ? "\n" : "");
}

/* A fresh valid identifier. */
static void ident(char *buf, size_t n, const char *prefix)
{
    th_name(buf, n, prefix);
    for (char *p = buf; *p; p++)
        *p = *p == '-' ? '_' : (char)tolower((unsigned char)*p);
}

static long long count(const char *sql, const char *name)
{
    const char *p[] = { name };
    return th_pg_number(sql, 1, p);
}

static th_call provision(const char *cfg, const char *resource, const char *name)
{
    char *args = sl_xasprintf("{\"resource\": \"%s\", \"name\": \"%s\"}", resource, name);
    th_call c = th_kind_call("provision", cfg, args, 0);
    free(args);
    return c;
}

Test(provision, schema_is_created_once_and_reported_as_existing_after)
{
    char name[64];
    ident(name, sizeof name, "sch");
    char *cfg = config("postgres_schema", false);
    th_call c = provision(cfg, "postgres_schema", name);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, "\"existed\":false"), "%s", c.outputs);
    cr_assert(th_has(c.outputs, "\"resource\":\"postgres_schema\""), "%s", c.outputs);
    cr_assert_eq(count("SELECT count(*) FROM pg_namespace WHERE nspname = $1", name), 1);
    th_call_free(&c);
    c = provision(cfg, "postgres_schema", name);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, "\"existed\":true"), "%s", c.outputs);
    th_call_free(&c);
    free(cfg);
}

Test(provision, hostile_or_overlong_names_are_refused)
{
    char *cfg = config("postgres_schema, postgres_role, postgres_database", true);
    char longname[101];
    memset(longname, 'a', 100);
    longname[100] = '\0';
    const char *bad[] = { "a\\\"b", "x; DROP SCHEMA public CASCADE", "x'; --", longname, "Upper",
                          "pg_catalog2", "", "1abc", "a b", "$(id)", "`id`", "a\\nb" };
    const char *resources[] = { "postgres_schema", "postgres_role", "postgres_database" };
    long long before = th_pg_number("SELECT count(*) FROM pg_namespace", 0, NULL);
    for (size_t r = 0; r < 3; r++) {
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            th_call c = provision(cfg, resources[r], bad[i]);
            cr_assert_eq(c.rc, -1, "%s '%s' was accepted", resources[r], bad[i]);
            cr_assert_eq(c.err.code, SL_EINVAL, "%s", c.err.msg);
            cr_assert(th_has(c.err.msg, "argument 'name'") && th_has(c.err.msg, "is not an allowed identifier"),
                      "%s", c.err.msg);
            th_call_free(&c);
        }
    }
    cr_assert_eq(th_pg_number("SELECT count(*) FROM pg_namespace", 0, NULL), before);
    cr_assert_eq(count("SELECT count(*) FROM pg_namespace WHERE nspname = $1", "public"), 1);
    free(cfg);
}

Test(provision, role_gets_a_generated_password_stored_only_in_the_password_dir)
{
    char name[64];
    ident(name, sizeof name, "role");
    char *cfg = config("postgres_role", true);
    th_call c = provision(cfg, "postgres_role", name);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, "\"existed\":false"), "%s", c.outputs);
    cr_assert_eq(count("SELECT count(*) FROM pg_roles WHERE rolname = $1 AND rolcanlogin", name), 1);
    char *file = sl_xasprintf("%s/%s.password", pwdir, name);
    struct stat st;
    cr_assert_eq(stat(file, &st), 0, "no password file %s", file);
    cr_assert_eq(st.st_mode & 0777, 0600);
    char *password = th_read_file(file);
    cr_assert_eq(strlen(password), 45, "password %zu bytes", strlen(password));
    password[44] = '\0';
    cr_assert(!th_has(c.outputs, password), "the password is in the outputs: %s", c.outputs);
    char *want = sl_xasprintf("\"password_file\":\"%s\"", file);
    cr_assert(th_has(c.outputs, want), "%s", c.outputs);
    /* stored as a SCRAM verifier, never as the password */
    cr_assert_eq(count("SELECT count(*) FROM pg_authid WHERE rolname = $1 AND rolpassword LIKE 'SCRAM-SHA-256$%'",
                       name), 1);
    th_call_free(&c);
    /* again: existed, and the password is not changed */
    c = provision(cfg, "postgres_role", name);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, "\"existed\":true"), "%s", c.outputs);
    char *again = th_read_file(file);
    again[44] = '\0';
    cr_assert_str_eq(again, password);
    th_call_free(&c);
    /* without a password_dir no role is made */
    char other[64];
    ident(other, sizeof other, "nopw");
    free(cfg);
    cfg = config("postgres_role", false);
    c = provision(cfg, "postgres_role", other);
    cr_assert_eq(c.err.code, SL_EPERMANENT);
    cr_assert(th_has(c.err.msg, "provision.password_dir is not configured"), "%s", c.err.msg);
    cr_assert_eq(count("SELECT count(*) FROM pg_roles WHERE rolname = $1", other), 0);
    th_call_free(&c);
    free(cfg), free(file), free(password), free(again), free(want);
}

Test(provision, database_is_created_idempotently)
{
    char name[64];
    ident(name, sizeof name, "db");
    char *cfg = config("postgres_database", false);
    th_call c = provision(cfg, "postgres_database", name);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, "\"existed\":false"), "%s", c.outputs);
    char *want = sl_xasprintf("\"database\":\"%s\"", name);
    cr_assert(th_has(c.outputs, want), "%s", c.outputs);
    cr_assert_eq(count("SELECT count(*) FROM pg_database WHERE datname = $1", name), 1);
    th_call_free(&c);
    c = provision(cfg, "postgres_database", name);
    cr_assert(th_has(c.outputs, "\"existed\":true"), "%s %s", c.outputs, c.err.msg);
    th_call_free(&c);
    PGconn *pg = th_pg();
    char *drop = sl_xasprintf("DROP DATABASE %s", name);
    PQclear(PQexec(pg, drop));
    PQfinish(pg);
    free(drop), free(want), free(cfg);
}

Test(provision, resources_not_enabled_are_refused)
{
    char *cfg = config("postgres_schema", false);
    th_call c = provision(cfg, "postgres_database", "anything");
    cr_assert_eq(c.err.code, SL_EINVAL);
    cr_assert(th_has(c.err.msg, "argument 'resource': 'postgres_database' is not enabled"), "%s", c.err.msg);
    th_call_free(&c);
    c = provision(cfg, "s3_bucket", "x");
    cr_assert(th_has(c.err.msg, "argument 'resource': expected postgres_schema"), "%s", c.err.msg);
    th_call_free(&c);
    free(cfg);
}

static char *http_config(th_httpd *s)
{
    char *url = th_httpd_url(s, "/provision");
    char *cfg = sl_xasprintf("provision:\n  endpoints:\n    buckets:\n      url: %s\n"
                             "      secret_env: TEST_PROVISION_TOKEN\n      timeout: 2s\n", url);
    free(url);
    return cfg;
}

Test(provision, http_endpoint_is_called_with_an_idempotency_key_and_its_id_recorded)
{
    setenv("TEST_PROVISION_TOKEN", "tok-123", 1);
    th_httpd *s = th_httpd_start();
    th_route r = { .status = 201, .body = "{\"id\": \"bucket-7f3\", \"region\": \"eu\"}" };
    th_httpd_route(s, "/provision", &r);
    char *cfg = http_config(s);
    th_call c = th_kind_call("provision", cfg, "{\"resource\": \"http\", \"endpoint\": \"buckets\", "
                             "\"name\": \"assets\"}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, "\"id\":\"bucket-7f3\""), "%s", c.outputs);
    cr_assert(th_has(c.outputs, "\"existed\":false"), "%s", c.outputs);
    char *key = th_httpd_last_header(s, "/provision", "Idempotency-Key");
    cr_assert_str_eq(key ? key : "", c.id);
    char *auth = th_httpd_last_header(s, "/provision", "Authorization");
    cr_assert_str_eq(auth ? auth : "", "Bearer tok-123");
    cr_assert(!th_has(c.outputs, "tok-123"), "%s", c.outputs);
    th_call_free(&c);
    th_route again = { .status = 200, .body = "{\"id\": 77, \"existed\": true}" };
    th_httpd_route(s, "/provision", &again);
    c = th_kind_call("provision", cfg, "{\"resource\": \"http\", \"endpoint\": \"buckets\"}", 0);
    cr_assert(th_has(c.outputs, "\"id\":\"77\"") && th_has(c.outputs, "\"existed\":true"), "%s %s",
              c.outputs, c.err.msg);
    th_call_free(&c);
    th_route bad = { .status = 409, .body = "name taken by another tenant" };
    th_httpd_route(s, "/provision", &bad);
    c = th_kind_call("provision", cfg, "{\"resource\": \"http\", \"endpoint\": \"buckets\"}", 0);
    cr_assert_eq(c.err.code, SL_EPERMANENT);
    cr_assert(th_has(c.err.msg, "answered 409 (not retried): name taken"), "%s", c.err.msg);
    th_call_free(&c);
    th_route down = { .status = 502 };
    th_httpd_route(s, "/provision", &down);
    c = th_kind_call("provision", cfg, "{\"resource\": \"http\", \"endpoint\": \"buckets\"}", 0);
    cr_assert_eq(c.err.code, SL_EJOB);
    th_call_free(&c);
    th_route noid = { .status = 200, .body = "ok" };
    th_httpd_route(s, "/provision", &noid);
    c = th_kind_call("provision", cfg, "{\"resource\": \"http\", \"endpoint\": \"buckets\"}", 0);
    cr_assert(th_has(c.err.msg, "without an \"id\""), "%s", c.err.msg);
    th_call_free(&c);
    c = th_kind_call("provision", cfg, "{\"resource\": \"http\", \"endpoint\": \"http://evil.test/\"}", 0);
    cr_assert(th_has(c.err.msg, "argument 'endpoint': no provisioning endpoint 'http://evil.test/'"), "%s",
              c.err.msg);
    th_call_free(&c);
    free(key), free(auth), free(cfg);
    th_httpd_free(s);
}

Test(provision, end_to_end_through_a_worker)
{
    char name[64];
    ident(name, sizeof name, "e2e");
    char *cfg = config("postgres_schema", false);
    char *args = sl_xasprintf("{\"resource\": \"postgres_schema\", \"name\": \"%s\"}", name);
    th_row row = th_kind_e2e("provision", cfg, args, 0);
    cr_assert_str_eq(row.status, "succeeded", "error: %s", row.error);
    cr_assert(th_has(row.outputs, "\"existed\": false"), "%s", row.outputs);
    cr_assert_eq(count("SELECT count(*) FROM pg_namespace WHERE nspname = $1", name), 1);
    th_row_free(&row);
    free(args), free(cfg);
}

/* ---- SCRAM-SHA-256 verification of a stored verifier against a password ---- */

static size_t b64_decode(const char *s, size_t n, unsigned char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        const char *p = strchr(tbl, s[i]);
        cr_assert(p && s[i], "bad base64 in a verifier");
        acc = acc << 6 | (uint32_t)(p - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (unsigned char)(acc >> bits);
        }
    }
    return k;
}

/* True when verifier ("SCRAM-SHA-256$iter:salt$StoredKey:ServerKey") was
 * computed from password (RFC 5802: PBKDF2-HMAC-SHA-256, then the keys). */
static bool scram_matches(const char *verifier, const char *password)
{
    int iter = 0;
    char salt64[128], stored64[128], server64[128];
    if (sscanf(verifier, "SCRAM-SHA-256$%d:%127[^$]$%127[^:]:%127s", &iter, salt64, stored64, server64) != 4)
        return false;
    unsigned char salt[96], stored[64], server[64];
    size_t sn = b64_decode(salt64, strlen(salt64), salt);
    size_t stn = b64_decode(stored64, strlen(stored64), stored);
    size_t svn = b64_decode(server64, strlen(server64), server);
    cr_assert(stn == SL_SHA256_LEN && svn == SL_SHA256_LEN && sn + 4 <= sizeof salt);
    unsigned char u[SL_SHA256_LEN], salted[SL_SHA256_LEN], block[100];
    memcpy(block, salt, sn);
    memcpy(block + sn, "\0\0\0\1", 4);
    size_t pl = strlen(password);
    sl_hmac_sha256(password, pl, block, sn + 4, u);
    memcpy(salted, u, sizeof u);
    for (int i = 1; i < iter; i++) {
        sl_hmac_sha256(password, pl, u, sizeof u, u);
        for (size_t j = 0; j < sizeof u; j++)
            salted[j] ^= u[j];
    }
    unsigned char client_key[SL_SHA256_LEN], stored_key[SL_SHA256_LEN], server_key[SL_SHA256_LEN];
    sl_hmac_sha256(salted, sizeof salted, "Client Key", 10, client_key);
    sl_sha256_digest(client_key, sizeof client_key, stored_key);
    sl_hmac_sha256(salted, sizeof salted, "Server Key", 10, server_key);
    return memcmp(stored_key, stored, SL_SHA256_LEN) == 0 && memcmp(server_key, server, SL_SHA256_LEN) == 0;
}

static char *verifier_of(const char *role)
{
    PGconn *c = th_pg();
    const char *p[] = { role };
    PGresult *r = PQexecParams(c, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", 1, NULL, p,
                               NULL, NULL, 0);
    cr_assert(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s", PQerrorMessage(c));
    char *v = sl_xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

static char *password_in_file(const char *role)
{
    char *file = sl_xasprintf("%s/%s.password", pwdir, role);
    char *text = th_read_file(file);
    free(file);
    if (text)
        text[strcspn(text, "\n")] = '\0';
    return text;
}

/* The server may say password_encryption = md5: the verifier is SCRAM all
 * the same, and it is the one of the password in the file. */
Test(provision, the_role_verifier_is_scram_even_when_the_server_prefers_md5)
{
    const char *url = th_env("DATABASE_URL");
    char *md5_url = sl_xasprintf("%s%coptions=-c%%20password_encryption%%3Dmd5", url,
                                 strchr(url, '?') ? '&' : '?');
    PGconn *c = PQconnectdb(md5_url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, "SHOW password_encryption");
    cr_assert_str_eq(PQgetvalue(r, 0, 0), "md5", "the test's premise: the session prefers md5");
    PQclear(r);
    PQfinish(c);
    setenv("TEST_PROVISION_MD5_URL", md5_url, 1);
    char name[64];
    ident(name, sizeof name, "md5role");
    char *cfg = sl_xasprintf("provision:\n  admin_url_env: TEST_PROVISION_MD5_URL\n  resources: [postgres_role]\n"
                             "  password_dir: %s\n", pwdir);
    th_call call = provision(cfg, "postgres_role", name);
    cr_assert_eq(call.rc, 0, "%s", call.err.msg);
    th_call_free(&call);
    char *verifier = verifier_of(name);
    cr_assert(strncmp(verifier, "SCRAM-SHA-256$", 14) == 0, "stored as %.12s…", verifier);
    char *password = password_in_file(name);
    cr_assert_not_null(password);
    cr_assert(scram_matches(verifier, password), "the verifier is not the password's");
    cr_assert(!scram_matches(verifier, "not the password"));
    free(password), free(verifier), free(cfg), free(md5_url);
}

typedef struct racer {
    const char *cfg, *name;
    th_call call;
} racer;

static void *race_one(void *arg)
{
    racer *r = arg;
    r->call = provision(r->cfg, "postgres_role", r->name);
    return NULL;
}

/* Eight jobs for the same role at once: one creates it and writes its
 * file, the others report it existed; the file survives and holds the
 * password the role really has. */
Test(provision, concurrent_jobs_for_one_role_leave_one_role_and_its_true_password)
{
    char name[64];
    ident(name, sizeof name, "racerole");
    char *cfg = config("postgres_role", true);
    th_call warm = provision(cfg, "postgres_schema", "unused");   /* curl/global set-up once, before threads */
    th_call_free(&warm);
    enum { N = 8 };
    racer rs[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        rs[i] = (racer){ .cfg = cfg, .name = name };
        cr_assert_eq(pthread_create(&t[i], NULL, race_one, &rs[i]), 0);
    }
    int created = 0, existed = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(pthread_join(t[i], NULL), 0);
        cr_assert_eq(rs[i].call.rc, 0, "%s", rs[i].call.err.msg);
        created += th_has(rs[i].call.outputs, "\"existed\":false");
        existed += th_has(rs[i].call.outputs, "\"existed\":true");
        cr_assert(th_has(rs[i].call.outputs, ".password\""), "no password_file: %s", rs[i].call.outputs);
        th_call_free(&rs[i].call);
    }
    cr_assert_eq(created, 1, "%d jobs say they created the role", created);
    cr_assert_eq(existed, N - 1);
    char *password = password_in_file(name);
    cr_assert_not_null(password, "the password file was deleted");
    char *verifier = verifier_of(name);
    cr_assert(scram_matches(verifier, password), "the file does not hold the role's password");
    cr_assert_eq(th_dir_entries(pwdir), 1, "staging files were left behind");
    free(verifier), free(password), free(cfg);
}
