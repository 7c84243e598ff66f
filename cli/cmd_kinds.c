/* cmd_kinds.c: `sluice kinds`: the job kinds compiled into this build. */
#include "cli.h"
#include "registry.h"

#include <stdio.h>
#include <string.h>

int cmd_kinds(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("Usage: sluice kinds\n\nLists the job kinds this build of sluice can run.  The test kinds\n"
               "(sleep, fail, crash) are listed only when SLUICE_TEST_KINDS=1 is set.\n");
        return CLI_OK;
    }
    if (argc > 1)
        return cli_usage_error("kinds", "unexpected argument '%s'", argv[1]);
    size_t n;
    const sl_kind *const *kinds = sl_registry_all(&n);
    for (size_t i = 0; i < n; i++)
        printf("%-10s %s\n", kinds[i]->name, kinds[i]->summary);
    return CLI_OK;
}
