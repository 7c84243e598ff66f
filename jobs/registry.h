/* registry.h: every job kind this build of sluice can run. */
#ifndef SL_REGISTRY_H
#define SL_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "kind.h"

/* The environment variable that enables the test kinds (sleep, fail,
 * crash) when it is "1".  Tests, benchmarks and the demo set it; a
 * production worker never should. */
#define SL_TEST_KINDS_ENV "SLUICE_TEST_KINDS"

/* True when the test kinds are enabled in this process. */
bool sl_registry_test_kinds(void);

/* Returns the kind called name, or NULL if there is none (a test kind
 * counts only while they are enabled). */
const sl_kind *sl_registry_find(const char *name);

/* Returns the table of the kinds available and sets *n to its length. */
const sl_kind *const *sl_registry_all(size_t *n);

#endif
