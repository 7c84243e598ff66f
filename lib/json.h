/* json.h: JSON <-> MessagePack, for the places where humans and PostgreSQL
 * meet the wire format.
 *
 * `sluice enqueue --json ARGS` turns JSON into the MessagePack `args` map;
 * the worker stores `args` and a job's `outputs` in PostgreSQL as jsonb; the
 * CLI prints them.  Mapping: object <-> map (string keys), array <-> array,
 * string <-> str, integer <-> int (int64/uint64), number with fraction or
 * exponent <-> float64, true/false <-> bool, null <-> nil.  bin and ext
 * MessagePack values are written as JSON strings in base64 (bin) or
 * rejected (ext); non-string map keys are written as their JSON text in a
 * string.  The parser is strict RFC 8259 (no comments, no trailing commas,
 * no NaN), rejects nesting deeper than 64 and invalid UTF-8, and reports the
 * byte offset of the first error. */
#ifndef SL_JSON_H
#define SL_JSON_H

#include <stddef.h>

#include <msgpack.h>

#include "buf.h"
#include "err.h"

/* Parses exactly one JSON value from text[0..len) (surrounding whitespace
 * allowed) and packs it into pk.  On error returns -1 with err (SL_EINVAL,
 * "JSON at byte N: what was expected").  The text is fully validated before
 * anything is packed, so after a syntax error pk has received nothing; only
 * a failing pk writer can leave a partial value behind. */
int sl_json_to_msgpack(const char *text, size_t len, msgpack_packer *pk, sl_err *err);

/* Appends o as compact JSON text to out.  Returns -1 with err (SL_EINVAL)
 * for values JSON cannot hold (ext, NaN/Infinity) or nested deeper than the
 * parser accepts (64), leaving out as it was. */
int sl_json_from_msgpack(const msgpack_object *o, sl_buf *out, sl_err *err);

/* Appends s[0..n) to out as a quoted JSON string, escaping as needed.
 * Invalid UTF-8 bytes are written as U+FFFD. */
void sl_json_put_string(sl_buf *out, const char *s, size_t n);

#endif
