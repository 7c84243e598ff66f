/* workerreg.c: see workerreg.h.
 *
 * One SCAN page at a time, the documents of a page fetched with pipelined
 * GETs; a key that expires between SCAN and GET is simply not there.  The
 * walk stops at the first document that serves the queue.  A document
 * that cannot be parsed counts as serving nothing. */
#include "workerreg.h"

#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "json.h"

static const msgpack_object *member(const msgpack_object *map, const char *key)
{
    size_t n = strlen(key);
    for (uint32_t i = 0; map->type == MSGPACK_OBJECT_MAP && i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static bool str_is(const msgpack_object *o, const char *s)
{
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* Does the registry document text[0..len) serve queue? */
static bool doc_serves(const char *text, size_t len, const char *queue)
{
    msgpack_sbuffer sb;
    msgpack_unpacked up;
    msgpack_packer pk;
    size_t off = 0;
    bool yes = false;
    msgpack_sbuffer_init(&sb);
    msgpack_unpacked_init(&up);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (sl_json_to_msgpack(text, len, &pk, NULL) == 0 &&
        msgpack_unpack_next(&up, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS &&
        !str_is(member(&up.data, "state"), "stopping")) {
        const msgpack_object *qs = member(&up.data, "queues");
        for (uint32_t i = 0; qs && qs->type == MSGPACK_OBJECT_ARRAY && i < qs->via.array.size && !yes; i++)
            yes = str_is(&qs->via.array.ptr[i], queue);
    }
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    return yes;
}

int sl_workerreg_serves(sl_redis *r, const char *queue, bool *served, sl_err *err)
{
    char cursor[32] = "0";
    *served = false;
    do {
        const char *scan[] = { "SCAN", cursor, "MATCH", SL_WORKERREG_PATTERN, "COUNT", "200" };
        redisReply *page = sl_redis_command(r, 6, scan, NULL, err);
        if (page == NULL)
            return -1;
        if (page->type != REDIS_REPLY_ARRAY || page->elements != 2 ||
            page->element[0]->type != REDIS_REPLY_STRING || page->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(page);
            return sl_err_set(err, SL_EREDIS, "SCAN %s: unexpected reply", SL_WORKERREG_PATTERN);
        }
        snprintf(cursor, sizeof cursor, "%s", page->element[0]->str);
        const redisReply *keys = page->element[1];
        size_t sent = 0;
        int rc = 0;
        for (size_t k = 0; k < keys->elements && rc == 0; k++) {
            if (keys->element[k]->type != REDIS_REPLY_STRING)
                continue;
            const char *get[] = { "GET", keys->element[k]->str };
            size_t lens[] = { 3, keys->element[k]->len };
            rc = sl_redis_append(r, 2, get, lens, err);
            sent += rc == 0;
        }
        freeReplyObject(page);
        for (size_t k = 0; k < sent; k++) {
            redisReply *v = sl_redis_reply(r, err);
            if (v == NULL)
                return -1;
            if (v->type == REDIS_REPLY_STRING && !*served)
                *served = doc_serves(v->str, v->len, queue);
            freeReplyObject(v);
        }
        if (rc < 0)
            return -1;
    } while (!*served && strcmp(cursor, "0") != 0);
    return 0;
}
