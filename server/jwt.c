/* jwt.c: see jwt.h.
 *
 * Order of checks: shape (three base64url parts, size), header JSON, alg
 * against the allow-list, kid against the key set, signature, and only
 * then the claims: nothing in an unauthenticated payload is trusted before
 * its signature verified. */
#include "jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "base64.h"
#include "buf.h"
#include "jsonval.h"
#include "mem.h"

enum key_type { KEY_RSA, KEY_EC };

typedef struct jwk {
    char *kid;            /* owned, NULL when the key has none */
    enum key_type type;
    EVP_PKEY *pkey;       /* owned */
} jwk;

struct sl_jwt_keys {
    jwk *keys;
    size_t n;
};

void sl_jwt_keys_free(sl_jwt_keys *keys)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < keys->n; i++) {
        free(keys->keys[i].kid);
        EVP_PKEY_free(keys->keys[i].pkey);
    }
    free(keys->keys);
    free(keys);
}

static void add_key(sl_jwt_keys *ks, const char *kid, EVP_PKEY *pkey)
{
    ks->keys = sl_xrealloc(ks->keys, (ks->n + 1) * sizeof *ks->keys);
    ks->keys[ks->n++] = (jwk){ sl_xstrdup(kid), EVP_PKEY_is_a(pkey, "EC") ? KEY_EC : KEY_RSA, pkey };
}

/* A string member of a msgpack map, decoded from base64url; NULL if absent
 * or not canonical. */
static unsigned char *b64_member(const msgpack_object *o, const char *name, size_t *n)
{
    const msgpack_object *v = sl_args_get(o, name);
    if (v == NULL || v->type != MSGPACK_OBJECT_STR)
        return NULL;
    return sl_base64_decode(v->via.str.ptr, v->via.str.size, SL_BASE64URL, n);
}

static char *str_member(const msgpack_object *o, const char *name)
{
    const msgpack_object *v = sl_args_get(o, name);
    if (v == NULL || v->type != MSGPACK_OBJECT_STR || memchr(v->via.str.ptr, '\0', v->via.str.size))
        return NULL;
    return sl_xstrndup(v->via.str.ptr, v->via.str.size);
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/* One JWK; returns NULL with why set for a key that cannot be used. */
static EVP_PKEY *jwk_key(const msgpack_object *k, const char **why)
{
    char *kty = str_member(k, "kty");
    EVP_PKEY *pkey = NULL;
    unsigned char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *n = NULL, *e = NULL;
    *why = "kty must be RSA or EC";
    if (kty && strcmp(kty, "RSA") == 0) {
        *why = "an RSA key needs base64url n and e";
        if ((a = b64_member(k, "n", &alen)) == NULL || (b = b64_member(k, "e", &blen)) == NULL)
            goto cleanup;
        n = BN_bin2bn(a, (int)alen, NULL);
        e = BN_bin2bn(b, (int)blen, NULL);
        if (n && e && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
            pkey = from_params("RSA", bld);
    } else if (kty && strcmp(kty, "EC") == 0) {
        char *crv = str_member(k, "crv");
        bool p256 = crv && strcmp(crv, "P-256") == 0;
        free(crv);
        *why = "an EC key needs crv P-256 and 32-byte base64url x and y";
        if (!p256 || (a = b64_member(k, "x", &alen)) == NULL || (b = b64_member(k, "y", &blen)) == NULL ||
            alen != 32 || blen != 32)
            goto cleanup;
        unsigned char point[65];
        point[0] = 0x04;   /* uncompressed */
        memcpy(point + 1, a, 32);
        memcpy(point + 33, b, 32);
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point))
            pkey = from_params("EC", bld);
        *why = "not a point on P-256";
    }
cleanup:
    BN_free(n);
    BN_free(e);
    OSSL_PARAM_BLD_free(bld);
    free(a);
    free(b);
    free(kty);
    return pkey;
}

static int load_jwks(sl_jwt_keys *ks, const char *path, const char *text, sl_err *err)
{
    int rc = -1;
    sl_jsonval j;
    sl_jsonval_init(&j, text);
    const msgpack_object *list = j.ok ? sl_args_get(&j.up.data, "keys") : NULL;
    if (list == NULL || list->type != MSGPACK_OBJECT_ARRAY) {
        sl_err_set(err, SL_ECONFIG, "%s: not a PEM public key nor a JWKS document ({\"keys\": [...]})", path);
        goto cleanup;
    }
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        const msgpack_object *k = &list->via.array.ptr[i];
        char *use = str_member(k, "use");
        bool sig = use == NULL || strcmp(use, "sig") == 0;
        free(use);
        if (!sig)
            continue;   /* an encryption key: not for verifying */
        const char *why;
        EVP_PKEY *pkey = jwk_key(k, &why);
        if (pkey == NULL) {
            sl_err_set(err, SL_ECONFIG, "%s: key %u: %s", path, i + 1, why);
            goto cleanup;
        }
        char *kid = str_member(k, "kid");
        add_key(ks, kid, pkey);
        free(kid);
    }
    rc = 0;
cleanup:
    sl_jsonval_free(&j);
    return rc;
}

/* Checks what was loaded into ks (from what): some keys, RSA of 2048
 * bits or more, RSA or EC only. */
static int check_keys(const sl_jwt_keys *ks, const char *what, sl_err *err)
{
    if (ks->n == 0)
        return sl_err_set(err, SL_ECONFIG, "api.jwt.keys: %s holds no signing key", what);
    for (size_t i = 0; i < ks->n; i++) {
        if (ks->keys[i].type == KEY_RSA && EVP_PKEY_get_bits(ks->keys[i].pkey) < 2048)
            return sl_err_set(err, SL_ECONFIG, "api.jwt.keys: %s: RSA key %zu is shorter than 2048 bits", what, i + 1);
        if (!EVP_PKEY_is_a(ks->keys[i].pkey, "RSA") && !EVP_PKEY_is_a(ks->keys[i].pkey, "EC"))
            return sl_err_set(err, SL_ECONFIG, "api.jwt.keys: %s: key %zu is neither RSA nor EC", what, i + 1);
    }
    return 0;
}

sl_jwt_keys *sl_jwt_keys_load(const char *path, sl_err *err)
{
    sl_jwt_keys *ks = sl_xcalloc(1, sizeof *ks);
    char *text = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        sl_err_set(err, SL_ECONFIG, "api.jwt.keys: %s: %s", path, strerror(errno));
        goto fail;
    }
    EVP_PKEY *pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    if (pkey) {
        add_key(ks, NULL, pkey);
    } else {
        sl_buf b = SL_BUF_INIT;
        char chunk[4096];
        size_t got;
        rewind(f);
        while ((got = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < 1048576)
            sl_buf_append(&b, chunk, got);
        text = sl_buf_detach(&b);
        if (text == NULL || load_jwks(ks, path, text, err) < 0)
            goto fail;
    }
    if (check_keys(ks, path, err) < 0)
        goto fail;
    fclose(f);
    free(text);
    return ks;
fail:
    if (f)
        fclose(f);
    free(text);
    sl_jwt_keys_free(ks);
    return NULL;
}

sl_jwt_keys *sl_jwt_keys_parse(const char *what, const char *text, sl_err *err)
{
    sl_jwt_keys *ks = sl_xcalloc(1, sizeof *ks);
    if (load_jwks(ks, what, text, err) < 0 || check_keys(ks, what, err) < 0) {
        sl_jwt_keys_free(ks);
        return NULL;
    }
    return ks;
}

void sl_jwt_claims_clear(sl_jwt_claims *c)
{
    for (size_t i = 0; i < c->ngroups; i++)
        free(c->groups[i]);
    free(c->groups);
    memset(c, 0, sizeof *c);
}

/* Decodes one part of the token as a JSON object without duplicate keys. */
static bool decode_part(const char *text, size_t len, sl_jsonval *j)
{
    size_t n;
    unsigned char *raw = sl_base64_decode(text, len, SL_BASE64URL, &n);
    if (raw == NULL || memchr(raw, '\0', n)) {
        free(raw);
        sl_jsonval_init(j, NULL);
        return false;
    }
    char *s = sl_xstrndup((const char *)raw, n);
    free(raw);
    sl_jsonval_init(j, s);
    free(s);
    if (!j->ok || j->up.data.type != MSGPACK_OBJECT_MAP)
        return false;
    const msgpack_object_map *m = &j->up.data.via.map;
    for (uint32_t a = 0; a < m->size; a++) {
        for (uint32_t b = a + 1; b < m->size; b++) {
            const msgpack_object *ka = &m->ptr[a].key, *kb = &m->ptr[b].key;
            if (ka->type == MSGPACK_OBJECT_STR && kb->type == MSGPACK_OBJECT_STR &&
                ka->via.str.size == kb->via.str.size &&
                memcmp(ka->via.str.ptr, kb->via.str.ptr, ka->via.str.size) == 0)
                return false;
        }
    }
    return true;
}

/* A NumericDate claim in ms; false if absent or not a number. */
static bool date_claim(const msgpack_object *claims, const char *name, int64_t *ms)
{
    const msgpack_object *v = sl_args_get(claims, name);
    if (v == NULL)
        return false;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 < INT64_MAX / 1000)
        *ms = (int64_t)v->via.u64 * 1000;
    else if (v->type == MSGPACK_OBJECT_FLOAT64 && v->via.f64 >= 0 && v->via.f64 < 1e15)
        *ms = (int64_t)(v->via.f64 * 1000);
    else
        return false;
    return true;
}

static bool str_equals(const msgpack_object *v, const char *s)
{
    return v && v->type == MSGPACK_OBJECT_STR && v->via.str.size == strlen(s) &&
           memcmp(v->via.str.ptr, s, v->via.str.size) == 0;
}

static bool copy_str(const msgpack_object *v, char *out, size_t n)
{
    if (v == NULL || v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0 || v->via.str.size >= n ||
        memchr(v->via.str.ptr, '\0', v->via.str.size))
        return false;
    memcpy(out, v->via.str.ptr, v->via.str.size);
    out[v->via.str.size] = '\0';
    return true;
}

/* Checks the signature of input[0..len) with key k. */
static bool signature_ok(const jwk *k, const unsigned char *sig, size_t siglen, const char *input, size_t len)
{
    unsigned char *der = NULL;
    const unsigned char *s = sig;
    size_t slen = siglen;
    bool ok = false;
    if (k->type == KEY_EC) {
        if (siglen != 64)
            return false;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
        if (es == NULL || r == NULL || ss == NULL || ECDSA_SIG_set0(es, r, ss) != 1) {
            BN_free(r);
            BN_free(ss);
            ECDSA_SIG_free(es);
            return false;
        }
        int dlen = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (dlen <= 0)
            return false;
        s = der;
        slen = (size_t)dlen;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
        EVP_DigestVerify(ctx, s, slen, (const unsigned char *)input, len) == 1)
        ok = true;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}

/* Picks the key for the header's alg and kid. */
static const jwk *choose_key(const sl_jwt_keys *keys, const msgpack_object *hdr, sl_err *err)
{
    const msgpack_object *alg = sl_args_get(hdr, "alg");
    enum key_type type;
    if (str_equals(alg, "RS256"))
        type = KEY_RSA;
    else if (str_equals(alg, "ES256"))
        type = KEY_EC;
    else {
        char a[32] = "?";
        copy_str(alg, a, sizeof a);
        sl_err_set(err, SL_EINVAL, "algorithm '%s' is not accepted (RS256, ES256 only)", a);
        return NULL;
    }
    const msgpack_object *kid = sl_args_get(hdr, "kid");
    const jwk *found = NULL;
    size_t candidates = 0;
    for (size_t i = 0; i < keys->n; i++) {
        if (keys->keys[i].type != type)
            continue;
        if (kid == NULL || keys->keys[i].kid == NULL || str_equals(kid, keys->keys[i].kid)) {
            if (kid && keys->keys[i].kid == NULL && keys->n > 1)
                continue;   /* a kid-less key matches a kid only when it is the only key */
            found = &keys->keys[i];
            candidates++;
        }
    }
    if (found == NULL) {
        sl_err_set(err, SL_EINVAL, kid ? "no %s key with the token's kid" : "no %s key for the token",
                   type == KEY_RSA ? "RSA" : "EC");
        return NULL;
    }
    if (kid == NULL && candidates > 1) {
        sl_err_set(err, SL_EINVAL, "the token has no kid and several keys could verify it");
        return NULL;
    }
    return found;
}

static int check_claims(const sl_jwt_policy *pol, const msgpack_object *c, int64_t now_ms,
                        sl_jwt_claims *out, sl_err *err)
{
    if (!str_equals(sl_args_get(c, "iss"), pol->issuer))
        return sl_err_set(err, SL_EINVAL, "wrong issuer");
    const msgpack_object *aud = sl_args_get(c, "aud");
    bool aud_ok = str_equals(aud, pol->audience);
    for (uint32_t i = 0; aud && aud->type == MSGPACK_OBJECT_ARRAY && i < aud->via.array.size; i++)
        aud_ok = aud_ok || str_equals(&aud->via.array.ptr[i], pol->audience);
    if (!aud_ok)
        return sl_err_set(err, SL_EINVAL, "wrong audience");
    int64_t exp = 0, nbf = 0;
    if (!date_claim(c, "exp", &exp))
        return sl_err_set(err, SL_EINVAL, "no exp claim");
    if (now_ms >= exp + pol->skew_ms)
        return sl_err_set(err, SL_EINVAL, "expired");
    if (sl_args_get(c, "nbf") && !date_claim(c, "nbf", &nbf))
        return sl_err_set(err, SL_EINVAL, "nbf is not a date");
    if (sl_args_get(c, "nbf") && now_ms + pol->skew_ms < nbf)
        return sl_err_set(err, SL_EINVAL, "not valid yet (nbf)");
    if (!copy_str(sl_args_get(c, "sub"), out->subject, sizeof out->subject))
        return sl_err_set(err, SL_EINVAL, "no sub claim");
    if (sl_args_get(c, "nonce") && !copy_str(sl_args_get(c, "nonce"), out->nonce, sizeof out->nonce))
        return sl_err_set(err, SL_EINVAL, "nonce is not a string");
    if (!copy_str(sl_args_get(c, pol->user_claim), out->user, sizeof out->user))
        return sl_err_set(err, SL_EINVAL, "no string claim '%.60s' for the user name", pol->user_claim);
    const msgpack_object *g = sl_args_get(c, pol->groups_claim);
    if (g && g->type != MSGPACK_OBJECT_ARRAY)
        return sl_err_set(err, SL_EINVAL, "claim '%.60s' is not an array", pol->groups_claim);
    for (uint32_t i = 0; g && i < g->via.array.size; i++) {
        char name[256];
        if (!copy_str(&g->via.array.ptr[i], name, sizeof name))
            return sl_err_set(err, SL_EINVAL, "claim '%.60s' holds something else than names",
                              pol->groups_claim);
        out->groups = sl_xrealloc(out->groups, (out->ngroups + 1) * sizeof *out->groups);
        out->groups[out->ngroups++] = sl_xstrdup(name);
    }
    return 0;
}

int sl_jwt_verify(const sl_jwt_keys *keys, const sl_jwt_policy *policy, const char *token,
                  int64_t now_ms, sl_jwt_claims *out, sl_err *err)
{
    memset(out, 0, sizeof *out);
    size_t len = strlen(token);
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (len > SL_JWT_MAX || dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.'))
        return sl_err_set(err, SL_EINVAL, "not a signed JWT (three base64url parts)");
    int rc = -1;
    sl_jsonval hdr, claims;
    size_t siglen = 0;
    unsigned char *sig = NULL;
    bool hdr_ok = decode_part(token, (size_t)(dot1 - token), &hdr);
    bool claims_ok = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), &claims);
    if (!hdr_ok || !claims_ok) {
        sl_err_set(err, SL_EINVAL, "malformed %s", hdr_ok ? "claims" : "header");
        goto cleanup;
    }
    const jwk *k = choose_key(keys, &hdr.up.data, err);
    if (k == NULL)
        goto cleanup;
    sig = sl_base64_decode(dot2 + 1, strlen(dot2 + 1), SL_BASE64URL, &siglen);
    if (sig == NULL || !signature_ok(k, sig, siglen, token, (size_t)(dot2 - token))) {
        sl_err_set(err, SL_EINVAL, "bad signature");
        goto cleanup;
    }
    if (check_claims(policy, &claims.up.data, now_ms, out, err) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    free(sig);
    sl_jsonval_free(&hdr);
    sl_jsonval_free(&claims);
    if (rc < 0)
        sl_jwt_claims_clear(out);
    return rc;
}
