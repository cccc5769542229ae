/* The arm64 side of what EL0 code needs: the cycle counter (CNTVCT_EL0,
 * which the kernel lets EL0 read through CNTKCTL_EL1.EL0VCTEN) and the
 * reference guest's system call (`svc #0`: x8 = number, x0/x1 =
 * arguments, x0 = result). */
#ifndef GUEST_ARCH_ARM64_USER_H
#define GUEST_ARCH_ARM64_USER_H

#include <stdint.h>

static inline uint64_t task_cycles(void)
{
	uint64_t v;
	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v)::"memory");
	return v;
}

static inline uint64_t arch_syscall2(uint64_t nr, uint64_t a, uint64_t b)
{
	register uint64_t x8 __asm__("x8") = nr;
	register uint64_t x0 __asm__("x0") = a;
	register uint64_t x1 __asm__("x1") = b;
	__asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1) : "memory", "cc");
	return x0;
}

#endif
