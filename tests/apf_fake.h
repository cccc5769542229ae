/*
 * A fake VM for the async-fault core: guest memory is a byte array, kicks
 * and raised vectors are recorded.  Shared by the core's unit tests and its
 * fuzz target.
 */
#ifndef APFVM_TEST_APF_FAKE_H
#define APFVM_TEST_APF_FAKE_H

#include <stdlib.h>
#include <string.h>

#include "apf/apf_core.h"

#define FAKE_MEM_BASE 0x1000u
#define FAKE_MEM_END  0x10020u /* not 64-aligned: an area can straddle the end */
#define FAKE_AREA     0x2000u

struct fake_vm {
	uint8_t mem[FAKE_MEM_END];
	unsigned kicks[APF_CORE_MAX_VCPUS];
	unsigned raises[APF_CORE_MAX_VCPUS];
	uint8_t last_vector[APF_CORE_MAX_VCPUS];
	int bad_access;     /* an access outside guest memory was attempted */
	uint8_t present[4096]; /* fake page state for take_injection */
	int raise_err;      /* if set, raise() fails with it */
	unsigned fails;     /* fail() calls */
	int last_fail;
};

static inline int fake_in(uint64_t gpa, uint64_t len)
{
	return gpa >= FAKE_MEM_BASE && gpa <= FAKE_MEM_END && len <= FAKE_MEM_END - gpa;
}

static inline void fake_kick(void *ctx, unsigned v, uint64_t page)
{
	(void)page;
	(void)page;
	((struct fake_vm *)ctx)->kicks[v]++;
}

static inline int fake_write_u32(void *ctx, uint64_t gpa, uint32_t value)
{
	struct fake_vm *f = ctx;
	if (!fake_in(gpa, 4)) {
		f->bad_access = 1;
		return -14;
	}
	memcpy(&f->mem[gpa], &value, 4);
	return 0;
}

static inline int fake_read_u32(void *ctx, uint64_t gpa, uint32_t *value)
{
	struct fake_vm *f = ctx;
	if (!fake_in(gpa, 4)) {
		f->bad_access = 1;
		return -14;
	}
	memcpy(value, &f->mem[gpa], 4);
	return 0;
}

static inline int fake_raise(void *ctx, unsigned v, uint8_t vector)
{
	struct fake_vm *f = ctx;
	if (f->raise_err)
		return f->raise_err;
	f->raises[v]++;
	f->last_vector[v] = vector;
	return 0;
}

static inline void fake_fail(void *ctx, unsigned v, int err, const char *what)
{
	struct fake_vm *f = ctx;
	(void)v;
	(void)what;
	f->fails++;
	f->last_fail = err;
}

static inline bool fake_gpa_ok(void *ctx, uint64_t gpa, uint64_t len)
{
	(void)ctx;
	return fake_in(gpa, len);
}

static inline bool fake_page_present(void *ctx, uint64_t page)
{
	struct fake_vm *f = ctx;
	return page < sizeof(f->present) && f->present[page];
}

static const struct apf_core_ops fake_ops = {
	.kick = fake_kick,
	.write_u32 = fake_write_u32,
	.read_u32 = fake_read_u32,
	.raise = fake_raise,
	.gpa_ok = fake_gpa_ok,
	.fail = fake_fail,
};

static inline uint32_t fake_u32(const struct fake_vm *f, uint64_t gpa)
{
	uint32_t v;
	memcpy(&v, &f->mem[gpa], 4);
	return v;
}

static inline void fake_set_u32(struct fake_vm *f, uint64_t gpa, uint32_t value)
{
	memcpy(&f->mem[gpa], &value, 4);
}

#endif
