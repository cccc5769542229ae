/*
 * SHA-256 (src/util/sha256.h): the standard's vectors (FIPS 180-4 examples,
 * the empty message, a million 'a'), and the portable implementation
 * (the build without libcrypto) equal to the linked one on every length
 * around the padding's edges and on random data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "util/sha256.h"

#define SHA256_PORTABLE_NAME sha256_portable
#define SHA256_PORTABLE_ONLY
void sha256_portable(const void *data, size_t len, struct sha256 *out);
#include "util/sha256/portable.c"

static void expect(const void *data, size_t len, const char *hex)
{
	struct sha256 d;
	char got[65];

	sha256(data, len, &d);
	sha256_hex(&d, got);
	if (strcmp(got, hex))
		TEST_FAIL_("sha256 of %zu bytes: %s, expected %s", len, got, hex);
	sha256_portable(data, len, &d);
	sha256_hex(&d, got);
	if (strcmp(got, hex))
		TEST_FAIL_("portable sha256 of %zu bytes: %s, expected %s", len, got, hex);
}

TEST(the_standards_vectors)
{
	expect("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	expect("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	expect("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	char *a = malloc(1000000);
	REQUIRE(a != NULL);
	memset(a, 'a', 1000000);
	expect(a, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(a);
}

TEST(portable_equals_linked_on_every_edge_and_random_data)
{
	static unsigned char buf[8192];
	struct sha256 x, y;
	unsigned seed = 12345;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)((seed = seed * 1103515245u + 12345u) >> 16);
	for (size_t len = 0; len <= 300; len++) {
		sha256(buf, len, &x);
		sha256_portable(buf, len, &y);
		if (memcmp(&x, &y, sizeof(x)))
			TEST_FAIL_("length %zu: the implementations differ", len);
	}
	sha256(buf, sizeof(buf), &x);
	sha256_portable(buf, sizeof(buf), &y);
	CHECK(!memcmp(&x, &y, sizeof(x)));
}

TEST(matches_only_the_same_bytes)
{
	static unsigned char page[4096];
	struct sha256 d;

	memset(page, 7, sizeof(page));
	sha256(page, sizeof(page), &d);
	CHECK(sha256_matches(page, sizeof(page), &d));
	for (size_t i = 0; i < sizeof(page); i += 511) {
		page[i] ^= 1;
		CHECK(!sha256_matches(page, sizeof(page), &d));
		page[i] ^= 1;
	}
}

TEST_MAIN(T(the_standards_vectors), T(portable_equals_linked_on_every_edge_and_random_data),
	  T(matches_only_the_same_bytes))
