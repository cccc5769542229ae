/*
 * arm64 task contexts and the kernel's setup hooks (arch.h).
 *
 * A switched-out task's kernel stack holds, from its saved `ksp` up: x19
 * to x30 as swtch() saved them (entry.S), x30 being where it resumes.  A
 * new task's first switch-in resumes in trap_return with a frame that
 * erets to EL0; the idle task's resumes in its function.  A task's
 * exceptions from EL0 land on its own kernel stack: SP_EL1 is where
 * trap_return left it, the top of that stack.
 */
#include "gic.h"
#include "kernel.h"
#include "runqueue.h"
#include "trap.h"

/* entry.S */
void swtch(uint64_t *save, uint64_t next);

#define SWTCH_FRAME_WORDS 12 /* x19-x30 */
#define CNTKCTL_EL0VCTEN  (1u << 1)

void arch_init(void)
{
	/* EL0 reads the virtual counter (the workloads' clock). */
	SYSREG_WRITE(cntkctl_el1, CNTKCTL_EL0VCTEN);
	isb();
	gic_init();
}

void arch_timer_start(unsigned hz)
{
	timer_start(hz);
}

/* The exit an async event's round trip is made of on arm64: a hypercall
 * to the VMM (an MMIO exit for the doorbell). */
void arch_probe_exits(uint64_t tsc_khz)
{
	enum { ROUNDS = 256, WARMUP = 64 };
	if (!tsc_khz)
		return;
	for (int i = 0; i < WARMUP; i++)
		hcall(APF_HC_CONSOLE, 0, 0, 0);
	uint64_t t0 = arch_cycles();
	for (int i = 0; i < ROUNDS; i++)
		hcall(APF_HC_CONSOLE, 0, 0, 0);
	uint64_t ns = (arch_cycles() - t0) * 1000000 / tsc_khz / ROUNDS;
	kprintf("probe-exits: hypercall (MMIO exit to the VMM) %lu ns\n", (unsigned long)ns);
}

static void prepare_stack(struct task *t, uint64_t sp, uint64_t resume)
{
	uint64_t *s = (uint64_t *)sp - SWTCH_FRAME_WORDS;
	for (int i = 0; i < SWTCH_FRAME_WORDS; i++)
		s[i] = 0;
	s[SWTCH_FRAME_WORDS - 1] = resume; /* x30 */
	t->ksp = (uint64_t)s;
}

void arch_task_init_user(struct task *t, uint64_t entry, uint64_t arg, uint64_t ustack_top)
{
	/* The first return to EL0 goes through trap_return with this frame
	 * (the rest of it is zero: fresh memory). */
	struct trapframe *tf = (struct trapframe *)(t->kstack_top - sizeof(*tf));
	tf->elr = entry;
	tf->spsr = 0; /* EL0t, DAIF clear: interrupts enabled */
	tf->sp_el0 = ustack_top;
	tf->x[0] = arg;
	prepare_stack(t, (uint64_t)tf, (uint64_t)trap_return);
}

void arch_task_init_kernel(struct task *t, void (*fn)(void))
{
	prepare_stack(t, t->kstack_top, (uint64_t)fn);
}

void arch_task_switch(struct task *prev, struct task *next)
{
	swtch(&prev->ksp, next->ksp);
}

/* Deliberate failures (main.c's selftest_crash): the arm64 ones. */
void arch_selftest_crash(void)
{
	if (cmdline_has("crash=ud2"))
		__asm__ volatile("udf #0");
	if (cmdline_has("crash=pf")) {
		uint64_t v, null_page = 8; /* page 0 is unmapped */
		__asm__ volatile("ldr %0, [%1]" : "=r"(v) : "r"(null_page));
	}
}
