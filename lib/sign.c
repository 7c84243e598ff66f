/* sign.c: see sign.h.  libcrypto does the cryptography; this file checks
 * key types, turns OpenSSL's error queue into sl_err messages that name the
 * file, and computes key ids with lib/sha256. */
#include "sign.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "mem.h"
#include "sha256.h"

struct sl_sign_key {
    EVP_PKEY *pkey;         /* owned */
    bool priv;              /* can sign */
    char id[SL_SIGN_ID_HEX];
};

/* The reason of libcrypto's last error, and clears its queue. */
static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown libcrypto error";
}

static sl_sign_key *wrap(EVP_PKEY *pkey, bool priv, const char *path, sl_err *err)
{
    unsigned char raw[32];
    size_t rawlen = sizeof raw;
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pkey);
        sl_err_set(err, SL_ECONFIG, "%s: not an Ed25519 key", path);
        return NULL;
    }
    if (EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) != 1 || rawlen != sizeof raw) {
        EVP_PKEY_free(pkey);
        sl_err_set(err, SL_ECONFIG, "%s: cannot read the public key: %s", path, ossl_reason());
        return NULL;
    }
    sl_sign_key *k = sl_xcalloc(1, sizeof *k);
    unsigned char d[SL_SHA256_LEN];
    char hex[SL_SHA256_HEX];
    sl_sha256_digest(raw, sizeof raw, d);
    sl_sha256_hex(d, hex);
    memcpy(k->id, hex, SL_SIGN_ID_HEX - 1);
    k->id[SL_SIGN_ID_HEX - 1] = '\0';
    k->pkey = pkey;
    k->priv = priv;
    return k;
}

static sl_sign_key *load(const char *path, bool want_priv, sl_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        sl_err_set(err, SL_ECONFIG, "%s: %s", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    bool priv = pkey != NULL;
    if (pkey == NULL && !want_priv) {
        ERR_clear_error();
        rewind(f);
        pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    }
    fclose(f);
    if (pkey == NULL) {
        sl_err_set(err, SL_ECONFIG, "%s: not a PEM %s key (%s)", path,
                   want_priv ? "private" : "public or private", ossl_reason());
        return NULL;
    }
    return wrap(pkey, priv, path, err);
}

sl_sign_key *sl_sign_load_private(const char *path, sl_err *err)
{
    return load(path, true, err);
}

sl_sign_key *sl_sign_load_public(const char *path, sl_err *err)
{
    return load(path, false, err);
}

void sl_sign_key_free(sl_sign_key *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    free(key);
}

void sl_sign_key_id(const sl_sign_key *key, char id[SL_SIGN_ID_HEX])
{
    memcpy(id, key->id, SL_SIGN_ID_HEX);
}

int sl_sign(const sl_sign_key *key, const void *msg, size_t n, unsigned char sig[SL_SIGN_LEN],
            sl_err *err)
{
    if (!key->priv)
        return sl_err_set(err, SL_EINVAL, "key %s is a public key: it cannot sign", key->id);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = SL_SIGN_LEN;
    int rc = -1;
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &len, msg, n) != 1 || len != SL_SIGN_LEN)
        sl_err_set(err, SL_EIO, "Ed25519 signing with key %s: %s", key->id, ossl_reason());
    else
        rc = 0;
    EVP_MD_CTX_free(ctx);
    return rc;
}

bool sl_sign_verify(const sl_sign_key *key, const void *msg, size_t n, const unsigned char *sig,
                    size_t siglen)
{
    if (siglen != SL_SIGN_LEN)
        return false;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key->pkey) == 1 &&
              EVP_DigestVerify(ctx, sig, siglen, msg, n) == 1;
    ERR_clear_error();   /* a bad signature leaves an error queued */
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* Writes pkey to path (new file, mode), private or public form. */
static int write_pem(const char *path, EVP_PKEY *pkey, bool priv, mode_t mode, sl_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return sl_err_set(err, SL_EIO, "%s: %s", path, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        sl_err_set(err, SL_EIO, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    int ok = priv ? PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL)
                  : PEM_write_PUBKEY(f, pkey);
    int closed = fclose(f);
    if (ok != 1 || closed != 0) {
        sl_err_set(err, SL_EIO, "%s: %s", path, ok != 1 ? ossl_reason() : strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}

int sl_sign_keygen(const char *priv_path, const char *pub_path, sl_err *err)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    int rc = -1;
    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &pkey) != 1) {
        sl_err_set(err, SL_EIO, "Ed25519 key generation: %s", ossl_reason());
        goto cleanup;
    }
    if (write_pem(priv_path, pkey, true, 0600, err) < 0)
        goto cleanup;
    if (write_pem(pub_path, pkey, false, 0644, err) < 0) {
        unlink(priv_path);
        goto cleanup;
    }
    rc = 0;
cleanup:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}
