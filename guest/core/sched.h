/*
 * sched: tasks and the round-robin scheduler (one run queue per CPU).
 *
 * Every task has its own kernel stack; a task switch is a switch between
 * kernel stacks (xv6 style; arch_task_switch), so a task can be suspended anywhere in the
 * kernel (preempted by the timer, later parked on a page fault) and
 * resumed where it stopped.  The kernel runs with interrupts disabled
 * except in the idle task's halt, so on one CPU no locks are needed.
 * The queue operations are plain C (runqueue.h) and unit-tested on the host.
 */
#ifndef GUEST_SCHED_H
#define GUEST_SCHED_H

#include <stdint.h>

#include "runqueue.h"

struct cpu {
	struct task *current;
	struct task *idle;
	struct runqueue rq;
	unsigned live;        /* user tasks not yet exited */
	uint64_t switched_tsc;   /* when `current` was switched in */
	uint64_t min_slice_tsc;  /* a tick preempts no task that ran less */
};

extern struct cpu cpu0;

/* The page every task shares (user/uapi.h); set up by kmain before the
 * scheduler starts, which counts the live non-compute tasks in it. */
struct user_shared;
extern struct user_shared *user_shared;

void sched_init(void);

/* Creates a user task (ring 3, EL0) that starts at entry(arg) on its own user stack. */
struct task *sched_create_user(uint64_t entry, uint64_t arg, uint32_t kind);

/* Leaves the boot context for good: runs the idle task, which runs the
 * tasks and ends the run when none is left. */
void sched_start(void) __attribute__((noreturn));

/* Yield: round-robin to the next runnable task, if any. */
void sched_preempt(void);

/* Timer tick: as sched_preempt(), unless the current task was switched in
 * less than cpu0.min_slice_tsc ago.  A task woken by page-ready mid-tick
 * would otherwise often be preempted before its retried access: on a host
 * that was busy, the tick falls due while the vCPU is out and arrives
 * together with the page-ready, and the woken task lost a whole tick. */
void sched_tick(void);

/* The current task exits. */
void sched_exit(void) __attribute__((noreturn));

/* Switches to t (current must already be queued, blocked or dead). */
void sched_switch_to(struct task *t);

#endif
