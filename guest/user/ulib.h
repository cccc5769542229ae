/* ulib: what ring-3 tasks use: system calls and the clock. */
#ifndef GUEST_ULIB_H
#define GUEST_ULIB_H

#include <stdint.h>

#include "uapi.h"

static inline uint64_t sys2(uint64_t nr, uint64_t a, uint64_t b)
{
	uint64_t ret = nr;
	__asm__ volatile("int3" : "+a"(ret) : "D"(a), "S"(b) : "memory", "cc");
	return ret;
}

static inline void sys_exit(uint64_t status) __attribute__((noreturn));
static inline void sys_exit(uint64_t status)
{
	sys2(SYS_EXIT, status, 0);
	for (;;)
		;
}

static inline uint64_t urdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return ((uint64_t)hi << 32) | lo;
}

#endif
