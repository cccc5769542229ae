#include "apf.h"

#include "apf_sleepers.h"
#include "kernel.h"
#include "lapic.h"
#include "sched.h"

/* Per-vCPU state (one vCPU today). The area's alignment is the ABI's 64
 * bytes; nothing else here assumes a cache-line size. */
static struct kvm_vcpu_pv_apf_data area __attribute__((aligned(64)));
static struct apf_sleepers sleepers;
static struct apf_guest_stats stats;
static unsigned parked;
static struct apf_trace *trace; /* --trace: fault-path stamps, or 0 */

static int host_has_apf(void)
{
	uint32_t r[4];

	cpuid(KVM_CPUID_SIGNATURE, r);
	if (r[0] < KVM_CPUID_FEATURES || r[1] != 0x4b4d564b /* KVMK */ ||
	    r[2] != 0x564b4d56 /* VMKV */ || r[3] != 0x4d /* M\0\0\0 */)
		return 0;
	cpuid(KVM_CPUID_FEATURES, r);
	/* Delivery as an interrupt is the only mode KVM offers today. */
	return (r[0] >> KVM_FEATURE_ASYNC_PF & 1) && (r[0] >> KVM_FEATURE_ASYNC_PF_INT & 1);
}

void apf_init(void)
{
	apfs_init(&sleepers);
	trace = (struct apf_trace *)boot_info->trace_gpa;
	if (cmdline_has("no-apf") || !host_has_apf())
		return;
	/* The vector first: enabling with vector 0 set may inject vector 0. */
	wrmsr(MSR_KVM_ASYNC_PF_INT, VEC_APF);
	wrmsr(MSR_KVM_ASYNC_PF_EN,
	      (uint64_t)&area | KVM_ASYNC_PF_ENABLED | KVM_ASYNC_PF_DELIVERY_AS_INT);
	stats.enabled = 1;
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

/* --trace only: stamps kept off the fast path (rdtsc alone costs several
 * microseconds in an emulated ring 0). */
static uint64_t trace_np_entry(void)
{
	uint64_t t0 = rdtsc();
	if (trace->inject_tsc) { /* stamped by a userspace host side */
		trace->np_delivery += t0 - trace->inject_tsc;
		trace->inject_tsc = 0;
	}
	return t0;
}

static void trace_np_exit(uint64_t t0)
{
	uint64_t t1 = rdtsc();
	trace->np_handler += t1 - t0;
	trace->np_count++;
	trace->np_switch_tsc = t1;
}

static uint64_t trace_rdy_entry(void)
{
	uint64_t t0 = rdtsc();
	if (trace->raise_tsc) {
		trace->rdy_delivery += t0 - trace->raise_tsc;
		trace->raise_tsc = 0;
	}
	return t0;
}

static void ack_traced(uint64_t t0)
{
	uint64_t ta = rdtsc();
	wrmsr(MSR_KVM_ASYNC_PF_ACK, 1);
	uint64_t t1 = rdtsc();
	trace->rdy_ack += t1 - ta;
	trace->rdy_handler += t1 - t0;
	trace->rdy_count++;
}

int apf_handle_pf(struct trapframe *tf)
{
	uint32_t reason = area.flags;
	struct task *cur = cpu0.current;

	if (!reason)
		return 0;
	area.flags = 0; /* before anything else: the next not-present may follow */
	if (reason != KVM_PV_REASON_PAGE_NOT_PRESENT)
		return 0;

	uint64_t t0 = trace ? trace_np_entry() : 0;
	uint32_t token = (uint32_t)read_cr2();
	stats.not_present++;
	cur->apf_woken = 0;
	enum apfs_wait_result r = apfs_wait(&sleepers, token, cur);
	KASSERT(r != APFS_FULL);
	if (r == APFS_ALREADY_READY)
		return 1; /* the page is in: retry at once */
	if ((tf->cs & 3) == 3 && cpu0.rq.head) {
		/* Park under the token; another task runs until page-ready. */
		cur->state = TASK_BLOCKED;
		if (++parked > stats.parked_max)
			stats.parked_max = parked;
		if (trace)
			trace_np_exit(t0);
		sched_switch_to(rq_pop(&cpu0.rq));
		parked--;
		return 1;
	}
	/* Nothing else to run, or a context that must not sleep: wait here
	 * with interrupts enabled.  The timer may still preempt us. */
	stats.halts++;
	while (!cur->apf_woken)
		halt_once();
	if (trace)
		trace->rdy_switch_tsc = rdtsc();
	return 1;
}

void apf_ready_irq(void)
{
	uint64_t t0 = trace ? trace_rdy_entry() : 0;
	struct task *t = 0;

	lapic_eoi();
	uint32_t token = area.token;
	if (token == KVM_APF_WAKE_ALL_TOKEN) {
		stats.wake_all++;
		apfs_wake_all(&sleepers, wake_one_of_all, 0);
	} else if (token) {
		stats.ready++;
		struct task *w = apfs_wake(&sleepers, token);
		if (w)
			t = make_runnable(w);
		else
			stats.dummy++;
	}
	area.token = 0;
	if (trace) /* the host may send the next ready after the ACK */
		ack_traced(t0);
	else
		wrmsr(MSR_KVM_ASYNC_PF_ACK, 1);

	/* Give the CPU to the woken task now, not at the next tick: it waited
	 * for a page, the running task did not wait for anything. */
	struct task *cur = cpu0.current;
	if (!t && cur == cpu0.idle)
		t = rq_pop(&cpu0.rq); /* e.g. after a wake-all */
	if (!t)
		return;
	if (cur != cpu0.idle)
		rq_push(&cpu0.rq, cur);
	if (trace)
		trace->rdy_switch_tsc = rdtsc();
	sched_switch_to(t);
}

void apf_shutdown(void)
{
	if (stats.enabled) {
		wrmsr(MSR_KVM_ASYNC_PF_EN, 0);
		apfs_wake_all(&sleepers, wake_one_of_all, 0);
	}
	if (trace) { /* path costs are measured only when tracing */
		stats.np_tsc = trace->np_handler;
		stats.ready_tsc = trace->rdy_handler;
	}
	hcall(APF_HC_APF_STATS, (uint64_t)&stats, 0, 0);
}
