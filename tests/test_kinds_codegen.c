/* test_kinds_codegen.c: the codegen kind (jobs/codegen.c): the template
 * language, the rendered tree and its digest, and every route out of the
 * roots (argument names, symlinks, rendered names). */
#include "harness.h"
#include "kindtest.h"

#include "mem.h"
#include "sha256.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *troot, *oroot;

static void setup(void)
{
    troot = th_tempdir("codegen-templates");
    oroot = th_tempdir("codegen-out");
}

static void teardown(void)
{
    th_rmtree(troot);
    th_rmtree(oroot);
    free(troot);
    free(oroot);
}

TestSuite(codegen, .init = setup, .fini = teardown);

static char *config(void)
{
    return sl_xasprintf("codegen:\n  template_root: %s\n  output_root: %s\n  max_files: 20\n"
                        "  max_bytes: 100000\n", troot, oroot);
}

/* Writes a template file (creating its directories); rel is under troot. */
static void put(const char *rel, const char *text, mode_t mode)
{
    char *path = sl_xasprintf("%s/%s", troot, rel);
    for (char *p = path + strlen(troot) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
    cr_assert_eq(chmod(path, mode), 0);
    free(path);
}

static char *out_file(const char *dir, const char *rel)
{
    char *path = sl_xasprintf("%s/%s/%s", oroot, dir, rel);
    char *text = th_read_file(path);
    free(path);
    return text;
}


static void hex_of(const char *s, char hex[SL_SHA256_HEX])
{
    unsigned char d[SL_SHA256_LEN];
    sl_sha256_digest(s, strlen(s), d);
    sl_sha256_hex(d, hex);
}

Test(codegen, renders_a_tree_with_sections_filters_and_templated_names)
{
    put("svc/README.md", "# {{name}}\n{{! a comment }}{{#features}}- {{.}}\n{{/features}}"
        "{{^features}}no features{{/features}}\\{{kept}} {{base.image}}\n", 0644);
    put("svc/{{name}}/main.c", "const char *n = {{name|json}}; /* {{note|html}} */\n", 0644);
    put("svc/{{#docker}}Dockerfile{{~docker}}", "FROM {{base.image}}\n", 0644);
    put("svc/run.sh", "exec app {{arg|shell}}\n{{#people}}{{first}} {{last}} of {{name}}\n{{/people}}", 0755);
    char *cfg = config();
    th_call c = th_kind_call("codegen", cfg,
        "{\"template\": \"svc\", \"output\": \"shop-1\", \"vars\": {\"name\": \"shop\", "
        "\"features\": [\"auth\", \"cart\"], \"docker\": false, \"base\": {\"image\": \"debian:12\"}, "
        "\"arg\": \"it's $(rm -rf /)\", \"note\": \"<b>&\", "
        "\"people\": [{\"first\": \"Ada\", \"last\": \"L\"}, {\"first\": \"Bo\", \"last\": \"M\"}]}}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    char *readme = out_file("shop-1", "README.md");
    cr_assert_str_eq(readme ? readme : "", "# shop\n- auth\n- cart\n{{kept}} debian:12\n");
    char *main_c = out_file("shop-1", "shop/main.c");
    cr_assert_str_eq(main_c ? main_c : "", "const char *n = \"shop\"; /* &lt;b&gt;&amp; */\n");
    char *run = out_file("shop-1", "run.sh");
    cr_assert_str_eq(run ? run : "", "exec app 'it'\\''s $(rm -rf /)'\nAda L of shop\nBo M of shop\n");
    char *docker = out_file("shop-1", "Dockerfile");
    cr_assert_null(docker, "a name rendering empty must leave the file out");
    char *run_path = sl_xasprintf("%s/shop-1/run.sh", oroot);
    struct stat st;
    cr_assert_eq(stat(run_path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0755, "the executable bit is kept");
    /* outputs: the files in path order with sizes and hashes, and the digest of the manifest */
    char h_readme[SL_SHA256_HEX], h_run[SL_SHA256_HEX], h_main[SL_SHA256_HEX], h_all[SL_SHA256_HEX];
    hex_of(readme, h_readme), hex_of(run, h_run), hex_of(main_c, h_main);
    char *manifest = sl_xasprintf("%s  README.md\n%s  run.sh\n%s  shop/main.c\n", h_readme, h_run, h_main);
    hex_of(manifest, h_all);
    char *want = sl_xasprintf("\"files\":[{\"path\":\"README.md\",\"bytes\":%zu,\"sha256\":\"%s\"},"
                              "{\"path\":\"run.sh\",\"bytes\":%zu,\"sha256\":\"%s\"},"
                              "{\"path\":\"shop/main.c\",\"bytes\":%zu,\"sha256\":\"%s\"}],"
                              "\"digest\":\"%s\"", strlen(readme), h_readme, strlen(run), h_run,
                              strlen(main_c), h_main, h_all);
    cr_assert(th_has(c.outputs, want), "outputs %s\nlack %s", c.outputs, want);
    char *dir = sl_xasprintf("\"dir\":\"%s/shop-1\"", oroot);
    cr_assert(th_has(c.outputs, dir), "%s", c.outputs);
    cr_assert_eq(th_dir_entries(oroot), 1, "only the finished tree is in the output root");
    th_call_free(&c);
    free(readme), free(main_c), free(run), free(run_path), free(manifest), free(want), free(dir), free(cfg);
}

static void expect_fail(th_call *c, int code, const char *text)
{
    th_expect_fail(c, code, text, oroot);
}

Test(codegen, template_and_output_names_cannot_leave_the_roots)
{
    put("ok/a.txt", "a", 0644);
    char *cfg = config();
    const char *bad[] = { "../ok", "/etc", "..", "ok/../ok", ".hidden" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *args = sl_xasprintf("{\"template\": \"%s\"}", bad[i]);
        th_call c = th_kind_call("codegen", cfg, args, 0);
        expect_fail(&c, SL_EINVAL, "argument 'template'");
        free(args);
    }
    th_call c = th_kind_call("codegen", cfg, "{\"template\": \"ok\", \"output\": \"../../tmp/x\"}", 0);
    expect_fail(&c, SL_EINVAL, "argument 'output'");
    c = th_kind_call("codegen", cfg, "{\"template\": \"missing\"}", 0);
    expect_fail(&c, SL_EINVAL, "no template directory 'missing'");
    free(cfg);
}

Test(codegen, symlinks_in_templates_are_refused)
{
    put("t1/a.txt", "a", 0644);
    char *link = sl_xasprintf("%s/t1/passwd", troot);
    cr_assert_eq(symlink("/etc/passwd", link), 0);
    put("t2/sub/b.txt", "b", 0644);
    char *dlink = sl_xasprintf("%s/t2/etc", troot);
    cr_assert_eq(symlink("/etc", dlink), 0);
    char *tlink = sl_xasprintf("%s/t3", troot);
    cr_assert_eq(symlink("/etc", tlink), 0);
    char *cfg = config();
    th_call c = th_kind_call("codegen", cfg, "{\"template\": \"t1\"}", 0);
    expect_fail(&c, SL_EPERMANENT, "template t1/passwd is a symlink: refused");
    c = th_kind_call("codegen", cfg, "{\"template\": \"t2\"}", 0);
    expect_fail(&c, SL_EPERMANENT, "template t2/etc is a symlink: refused");
    c = th_kind_call("codegen", cfg, "{\"template\": \"t3\"}", 0);
    expect_fail(&c, SL_EPERMANENT, "argument 'template': no template directory 't3'");
    free(cfg), free(link), free(dlink), free(tlink);
}

Test(codegen, names_rendering_outside_the_output_are_refused)
{
    put("t/{{file}}", "x", 0644);
    put("d/{{dir}}/f.txt", "x", 0644);
    char *cfg = config();
    const char *bad[] = { "..", ".", "../../etc/cron.d/evil", "/etc/passwd", "a/b" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *args = sl_xasprintf("{\"template\": \"t\", \"vars\": {\"file\": \"%s\"}}", bad[i]);
        th_call c = th_kind_call("codegen", cfg, args, 0);
        expect_fail(&c, SL_EINVAL, "which is not a plain file name");
        free(args);
        args = sl_xasprintf("{\"template\": \"d\", \"vars\": {\"dir\": \"%s\"}}", bad[i]);
        c = th_kind_call("codegen", cfg, args, 0);
        expect_fail(&c, SL_EINVAL, "it would leave the output directory");
        free(args);
    }
    free(cfg);
}

Test(codegen, template_errors_name_file_line_and_column)
{
    put("e1/a.txt", "line one\n  {{nope}}\n", 0644);
    put("e2/a.txt", "{{#list}}never closed", 0644);
    put("e3/a.txt", "{{m}}", 0644);
    put("e4/a.txt", "{{x|perl}}", 0644);
    char *cfg = config();
    th_call c = th_kind_call("codegen", cfg, "{\"template\": \"e1\"}", 0);
    expect_fail(&c, SL_EINVAL, "template e1/a.txt:2:3: variable 'nope' is not set");
    c = th_kind_call("codegen", cfg, "{\"template\": \"e2\", \"vars\": {\"list\": [1]}}", 0);
    expect_fail(&c, SL_EINVAL, "template e2/a.txt:1:1: section 'list' is never closed");
    c = th_kind_call("codegen", cfg, "{\"template\": \"e3\", \"vars\": {\"m\": {\"a\": 1}}}", 0);
    expect_fail(&c, SL_EINVAL, "variable 'm' is not a string, number or boolean");
    c = th_kind_call("codegen", cfg, "{\"template\": \"e4\", \"vars\": {\"x\": 1}}", 0);
    expect_fail(&c, SL_EINVAL, "unknown filter");
    c = th_kind_call("codegen", cfg, "{\"template\": \"e1\", \"vars\": [1]}", 0);
    expect_fail(&c, SL_EINVAL, "argument 'vars': expected a map");
    free(cfg);
}

Test(codegen, an_existing_output_is_never_replaced)
{
    put("t/a.txt", "{{v}}", 0644);
    char *cfg = config();
    th_call c = th_kind_call("codegen", cfg, "{\"template\": \"t\", \"output\": \"o\", \"vars\": {\"v\": 1}}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    th_call_free(&c);
    c = th_kind_call("codegen", cfg, "{\"template\": \"t\", \"output\": \"o\", \"vars\": {\"v\": 2}}", 0);
    cr_assert_eq(c.err.code, SL_EPERMANENT);
    cr_assert(th_has(c.err.msg, "an output of that name exists"), "%s", c.err.msg);
    th_call_free(&c);
    char *text = out_file("o", "a.txt");
    cr_assert_str_eq(text, "1");
    cr_assert_eq(th_dir_entries(oroot), 1, "the aborted second tree was left behind");
    free(text), free(cfg);
}

Test(codegen, staging_trees_of_dead_workers_are_swept)
{
    pid_t dead = fork();
    cr_assert_geq(dead, 0);
    if (dead == 0)
        _exit(0);
    cr_assert_eq(waitpid(dead, NULL, 0), dead);
    char *stale = sl_xasprintf("%s/.sluice-codegen-%ld-abcdef", oroot, (long)dead);
    char *live = sl_xasprintf("%s/.sluice-codegen-%ld-abcdef", oroot, (long)getpid());
    char *inner = sl_xasprintf("%s/half-written.txt", stale);
    cr_assert_eq(mkdir(stale, 0755), 0);
    cr_assert_eq(mkdir(live, 0755), 0);
    FILE *f = fopen(inner, "w");
    cr_assert_not_null(f);
    fclose(f);
    put("t/a.txt", "a", 0644);
    char *cfg = config();
    th_call c = th_kind_call("codegen", cfg, "{\"template\": \"t\", \"output\": \"o\"}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert_neq(access(stale, F_OK), 0, "the dead worker's staging tree is still there");
    cr_assert_eq(access(live, F_OK), 0, "a live worker's staging tree was removed");
    th_call_free(&c);
    free(stale), free(live), free(inner), free(cfg);
}

Test(codegen, end_to_end_through_a_worker)
{
    put("svc/{{name}}.txt", "hello {{name}}\n", 0644);
    char *cfg = config();
    th_row row = th_kind_e2e("codegen", cfg, "{\"template\": \"svc\", \"output\": \"e2e\", "
                             "\"vars\": {\"name\": \"world\"}}", 0);
    cr_assert_str_eq(row.status, "succeeded", "error: %s", row.error);
    cr_assert(th_has(row.outputs, "\"path\": \"world.txt\""), "%s", row.outputs);
    char *text = out_file("e2e", "world.txt");
    cr_assert_str_eq(text ? text : "", "hello world\n");
    th_row_free(&row);
    free(text), free(cfg);
}

/* Peak resident memory of this process, in kB. */
static long peak_rss_kb(void)
{
    char *status = th_read_file("/proc/self/status");
    cr_assert_not_null(status);
    const char *p = strstr(status, "VmHWM:");
    long kb = p ? strtol(p + 6, NULL, 10) : -1;
    free(status);
    cr_assert_gt(kb, 0);
    return kb;
}

Test(codegen, the_byte_budget_stops_rendering_as_soon_as_it_is_passed)
{
    /* four nested sections over 100 items around 100 bytes: 10^10 bytes if
     * rendered in full, from a template of a few hundred bytes */
    char body[101];
    memset(body, 'x', 100);
    body[100] = '\0';
    char *text = sl_xasprintf("{{#l}}{{#l}}{{#l}}{{#l}}%s{{/l}}{{/l}}{{/l}}{{/l}}", body);
    put("big/a.txt", text, 0644);
    sl_buf args = SL_BUF_INIT;
    sl_buf_puts(&args, "{\"template\": \"big\", \"vars\": {\"l\": [");
    for (int i = 0; i < 100; i++)
        sl_buf_printf(&args, "%s%d", i ? "," : "", i);
    sl_buf_puts(&args, "]}}");
    long before = peak_rss_kb();
    char *cfg = config();
    th_call c = th_kind_call("codegen", cfg, sl_buf_str(&args), 0);
    expect_fail(&c, SL_EPERMANENT, "template big renders more than codegen.max_bytes (100000 bytes in all)");
    cr_assert_lt(peak_rss_kb() - before, 20 * 1024, "rendering held far more than codegen.max_bytes");
    /* the budget is the job's, not each file's: two files of 60 kB pass 100 kB together */
    put("two/a.txt", "{{#l}}{{#m}}0123456789{{/m}}{{/l}}", 0644);   /* 100*60*10 = 60 kB */
    put("two/b.txt", "{{#l}}{{#m}}0123456789{{/m}}{{/l}}", 0644);
    sl_buf args2 = SL_BUF_INIT;
    sl_buf_puts(&args2, "{\"template\": \"two\", \"vars\": {\"l\": [");
    for (int i = 0; i < 100; i++)
        sl_buf_printf(&args2, "%s%d", i ? "," : "", i);
    sl_buf_puts(&args2, "], \"m\": [");
    for (int i = 0; i < 60; i++)
        sl_buf_printf(&args2, "%s%d", i ? "," : "", i);
    sl_buf_puts(&args2, "]}}");
    c = th_kind_call("codegen", cfg, sl_buf_str(&args2), 0);
    expect_fail(&c, SL_EPERMANENT, "two/b.txt");
    sl_buf_free(&args), sl_buf_free(&args2);
    free(text), free(cfg);
}

Test(codegen, nested_sections_are_bounded_by_work_not_only_bytes)
{
    /* 30 nested sections over a two-item list render nothing, 2^30 times */
    sl_buf t = SL_BUF_INIT;
    for (int i = 0; i < 30; i++)
        sl_buf_puts(&t, "{{#l}}");
    for (int i = 0; i < 30; i++)
        sl_buf_puts(&t, "{{/l}}");
    put("deep/a.txt", sl_buf_str(&t), 0644);
    put("deep/{{#l}}{{#l}}{{#l}}{{~l}}{{~l}}{{~l}}", "", 0644);
    char *cfg = sl_xasprintf("codegen:\n  template_root: %s\n  output_root: %s\n", troot, oroot);
    th_call c = th_kind_call("codegen", cfg, "{\"template\": \"deep\", \"vars\": {\"l\": [1, 2]}}", 0);
    cr_assert(th_has(c.err.msg, "template deep/a.txt:1:"), "%s", c.err.msg);
    expect_fail(&c, SL_EPERMANENT, "more than codegen.max_steps steps of work");
    /* the same template over a one-item list is cheap and renders */
    c = th_kind_call("codegen", cfg, "{\"template\": \"deep\", \"output\": \"ok\", \"vars\": {\"l\": [1]}}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    th_call_free(&c);
    sl_buf_free(&t);
    free(cfg);
}

Test(codegen, a_name_cannot_render_past_the_longest_file_name)
{
    put("n/{{#l}}{{#l}}{{#l}}{{#l}}name{{~l}}{{~l}}{{~l}}{{~l}}", "x", 0644);
    char *cfg = config();
    sl_buf args = SL_BUF_INIT;
    sl_buf_puts(&args, "{\"template\": \"n\", \"vars\": {\"l\": [");
    for (int i = 0; i < 100; i++)
        sl_buf_printf(&args, "%s%d", i ? "," : "", i);
    sl_buf_puts(&args, "]}}");
    th_call c = th_kind_call("codegen", cfg, sl_buf_str(&args), 0);
    expect_fail(&c, SL_EPERMANENT, "the longest file name (255 bytes)");
    sl_buf_free(&args);
    free(cfg);
}

Test(codegen, numbers_print_in_their_shortest_round_trip_form)
{
    put("num/a.txt", "{{f}} {{f|json}} {{g}} {{big}} {{neg}}", 0644);
    char *cfg = config();
    th_call c = th_kind_call("codegen", cfg, "{\"template\": \"num\", \"output\": \"num\", \"vars\": "
                             "{\"f\": 0.1, \"g\": 2.5e-7, \"big\": 1e300, \"neg\": -0.3}}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    char *text = out_file("num", "a.txt");
    cr_assert_str_eq(text ? text : "", "0.1 0.1 2.5e-07 1e+300 -0.3");
    th_call_free(&c);
    free(text), free(cfg);
}
