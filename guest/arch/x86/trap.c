/*
 * trap: dispatch of every vector.  Exceptions the kernel does not expect
 * end the run with a structured report (vector, RIP, CR2, error code) to
 * the host; the timer preempts; int3 from ring 3 is the system call.
 */
#include "trap.h"

#include "apf.h"
#include "kernel.h"
#include "sched.h"
#include "apf_x86.h"
#include "desc.h"
#include "lapic.h"

void trap_init(void)
{
	for (unsigned v = 0; v < 256; v++)
		desc_set_gate(v, v == 3); /* only int3 (#BP) may come from ring 3 */
}

static void fatal(struct trapframe *tf) __attribute__((noreturn));
static void fatal(struct trapframe *tf)
{
	struct apf_fatal f = {
		.vector = tf->vector, .error_code = tf->error, .pc = tf->rip, .mode = tf->cs,
		.flags = tf->rflags, .sp = tf->rsp, .fault_addr = read_cr2(),
		.task_id = cpu0.current ? cpu0.current->id : 0,
	};
	hcall(APF_HC_FATAL, (uint64_t)&f, 0, 0);
	arch_stop();
}

/* int3 from ring 3: RAX = number, RDI/RSI = arguments, RAX = result. */
static void syscall(struct trapframe *tf)
{
	tf->rax = syscall_dispatch(tf->rax, tf->rdi, tf->rsi);
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
