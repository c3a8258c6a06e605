/* test_cursor.c: the keyset cursors' SHA-256 and HMAC against the published
 * vectors (FIPS 180-4 examples, RFC 4231), and the cursor rules: a cursor
 * round-trips on its own list only; a changed byte, another list, another
 * scope or filter, and garbage are all refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cursor.h"

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

Test(cursor, sha256_vectors)
{
    uint8_t d[32];
    char h[65];
    static char million[1000000];

    cursor_sha256("", 0, d), hex(d, 32, h);
    cr_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cursor_sha256("abc", 3, d), hex(d, 32, h);
    cr_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    cursor_sha256(two, strlen(two), d), hex(d, 32, h);
    cr_assert_str_eq(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    memset(million, 'a', sizeof million);
    cursor_sha256(million, sizeof million, d), hex(d, 32, h);
    cr_assert_str_eq(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

Test(cursor, hmac_rfc4231)
{
    uint8_t d[32];
    char h[65], key[132];

    cursor_hmac("Jefe", "what do ya want for nothing?", 28, d), hex(d, 32, h);
    cr_assert_str_eq(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(key, 0xaa, 131), key[131] = '\0';
    const char *msg = "Test Using Larger Than Block-Size Key - Hash Key First";
    cursor_hmac(key, msg, strlen(msg), d), hex(d, 32, h);
    cr_assert_str_eq(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

Test(cursor, round_trip_only_on_its_own_list)
{
    const struct cursor_scope s = {"registrations", "ses_1", "status=active"};
    char text[CURSOR_TEXT_MAX + 1], key[CURSOR_KEY_MAX + 1], id[129];

    cr_assert(cursor_encode("secret", &s, "2026-11-21T23:16:54.123456Z", "reg_9", text));
    cr_assert(cursor_decode("secret", &s, text, key, id, sizeof id));
    cr_assert_str_eq(key, "2026-11-21T23:16:54.123456Z");
    cr_assert_str_eq(id, "reg_9");
    cr_assert_not(cursor_decode("other secret", &s, text, key, id, sizeof id));
    cr_assert_not(cursor_decode("secret", &(struct cursor_scope){"registrations", "ses_2", "status=active"},
                                text, key, id, sizeof id));
    cr_assert_not(cursor_decode("secret", &(struct cursor_scope){"registrations", "ses_1", ""},
                                text, key, id, sizeof id));
    cr_assert_not(cursor_decode("secret", &(struct cursor_scope){"events", "ses_1", "status=active"},
                                text, key, id, sizeof id));
    for (size_t i = 0; text[i]; i++) {                 /* every single changed character */
        char copy[sizeof text];
        strcpy(copy, text);
        copy[i] = copy[i] == 'A' ? 'B' : 'A';
        cr_assert_not(cursor_decode("secret", &s, copy, key, id, sizeof id), "changed at %zu", i);
    }
    cr_assert_not(cursor_decode("secret", &s, "", key, id, sizeof id));
    cr_assert_not(cursor_decode("secret", &s, "not a cursor!", key, id, sizeof id));
    cr_assert_not(cursor_decode("secret", &s, "YWJj", key, id, sizeof id));
}
