/* test_sha256.c: lib/sha256 against the FIPS 180-4 examples and the
 * RFC 4231 HMAC-SHA256 test cases. */
#include "sha256.h"

#include <criterion/criterion.h>
#include <string.h>

static void expect(const unsigned char d[SL_SHA256_LEN], const char *hex)
{
    char got[SL_SHA256_HEX];
    sl_sha256_hex(d, got);
    cr_assert_str_eq(got, hex);
}

Test(sha256, fips_vectors)
{
    unsigned char d[SL_SHA256_LEN];
    sl_sha256_digest("", 0, d);
    expect(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sl_sha256_digest("abc", 3, d);
    expect(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sl_sha256_digest(two, strlen(two), d);
    expect(d, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(sha256, streaming_in_odd_pieces_equals_one_shot)
{
    /* a million 'a' fed in pieces of 1..97 bytes: crosses every block edge */
    static char a[1000000];
    memset(a, 'a', sizeof a);
    sl_sha256_ctx s;
    sl_sha256_init(&s);
    size_t off = 0, step = 1;
    while (off < sizeof a) {
        size_t n = step < sizeof a - off ? step : sizeof a - off;
        sl_sha256_update(&s, a + off, n);
        off += n;
        step = step % 97 + 1;
    }
    unsigned char d[SL_SHA256_LEN];
    sl_sha256_final(&s, d);
    expect(d, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

Test(sha256, hmac_rfc4231)
{
    unsigned char d[SL_SHA256_LEN], key[131];
    memset(key, 0x0b, 20);
    sl_hmac_sha256(key, 20, "Hi There", 8, d);
    expect(d, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    sl_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, d);
    expect(d, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(key, 0xaa, sizeof key);   /* case 6: a key longer than the block */
    const char *m = "Test Using Larger Than Block-Size Key - Hash Key First";
    sl_hmac_sha256(key, 131, m, strlen(m), d);
    expect(d, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}
