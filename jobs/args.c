/* args.c: see args.h. */
#include "args.h"
#include "envelope.h"
#include "json.h"
#include "mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const msgpack_object *sl_args_get(const msgpack_object *args, const char *key)
{
    if (args == NULL || args->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < args->via.map.size; i++) {
        const msgpack_object *k = &args->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0)
            return &args->via.map.ptr[i].val;
    }
    return NULL;
}

int sl_args_str(const msgpack_object *args, const char *key, bool required, char **out, sl_err *err)
{
    *out = NULL;
    const msgpack_object *v = sl_args_get(args, key);
    if (v == NULL || v->type == MSGPACK_OBJECT_NIL)
        return required ? sl_err_set(err, SL_EINVAL, "argument '%s': missing", key) : 0;
    if (v->type != MSGPACK_OBJECT_STR)
        return sl_err_set(err, SL_EINVAL, "argument '%s': expected str, got %s", key,
                          sl_json_type_name(v));
    if (memchr(v->via.str.ptr, '\0', v->via.str.size))
        return sl_err_set(err, SL_EINVAL, "argument '%s': contains a NUL byte", key);
    *out = sl_xstrndup(v->via.str.ptr, v->via.str.size);
    return 0;
}

int sl_args_int(const msgpack_object *args, const char *key, bool required, int64_t dflt,
                int64_t min, int64_t max, int64_t *out, sl_err *err)
{
    *out = dflt;
    const msgpack_object *v = sl_args_get(args, key);
    if (v == NULL || v->type == MSGPACK_OBJECT_NIL)
        return required ? sl_err_set(err, SL_EINVAL, "argument '%s': missing", key) : 0;
    int64_t value;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (v->via.u64 > (uint64_t)INT64_MAX)
            return sl_err_set(err, SL_EINVAL, "argument '%s': out of range", key);
        value = (int64_t)v->via.u64;
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        value = v->via.i64;
    } else if (v->type == MSGPACK_OBJECT_STR && v->via.str.size > 0 && v->via.str.size < 24) {
        char text[24], *end;
        memcpy(text, v->via.str.ptr, v->via.str.size);
        text[v->via.str.size] = '\0';
        errno = 0;
        long long ll = strtoll(text, &end, 10);
        if (*end != '\0' || errno != 0)
            return sl_err_set(err, SL_EINVAL, "argument '%s': expected integer, got \"%s\"", key, text);
        value = ll;
    } else {
        return sl_err_set(err, SL_EINVAL, "argument '%s': expected integer, got %s", key,
                          sl_json_type_name(v));
    }
    if (value < min || value > max)
        return sl_err_set(err, SL_EINVAL, "argument '%s': %lld is out of range [%lld, %lld]", key,
                          (long long)value, (long long)min, (long long)max);
    *out = value;
    return 0;
}
