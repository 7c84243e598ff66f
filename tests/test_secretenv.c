/* test_secretenv.c: lib/secretenv.c — a variable taken out of the
 * environment is gone from /proc/self/environ (the bytes the kernel shows
 * other processes), yet still readable through sl_secretenv_get. */
#include "harness.h"
#include "secretenv.h"

#include "mem.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* /proc/self/environ with its NULs turned into newlines. */
static char *proc_environ(void)
{
    int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    sl_buf b = SL_BUF_INIT;
    char chunk[4096];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0)
        sl_buf_append(&b, chunk, (size_t)r);
    close(fd);
    for (size_t i = 0; i < b.len; i++)
        if (b.data[i] == '\0')
            b.data[i] = '\n';
    return b.len ? sl_buf_detach(&b) : sl_xstrdup("");
}

Test(secretenv, a_taken_variable_leaves_proc_environ_but_stays_readable)
{
    /* DATABASE_URL was in this process's environment when it started */
    char *value = sl_xstrdup(th_env("DATABASE_URL"));
    char *before = proc_environ();
    cr_assert(strstr(before, value), "the test's premise: the URL is in /proc/self/environ");
    sl_secretenv_take("DATABASE_URL");
    cr_assert_null(getenv("DATABASE_URL"), "still in environ");
    const char *got = sl_secretenv_get("DATABASE_URL");
    cr_assert_str_eq(got ? got : "", value);
    char *after = proc_environ();
    cr_assert(!strstr(after, "\nDATABASE_URL=") && strncmp(after, "DATABASE_URL=", 13) != 0,
              "still in /proc/self/environ");
    cr_assert(strstr(after, "SLUICE_DATABASE_URL=") || !strstr(before, "SLUICE_DATABASE_URL="),
              "a variable with a longer name was touched");
    /* taking it again keeps the first value; unknown names are harmless */
    sl_secretenv_take("DATABASE_URL");
    cr_assert_str_eq(sl_secretenv_get("DATABASE_URL"), value);
    sl_secretenv_take("NO_SUCH_VARIABLE_HERE");
    cr_assert_null(sl_secretenv_get("NO_SUCH_VARIABLE_HERE"));
    free(value), free(before), free(after);
}

Test(secretenv, protect_makes_the_process_not_dumpable)
{
    cr_assert_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
    cr_assert_eq(sl_secretenv_protect(), 0);
    cr_assert_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
}
