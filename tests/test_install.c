/* test_install.c: the install as a user and an operator meet it.
 *
 * `cmake --install` of this build tree into temporary prefixes, then: the
 * README's C example, extracted from README.md and compiled with nothing
 * but `pkg-config --cflags --libs sluice`, links against the installed
 * library (shared, and static with --static), runs, and enqueues a job that
 * a real worker pool runs; the library exports only sluice_*; a package
 * layout (DESTDIR, prefix /usr) puts the configuration in /etc/sluice and
 * the units, sysusers.d and tmpfiles.d entries and man pages where systemd
 * and man look; `systemd-analyze verify` accepts the installed units; and
 * the installed binaries look for their configuration under their own
 * prefix. */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "mem.h"

static char *build_dir(void)
{
    char *d = sl_xstrdup(SLUICE_BIN);
    *strrchr(d, '/') = '\0';
    return d;
}

static char *temp_dir(void)
{
    char tmpl[] = "/tmp/sluice-install-XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl));
    return sl_xstrdup(tmpl);
}

/* Runs a shell command line; returns its result (the test owns it). */
static th_result sh(const char *cmd, const char *const *env)
{
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    return th_run(argv, env);
}

static void sh_ok(const char *cmd, const char *const *env)
{
    th_result r = sh(cmd, env);
    cr_assert_eq(r.status, 0, "`%s` failed (%d):\n%s%s", cmd, r.status, r.out, r.err);
    th_result_free(&r);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The README's ```c block after "Enqueueing from your own code", with its
 * queue renamed to this test's own. */
static char *readme_example(const char *queue)
{
    char *readme = th_read_file(SLUICE_SOURCE_DIR "/README.md");
    cr_assert_not_null(readme);
    const char *sec = strstr(readme, "Enqueueing from your own code");
    cr_assert_not_null(sec, "README lost its C example section");
    const char *start = strstr(sec, "```c\n");
    cr_assert_not_null(start);
    start += 5;
    const char *end = strstr(start, "```");
    cr_assert_not_null(end);
    sl_buf b = SL_BUF_INIT;
    const char *p = start;
    char quoted[128];
    snprintf(quoted, sizeof quoted, "\"%s\"", queue);
    for (const char *hit; (hit = strstr(p, "\"default\"")) && hit < end; p = hit + 9) {
        sl_buf_append(&b, p, (size_t)(hit - p));
        sl_buf_puts(&b, quoted);
    }
    sl_buf_append(&b, p, (size_t)(end - p));
    free(readme);
    return sl_buf_detach(&b);
}

typedef struct job_wait {
    const char *id;
} job_wait;

static bool job_succeeded(void *arg)
{
    const char *p[] = { ((job_wait *)arg)->id };
    return th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'succeeded'", 1,
                        p) == 1;
}

/* Runs the compiled example, returns the job id it printed (caller frees). */
static char *run_example(const char *exe, const char *libdir)
{
    char ld[600];
    snprintf(ld, sizeof ld, "LD_LIBRARY_PATH=%s", libdir ? libdir : "");
    char redis[600];
    snprintf(redis, sizeof redis, "SLUICE_REDIS_URL=%s", th_env("REDIS_URL"));
    const char *env[] = { ld, redis, NULL };
    const char *argv[] = { exe, NULL };
    th_result r = th_run(argv, env);
    cr_assert_eq(r.status, 0, "the example failed: %s", r.err);
    r.out[strcspn(r.out, "\n")] = '\0';
    cr_assert_gt(strlen(r.out), 0, "the example printed no job id");
    char *id = sl_xstrdup(r.out);
    th_result_free(&r);
    return id;
}

Test(install, readme_example_builds_with_pkg_config_and_its_job_runs)
{
    th_migrate();
    char *build = build_dir(), *tmp = temp_dir();
    char *prefix = sl_xasprintf("%s/p", tmp);
    char *libdir = sl_xasprintf("%s/%s", prefix, SLUICE_INSTALL_LIBDIR);
    char *cmd = sl_xasprintf("cmake --install '%s' --prefix '%s' >/dev/null", build, prefix);
    sh_ok(cmd, NULL);
    free(cmd);

    /* sluice.pc names the prefix it was installed under. */
    char *pcpath = sl_xasprintf("%s/pkgconfig/sluice.pc", libdir);
    char *pc = th_read_file(pcpath);
    cr_assert_not_null(pc, "%s not installed", pcpath);
    char *want = sl_xasprintf("prefix=%s\n", prefix);
    cr_assert(strncmp(pc, want, strlen(want)) == 0, "sluice.pc: %s", pc);
    cr_assert_null(strstr(pc, "libpq"), "the client library must not need libpq: %s", pc);

    /* Only the sluice_* API is exported. */
    char *nm = sl_xasprintf("nm -D --defined-only '%s/libsluice.so' | awk '{print $3}' | "
                            "grep -v -e '^sluice_' -e '^LIBSLUICE_' || true", libdir);
    th_result r = sh(nm, NULL);
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.out, "", "libsluice.so exports more than sluice_*:\n%s", r.out);
    th_result_free(&r);
    free(nm);

    char q[64];
    th_name(q, sizeof q, "inst");
    char *src = readme_example(q);
    char *srcpath = sl_xasprintf("%s/enqueue.c", tmp);
    FILE *f = fopen(srcpath, "w");
    cr_assert_not_null(f);
    fputs(src, f);
    cr_assert_eq(fclose(f), 0);

    char pkgpath[600];
    snprintf(pkgpath, sizeof pkgpath, "PKG_CONFIG_PATH=%s/pkgconfig", libdir);
    const char *env[] = { pkgpath, NULL };
    char *cc = sl_xasprintf("cd '%s' && cc -std=c11 -Wall -Werror " SLUICE_EXAMPLE_CFLAGS " enqueue.c "
                            "$(pkg-config --cflags --libs sluice) -o enqueue-shared", tmp);
    sh_ok(cc, env);
    free(cc);

    /* The static library: with the shared one gone, --static must suffice. */
    char *rm = sl_xasprintf("rm -f '%s'/libsluice.so*", libdir);
    sh_ok(rm, NULL);
    free(rm);
    cc = sl_xasprintf("cd '%s' && cc -std=c11 -Wall -Werror " SLUICE_EXAMPLE_CFLAGS " enqueue.c "
                      "$(pkg-config --static --cflags --libs sluice) -o enqueue-static && "
                      "! ldd enqueue-static | grep -q libsluice", tmp);
    sh_ok(cc, env);
    free(cc);

    char *exe_static = sl_xasprintf("%s/enqueue-static", tmp);
    char *id_static = run_example(exe_static, NULL);
    char *log = sl_xasprintf("%s/worker.log", tmp);
    const char *wargs[] = { "--queues", q, "--processes", "1", NULL };
    pid_t w = th_worker_start(wargs, log);
    job_wait jw = { id_static };
    bool ran = th_wait(job_succeeded, &jw, 30000);
    th_stop(w, SIGTERM, 30000);
    cr_assert(ran, "the job %s enqueued by the README example never succeeded", id_static);

    free(id_static), free(exe_static), free(log), free(src), free(srcpath);
    free(pc), free(pcpath), free(want), free(libdir), free(prefix), free(build), free(tmp);
}

Test(install, package_layout_and_units_that_systemd_accepts)
{
    char *build = build_dir(), *tmp = temp_dir();
    char *root = sl_xasprintf("%s/root", tmp);
    char *cmd = sl_xasprintf("DESTDIR='%s' cmake --install '%s' --prefix /usr >/dev/null", root, build);
    sh_ok(cmd, NULL);
    free(cmd);
    static const char *const files[] = {
        "/etc/sluice/sluice.yaml", "/etc/sluice/pipelines",
        "/usr/bin/sluice", "/usr/bin/sluice-worker", "/usr/bin/sluice-scheduler",
        "/usr/include/sluice.h",
        "/usr/lib/systemd/system/sluice-worker.service",
        "/usr/lib/systemd/system/sluice-scheduler.service",
        "/usr/lib/systemd/system/sluice-serve.service",
        "/usr/lib/sysusers.d/sluice.conf", "/usr/lib/tmpfiles.d/sluice.conf",
        "/usr/share/man/man1/sluice.1", "/usr/share/man/man1/sluice-worker.1",
        "/usr/share/man/man1/sluice-scheduler.1", "/usr/share/man/man5/sluice.yaml.5",
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *p = sl_xasprintf("%s%s", root, files[i]);
        cr_expect(file_exists(p), "not installed: %s", files[i]);
        free(p);
    }
    char *unit_path = sl_xasprintf("%s/usr/lib/systemd/system/sluice-scheduler.service", root);
    char *unit = th_read_file(unit_path);
    cr_assert_not_null(unit);
    cr_expect_not_null(strstr(unit, "ExecStart=/usr/bin/sluice-scheduler --config /etc/sluice/sluice.yaml "
                                    "--pipelines /etc/sluice/pipelines"), "%s", unit);
    cr_expect_not_null(strstr(unit, "LoadCredential=database_url:/etc/sluice/credentials/database_url"));
    cr_expect_null(strstr(unit, "EnvironmentFile"), "secrets must not travel in the environment");
    char *tmpfiles_path = sl_xasprintf("%s/usr/lib/tmpfiles.d/sluice.conf", root);
    char *tmpfiles = th_read_file(tmpfiles_path);
    cr_assert_not_null(tmpfiles);
    cr_expect_not_null(strstr(tmpfiles, "d /etc/sluice/pipelines"), "%s", tmpfiles);
    free(unit), free(unit_path), free(tmpfiles), free(tmpfiles_path);

    /* A prefix install: its units name binaries that exist, so systemd's
     * own checker can verify everything in them. */
    char *prefix = sl_xasprintf("%s/opt", tmp);
    cmd = sl_xasprintf("cmake --install '%s' --prefix '%s' >/dev/null", build, prefix);
    sh_ok(cmd, NULL);
    free(cmd);
    cmd = sl_xasprintf("systemd-analyze verify '%s'/lib/systemd/system/sluice-*.service", prefix);
    th_result r = sh(cmd, NULL);
    cr_assert_eq(r.status, 0, "systemd-analyze verify: %s%s", r.out, r.err);
    cr_expect_str_eq(r.err, "", "systemd-analyze verify warned: %s", r.err);
    th_result_free(&r);
    free(cmd);

    /* The installed worker reads the configuration of its own prefix. */
    char *worker = sl_xasprintf("%s/bin/sluice-worker", prefix);
    const char *argv[] = { worker, "--help", NULL };
    r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0);
    char *conf = sl_xasprintf("%s/etc/sluice/sluice.yaml", prefix);
    cr_expect_not_null(strstr(r.out, conf), "--help does not name %s:\n%s", conf, r.out);
    th_result_free(&r);
    free(conf), free(worker), free(prefix), free(root), free(build), free(tmp);
}
