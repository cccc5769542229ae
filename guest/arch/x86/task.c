/*
 * x86-64 task contexts and the kernel's setup hooks (arch.h).
 *
 * A switched-out task's kernel stack holds, from its saved `ksp` up: the
 * six callee-saved registers and the address swtch() returns to (entry.S).
 * A new user task's first switch-in "returns" into trap_return with an
 * iret frame to ring 3 above; the idle task's returns into its function.
 */
#include "runqueue.h"
#include "kernel.h"
#include "desc.h"
#include "lapic.h"
#include "probe.h"
#include "trap.h"

/* entry.S: saves callee-saved registers on the current stack, stores the
 * stack pointer in *save, loads `next` and returns there. */
void swtch(uint64_t *save, uint64_t next);

void arch_init(void)
{
	desc_init();
	trap_init();
	lapic_init();
}

void arch_timer_start(unsigned hz)
{
	lapic_timer_start(hz);
}

void arch_probe_exits(uint64_t tsc_khz)
{
	probe_exits(tsc_khz);
}

/* Prepares t's kernel stack so that the first swtch() to it "returns"
 * into `resume`, with zeroed callee-saved registers below. */
static void prepare_stack(struct task *t, uint64_t sp, uint64_t resume)
{
	uint64_t *s = (uint64_t *)sp;
	*--s = resume;
	for (int i = 0; i < 6; i++)
		*--s = 0;
	t->ksp = (uint64_t)s;
}

void arch_task_init_user(struct task *t, uint64_t entry, uint64_t arg, uint64_t ustack_top)
{
	/* The first return to ring 3 goes through trap_return with this
	 * frame (the rest of it is zero: fresh memory). */
	struct trapframe *tf = (struct trapframe *)(t->kstack_top - sizeof(*tf));
	tf->rip = entry;
	tf->cs = SEL_UCODE;
	tf->rflags = 0x202; /* IF */
	tf->rsp = ustack_top - 8; /* as if called: keeps the ABI's alignment */
	tf->ss = SEL_UDATA;
	tf->rdi = arg;
	prepare_stack(t, (uint64_t)tf, (uint64_t)trap_return);
}

void arch_task_init_kernel(struct task *t, void (*fn)(void))
{
	prepare_stack(t, t->kstack_top - 8, (uint64_t)fn);
}

void arch_task_switch(struct task *prev, struct task *next)
{
	if (next->kind) /* the idle task never returns to ring 3 */
		desc_set_kernel_stack(next->kstack_top);
	swtch(&prev->ksp, next->ksp);
}

/* Deliberate failures (main.c's selftest_crash): the x86 ones. */
void arch_selftest_crash(void)
{
	static const struct { uint16_t limit; uint64_t base; } __attribute__((packed)) no_idt;

	if (cmdline_has("crash=ud2"))
		__asm__ volatile("ud2");
	if (cmdline_has("crash=pf")) {
		uint64_t v, null_page = 8; /* page 0 is unmapped */
		__asm__ volatile("mov (%1), %0" : "=r"(v) : "r"(null_page));
	}
	if (cmdline_has("crash=triple")) {
		__asm__ volatile("lidt %0; ud2" ::"m"(no_idt));
	}
	if (cmdline_has("crash=apf-msr")) /* reserved bits 4-5: the host must #GP */
		wrmsr(MSR_KVM_ASYNC_PF_EN, 0x2000 | 0x30 | KVM_ASYNC_PF_ENABLED);
}
