/* yamldoc.h: a loaded YAML document, read strictly, with positioned errors.
 *
 * A thin layer over libyaml's document API (yaml_parser_load) shared by the
 * configuration loader and the pipeline loader.  It adds what both need and
 * libyaml leaves out:
 *
 *   - every error reads "FILE:LINE:COLUMN: message" (1-based), whether it
 *     comes from libyaml's parser or from the caller's own checks;
 *   - mappings are read with merge keys resolved: `<<: *base` or
 *     `<<: [*a, *b]` adds the merged mappings' keys, a key written in the
 *     mapping itself beats a merged one, and an earlier mapping in the list
 *     beats a later one; merged mappings may merge in turn;
 *   - a key written twice in one mapping, a non-scalar key, a recursive
 *     alias, or a second document in the file is an error, not a surprise;
 *   - a mapping key holding a NUL byte, or a document whose aliases expand
 *     it beyond SL_YAML_MAX_NODES nodes, is refused at load time, so a walk
 *     over any loaded document is bounded;
 *   - one rule for scalar types, the YAML 1.2 core schema (sl_ynode_type):
 *     only true/false are booleans (`yes`, `on` are strings), integers are
 *     decimal, 0o octal or 0x hex, and only plain (unquoted) scalars are
 *     anything but strings;
 *   - typed readers for scalars (string, bool, integer in a range, duration
 *     in a range) whose messages name the key and show the bad value.
 *
 * Nodes reached through an alias are the anchored node itself, so an error
 * in an aliased value points at the line where it is written (the anchor).
 *
 * Errors are sl_err with code SL_ECONFIG.  A loader that stops at the first
 * error just returns it; a validator that reports every error passes a
 * local sl_err to each reader and collects the messages in an sl_yerrors:
 *
 *     sl_err e;
 *     if (sl_ydoc_int(doc, node, "required", 1, 10, &v, &e) < 0)
 *         sl_yerrors_add(&errors, &e);      (and carry on validating)
 *
 * Ownership: sl_ydoc_load_* returns a document freed with sl_ydoc_free.
 * Every node, string and view (sl_ymap, sl_yseq) obtained from it belongs
 * to the document and stays valid until it is freed. */
#ifndef SL_YAMLDOC_H
#define SL_YAMLDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "err.h"

typedef struct sl_ydoc sl_ydoc;
typedef yaml_node_t sl_ynode;   /* read through the functions below */

/* The most nodes a document may hold once its aliases are expanded
 * (sl_ydoc_load_* refuses more). */
#define SL_YAML_MAX_NODES 100000

typedef enum sl_ykind {
    SL_YNULL,    /* plain empty, ~, null, Null, NULL (and !!null) */
    SL_YSCALAR,  /* any other scalar */
    SL_YMAP,
    SL_YSEQ,
} sl_ykind;

typedef struct sl_ypair {
    const char *name;         /* the key's text */
    const sl_ynode *key;      /* the key node: where "unknown key" points */
    const sl_ynode *value;
} sl_ypair;

typedef struct sl_ymap {      /* a mapping with merge keys resolved */
    const sl_ypair *pairs;    /* in document order, merged keys where '<<' was */
    size_t n;
} sl_ymap;

typedef struct sl_yseq {
    const sl_ynode *const *items;
    size_t n;
} sl_yseq;

/* Reads and parses the file at path.  Returns NULL with err set on an I/O
 * error ("open PATH: strerror") or a YAML error ("PATH:LINE:COL: problem").
 * An empty file, or one of only comments, loads with no root. */
sl_ydoc *sl_ydoc_load_file(const char *path, sl_err *err);

/* Same for text[0..len); name stands for the file in messages. */
sl_ydoc *sl_ydoc_load_string(const char *name, const char *text, size_t len, sl_err *err);

void sl_ydoc_free(sl_ydoc *doc);   /* doc may be NULL */

const char *sl_ydoc_name(const sl_ydoc *doc);

/* The top node, or NULL for a document without content. */
const sl_ynode *sl_ydoc_root(const sl_ydoc *doc);

sl_ykind sl_ynode_kind(const sl_ynode *node);

/* A node's type by the YAML 1.2 core schema.  A quoted or block scalar is
 * always a string; a plain one is null (empty, ~, null, Null, NULL), a
 * boolean (true, True, TRUE, false, False, FALSE), an integer
 * ([-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+), a float ([-+]?(.N|N(.N?)?)
 * with an optional exponent, [-+]?.inf, .nan), or else a string. */
typedef enum sl_ytype { SL_YT_NULL, SL_YT_BOOL, SL_YT_INT, SL_YT_FLOAT, SL_YT_STR, SL_YT_MAP,
                        SL_YT_SEQ } sl_ytype;
sl_ytype sl_ynode_type(const sl_ynode *node);

/* The value of scalar text under the same rule: false if text is not of
 * that type (or, for an integer, does not fit an int64). */
bool sl_yscalar_bool(const char *text, bool *out);
bool sl_yscalar_int(const char *text, int64_t *out);
bool sl_yscalar_float(const char *text, double *out);   /* may give ±inf or NaN */

/* The text of a scalar (NUL-terminated; "" for an empty one), NULL for a
 * mapping or a sequence. */
const char *sl_ynode_text(const sl_ynode *node);

/* Sets err to "FILE:LINE:COL: <formatted message>" for node's position
 * ("FILE: message" when node is NULL) and returns -1. */
int sl_ydoc_errorf(const sl_ydoc *doc, const sl_ynode *node, sl_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reads a mapping with its merge keys resolved into *out.  Keys are
 * compared by their full bytes.  A null node
 * reads as an empty mapping.  what names the value in messages ("worker"
 * gives "'worker' must be a mapping, got a list"); it may be NULL.  Returns
 * -1 with err set if node is not a mapping, has a non-scalar or duplicate
 * key, or a '<<' whose value is not a mapping or a list of mappings. */
int sl_ydoc_map(sl_ydoc *doc, const sl_ynode *node, const char *what, sl_ymap *out, sl_err *err);

/* Reads a sequence into *out; a null node reads as an empty one.  Returns -1
 * with err set if node is something else. */
int sl_ydoc_seq(sl_ydoc *doc, const sl_ynode *node, const char *what, sl_yseq *out, sl_err *err);

/* Typed scalars.  Each returns 0 and writes *out, or returns -1 with err set
 * ("FILE:LINE:COL: 'what' must be …, got …") and leaves *out alone.
 *
 * str:      any non-null scalar, as written (`port: 80` reads "80"); a
 *           string holding a NUL byte is refused.
 * bool:     true or false (also True/TRUE, False/FALSE); yes/no/on/off are
 *           refused with a message saying why.
 * int:      an integer as sl_ynode_type reads one, within [min, max].
 *
 * A typed reader looks at the text, so a quoted "80" reads as an integer
 * where one is expected, and "true" as a boolean: the rule above decides
 * what a value is when nothing else says, never which words mean true.
 * duration: sl_duration_parse syntax ("1h30m"), in ms, within [min, max]. */
int sl_ydoc_str(const sl_ydoc *doc, const sl_ynode *node, const char *what,
                const char **out, sl_err *err);
int sl_ydoc_bool(const sl_ydoc *doc, const sl_ynode *node, const char *what,
                 bool *out, sl_err *err);
int sl_ydoc_int(const sl_ydoc *doc, const sl_ynode *node, const char *what,
                int64_t min, int64_t max, int64_t *out, sl_err *err);
int sl_ydoc_duration(const sl_ydoc *doc, const sl_ynode *node, const char *what,
                     int64_t min_ms, int64_t max_ms, int64_t *out, sl_err *err);

/* Many errors, for validators that report them all. */
typedef struct sl_yerrors {
    char **msgs;   /* n messages, each "FILE:LINE:COL: …", owned */
    size_t n;
} sl_yerrors;

#define SL_YERRORS_INIT { NULL, 0 }

/* Appends a copy of err's message. */
void sl_yerrors_add(sl_yerrors *list, const sl_err *err);

/* Frees the messages and empties list. */
void sl_yerrors_free(sl_yerrors *list);

#endif
