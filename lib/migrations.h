/* migrations.h: the SQL migrations compiled into libsluice.
 *
 * migrations/NNN_name.sql become this array at build time
 * (cmake/embed_migrations.cmake), sorted by version.  lib/store.c applies
 * them; nothing else should need this header. */
#ifndef SL_MIGRATIONS_H
#define SL_MIGRATIONS_H

#include <stddef.h>

typedef struct sl_migration {
    int version;       /* NNN from the file name */
    const char *name;  /* file name without .sql */
    const char *sql;   /* the file's text, run in one transaction */
} sl_migration;

extern const sl_migration sl_migrations[];
extern const size_t sl_migrations_count;

#endif
