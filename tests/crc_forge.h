/*
 * A test helper: forging a crc32c, as an on-path attacker can, to show
 * that only a SHA-256 keeps forged data out.
 */
#ifndef APFVM_CRC_FORGE_H
#define APFVM_CRC_FORGE_H

#include <stddef.h>
#include <stdint.h>

#include "util/crc32c.h"

/* Flips bits of the buffer's last 4 bytes so that its crc32c becomes want:
 * crc32c is affine over GF(2), so the 32 bits' effects form a linear
 * system, solved here.  What an on-path attacker can do to any page. */
static inline void forge_crc32c(unsigned char *page, size_t len, uint32_t want)
{
	uint32_t effect[32], base = crc32c(0, page, len), need = base ^ want;

	for (int b = 0; b < 32; b++) {
		page[len - 4 + b / 8] ^= (unsigned char)(1u << (b % 8));
		effect[b] = crc32c(0, page, len) ^ base;
		page[len - 4 + b / 8] ^= (unsigned char)(1u << (b % 8));
	}
	/* Gaussian elimination: basis[k] has its highest set bit at k. */
	uint32_t basis[32] = { 0 }, combo[32] = { 0 };
	for (int b = 0; b < 32; b++) {
		uint32_t v = effect[b], c = 1u << b;
		for (int k = 31; k >= 0 && v; k--) {
			if (!(v >> k & 1))
				continue;
			if (!basis[k]) {
				basis[k] = v;
				combo[k] = c;
				v = 0;
				break;
			}
			v ^= basis[k];
			c ^= combo[k];
		}
	}
	uint32_t flips = 0;
	for (int k = 31; k >= 0; k--)
		if (need >> k & 1 && basis[k]) {
			need ^= basis[k];
			flips ^= combo[k];
		}
	for (int b = 0; b < 32; b++)
		if (flips >> b & 1)
			page[len - 4 + b / 8] ^= (unsigned char)(1u << (b % 8));
}

#endif
