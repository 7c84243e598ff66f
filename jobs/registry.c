/* registry.c: the list of job kinds.  Adding a kind: write jobs/<kind>.c
 * defining `const sl_kind sl_kind_<name>`, declare it below, and add it to
 * the table. */
#include "registry.h"

#include <string.h>

extern const sl_kind sl_kind_noop;
extern const sl_kind sl_kind_sleep;
extern const sl_kind sl_kind_fail;
extern const sl_kind sl_kind_crash;
extern const sl_kind sl_kind_deploy;
extern const sl_kind sl_kind_import;
extern const sl_kind sl_kind_codegen;
extern const sl_kind sl_kind_provision;

static const sl_kind *const kinds[] = {
    &sl_kind_noop,
    &sl_kind_sleep,
    &sl_kind_fail,
    &sl_kind_crash,
    &sl_kind_deploy,
    &sl_kind_import,
    &sl_kind_codegen,
    &sl_kind_provision,
};

const sl_kind *sl_registry_find(const char *name)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(kinds[i]->name, name) == 0)
            return kinds[i];
    }
    return NULL;
}

const sl_kind *const *sl_registry_all(size_t *n)
{
    *n = sizeof kinds / sizeof kinds[0];
    return kinds;
}
