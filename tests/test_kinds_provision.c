/* test_kinds_provision.c: the provision kind (jobs/provision.c) against the
 * test PostgreSQL (its admin connection is $DATABASE_URL) and the scripted
 * test HTTP server. */
#include "harness.h"
#include "httpd.h"
#include "kindtest.h"

#include "mem.h"

#include <criterion/criterion.h>
#include <ctype.h>
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
