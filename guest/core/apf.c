#include "apf.h"

#include "apf_sleepers.h"
#include "kernel.h"
#include "sched.h"

/* Per-vCPU state (one vCPU today). */
static struct apf_sleepers sleepers;
static unsigned parked;
struct apf_guest_stats apf_stats;
struct apf_trace *apf_trace;

void apf_start(void)
{
	apfs_init(&sleepers);
	apf_trace = (struct apf_trace *)boot_info->trace_gpa;
}

/* A woken task becomes runnable; returns it if it was parked (so the
 * caller may switch to it).  A task waiting in place only sees its flag:
 * it may be the very context the interrupt arrived in, and a waker must
 * never switch to itself. */
static struct task *make_runnable(struct task *t)
{
	t->apf_woken = 1;
	return t->state == TASK_BLOCKED ? t : 0;
}

static void wake_one_of_all(void *waiter, void *ctx)
{
	struct task *t = make_runnable(waiter);
	(void)ctx;
	if (t)
		rq_push(&cpu0.rq, t);
}

void apf_wait_for_page(uint32_t token, int from_task, uint64_t trace_t0)
{
	struct task *cur = cpu0.current;

	apf_stats.not_present++;
	cur->apf_woken = 0;
	enum apfs_wait_result r = apfs_wait(&sleepers, token, cur);
	KASSERT(r != APFS_FULL);
	if (r == APFS_ALREADY_READY)
		return; /* the page is in: retry at once */
	if (from_task && cpu0.rq.head) {
		/* Park under the token; another task runs until page-ready. */
		cur->state = TASK_BLOCKED;
		if (++parked > apf_stats.parked_max)
			apf_stats.parked_max = parked;
		if (apf_trace) {
			uint64_t t1 = arch_cycles();
			apf_trace->np_handler += t1 - trace_t0;
			apf_trace->np_count++;
			apf_trace->np_switch_tsc = t1;
		}
		sched_switch_to(rq_pop(&cpu0.rq));
		parked--;
		return;
	}
	/* Nothing else to run, or a context that must not sleep: wait here
	 * with interrupts enabled.  The timer may still preempt us. */
	apf_stats.halts++;
	while (!cur->apf_woken)
		arch_halt_once();
	if (apf_trace)
		apf_trace->rdy_switch_tsc = arch_cycles();
}

struct task *apf_page_ready(uint32_t token)
{
	struct task *t = 0;

	if (token == APF_WAKE_ALL_TOKEN) {
		apf_stats.wake_all++;
		apfs_wake_all(&sleepers, wake_one_of_all, 0);
	} else if (token) {
		apf_stats.ready++;
		struct task *w = apfs_wake(&sleepers, token);
		if (w)
			t = make_runnable(w);
		else
			apf_stats.dummy++;
	}
	return t;
}

void apf_run_woken(struct task *t)
{
	/* Give the CPU to the woken task now, not at the next tick: it waited
	 * for a page, the running task did not wait for anything. */
	struct task *cur = cpu0.current;
	if (!t && cur == cpu0.idle)
		t = rq_pop(&cpu0.rq); /* e.g. after a wake-all */
	if (!t)
		return;
	if (cur != cpu0.idle)
		rq_push(&cpu0.rq, cur);
	if (apf_trace)
		apf_trace->rdy_switch_tsc = arch_cycles();
	sched_switch_to(t);
}

void apf_finish(void)
{
	if (apf_stats.enabled)
		apfs_wake_all(&sleepers, wake_one_of_all, 0);
	if (apf_trace) { /* path costs are measured only when tracing */
		apf_stats.np_tsc = apf_trace->np_handler;
		apf_stats.ready_tsc = apf_trace->rdy_handler;
	}
	hcall(APF_HC_APF_STATS, (uint64_t)&apf_stats, 0, 0);
}
