/* The x86-64 side of what ring-3 code needs: the cycle counter and the
 * reference guest's system call (`int3`: RAX = number, RDI/RSI =
 * arguments, RAX = result; the only user->kernel trap that works on every
 * platform apfvm targets, see docs/guest.md). */
#ifndef GUEST_ARCH_X86_USER_H
#define GUEST_ARCH_X86_USER_H

#include <stdint.h>

static inline uint64_t task_cycles(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t arch_syscall2(uint64_t nr, uint64_t a, uint64_t b)
{
	uint64_t ret = nr;
	__asm__ volatile("int3" : "+a"(ret) : "D"(a), "S"(b) : "memory", "cc");
	return ret;
}

#endif
