/* test_stage.c: jobs/stage: staging files published atomically (both the
 * O_TMPFILE and the named kind), replacing what was there. */
#include "harness.h"
#include "kindtest.h"

#include "mem.h"
#include "stage.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dir;

static void setup(void)
{
    dir = th_tempdir("stage");
}

static void teardown(void)
{
    th_rmtree(dir);
    free(dir);
}

TestSuite(stage, .init = setup, .fini = teardown);

static void publish_and_check(int fd, char *named, const char *text)
{
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    char *final = sl_xasprintf("%s/result", dir);
    sl_err err;
    cr_assert_eq(sl_stage_publish(fd, named, dir, ".st-", final, &err), 0, "%s", err.msg);
    close(fd);
    char *got = th_read_file(final);
    cr_assert_str_eq(got ? got : "", text);
    cr_assert_eq(th_dir_entries(dir), 1, "a staging name is left");
    free(got), free(final), free(named);
}

Test(stage, a_staging_file_is_published_under_its_name)
{
    char *named;
    sl_err err;
    int fd = sl_stage_file(dir, ".st-", &named, &err);
    cr_assert_geq(fd, 0, "%s", err.msg);
    cr_assert_eq(th_dir_entries(dir), named ? 1 : 0);
    publish_and_check(fd, named, "first");
    /* again, replacing it */
    fd = sl_stage_file(dir, ".st-", &named, &err);
    cr_assert_geq(fd, 0, "%s", err.msg);
    publish_and_check(fd, named, "second");
}

Test(stage, a_named_staging_file_is_renamed)
{
    char *named = sl_stage_template(dir, ".st-");
    cr_assert(strstr(named, ".st-") != NULL);
    int fd = mkstemp(named);
    cr_assert_geq(fd, 0);
    publish_and_check(fd, named, "named");
}
