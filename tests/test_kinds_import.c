/* test_kinds_import.c: the import kind (jobs/import.c) against the scripted
 * test HTTP server, local files and the test PostgreSQL.  Every failure
 * test also checks that the import root holds no file afterwards. */
#include "harness.h"
#include "httpd.h"
#include "kindtest.h"

#include "mem.h"
#include "netguard.h"
#include "sha256.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *root, *files;   /* import.root, import.file_root */
static th_httpd *srv;

static void setup(void)
{
    root = th_tempdir("import-root");
    files = th_tempdir("import-files");
    srv = th_httpd_start();
}

static void teardown(void)
{
    th_httpd_free(srv);
    th_rmtree(root);
    th_rmtree(files);
    free(root);
    free(files);
}

TestSuite(import, .init = setup, .fini = teardown);

/* The test server's port. */
static int srv_port(void)
{
    char *url = th_httpd_url(srv, "");
    const char *colon = strrchr(url, ':');
    int port = colon ? atoi(colon + 1) : 0;
    free(url);
    cr_assert_gt(port, 0);
    return port;
}

/* The test servers listen on 127.0.0.1 at a port of their own: both must
 * be allowed explicitly (loopback and ports other than 80/443 are refused
 * by default). */
static char *config(const char *extra)
{
    return sl_xasprintf("import:\n  root: %s\n  file_root: %s\n  schemes: [http, file]\n"
                        "  hosts: [127.0.0.1, \"*.internal.test\"]\n  max_bytes: 100000\n"
                        "  allow_addresses: [127.0.0.1/32]\n  allow_ports: [%d]\n"
                        "  connect_timeout: 2s\n  timeout: 5s\n%s", root, files, srv_port(),
                        extra ? extra : "");
}


/* Runs import with args built from fmt and the server's URL of path. */
static th_call import(const char *cfg, const char *args_fmt, const char *path)
{
    char *url = th_httpd_url(srv, path);
    char *args = sl_xasprintf(args_fmt, url);
    th_call c = th_kind_call("import", cfg, args, 0);
    free(args);
    free(url);
    return c;
}

static void expect_fail(th_call *c, int code, const char *text)
{
    th_expect_fail(c, code, text, root);
}

Test(import, download_is_stored_with_its_hash)
{
    th_route r = { .body = "id,name\n1,alpha\n", .content_type = "text/csv" };
    th_httpd_route(srv, "/data.csv", &r);
    char *cfg = config(NULL);
    unsigned char d[SL_SHA256_LEN];
    char hex[SL_SHA256_HEX];
    sl_sha256_digest(r.body, strlen(r.body), d);
    sl_sha256_hex(d, hex);
    char *fmt = sl_xasprintf("{\"url\": \"%%s\", \"name\": \"data.csv\", \"sha256\": \"%s\"}", hex);
    th_call c = import(cfg, fmt, "/data.csv");
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    char *path = sl_xasprintf("%s/data.csv", root);
    char *text = th_read_file(path);
    cr_assert_str_eq(text ? text : "", r.body);
    cr_assert_eq(th_dir_entries(root), 1, "staging files remain");
    char want[200];
    snprintf(want, sizeof want, "\"sha256\":\"%s\"", hex);
    cr_assert(th_has(c.outputs, want), "%s", c.outputs);
    cr_assert(th_has(c.outputs, "\"bytes\":16"), "%s", c.outputs);
    cr_assert(th_has(c.outputs, "\"content_type\":\"text/csv\""), "%s", c.outputs);
    snprintf(want, sizeof want, "\"path\":\"%s\"", path);
    cr_assert(th_has(c.outputs, want), "%s", c.outputs);
    th_call_free(&c);
    free(text), free(path), free(fmt), free(cfg);
}

Test(import, checksum_mismatch_keeps_nothing)
{
    th_route r = { .body = "payload" };
    th_httpd_route(srv, "/f", &r);
    char *cfg = config(NULL);
    th_call c = import(cfg, "{\"url\": \"%s\", \"name\": \"f\", \"sha256\": "
                       "\"0000000000000000000000000000000000000000000000000000000000000000\"}", "/f");
    expect_fail(&c, SL_EPERMANENT, "argument 'sha256': checksum mismatch: expected 0000");
    c = import(cfg, "{\"url\": \"%s\", \"sha256\": \"xyz\"}", "/f");
    expect_fail(&c, SL_EINVAL, "argument 'sha256': expected 64 hex digits");
    free(cfg);
}

Test(import, download_over_the_limit_is_aborted_mid_stream)
{
    /* 5 MB against a 100 kB limit, once with Content-Length, once chunked */
    th_route big = { .generate = 5 * 1024 * 1024 };
    th_httpd_route(srv, "/big", &big);
    th_route chunked = { .generate = 5 * 1024 * 1024, .chunked = 1 };
    th_httpd_route(srv, "/chunked", &chunked);
    char *cfg = config(NULL);
    th_call c = import(cfg, "{\"url\": \"%s\", \"name\": \"big\"}", "/big");
    expect_fail(&c, SL_EPERMANENT, "exceeds import.max_bytes (100000 bytes); aborted");
    c = import(cfg, "{\"url\": \"%s\", \"name\": \"big\"}", "/chunked");
    expect_fail(&c, SL_EPERMANENT, "exceeds import.max_bytes (100000 bytes); aborted");
    free(cfg);
}

Test(import, schemes_and_hosts_not_allowed_are_refused)
{
    char *cfg = config(NULL);
    th_call c = th_kind_call("import", cfg, "{\"url\": \"ftp://127.0.0.1/x\"}", 0);
    expect_fail(&c, SL_EINVAL, "argument 'url': scheme 'ftp' is not allowed (import.schemes: http, file)");
    c = th_kind_call("import", cfg, "{\"url\": \"https://127.0.0.1/x\"}", 0);
    expect_fail(&c, SL_EINVAL, "scheme 'https' is not allowed");
    c = th_kind_call("import", cfg, "{\"url\": \"http://evil.test/x\"}", 0);
    expect_fail(&c, SL_EINVAL, "argument 'url': host 'evil.test' is not allowed");
    c = th_kind_call("import", cfg, "{\"url\": \"http://internal.test.evil.test/x\"}", 0);
    expect_fail(&c, SL_EINVAL, "is not allowed");
    c = th_kind_call("import", cfg, "{\"url\": \"not a url\"}", 0);
    expect_fail(&c, SL_EINVAL, "argument 'url'");
    free(cfg);
}

Test(import, redirects_are_followed_only_to_allowed_hosts)
{
    th_route data = { .body = "redirected body" };
    th_httpd_route(srv, "/data", &data);
    char *target = th_httpd_url(srv, "/data");
    th_route ok = { .status = 302, .location = target };
    th_httpd_route(srv, "/ok", &ok);
    th_route evil = { .status = 302, .location = "http://evil.test/steal" };
    th_httpd_route(srv, "/evil", &evil);
    th_route local = { .status = 301, .location = "file:///etc/passwd" };
    th_httpd_route(srv, "/local", &local);
    char *cfg = config(NULL);
    th_call c = import(cfg, "{\"url\": \"%s\", \"name\": \"r\"}", "/ok");
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, target), "final URL missing: %s", c.outputs);
    cr_assert(th_has(c.outputs, "\"bytes\":15"), "%s", c.outputs);
    th_call_free(&c);
    char *kept = sl_xasprintf("%s/r", root);
    cr_assert_eq(unlink(kept), 0);
    free(kept);
    c = import(cfg, "{\"url\": \"%s\", \"name\": \"r\"}", "/evil");
    expect_fail(&c, SL_EPERMANENT, "/evil: host 'evil.test' is not allowed");
    c = import(cfg, "{\"url\": \"%s\", \"name\": \"r\"}", "/local");
    expect_fail(&c, SL_EPERMANENT, "scheme 'file' is not allowed");
    free(cfg), free(target);
}

Test(import, http_errors_say_whether_a_retry_can_help)
{
    th_route missing = { .status = 404, .body = "gone" };
    th_httpd_route(srv, "/missing", &missing);
    th_route broken = { .status = 503 };
    th_httpd_route(srv, "/broken", &broken);
    th_route slow = { .delay_ms = 3000, .body = "late" };
    th_httpd_route(srv, "/slow", &slow);
    char *cfg = config(NULL);
    th_call c = import(cfg, "{\"url\": \"%s\"}", "/missing");
    expect_fail(&c, SL_EPERMANENT, "answered 404 (not retried)");
    c = import(cfg, "{\"url\": \"%s\"}", "/broken");
    expect_fail(&c, SL_EJOB, "answered 503");
    free(cfg);
    cfg = sl_xasprintf("import:\n  root: %s\n  schemes: [http]\n  hosts: [127.0.0.1]\n  timeout: 300ms\n"
                       "  allow_addresses: [127.0.0.0/8]\n  allow_ports: [%d]\n", root, srv_port());
    c = import(cfg, "{\"url\": \"%s\"}", "/slow");
    expect_fail(&c, SL_EJOB, "timed out");
    free(cfg);
    cfg = config(NULL);
    th_cancel_after(200);
    c = import(cfg, "{\"url\": \"%s\"}", "/slow");
    expect_fail(&c, SL_EJOB, "cancelled");
    free(cfg);
}

Test(import, file_urls_must_stay_under_the_file_root)
{
    char *src = sl_xasprintf("%s/in.txt", files);
    FILE *f = fopen(src, "w");
    cr_assert_not_null(f);
    fputs("local data\n", f);
    fclose(f);
    char *link = sl_xasprintf("%s/passwd", files);
    cr_assert_eq(symlink("/etc/passwd", link), 0);
    char *cfg = config(NULL);
    char *args = sl_xasprintf("{\"url\": \"file://%s\", \"name\": \"in.txt\"}", src);
    th_call c = th_kind_call("import", cfg, args, 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, "\"bytes\":11"), "%s", c.outputs);
    th_call_free(&c);
    free(args);
    char *kept = sl_xasprintf("%s/in.txt", root);
    cr_assert_eq(unlink(kept), 0);
    free(kept);
    /* a symlink that stays under the root is followed */
    char *alias = sl_xasprintf("%s/alias.txt", files);
    cr_assert_eq(symlink("in.txt", alias), 0);
    args = sl_xasprintf("{\"url\": \"file://%s\", \"name\": \"alias.txt\"}", alias);
    c = th_kind_call("import", cfg, args, 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, "\"bytes\":11"), "%s", c.outputs);
    th_call_free(&c);
    free(args), free(alias);
    kept = sl_xasprintf("%s/alias.txt", root);
    cr_assert_eq(unlink(kept), 0);
    free(kept);
    c = th_kind_call("import", cfg, "{\"url\": \"file:///etc/passwd\"}", 0);
    expect_fail(&c, SL_EINVAL, "is outside import.file_root");
    args = sl_xasprintf("{\"url\": \"file://%s\"}", link);
    c = th_kind_call("import", cfg, args, 0);
    expect_fail(&c, SL_EINVAL, "is outside import.file_root");
    free(args);
    args = sl_xasprintf("{\"url\": \"file://%s/../../etc/passwd\"}", files);
    c = th_kind_call("import", cfg, args, 0);
    expect_fail(&c, SL_EINVAL, "is outside import.file_root");
    free(args);
    c = th_kind_call("import", cfg, "{\"url\": \"file://otherhost/etc/passwd\"}", 0);
    expect_fail(&c, SL_EINVAL, "argument 'url'");   /* curl refuses file:// with a host */
    free(cfg), free(src), free(link);
}

Test(import, names_are_plain_file_names)
{
    th_route r = { .body = "x" };
    th_httpd_route(srv, "/x", &r);
    char *cfg = config(NULL);
    const char *bad[] = { "../escape", "a/b", ".hidden", "/etc/cron.d/x", "a\\nb" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *fmt = sl_xasprintf("{\"url\": \"%%s\", \"name\": \"%s\"}", bad[i]);
        th_call c = import(cfg, fmt, "/x");
        expect_fail(&c, SL_EINVAL, "argument 'name'");
        free(fmt);
    }
    cr_assert_eq(th_httpd_hits(srv, "/x"), 0, "nothing is fetched for a bad name");
    free(cfg);
}

static void make_table(const char *table)
{
    PGconn *c = th_pg();
    char *sql = sl_xasprintf("CREATE TABLE %s (id integer NOT NULL, name text NOT NULL)", table);
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    free(sql);
}

static long long table_rows(const char *table)
{
    char *sql = sl_xasprintf("SELECT count(*) FROM %s", table);
    long long n = th_pg_number(sql, 0, NULL);
    free(sql);
    return n;
}

Test(import, csv_is_copied_into_the_configured_table_all_or_nothing)
{
    char table[64];
    th_name(table, sizeof table, "imp");
    for (char *p = table; *p; p++)
        if (*p == '-')
            *p = '_';
    make_table(table);
    th_route good = { .body = "id,name\n1,alpha\n2,\"beta, with comma\"\n3,gamma\n" };
    th_httpd_route(srv, "/good.csv", &good);
    th_route bad = { .body = "id,name\n1,alpha\nnot-a-number,beta\n3,gamma\n" };
    th_httpd_route(srv, "/bad.csv", &bad);
    char *extra = sl_xasprintf("  database_url_env: DATABASE_URL\n  tables:\n    people:\n"
                               "      table: public.%s\n      columns: [id, name]\n", table);
    char *cfg = config(extra);
    th_call c = import(cfg, "{\"url\": \"%s\", \"name\": \"good.csv\", \"format\": \"csv\", "
                       "\"table\": \"people\"}", "/good.csv");
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, "\"rows\":3"), "%s", c.outputs);
    cr_assert_eq(table_rows(table), 3);
    th_call_free(&c);
    char *kept = sl_xasprintf("%s/good.csv", root);
    cr_assert_eq(unlink(kept), 0);
    free(kept);
    c = import(cfg, "{\"url\": \"%s\", \"name\": \"bad.csv\", \"format\": \"csv\", "
               "\"table\": \"people\"}", "/bad.csv");
    expect_fail(&c, SL_EPERMANENT, "argument 'table': loading into 'people' failed, nothing was inserted");
    cr_assert_eq(table_rows(table), 3, "rows of the bad file were inserted");
    c = import(cfg, "{\"url\": \"%s\", \"format\": \"csv\", \"table\": \"public.people; DROP TABLE x\"}",
               "/good.csv");
    expect_fail(&c, SL_EINVAL, "argument 'table': no import table 'public.people; DROP TABLE x' is configured");
    free(cfg), free(extra);
}

Test(import, staging_files_of_dead_workers_are_swept)
{
    pid_t dead = fork();
    cr_assert_geq(dead, 0);
    if (dead == 0)
        _exit(0);
    cr_assert_eq(waitpid(dead, NULL, 0), dead);
    char *stale = sl_xasprintf("%s/.sluice-staging-%ld-abcdef", root, (long)dead);
    char *live = sl_xasprintf("%s/.sluice-staging-%ld-abcdef", root, (long)getpid());
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(i ? live : stale, "w");
        cr_assert_not_null(f);
        fputs("partial", f);
        fclose(f);
    }
    th_route r = { .body = "x" };
    th_httpd_route(srv, "/x", &r);
    char *cfg = config(NULL);
    th_call c = import(cfg, "{\"url\": \"%s\", \"name\": \"x\"}", "/x");
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert_neq(access(stale, F_OK), 0, "the dead worker's staging file is still there");
    cr_assert_eq(access(live, F_OK), 0, "a live worker's staging file was removed");
    th_call_free(&c);
    free(stale), free(live), free(cfg);
}

Test(import, end_to_end_through_a_worker)
{
    th_route r = { .body = "e2e bytes" };
    th_httpd_route(srv, "/e2e", &r);
    char *cfg = config(NULL);
    char *url = th_httpd_url(srv, "/e2e");
    char *args = sl_xasprintf("{\"url\": \"%s\", \"name\": \"e2e.bin\"}", url);
    th_row row = th_kind_e2e("import", cfg, args, 0);
    cr_assert_str_eq(row.status, "succeeded", "error: %s", row.error);
    cr_assert(th_has(row.outputs, "\"bytes\": 9"), "%s", row.outputs);
    char *path = sl_xasprintf("%s/e2e.bin", root);
    char *text = th_read_file(path);
    cr_assert_str_eq(text ? text : "", "e2e bytes");
    th_row_free(&row);
    free(text), free(path), free(args), free(url), free(cfg);
}

/* A process swaps a directory under the file root with a symlink to a
 * directory outside it, as fast as it can, while imports of a file in that
 * directory run in a loop: no import may ever read the outside file. */
Test(import, a_symlink_swapped_in_during_file_imports_never_leads_outside_the_root)
{
    char *outside = th_tempdir("import-outside");
    char *sub = sl_xasprintf("%s/sub", files), *swap = sl_xasprintf("%s/swap", files);
    char *in = sl_xasprintf("%s/data.txt", sub), *out = sl_xasprintf("%s/data.txt", outside);
    cr_assert_eq(mkdir(sub, 0755), 0);
    th_write_file(in, "inside\n");
    th_write_file(out, "OUTSIDE, SECRET\n");
    cr_assert_eq(symlink(outside, swap), 0);
    long *swaps = mmap(NULL, sizeof *swaps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(swaps, MAP_FAILED);
    *swaps = 0;
    pid_t racer = fork();
    cr_assert_geq(racer, 0);
    if (racer == 0) {
        for (;;) {
            if (renameat2(AT_FDCWD, sub, AT_FDCWD, swap, RENAME_EXCHANGE) == 0)
                __atomic_add_fetch(swaps, 1, __ATOMIC_RELAXED);
        }
    }
    char *cfg = config(NULL);
    char *args = sl_xasprintf("{\"url\": \"file://%s\", \"name\": \"r\"}", in);
    int read_inside = 0, refused = 0, read_outside = 0;
    for (int i = 0; i < 300; i++) {
        th_call c = th_kind_call("import", cfg, args, 0);
        if (c.rc == 0 && th_has(c.outputs, "\"bytes\":7,"))
            read_inside++;
        else if (c.rc == 0)
            read_outside++;
        else if (c.err.code == SL_EINVAL && th_has(c.err.msg, "is outside import.file_root"))
            refused++;
        else
            cr_assert_fail("unexpected outcome: %s %s", c.err.msg, c.outputs);
        th_call_free(&c);
    }
    kill(racer, SIGKILL);
    cr_assert_eq(waitpid(racer, NULL, 0), racer);
    char *kept = sl_xasprintf("%s/r", root);
    char *text = th_read_file(kept);
    cr_assert(text == NULL || strcmp(text, "inside\n") == 0, "the import root holds %s", text);
    cr_assert_eq(read_outside, 0, "%d of 300 imports read the file outside the root", read_outside);
    cr_assert_eq(read_inside + refused, 300);
    cr_assert_gt(*swaps, 0, "the racer never swapped");
    munmap(swaps, sizeof *swaps);
    th_rmtree(outside);
    free(text), free(kept), free(args), free(cfg), free(outside), free(sub), free(swap), free(in), free(out);
}

Test(import, a_fifo_or_device_under_the_file_root_fails_at_once)
{
    char *fifo = sl_xasprintf("%s/pipe", files);
    cr_assert_eq(mkfifo(fifo, 0644), 0);
    char *dev = sl_xasprintf("%s/null", files);
    cr_assert_eq(symlink("/dev/null", dev), 0);
    char *cfg = config(NULL);
    char *args = sl_xasprintf("{\"url\": \"file://%s\"}", fifo);
    th_call c = th_kind_call("import", cfg, args, 0);   /* without O_NONBLOCK this waits forever */
    expect_fail(&c, SL_EPERMANENT, "pipe is a FIFO, not a regular file: refused");
    free(args);
    args = sl_xasprintf("{\"url\": \"file://%s\"}", files);
    c = th_kind_call("import", cfg, args, 0);
    expect_fail(&c, SL_EINVAL, "is outside import.file_root");
    free(args);
    args = sl_xasprintf("{\"url\": \"file://%s/\"}", files);
    c = th_kind_call("import", cfg, args, 0);
    expect_fail(&c, SL_EINVAL, "is outside import.file_root");
    free(args);
    args = sl_xasprintf("{\"url\": \"file://%s\"}", dev);
    c = th_kind_call("import", cfg, args, 0);
    expect_fail(&c, SL_EINVAL, "is outside import.file_root");
    free(args), free(cfg), free(fifo), free(dev);
}

/* Loopback, private, link-local and metadata addresses are refused unless
 * configured, before a single byte is sent; so are ports not listed. */
Test(import, internal_addresses_and_other_ports_are_refused_without_a_request)
{
    th_route r = { .body = "internal data" };
    th_httpd_route(srv, "/x", &r);
    char *base = sl_xasprintf("import:\n  root: %s\n  schemes: [http]\n  max_bytes: 100000\n"
                              "  hosts: [127.0.0.1, localhost, \"[::ffff:127.0.0.1]\", \"[::ffff:7f00:1]\"]\n"
                              "  connect_timeout: 2s\n  timeout: 5s\n", root);
    int port = srv_port();
    /* no allowance: the port is allowed, the loopback address is not */
    char *cfg = sl_xasprintf("%s  allow_ports: [%d]\n", base, port);
    th_call c = import(cfg, "{\"url\": \"%s\"}", "/x");
    expect_fail(&c, SL_EPERMANENT, "address 127.0.0.1 is loopback: refused (import.allow_addresses");
    /* a name that resolves to loopback is judged by its address */
    char *url = sl_xasprintf("{\"url\": \"http://localhost:%d/x\"}", port);
    c = th_kind_call("import", cfg, url, 0);
    expect_fail(&c, SL_EPERMANENT, "is loopback: refused");
    free(url);
    /* the IPv4-mapped IPv6 form of loopback reaches the same server: refused too */
    url = sl_xasprintf("{\"url\": \"http://[::ffff:127.0.0.1]:%d/x\"}", port);
    c = th_kind_call("import", cfg, url, 0);
    expect_fail(&c, SL_EPERMANENT, "is loopback: refused");
    cr_assert_eq(th_httpd_hits(srv, "/x"), 0, "a refused address was sent a request");
    free(cfg);
    /* allowed address, but the port is not in the default 80, 443 */
    cfg = sl_xasprintf("%s  allow_addresses: [127.0.0.1]\n", base);
    c = import(cfg, "{\"url\": \"%s\"}", "/x");
    char want[128];
    snprintf(want, sizeof want, "port %d is not allowed (import.allow_ports: 80, 443)", port);
    expect_fail(&c, SL_EINVAL, want);
    cr_assert_eq(th_httpd_hits(srv, "/x"), 0, "a refused port was sent a request");
    free(cfg);
    /* both allowed: the mapped form is allowed by the IPv4 range too */
    cfg = sl_xasprintf("%s  allow_addresses: [127.0.0.1/32]\n  allow_ports: [%d]\n", base, port);
    c = th_kind_call("import", cfg, url, 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, "\"bytes\":13"), "%s", c.outputs);
    th_call_free(&c);
    cr_assert_eq(th_httpd_hits(srv, "/x"), 1);
    free(url), free(cfg), free(base);
}

/* A redirect is checked at the address it connects to, like the URL. */
Test(import, a_redirect_to_a_refused_address_or_port_is_refused)
{
    int port = srv_port();
    char *other = sl_xasprintf("http://127.0.0.2:%d/data", port);
    th_route to_other = { .status = 302, .location = other };
    th_httpd_route(srv, "/to-other", &to_other);
    char *meta = sl_xasprintf("http://169.254.169.254:%d/latest/meta-data/", port);
    th_route to_meta = { .status = 302, .location = meta };
    th_httpd_route(srv, "/to-meta", &to_meta);
    th_route to_port = { .status = 302, .location = "http://127.0.0.1:1/data" };
    th_httpd_route(srv, "/to-port", &to_port);
    char *cfg = sl_xasprintf("import:\n  root: %s\n  schemes: [http]\n  hosts: [127.0.0.1, 127.0.0.2, "
                             "169.254.169.254]\n  allow_addresses: [127.0.0.1/32]\n  allow_ports: [%d]\n"
                             "  connect_timeout: 2s\n  timeout: 5s\n", root, port);
    th_call c = import(cfg, "{\"url\": \"%s\"}", "/to-other");
    expect_fail(&c, SL_EPERMANENT, "GET http://127.0.0.2:");
    c = import(cfg, "{\"url\": \"%s\"}", "/to-other");
    expect_fail(&c, SL_EPERMANENT, "address 127.0.0.2 is loopback: refused");
    c = import(cfg, "{\"url\": \"%s\"}", "/to-meta");
    expect_fail(&c, SL_EPERMANENT, "address 169.254.169.254 is cloud metadata: refused");
    c = import(cfg, "{\"url\": \"%s\"}", "/to-port");
    expect_fail(&c, SL_EPERMANENT, "port 1 is not allowed");
    free(cfg), free(other), free(meta);
}

static const char *refusal_of(const char *text, const sl_cidr *allow, size_t nallow)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1)
        v4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1)
        v6->sin6_family = AF_INET6;
    else
        cr_assert_fail("bad test address %s", text);
    return sl_netguard_refusal((const struct sockaddr *)&ss, allow, nallow);
}

Test(import, every_internal_address_form_is_classified)
{
    static const struct { const char *addr, *why; } cases[] = {
        { "127.0.0.1", "loopback" }, { "127.255.0.9", "loopback" }, { "::1", "loopback" },
        { "10.1.2.3", "private" }, { "172.16.0.1", "private" }, { "172.31.255.255", "private" },
        { "192.168.1.1", "private" }, { "100.64.0.1", "private (shared address space)" },
        { "fd12:3456::1", "private (unique local)" }, { "fc00::1", "private (unique local)" },
        { "169.254.1.1", "link-local" }, { "fe80::1", "link-local" },
        { "169.254.169.254", "cloud metadata" }, { "fd00:ec2::254", "cloud metadata" },
        { "0.0.0.0", "unspecified" }, { "::", "unspecified" },
        { "224.0.0.1", "multicast" }, { "ff02::1", "multicast" }, { "255.255.255.255", "reserved" },
        { "::ffff:127.0.0.1", "loopback" }, { "::ffff:169.254.169.254", "cloud metadata" },
        { "::ffff:10.0.0.1", "private" }, { "64:ff9b::a00:1", "private" }, { "2002:a9fe:a9fe::1", "cloud metadata" },
        { "::127.0.0.1", "loopback" },
        { "93.184.216.34", NULL }, { "2606:4700::1111", NULL }, { "::ffff:93.184.216.34", NULL },
        { "172.32.0.1", NULL }, { "11.0.0.1", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = refusal_of(cases[i].addr, NULL, 0);
        if (cases[i].why == NULL)
            cr_assert_null(why, "%s refused as %s", cases[i].addr, why);
        else
            cr_assert(why && strcmp(why, cases[i].why) == 0, "%s: got %s, expected %s", cases[i].addr,
                      why ? why : "allowed", cases[i].why);
    }
    /* an allowance covers exactly its range, also in mapped form */
    sl_cidr allow = { .family = AF_INET, .addr = { 10, 1 }, .prefix = 16 };
    cr_assert_null(refusal_of("10.1.200.3", &allow, 1));
    cr_assert_null(refusal_of("::ffff:10.1.0.1", &allow, 1));
    cr_assert_str_eq(refusal_of("10.2.0.1", &allow, 1), "private");
}
