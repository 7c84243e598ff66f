/* registry.c: the list of job kinds.  Adding a kind: write jobs/<kind>.c
 * defining `const sl_kind sl_kind_<name>`, declare it below, and add it to
 * the table.
 *
 * The test kinds (jobs/testkinds.c: sleep, fail, crash) sit after the
 * real ones and exist only when the process's environment says
 * SLUICE_TEST_KINDS=1: a production worker must never run a job that
 * aborts it on request.  The environment is read on every look-up (no
 * state is kept), so a process sees one answer for its whole life unless
 * it changes its own environment. */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

extern const sl_kind sl_kind_noop;
extern const sl_kind sl_kind_sleep;
extern const sl_kind sl_kind_fail;
extern const sl_kind sl_kind_crash;
extern const sl_kind sl_kind_deploy;
extern const sl_kind sl_kind_import;
extern const sl_kind sl_kind_codegen;
extern const sl_kind sl_kind_provision;
extern const sl_kind sl_kind_notify;

/* Real kinds first, then NTEST test kinds. */
static const sl_kind *const kinds[] = {
    &sl_kind_noop,
    &sl_kind_deploy,
    &sl_kind_import,
    &sl_kind_codegen,
    &sl_kind_provision,
    &sl_kind_notify,
    &sl_kind_sleep,
    &sl_kind_fail,
    &sl_kind_crash,
};
#define NTEST 3

bool sl_registry_test_kinds(void)
{
    const char *v = getenv(SL_TEST_KINDS_ENV);
    return v != NULL && strcmp(v, "1") == 0;
}

static size_t registry_size(void)
{
    size_t all = sizeof kinds / sizeof kinds[0];
    return sl_registry_test_kinds() ? all : all - NTEST;
}

const sl_kind *sl_registry_find(const char *name)
{
    size_t n = registry_size();
    for (size_t i = 0; i < n; i++) {
        if (strcmp(kinds[i]->name, name) == 0)
            return kinds[i];
    }
    return NULL;
}

const sl_kind *const *sl_registry_all(size_t *n)
{
    *n = registry_size();
    return kinds;
}
