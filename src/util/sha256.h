/*
 * sha256: SHA-256 (FIPS 180-4), for what an attacker could forge: the
 * digests of pages and chunks that come from a network or a cache
 * (crc32c, linear, only catches damage).  Built on OpenSSL's libcrypto
 * where apfvm links it (util/sha256/libcrypto.c), else on a portable
 * implementation (util/sha256/portable.c: the static arm64 cross build);
 * tests/unit/test_sha256.c holds both to the standard's vectors and to
 * each other.
 */
#ifndef APFVM_SHA256_H
#define APFVM_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

struct sha256 {
	uint8_t b[SHA256_LEN];
};

/* The digest of len bytes. */
void sha256(const void *data, size_t len, struct sha256 *out);

/* Whether data's digest is want (compared in constant time). */
bool sha256_matches(const void *data, size_t len, const struct sha256 *want);

/* Lowercase hex, 64 characters and a NUL. */
void sha256_hex(const struct sha256 *d, char out[2 * SHA256_LEN + 1]);

#endif
