/* sha256.h: SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104).
 *
 * The job kinds need a digest for downloads (import), rendered trees
 * (codegen) and webhook signatures (deploy).  libcurl does not expose one
 * and sluice links no crypto library, so this is a small, self-contained
 * implementation checked against the FIPS and RFC 4231 test vectors in
 * tests/test_sha256.c.  Not constant-time with respect to its data; it only
 * ever hashes what a job downloads or signs with a configured secret. */
#ifndef SL_SHA256_H
#define SL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SL_SHA256_LEN 32      /* bytes in a digest */
#define SL_SHA256_HEX 65      /* hex digest plus NUL */

typedef struct sl_sha256_ctx {    /* streaming state; init before use */
    uint32_t h[8];            /* chaining value */
    uint64_t bytes;           /* total bytes fed */
    unsigned char block[64];  /* partial block */
    size_t fill;              /* bytes in block */
} sl_sha256_ctx;

void sl_sha256_init(sl_sha256_ctx *s);
void sl_sha256_update(sl_sha256_ctx *s, const void *data, size_t n);
/* Writes the digest; s must be initialised again before reuse. */
void sl_sha256_final(sl_sha256_ctx *s, unsigned char out[SL_SHA256_LEN]);

/* One-shot digest of data[0..n). */
void sl_sha256_digest(const void *data, size_t n, unsigned char out[SL_SHA256_LEN]);

/* HMAC-SHA256 of msg under key. */
void sl_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
                    unsigned char out[SL_SHA256_LEN]);

/* Writes the digest as 64 lowercase hex digits plus NUL into hex. */
void sl_sha256_hex(const unsigned char digest[SL_SHA256_LEN], char hex[SL_SHA256_HEX]);

#endif
