/*
 * perm: a seeded pseudo-random permutation of [0, n) computed on the fly
 * (a 4-round Feistel network on the smallest even number of bits covering
 * n, with cycle walking), so a task can visit n pages in random order
 * without a table.  Plain C, unit-tested on the host.
 */
#ifndef GUEST_PERM_H
#define GUEST_PERM_H

#include <stdint.h>

struct perm {
	uint64_t n;
	unsigned half;   /* bits per Feistel half */
	uint64_t mask;
	uint64_t keys[4];
};

static inline uint64_t perm_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static inline void perm_init(struct perm *p, uint64_t n, uint64_t seed)
{
	unsigned bits = 2;
	while (bits < 64 && (1ull << bits) < n)
		bits += 2;
	p->n = n;
	p->half = bits / 2;
	p->mask = (1ull << p->half) - 1;
	for (int i = 0; i < 4; i++)
		p->keys[i] = perm_mix(seed + 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1));
}

/* The i-th element (i < n) of the permutation. */
static inline uint64_t perm_at(const struct perm *p, uint64_t i)
{
	uint64_t x = i;
	do {
		uint64_t l = x >> p->half, r = x & p->mask;
		for (int k = 0; k < 4; k++) {
			uint64_t t = l ^ (perm_mix(r ^ p->keys[k]) & p->mask);
			l = r;
			r = t;
		}
		x = (l << p->half) | r;
	} while (x >= p->n); /* cycle walk back into [0, n) */
	return x;
}

#endif
