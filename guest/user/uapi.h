/*
 * uapi: the interface between the reference guest kernel and its ring-3
 * tasks.  System calls are `int3` (the only user->kernel trap that works on
 * every platform apfvm targets, see docs/guest.md): RAX = number, RDI/RSI
 * = arguments, RAX = result.
 */
#ifndef APFVM_GUEST_UAPI_H
#define APFVM_GUEST_UAPI_H

#include <stdint.h>

#include "apfvm/abi.h"

enum sys_nr {
	SYS_EXIT = 1,   /* rdi = status; never returns */
	SYS_REPORT = 2, /* rdi = struct apf_task_result * (user memory) */
	SYS_WRITE = 3,  /* rdi = text, rsi = length: guest console */
	SYS_YIELD = 4,
};

/* Read-only for tasks: state the kernel publishes (like a vDSO page). */
struct user_shared {
	volatile uint64_t noncompute_live; /* non-compute tasks not yet exited */
	uint64_t noncompute_total;
	uint64_t tsc_khz;
};

/* What a task receives in RDI at its first instruction. */
struct task_args {
	uint32_t kind, id, index, count;
	uint64_t lazy_base, lazy_size;
	uint32_t pattern, scan_order;
	uint64_t seed, order_seed;
	uint64_t duration_tsc;
	const struct user_shared *shared;
	struct apf_trace *trace;        /* fault-path stamps, or 0 */
};

#endif
