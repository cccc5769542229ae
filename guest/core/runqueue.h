/*
 * runqueue: task records and the FIFO of runnable tasks.  No hardware
 * access: compiled into the guest and into the host unit tests.
 */
#ifndef GUEST_RUNQUEUE_H
#define GUEST_RUNQUEUE_H

#include <stddef.h>
#include <stdint.h>

enum task_state { TASK_RUNNABLE, TASK_RUNNING, TASK_BLOCKED, TASK_DEAD };

struct task {
	uint64_t ksp;        /* saved kernel stack pointer while switched out */
	uint64_t kstack_top;
	uint32_t id;         /* 1-based; 0 = idle */
	uint32_t kind;       /* enum apf_task_kind, 0 = kernel task */
	enum task_state state;
	volatile int apf_woken; /* page-ready arrived for the fault it waits on */
	struct task *next;   /* run queue link */
};

struct runqueue {
	struct task *head, *tail;
	unsigned len;
};

/* Appends t (not already queued) and marks it runnable. */
static inline void rq_push(struct runqueue *q, struct task *t)
{
	t->state = TASK_RUNNABLE;
	t->next = NULL;
	if (q->tail)
		q->tail->next = t;
	else
		q->head = t;
	q->tail = t;
	q->len++;
}

/* Removes and returns the oldest task, or NULL. */
static inline struct task *rq_pop(struct runqueue *q)
{
	struct task *t = q->head;
	if (!t)
		return NULL;
	q->head = t->next;
	if (!q->head)
		q->tail = NULL;
	t->next = NULL;
	q->len--;
	return t;
}

#endif
