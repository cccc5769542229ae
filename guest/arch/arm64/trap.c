/*
 * trap: dispatch of every vector-table entry.  Exceptions the kernel does
 * not expect end the run with a structured report (vector entry, ESR,
 * ELR, SPSR, FAR) to the host; the timer preempts; SVC from EL0 is the
 * system call.
 */
#include "trap.h"

#include "apf.h"
#include "apf_arm64.h"
#include "gic.h"
#include "kernel.h"
#include "sched.h"

#define ESR_EC(esr)     ((esr) >> 26)
#define EC_SVC64        0x15

static void fatal(struct trapframe *tf, uint64_t index) __attribute__((noreturn));
static void fatal(struct trapframe *tf, uint64_t index)
{
	struct apf_fatal f = {
		.vector = index, .error_code = SYSREG_READ(esr_el1), .pc = tf->elr,
		.mode = tf->spsr, .flags = 0,
		.sp = index >= VEC_EL0_SYNC ? tf->sp_el0 : (uint64_t)(tf + 1),
		.fault_addr = SYSREG_READ(far_el1),
		.task_id = cpu0.current ? cpu0.current->id : 0,
	};
	hcall(APF_HC_FATAL, (uint64_t)&f, 0, 0);
	arch_stop();
}

/* Every IRQ looks at the async-PF area too: a not-present arrives as an
 * IRQ entry the host took for the guest, with no interrupt of its own
 * (the GIC says spurious) or alongside another one. */
static void irq(struct trapframe *tf, uint64_t index)
{
	uint32_t intid = gic_ack();

	if (intid < GIC_SPURIOUS) {
		if (intid == APF_ARM64_PPI_VTIMER)
			timer_rearm(); /* before the EOI: the level drops */
		gic_eoi(intid);
		if (intid != APF_ARM64_PPI_VTIMER && !apf_is_intid(intid))
			fatal(tf, index);
	}
	if (apf_interrupt(tf->elr, index == VEC_EL0_IRQ))
		return; /* the tick, if any, is stale: the task may have waited */
	if (intid == APF_ARM64_PPI_VTIMER)
		sched_tick();
}

void trap(struct trapframe *tf, uint64_t index)
{
	switch (index) {
	case VEC_EL0_IRQ:
	case VEC_EL1_IRQ:
		irq(tf, index);
		return;
	case VEC_EL0_SYNC:
		if (ESR_EC(SYSREG_READ(esr_el1)) == EC_SVC64) {
			tf->x[0] = syscall_dispatch(tf->x[8], tf->x[0], tf->x[1]);
			return;
		}
		fatal(tf, index);
	default:
		fatal(tf, index);
	}
}
