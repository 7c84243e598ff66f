/* jsonval.h: a JSON text read into a msgpack object, for the scheduler's
 * reads of jsonb columns (variables, step outputs, gate inputs), which are
 * then looked up with sl_args_get.  The object lives as long as the
 * sl_jsonval that holds it. */
#ifndef SL_JSONVAL_H
#define SL_JSONVAL_H

#include <stdbool.h>

#include <msgpack.h>

typedef struct sl_jsonval {
    msgpack_sbuffer sb;     /* the packed bytes */
    msgpack_unpacked up;    /* up.data is the value when ok */
    bool ok;                /* false for NULL or unparseable text */
} sl_jsonval;

/* Parses json (may be NULL) into j; check j->ok.  Free with sl_jsonval_free. */
void sl_jsonval_init(sl_jsonval *j, const char *json);
void sl_jsonval_free(sl_jsonval *j);

#endif
