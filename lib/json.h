/* json.h: JSON <-> MessagePack, for the places where humans and PostgreSQL
 * meet the wire format.
 *
 * `sluice enqueue --json ARGS` turns JSON into the MessagePack `args` map;
 * the worker stores `args` and a job's `outputs` in PostgreSQL as jsonb; the
 * CLI prints them.  Mapping: object <-> map (string keys), array <-> array,
 * string <-> str, integer <-> int (int64/uint64), number with fraction or
 * exponent <-> float64, true/false <-> bool, null <-> nil.  bin and ext
 * MessagePack values are written as JSON strings in base64 (bin) or
 * rejected (ext).
 *
 * Both directions hold to what PostgreSQL's jsonb can store and what the
 * wire format can carry, so that a value is refused where it enters, with
 * its position, rather than lost later:
 *   - no U+0000 in any string, key or value (jsonb refuses it);
 *   - no duplicate keys in one object (jsonb keeps the last one, a handler
 *     reading the MessagePack map would see the first);
 *   - strings are valid UTF-8 (never replaced by U+FFFD behind a handler's
 *     back);
 *   - object keys are strings (a MessagePack map with other keys is refused,
 *     not turned into a key holding JSON text);
 *   - at most SL_JSON_MAX_DEPTH containers nested, the outermost included.
 * The parser is otherwise strict RFC 8259 (no comments, no trailing commas,
 * no NaN) and reports the byte offset of the first error.  The writer's
 * output is linear in its input: at most 6 bytes of JSON per byte of
 * MessagePack (a control character becomes a 6-byte \u escape), plus the
 * digits of numbers. */
#ifndef SL_JSON_H
#define SL_JSON_H

#include <stddef.h>

#include <msgpack.h>

#include "buf.h"
#include "err.h"

/* The one nesting limit of values that travel through sluice: JSON args
 * (CLI, API, pipelines), the envelope's args map, a job's outputs.  It
 * counts containers (objects/maps and arrays) on the deepest path, the
 * outermost included: {"a":[1]} is 2 deep.  31 because msgpack-c unpacks
 * at most 32 levels and the envelope map around args takes one. */
#define SL_JSON_MAX_DEPTH 31

/* Parses exactly one JSON value from text[0..len) (surrounding whitespace
 * allowed) and packs it into pk.  On error returns -1 with err (SL_EINVAL,
 * "JSON at byte N: what was expected"; err may be NULL).  The text is fully
 * validated before anything is packed, so after a syntax error pk has
 * received nothing; only a failing pk writer can leave a partial value
 * behind. */
int sl_json_to_msgpack(const char *text, size_t len, msgpack_packer *pk, sl_err *err);

/* Checks text[0..len) as sl_json_to_msgpack would, without packing it:
 * whatever passes can be stored as jsonb and unpacked by msgpack-c.  The
 * worker checks a job's outputs with it.  Returns 0, or -1 with err. */
int sl_json_check(const char *text, size_t len, sl_err *err);

/* Appends o as compact JSON text to out.  Returns -1 with err (SL_EINVAL;
 * err may be NULL) for values the parser would refuse (see above: U+0000,
 * invalid UTF-8, duplicate or non-string keys, nesting deeper than
 * SL_JSON_MAX_DEPTH) and for values JSON cannot hold (ext, NaN/Infinity),
 * leaving out as it was. */
int sl_json_from_msgpack(const msgpack_object *o, sl_buf *out, sl_err *err);

/* Checks o as sl_json_from_msgpack would, without writing anything (the
 * envelope decoder checks args with it).  Returns 0, or -1 with err. */
int sl_json_check_msgpack(const msgpack_object *o, sl_err *err);

/* Appends s[0..n) to out as a quoted JSON string, escaping as needed.
 * Invalid UTF-8 bytes are written as U+FFFD and NUL as \u0000 (which
 * sl_json_check then refuses): for text sluice writes itself. */
void sl_json_put_string(sl_buf *out, const char *s, size_t n);

/* Name of a MessagePack value's type for error messages ("str",
 * "integer", "map", …). */
const char *sl_json_type_name(const msgpack_object *o);

#endif
