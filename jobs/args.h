/* args.h: typed access to a job's arguments (the envelope's `args` map).
 *
 * Each getter looks a key up in the map; a missing key returns the default
 * (or, for required keys, fails), and a value of the wrong type fails with
 * a message naming the argument: "argument 'ms': expected integer, got str". */
#ifndef SL_ARGS_H
#define SL_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

#include "err.h"

/* Returns the value stored under key, or NULL. */
const msgpack_object *sl_args_get(const msgpack_object *args, const char *key);

/* String argument: *out points into the args (valid while they are), as a
 * fresh NUL-terminated copy the caller frees.  Absent: *out = NULL, or an
 * error when required.  Strings with NUL bytes are refused. */
int sl_args_str(const msgpack_object *args, const char *key, bool required, char **out, sl_err *err);

/* Integer argument in [min, max]; absent: *out = dflt, or an error when required.
 * A string of digits is accepted too (so `sluice enqueue --arg ms=300` works). */
int sl_args_int(const msgpack_object *args, const char *key, bool required, int64_t dflt,
                int64_t min, int64_t max, int64_t *out, sl_err *err);


#endif
