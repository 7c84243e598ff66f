/* test_config_sched.c: the scheduler's sections of etc/sluice.yaml
 * (lib/config_sched.c, reached through sl_config_load): values, defaults,
 * approver groups, and errors at the right line and column. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_sched.h"
#include "config_worker.h"
#include "harness.h"

TH_REGISTER_CONFIG_SECTIONS

static char path[64];

static void write_config(const char *text)
{
    snprintf(path, sizeof path, "/tmp/sluice-csched-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static void teardown(void)
{
    if (path[0])
        unlink(path);
}

TestSuite(config_sched, .fini = teardown);

Test(config_sched, defaults)
{
    sl_config *cfg = sl_config_defaults();
    cr_assert_str_eq(sl_sched_config_of(cfg)->pipelines, "pipelines");
    cr_assert_eq(sl_sched_config_of(cfg)->reconcile_ms, 5000);
    cr_assert_eq(sl_sched_config_of(cfg)->standby_poll_ms, 1000);
    cr_assert_eq(sl_sched_config_of(cfg)->ngroups, 0);
    cr_assert_null(sl_sched_config_of(cfg)->audit_key_file);
    sl_config_free(cfg);
}

Test(config_sched, values_and_groups)
{
    write_config("worker: {processes: 3}\n"
                 "scheduler:\n  pipelines: /etc/sluice/pipelines\n  reconcile: 2s\n  standby_poll: 250ms\n"
                 "  audit_key_file: /etc/sluice/scheduler-audit.key\n"
                 "groups:\n  leads: [alice, bob]\n  ops: []\n");
    sl_err err;
    sl_config *cfg = sl_config_load(path, &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_eq(sl_worker_config_of(cfg)->processes, 3);
    cr_assert_str_eq(sl_sched_config_of(cfg)->pipelines, "/etc/sluice/pipelines");
    cr_assert_eq(sl_sched_config_of(cfg)->reconcile_ms, 2000);
    cr_assert_eq(sl_sched_config_of(cfg)->standby_poll_ms, 250);
    cr_assert_str_eq(sl_sched_config_of(cfg)->audit_key_file, "/etc/sluice/scheduler-audit.key");
    const sl_group *g = sl_sched_config_group(sl_sched_config_of(cfg), "leads");
    cr_assert_not_null(g);
    cr_assert_eq(g->nusers, 2);
    cr_assert_str_eq(g->users[1], "bob");
    cr_assert_not_null(sl_sched_config_group(sl_sched_config_of(cfg), "ops"));
    cr_assert_null(sl_sched_config_group(sl_sched_config_of(cfg), "nobody"));
    sl_config_free(cfg);
}

static void expect_error(const char *text, const char *msg)
{
    write_config(text);
    sl_err err;
    sl_config *cfg = sl_config_load(path, &err);
    cr_assert_null(cfg, "loaded a bad configuration: %s", text);
    char *want = NULL;
    cr_assert(asprintf(&want, "%s:%s", path, msg) > 0);
    cr_assert(strncmp(err.msg, want, strlen(want)) == 0, "got '%s', want '%s…'", err.msg, want);
    free(want);
    unlink(path);
    path[0] = '\0';
}

Test(config_sched, errors)
{
    expect_error("scheduler:\n  reconcile: 5\n", "2:14: 'scheduler.reconcile'");
    expect_error("scheduler:\n  reconcile: 2h\n", "2:14: 'scheduler.reconcile' must be between 100ms and 1h");
    expect_error("scheduler:\n  pipeline: x\n", "2:3: unknown key 'pipeline' in 'scheduler'");
    expect_error("scheduler: [a]\n", "1:12: 'scheduler' must be a mapping");
    expect_error("groups:\n  leads: alice\n", "2:10: 'groups.leads' must be a list");
    expect_error("groups:\n  leads: [alice, [bob]]\n", "2:18: 'groups.leads' must be");
}
