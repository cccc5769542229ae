#include "sched.h"

#include "../user/uapi.h"
#include "apf.h"
#include "desc.h"
#include "kernel.h"
#include "trap.h"

struct cpu cpu0;
static struct task idle_task;
static struct task tasks[APF_MAX_TASKS];
static unsigned ntasks;

extern struct user_shared *user_shared;

void sched_switch_to(struct task *t)
{
	struct task *prev = cpu0.current;

	t->state = TASK_RUNNING;
	if (t == prev)
		return;
	cpu0.current = t;
	cpu0.switched_tsc = rdtsc();
	if (t->kind) /* the idle task never returns to ring 3 */
		desc_set_kernel_stack(t->kstack_top);
	swtch(&prev->ksp, t->ksp);
}

/* Picks what runs next on this CPU: the oldest runnable task, else idle. */
static struct task *pick_next(void)
{
	struct task *t = rq_pop(&cpu0.rq);
	return t ? t : cpu0.idle;
}

void sched_preempt(void)
{
	struct task *cur = cpu0.current;

	if (cur == cpu0.idle || !cpu0.rq.head)
		return; /* idle picks for itself; alone: keep running */
	rq_push(&cpu0.rq, cur);
	sched_switch_to(pick_next());
}

void sched_tick(void)
{
	if (rdtsc() - cpu0.switched_tsc < cpu0.min_slice_tsc)
		return;
	sched_preempt();
}

void sched_exit(void)
{
	struct task *cur = cpu0.current;

	cur->state = TASK_DEAD;
	cpu0.live--;
	if (cur->kind != APF_TASK_COMPUTE)
		user_shared->noncompute_live--;
	sched_switch_to(pick_next());
	KASSERT(0); /* a dead task is never switched back to */
	for (;;)
		;
}

/* The idle task: runs queued tasks; halts with interrupts enabled when
 * none is runnable; ends the run when every task has exited. */
static void idle_main(void)
{
	for (;;) {
		struct task *t = rq_pop(&cpu0.rq);
		if (t) {
			sched_switch_to(t);
			continue;
		}
		if (!cpu0.live) {
			apf_shutdown();
			kdone(0);
		}
		halt_once();
	}
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

struct task *sched_create_user(uint64_t entry, uint64_t arg, uint32_t kind)
{
	struct task *t;
	struct trapframe *tf;
	uint64_t ustack;

	KASSERT(ntasks < APF_MAX_TASKS);
	t = &tasks[ntasks++];
	t->id = ntasks;
	t->kind = kind;
	t->kstack_top = (uint64_t)kalloc(KSTACK_SIZE) + KSTACK_SIZE;
	ustack = (uint64_t)ualloc(USTACK_SIZE) + USTACK_SIZE;

	/* The first return to ring 3 goes through trap_return with this
	 * frame (the rest of it is zero: fresh memory). */
	tf = (struct trapframe *)(t->kstack_top - sizeof(*tf));
	tf->rip = entry;
	tf->cs = SEL_UCODE;
	tf->rflags = 0x202; /* IF */
	tf->rsp = ustack - 8; /* as if called: keeps the ABI's alignment */
	tf->ss = SEL_UDATA;
	tf->rdi = arg;
	prepare_stack(t, (uint64_t)tf, (uint64_t)trap_return);
	cpu0.live++;
	rq_push(&cpu0.rq, t);
	return t;
}

void sched_init(void)
{
	idle_task.id = 0;
	idle_task.kind = 0;
	idle_task.kstack_top = (uint64_t)kalloc(KSTACK_SIZE) + KSTACK_SIZE;
	prepare_stack(&idle_task, idle_task.kstack_top - 8, (uint64_t)idle_main);
	cpu0.idle = &idle_task;
}

void sched_start(void)
{
	static struct task boot; /* the boot context, abandoned */
	cpu0.current = &boot;
	sched_switch_to(cpu0.idle);
	for (;;)
		;
}
