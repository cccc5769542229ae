#include "apf_x86.h"

#include "apf.h"
#include "kernel.h"
#include "lapic.h"

/* The per-vCPU area (one vCPU today).  Its alignment is the ABI's 64
 * bytes; nothing else here assumes a cache-line size. */
static struct kvm_vcpu_pv_apf_data area __attribute__((aligned(64)));

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
	apf_start();
	if (cmdline_has("no-apf") || !host_has_apf())
		return;
	/* The vector first: enabling with vector 0 set may inject vector 0. */
	wrmsr(MSR_KVM_ASYNC_PF_INT, VEC_APF);
	wrmsr(MSR_KVM_ASYNC_PF_EN,
	      (uint64_t)&area | KVM_ASYNC_PF_ENABLED | KVM_ASYNC_PF_DELIVERY_AS_INT);
	apf_stats.enabled = 1;
}

/* --trace only: stamps kept off the fast path (rdtsc alone costs several
 * microseconds in an emulated ring 0). */
static uint64_t trace_np_entry(void)
{
	uint64_t t0 = arch_cycles();
	if (apf_trace->inject_tsc) { /* stamped by a userspace host side */
		apf_trace->np_delivery += t0 - apf_trace->inject_tsc;
		apf_trace->inject_tsc = 0;
	}
	return t0;
}

static uint64_t trace_rdy_entry(void)
{
	uint64_t t0 = arch_cycles();
	if (apf_trace->raise_tsc) {
		apf_trace->rdy_delivery += t0 - apf_trace->raise_tsc;
		apf_trace->raise_tsc = 0;
	}
	return t0;
}

static void ack_traced(uint64_t t0)
{
	uint64_t ta = arch_cycles();
	wrmsr(MSR_KVM_ASYNC_PF_ACK, 1);
	uint64_t t1 = arch_cycles();
	apf_trace->rdy_ack += t1 - ta;
	apf_trace->rdy_handler += t1 - t0;
	apf_trace->rdy_count++;
}

int apf_handle_pf(struct trapframe *tf)
{
	uint32_t reason = area.flags;

	if (!reason)
		return 0;
	area.flags = 0; /* before anything else: the next not-present may follow */
	if (reason != KVM_PV_REASON_PAGE_NOT_PRESENT)
		return 0;
	uint64_t t0 = apf_trace ? trace_np_entry() : 0;
	apf_wait_for_page((uint32_t)read_cr2(), (tf->cs & 3) == 3, t0);
	return 1;
}

void apf_ready_irq(void)
{
	uint64_t t0 = apf_trace ? trace_rdy_entry() : 0;

	lapic_eoi();
	struct task *t = apf_page_ready(area.token);
	area.token = 0;
	if (apf_trace) /* the host may send the next ready after the ACK */
		ack_traced(t0);
	else
		wrmsr(MSR_KVM_ASYNC_PF_ACK, 1);
	apf_run_woken(t);
}

void apf_shutdown(void)
{
	if (apf_stats.enabled)
		wrmsr(MSR_KVM_ASYNC_PF_EN, 0);
	apf_finish();
}
