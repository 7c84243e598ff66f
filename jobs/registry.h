/* registry.h: every job kind this build of sluice can run. */
#ifndef SL_REGISTRY_H
#define SL_REGISTRY_H

#include <stddef.h>

#include "kind.h"

/* Returns the kind called name, or NULL if there is none. */
const sl_kind *sl_registry_find(const char *name);

/* Returns the table of all kinds and sets *n to its length. */
const sl_kind *const *sl_registry_all(size_t *n);

#endif
