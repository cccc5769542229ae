/* ulib: the reference guest's system calls, for its ring-3 code. */
#ifndef GUEST_ULIB_H
#define GUEST_ULIB_H

#include <stdint.h>

#include "arch_user.h"
#include "uapi.h"

static inline uint64_t sys2(uint64_t nr, uint64_t a, uint64_t b)
{
	return arch_syscall2(nr, a, b);
}

static inline void sys_exit(uint64_t status) __attribute__((noreturn));
static inline void sys_exit(uint64_t status)
{
	sys2(SYS_EXIT, status, 0);
	for (;;)
		;
}

#endif
