/* jsonval.c: see jsonval.h. */
#include "jsonval.h"

#include <string.h>

#include "json.h"

void sl_jsonval_init(sl_jsonval *j, const char *json)
{
    msgpack_sbuffer_init(&j->sb);
    msgpack_unpacked_init(&j->up);
    j->ok = false;
    if (json == NULL)
        return;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &j->sb, msgpack_sbuffer_write);
    size_t off = 0;
    j->ok = sl_json_to_msgpack(json, strlen(json), &pk, NULL) == 0 &&
            msgpack_unpack_next(&j->up, j->sb.data, j->sb.size, &off) == MSGPACK_UNPACK_SUCCESS;
}

void sl_jsonval_free(sl_jsonval *j)
{
    msgpack_unpacked_destroy(&j->up);
    msgpack_sbuffer_destroy(&j->sb);
}
