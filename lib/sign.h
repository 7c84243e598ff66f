/* sign.h: Ed25519 signatures (RFC 8032) over byte strings, keys in PEM files.
 *
 * One wrapper around OpenSSL's libcrypto (EVP_PKEY_ED25519, one-shot
 * EVP_DigestSign/EVP_DigestVerify with no digest) for everything in sluice
 * that signs: the audit trail's rows (signed by the API server and the
 * scheduler) and protected jobs' envelopes (signed by the scheduler).
 * Callers never see an OpenSSL type.
 *
 * A key is opaque.  One loaded from a private key file can sign and verify;
 * one loaded from a public key file can only verify.  Files are PEM:
 * "PRIVATE KEY" (PKCS#8) and "PUBLIC KEY" (SubjectPublicKeyInfo), what
 * `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write and
 * what sl_sign_keygen() writes.  A key of any other type is refused.
 *
 * Each key has an id: the first 8 bytes of SHA-256 of its raw 32-byte
 * public key, as 16 lowercase hex digits.  It names the key in stored data
 * (which key signed this?) without being a secret; a verifier still checks
 * the signature with the key itself. */
#ifndef SL_SIGN_H
#define SL_SIGN_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define SL_SIGN_LEN 64      /* bytes in an Ed25519 signature */
#define SL_SIGN_ID_HEX 17   /* a key id: 16 hex digits plus NUL */

typedef struct sl_sign_key sl_sign_key;

/* Loads an Ed25519 private key from a PEM file.  Returns NULL with err
 * (naming the file and why) if it cannot be read or is not an Ed25519
 * private key.  Free with sl_sign_key_free(). */
sl_sign_key *sl_sign_load_private(const char *path, sl_err *err);

/* Loads an Ed25519 public key from a PEM file (a private key file is
 * accepted too: its public half is used).  NULL with err on failure. */
sl_sign_key *sl_sign_load_public(const char *path, sl_err *err);

/* Frees a key (NULL is fine). */
void sl_sign_key_free(sl_sign_key *key);

/* Writes the key's id (see above) into id. */
void sl_sign_key_id(const sl_sign_key *key, char id[SL_SIGN_ID_HEX]);

/* Signs msg[0..n) into sig.  Returns 0, or -1 with err (a public-only key,
 * or libcrypto failed). */
int sl_sign(const sl_sign_key *key, const void *msg, size_t n, unsigned char sig[SL_SIGN_LEN],
            sl_err *err);

/* True if sig[0..siglen) is key's valid signature of msg[0..n). */
bool sl_sign_verify(const sl_sign_key *key, const void *msg, size_t n, const unsigned char *sig,
                    size_t siglen);

/* Makes a new key pair: the private key into priv_path (created with mode
 * 0600, refused if it exists) and the public key into pub_path.  Returns 0,
 * or -1 with err; on failure neither file is left behind. */
int sl_sign_keygen(const char *priv_path, const char *pub_path, sl_err *err);

#endif
