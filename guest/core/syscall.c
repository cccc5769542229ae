/*
 * syscall: the reference guest's system calls (guest/user/uapi.h), as the
 * architecture's trap handler hands them over.  Every pointer a task
 * passes is checked to lie in task memory before the host is given it.
 */
#include "../user/uapi.h"
#include "kernel.h"
#include "sched.h"

/* A user pointer must lie in task memory: the user heap or the workloads'
 * own segments.  The kernel never follows any other. */
static int in_range(uint64_t p, uint64_t len, uint64_t lo, uint64_t hi)
{
	return p >= lo && p <= hi && len <= hi - p;
}

static int user_range_ok(uint64_t p, uint64_t len)
{
	extern char __user_start[], __user_end[];
	return in_range(p, len, boot_info->ufree_start, boot_info->ufree_end) ||
	       in_range(p, len, (uint64_t)__user_start, (uint64_t)__user_end);
}

uint64_t syscall_dispatch(uint64_t nr, uint64_t a0, uint64_t a1)
{
	switch (nr) {
	case SYS_EXIT:
		sched_exit();
	case SYS_REPORT: {
		const struct apf_task_result *r = (const void *)a0;
		if (!user_range_ok(a0, sizeof(*r)) || r->id != cpu0.current->id)
			return (uint64_t)-1;
		/* The host copies the result straight from user memory. */
		hcall(APF_HC_RESULT, a0, 0, 0);
		return 0;
	}
	case SYS_WRITE:
		if (!user_range_ok(a0, a1) || a1 > 4096)
			return (uint64_t)-1;
		hcall(APF_HC_CONSOLE, a0, a1, 0);
		return 0;
	case SYS_YIELD:
		sched_preempt();
		return 0;
	default:
		return (uint64_t)-1;
	}
}
