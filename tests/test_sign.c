/* test_sign.c: lib/sign — Ed25519 keys from PEM files, signing, verifying.
 * Keys are made by sl_sign_keygen and, for interoperability, by the
 * openssl command line when it is installed. */
#include "sign.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kindtest.h"
#include "mem.h"

static char dir[] = "/tmp/sluice-sign-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
    th_rmtree(dir);
}

TestSuite(sign, .init = setup, .fini = teardown);

static char *path(const char *name)
{
    return sl_xasprintf("%s/%s", dir, name);
}

Test(sign, sign_and_verify_round_trip_and_refuse_what_was_not_signed)
{
    char *priv = path("a.key"), *pub = path("a.pub"), *priv2 = path("b.key"), *pub2 = path("b.pub");
    sl_err err;
    cr_assert_eq(sl_sign_keygen(priv, pub, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_sign_keygen(priv2, pub2, &err), 0, "%s", err.msg);
    struct stat st;
    cr_assert_eq(stat(priv, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "the private key must not be readable by others");
    sl_sign_key *k = sl_sign_load_private(priv, &err), *p = sl_sign_load_public(pub, &err),
                *p2 = sl_sign_load_public(pub2, &err);
    cr_assert(k && p && p2, "%s", err.msg);
    char id1[SL_SIGN_ID_HEX], id2[SL_SIGN_ID_HEX], id3[SL_SIGN_ID_HEX];
    sl_sign_key_id(k, id1);
    sl_sign_key_id(p, id2);
    sl_sign_key_id(p2, id3);
    cr_assert_str_eq(id1, id2, "a key pair has one id");
    cr_assert_str_neq(id1, id3);
    cr_assert_eq(strlen(id1), SL_SIGN_ID_HEX - 1);
    const char msg[] = "job 42: deploy production";
    unsigned char sig[SL_SIGN_LEN];
    cr_assert_eq(sl_sign(k, msg, sizeof msg - 1, sig, &err), 0, "%s", err.msg);
    cr_assert(sl_sign_verify(p, msg, sizeof msg - 1, sig, sizeof sig));
    cr_assert(sl_sign_verify(k, msg, sizeof msg - 1, sig, sizeof sig), "a private key verifies too");
    cr_assert(!sl_sign_verify(p2, msg, sizeof msg - 1, sig, sizeof sig), "another key's signature");
    cr_assert(!sl_sign_verify(p, msg, sizeof msg - 2, sig, sizeof sig), "a shorter message");
    cr_assert(!sl_sign_verify(p, msg, sizeof msg - 1, sig, sizeof sig - 1), "a truncated signature");
    sig[10] ^= 1;
    cr_assert(!sl_sign_verify(p, msg, sizeof msg - 1, sig, sizeof sig), "a flipped bit");
    /* a public key cannot sign */
    cr_assert_eq(sl_sign(p, msg, sizeof msg - 1, sig, &err), -1);
    cr_assert(strstr(err.msg, "cannot sign"), "%s", err.msg);
    /* keygen never overwrites */
    char *other = path("c.pub");
    cr_assert_eq(sl_sign_keygen(priv, other, &err), -1);
    cr_assert(strstr(err.msg, priv) && strstr(err.msg, "exists"), "%s", err.msg);
    cr_assert_eq(access(other, F_OK), -1, "a failed keygen leaves no public key behind");
    free(other);
    sl_sign_key_free(k);
    sl_sign_key_free(p);
    sl_sign_key_free(p2);
    free(priv);
    free(pub);
    free(priv2);
    free(pub2);
}

Test(sign, bad_key_files_are_refused_with_the_file_named)
{
    sl_err err;
    char *missing = path("missing.pem"), *junk = path("junk.pem"), *pub = path("only.pub"),
         *priv = path("only.key");
    cr_assert_null(sl_sign_load_public(missing, &err));
    cr_assert(strstr(err.msg, missing) && strstr(err.msg, "No such file"), "%s", err.msg);
    FILE *f = fopen(junk, "w");
    cr_assert_not_null(f);
    fputs("-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n", f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_null(sl_sign_load_public(junk, &err));
    cr_assert(strstr(err.msg, junk) && strstr(err.msg, "not a PEM"), "%s", err.msg);
    cr_assert_eq(sl_sign_keygen(priv, pub, &err), 0, "%s", err.msg);
    cr_assert_null(sl_sign_load_private(pub, &err), "a public key is not a private key");
    cr_assert(strstr(err.msg, pub), "%s", err.msg);
    free(missing);
    free(junk);
    free(pub);
    free(priv);
}

Test(sign, keys_made_by_openssl_are_read_and_other_types_refused)
{
    if (system("command -v openssl >/dev/null 2>&1") != 0)
        cr_skip_test("openssl is not installed");
    char *cmd = sl_xasprintf("cd %s && openssl genpkey -algorithm ed25519 -out o.key 2>/dev/null &&"
                             " openssl pkey -in o.key -pubout -out o.pub 2>/dev/null &&"
                             " openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key"
                             " 2>/dev/null", dir);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    sl_err err;
    char *okey = path("o.key"), *opub = path("o.pub"), *ec = path("ec.key");
    sl_sign_key *k = sl_sign_load_private(okey, &err), *p = sl_sign_load_public(opub, &err);
    cr_assert(k && p, "%s", err.msg);
    unsigned char sig[SL_SIGN_LEN];
    cr_assert_eq(sl_sign(k, "x", 1, sig, &err), 0, "%s", err.msg);
    cr_assert(sl_sign_verify(p, "x", 1, sig, sizeof sig));
    cr_assert_null(sl_sign_load_private(ec, &err));
    cr_assert(strstr(err.msg, "not an Ed25519 key"), "%s", err.msg);
    sl_sign_key_free(k);
    sl_sign_key_free(p);
    free(okey);
    free(opub);
    free(ec);
}
