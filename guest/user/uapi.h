/*
 * uapi: the interface between the reference guest kernel and its ring-3
 * tasks: the system call numbers.  How a call is made is the
 * architecture's (arch_syscall2 in guest/arch/<arch>/arch_user.h).
 */
#ifndef APFVM_GUEST_UAPI_H
#define APFVM_GUEST_UAPI_H

#include <stdint.h>

#include "apfvm/abi.h"
#include "../workloads/workloads.h"

enum sys_nr {
	SYS_EXIT = 1,   /* rdi = status; never returns */
	SYS_REPORT = 2, /* rdi = struct apf_task_result * (user memory) */
	SYS_WRITE = 3,  /* rdi = text, rsi = length: guest console */
	SYS_YIELD = 4,
};

#endif
