#include "sched.h"

#include "../user/uapi.h"
#include "apf.h"
#include "kernel.h"

struct cpu cpu0;
static struct task idle_task;
static struct task tasks[APF_MAX_TASKS];
static unsigned ntasks;

struct user_shared *user_shared;

void sched_switch_to(struct task *t)
{
	struct task *prev = cpu0.current;

	t->state = TASK_RUNNING;
	if (t == prev)
		return;
	cpu0.current = t;
	cpu0.switched_tsc = arch_cycles();
	arch_task_switch(prev, t);
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
	if (arch_cycles() - cpu0.switched_tsc < cpu0.min_slice_tsc)
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
		arch_halt_once();
	}
}

struct task *sched_create_user(uint64_t entry, uint64_t arg, uint32_t kind)
{
	struct task *t;
	uint64_t ustack;

	KASSERT(ntasks < APF_MAX_TASKS);
	t = &tasks[ntasks++];
	t->id = ntasks;
	t->kind = kind;
	t->kstack_top = (uint64_t)kalloc(KSTACK_SIZE) + KSTACK_SIZE;
	ustack = (uint64_t)ualloc(USTACK_SIZE) + USTACK_SIZE;

	arch_task_init_user(t, entry, arg, ustack);
	cpu0.live++;
	rq_push(&cpu0.rq, t);
	return t;
}

void sched_init(void)
{
	idle_task.id = 0;
	idle_task.kind = 0;
	idle_task.kstack_top = (uint64_t)kalloc(KSTACK_SIZE) + KSTACK_SIZE;
	arch_task_init_kernel(&idle_task, idle_main);
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
