/*
 * trap: dispatch of every vector.  Exceptions the kernel does not expect
 * end the run with a structured report (vector, RIP, CR2, error code) to
 * the host; the timer preempts; int3 from ring 3 is the system call.
 */
#include "trap.h"

#include "../user/uapi.h"
#include "apf.h"
#include "desc.h"
#include "kernel.h"
#include "lapic.h"
#include "sched.h"

void trap_init(void)
{
	for (unsigned v = 0; v < 256; v++)
		desc_set_gate(v, v == 3); /* only int3 (#BP) may come from ring 3 */
}

static void fatal(struct trapframe *tf) __attribute__((noreturn));
static void fatal(struct trapframe *tf)
{
	struct apf_fatal f = {
		.vector = tf->vector, .error_code = tf->error, .rip = tf->rip, .cs = tf->cs,
		.rflags = tf->rflags, .rsp = tf->rsp, .cr2 = read_cr2(),
		.task_id = cpu0.current ? cpu0.current->id : 0,
	};
	hcall(APF_HC_FATAL, (uint64_t)&f, 0, 0);
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* A user pointer must lie in ring-3 memory: the user heap or the
 * workloads' own segments.  The kernel never follows any other. */
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

static void syscall(struct trapframe *tf)
{
	switch (tf->rax) {
	case SYS_EXIT:
		sched_exit();
	case SYS_REPORT: {
		const struct apf_task_result *r = (const void *)tf->rdi;
		if (!user_range_ok(tf->rdi, sizeof(*r)) || r->id != cpu0.current->id) {
			tf->rax = (uint64_t)-1;
			return;
		}
		/* The host copies the result straight from user memory. */
		hcall(APF_HC_RESULT, tf->rdi, 0, 0);
		tf->rax = 0;
		return;
	}
	case SYS_WRITE:
		if (!user_range_ok(tf->rdi, tf->rsi) || tf->rsi > 4096) {
			tf->rax = (uint64_t)-1;
			return;
		}
		hcall(APF_HC_CONSOLE, tf->rdi, tf->rsi, 0);
		tf->rax = 0;
		return;
	case SYS_YIELD:
		sched_preempt();
		tf->rax = 0;
		return;
	default:
		tf->rax = (uint64_t)-1;
		return;
	}
}

/* Most frequent first: page-ready and async not-present are the hot
 * paths; every instruction here runs emulated on some hosts. */
void trap(struct trapframe *tf)
{
	uint64_t v = tf->vector;

	if (v == VEC_APF) {
		apf_ready_irq();
	} else if (v == 14) {
		if (!apf_handle_pf(tf))
			fatal(tf);
	} else if (v == VEC_TIMER) {
		lapic_eoi();
		sched_tick();
	} else if (v == 3 && (tf->cs & 3) == 3) {
		syscall(tf);
	} else if (v != VEC_SPURIOUS) { /* spurious: no EOI */
		fatal(tf);
	}
}
