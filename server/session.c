/* session.c: see session.h. */
#include "session.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "jsonval.h"
#include "mem.h"
#include "sha256.h"

void sl_session_clear(sl_session *s)
{
    for (size_t i = 0; i < s->ngroups; i++)
        free(s->groups[i]);
    s->ngroups = 0;
}

int sl_session_random(char out[SL_SESSION_HEX], sl_err *err)
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return sl_err_set(err, SL_EIO, "RAND_bytes: the random generator failed");
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[64] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

void sl_session_hash(const char *text, char out[SL_SESSION_HEX])
{
    unsigned char d[SL_SHA256_LEN];
    sl_sha256_digest(text, strlen(text), d);
    sl_sha256_hex(d, out);
}

/* True if cookie looks like one of ours (64 lowercase hex digits). */
static bool shaped(const char *cookie)
{
    if (cookie == NULL || strlen(cookie) != 64)
        return false;
    return strspn(cookie, "0123456789abcdef") == 64;
}

int sl_session_create(sl_db *db, const sl_api_config *api, const char *principal, const char *method,
                      char *const *groups, size_t ngroups, unsigned scopes, const char *address,
                      char cookie[SL_SESSION_HEX], sl_err *err)
{
    char csrf[SL_SESSION_HEX], id_hash[SL_SESSION_HEX], scopes_s[16], ttl[24];
    if (sl_session_random(cookie, err) < 0 || sl_session_random(csrf, err) < 0)
        return -1;
    sl_session_hash(cookie, id_hash);
    snprintf(scopes_s, sizeof scopes_s, "%u", scopes);
    snprintf(ttl, sizeof ttl, "%d", api->web.session_ttl_ms);
    sl_buf g = SL_BUF_INIT;
    sl_buf_putc(&g, '[');
    for (size_t i = 0; i < ngroups && i < SL_SESSION_GROUPS; i++) {
        if (i)
            sl_buf_putc(&g, ',');
        sl_json_put_string(&g, groups[i], strlen(groups[i]));
    }
    sl_buf_putc(&g, ']');
    char idle[24];
    snprintf(idle, sizeof idle, "%d", api->web.idle_timeout_ms);
    const char *gc[] = { idle };
    int rc = sl_db_run(db, "expire sessions", "DELETE FROM sluice_web_sessions WHERE id_hash IN (SELECT id_hash"
                       " FROM sluice_web_sessions WHERE expires_at < now() OR last_seen < now() -"
                       " $1::bigint * interval '1 millisecond' LIMIT 100)", 1, gc, err);
    const char *p[] = { id_hash, principal, method, sl_buf_str(&g), scopes_s, csrf, address, ttl };
    if (rc == 0)
        rc = sl_db_run(db, "create session", "INSERT INTO sluice_web_sessions (id_hash, principal, method,"
                       " groups, scopes, csrf, address, expires_at) VALUES ($1, $2, $3, ARRAY(SELECT"
                       " jsonb_array_elements_text($4::jsonb)), $5::integer, $6, $7, now() + $8::bigint *"
                       " interval '1 millisecond')", 8, p, err);
    sl_buf_free(&g);
    return rc;
}

int sl_session_get(sl_db *db, const sl_api_config *api, const char *cookie, bool take_flash,
                   sl_session *s, sl_err *err)
{
    memset(s, 0, sizeof *s);
    if (!shaped(cookie))
        return 0;
    char id_hash[SL_SESSION_HEX], idle[24];
    sl_session_hash(cookie, id_hash);
    snprintf(idle, sizeof idle, "%d", api->web.idle_timeout_ms);
    const char *p[] = { id_hash, idle, take_flash ? "t" : "f" };
    PGresult *res = sl_db_exec(db, "session",
        "UPDATE sluice_web_sessions s SET last_seen = now(),"
        " flash = CASE WHEN $3::boolean THEN NULL ELSE s.flash END,"
        " flash_class = CASE WHEN $3::boolean THEN NULL ELSE s.flash_class END"
        " FROM (SELECT id_hash, flash, flash_class FROM sluice_web_sessions WHERE id_hash = $1 FOR UPDATE) o"
        " WHERE s.id_hash = o.id_hash AND s.expires_at > now()"
        " AND s.last_seen > now() - $2::bigint * interval '1 millisecond'"
        " RETURNING s.principal, s.method, array_to_json(s.groups)::text, s.scopes, s.csrf,"
        " coalesce(o.flash, ''), coalesce(o.flash_class, '')", 3, p, err);
    if (res == NULL)
        return -1;
    int found = PQntuples(res) == 1;
    if (found) {
        snprintf(s->principal, sizeof s->principal, "%s", PQgetvalue(res, 0, 0));
        snprintf(s->method, sizeof s->method, "%s", PQgetvalue(res, 0, 1));
        s->scopes = (unsigned)strtoul(PQgetvalue(res, 0, 3), NULL, 10);
        snprintf(s->csrf, sizeof s->csrf, "%s", PQgetvalue(res, 0, 4));
        if (take_flash) {
            snprintf(s->flash, sizeof s->flash, "%s", PQgetvalue(res, 0, 5));
            snprintf(s->flash_class, sizeof s->flash_class, "%s", PQgetvalue(res, 0, 6));
        }
        sl_jsonval j;
        sl_jsonval_init(&j, PQgetvalue(res, 0, 2));
        if (j.ok && j.up.data.type == MSGPACK_OBJECT_ARRAY) {
            for (uint32_t i = 0; i < j.up.data.via.array.size && s->ngroups < SL_SESSION_GROUPS; i++) {
                const msgpack_object *o = &j.up.data.via.array.ptr[i];
                if (o->type == MSGPACK_OBJECT_STR)
                    s->groups[s->ngroups++] = sl_xstrndup(o->via.str.ptr, o->via.str.size);
            }
        }
        sl_jsonval_free(&j);
    }
    PQclear(res);
    return found;
}

int sl_session_delete(sl_db *db, const char *cookie, sl_err *err)
{
    if (!shaped(cookie))
        return 0;
    char id_hash[SL_SESSION_HEX];
    sl_session_hash(cookie, id_hash);
    const char *p[] = { id_hash };
    return sl_db_run(db, "end session", "DELETE FROM sluice_web_sessions WHERE id_hash = $1", 1, p, err);
}

int sl_session_set_flash(sl_db *db, const char *cookie, const char *cls, const char *msg, sl_err *err)
{
    if (!shaped(cookie))
        return 0;
    char id_hash[SL_SESSION_HEX];
    sl_session_hash(cookie, id_hash);
    const char *p[] = { id_hash, cls, msg };
    return sl_db_run(db, "flash", "UPDATE sluice_web_sessions SET flash_class = $2, flash = $3"
                     " WHERE id_hash = $1", 3, p, err);
}

void sl_session_login_csrf(const char *pre, char out[SL_SESSION_HEX])
{
    static const char label[] = "sluice-login";
    unsigned char mac[SL_SHA256_LEN];
    sl_hmac_sha256(pre, strlen(pre), label, sizeof label - 1, mac);
    sl_sha256_hex(mac, out);
}

bool sl_session_secret_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return false;
    size_t n = strlen(a);
    if (n == 0 || n != strlen(b))
        return false;
    return CRYPTO_memcmp(a, b, n) == 0;
}
