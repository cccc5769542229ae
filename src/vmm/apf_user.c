#include "apf_user.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vcpu_loop.h"

static inline uint64_t tsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return ((uint64_t)hi << 32) | lo;
}

/* Set while the pager thread is inside hook_installed(): a raise then is
 * the page's own page-ready (else it follows an ACK). */
static __thread uint64_t installing_since;

int apf_user_setup_vm(struct vm *vm, bool trap_acks, struct apf_err *e)
{
	struct kvm_enable_cap cap;
	/* MSRs 0x4b564d00..07: a 0 bit denies (exits to userspace): the
	 * enable and vector MSRs.  The ACK (07) stays with KVM, whose own
	 * async PF is off here: it costs the guest an exit into KVM, not one
	 * out to the VMM, and the core needs no ACK (rule 7, apf_core.h);
	 * trap_acks routes it here too, to count and check it. */
	uint8_t bitmap = (uint8_t) ~((1u << 2) | (1u << 6) | (trap_acks ? 1u << 7 : 0));
	struct kvm_msr_filter filter;

	memset(&cap, 0, sizeof(cap));
	cap.cap = KVM_CAP_EXCEPTION_PAYLOAD;
	cap.args[0] = 1;
	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
		return apf_fail(e, -errno, "KVM_CAP_EXCEPTION_PAYLOAD: %s (needed by --apf user)",
				strerror(errno));
	memset(&cap, 0, sizeof(cap));
	cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
	cap.args[0] = KVM_MSR_EXIT_REASON_FILTER;
	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
		return apf_fail(e, -errno, "KVM_CAP_X86_USER_SPACE_MSR: %s (needed by --apf user)",
				strerror(errno));
	memset(&filter, 0, sizeof(filter));
	filter.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	filter.ranges[0].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
	filter.ranges[0].nmsrs = 8;
	filter.ranges[0].base = MSR_KVM_ASYNC_PF_EN & ~7u;
	filter.ranges[0].bitmap = &bitmap;
	if (ioctl(vm->vm_fd, KVM_X86_SET_MSR_FILTER, &filter) < 0)
		return apf_fail(e, -errno, "KVM_X86_SET_MSR_FILTER: %s", strerror(errno));
	return 0;
}

/* --- the core's hands ------------------------------------------------- */

static void op_kick(void *ctx, unsigned v)
{
	struct machine *m = ctx;
	if (m->trace)
		__atomic_store_n(&m->host_trace.t_kick[v], tsc(), __ATOMIC_RELEASE);
	vcpu_kick(&m->vm.vcpus[v]);
}

static int op_write_u32(void *ctx, uint64_t gpa, uint32_t value)
{
	struct machine *m = ctx;
	volatile uint32_t *p = gmem_ptr(&m->gm, gpa, 4);
	if (!p || gpa % 4)
		return -EFAULT;
	__atomic_store_n(p, value, __ATOMIC_SEQ_CST);
	return 0;
}

static int op_read_u32(void *ctx, uint64_t gpa, uint32_t *value)
{
	struct machine *m = ctx;
	volatile uint32_t *p = gmem_ptr(&m->gm, gpa, 4);
	if (!p || gpa % 4)
		return -EFAULT;
	*value = __atomic_load_n(p, __ATOMIC_SEQ_CST);
	return 0;
}

static int op_raise(void *ctx, unsigned v, uint8_t vector)
{
	struct machine *m = ctx;
	struct kvm_msi msi;

	if (m->trace) {
		uint64_t now = tsc();
		if (installing_since) {
			m->host_trace.install_to_raise += now - installing_since;
			m->host_trace.raised_on_install++;
		} else {
			m->host_trace.raised_on_ack++;
		}
		m->trace->raise_tsc = now + m->vm.vcpus[v].tsc_offset; /* guest's clock */
	}
	memset(&msi, 0, sizeof(msi));
	msi.address_lo = 0xfee00000u | (v << 12); /* fixed delivery to APIC id v */
	msi.data = vector;
	int rc = ioctl(m->vm.vm_fd, KVM_SIGNAL_MSI, &msi);
	if (rc < 0)
		return -errno;
	/* 0: the guest blocked it (its LAPIC is software-disabled, as while
	 * Linux boots: it enables async PF before its APIC). */
	return rc == 0 ? -EAGAIN : 0;
}

static bool op_gpa_ok(void *ctx, uint64_t gpa, uint64_t len)
{
	struct machine *m = ctx;
	return gmem_ptr(&m->gm, gpa, len) != NULL;
}

static void op_fail(void *ctx, unsigned v, int err, const char *what)
{
	machine_fail(ctx, "vCPU %u: %s: %s (its parked guest tasks cannot be woken)", v, what,
		     strerror(-err));
}

static const struct apf_core_ops core_ops = {
	.fail = op_fail,
	.kick = op_kick,
	.write_u32 = op_write_u32,
	.read_u32 = op_read_u32,
	.raise = op_raise,
	.gpa_ok = op_gpa_ok,
};

int apf_user_init(struct machine *m, uint64_t threshold_ns, bool trap_acks, struct apf_err *e)
{
	m->core = calloc(1, sizeof(*m->core));
	if (!m->core)
		return apf_fail(e, -ENOMEM, "out of memory");
	apf_core_init(m->core, m->vm.nvcpus, threshold_ns, &core_ops, m);
	m->core->ack_paced = trap_acks;
	return 0;
}

/* --- pager hooks (pager thread) --------------------------------------- */

static void hook_fault(void *ctx, uint32_t tid, uint64_t page, uint64_t expected_ns,
		       bool in_flight)
{
	struct machine *m = ctx;
	uint64_t t_read = m->trace ? tsc() : 0;
	int v = -1;

	for (unsigned i = 0; i < m->vm.nvcpus; i++)
		if (__atomic_load_n(&m->vm.vcpus[i].tid, __ATOMIC_ACQUIRE) == (int)tid)
			v = (int)i;
	/* Stamped before the core may kick: the vCPU reads it after the kick. */
	if (m->trace && v >= 0)
		__atomic_store_n(&m->host_trace.t_read[v], t_read, __ATOMIC_RELEASE);
	apf_core_on_fault(m->core, v, page, expected_ns, in_flight);
}

static void hook_installed(void *ctx, uint64_t page)
{
	struct machine *m = ctx;
	installing_since = m->trace ? tsc() : 0;
	apf_core_on_installed(m->core, page);
	installing_since = 0;
}

static void hook_failed(void *ctx, uint64_t page)
{
	struct machine *m = ctx;
	apf_core_on_installed(m->core, page); /* page-ready: the retry fails */
}

/* A page-ready waits while the guest has not cleared the token of the one
 * before (it takes the guest microseconds on hardware, longer where exits
 * are slow).  Retried after APF_RETRY_MIN_NS, doubling up to
 * APF_RETRY_MAX_NS while it still waits: on a shared CPU each retry costs
 * the guest a wake-up of this thread. */
#define APF_RETRY_MIN_NS 20000ull
#define APF_RETRY_MAX_NS 1000000ull

static uint64_t hook_poll(void *ctx)
{
	struct machine *m = ctx;

	if (!apf_core_retry(m->core)) {
		m->ready_retry_ns = 0;
		return 0;
	}
	m->ready_retry_ns = m->ready_retry_ns ? m->ready_retry_ns * 2 : APF_RETRY_MIN_NS;
	if (m->ready_retry_ns > APF_RETRY_MAX_NS)
		m->ready_retry_ns = APF_RETRY_MAX_NS;
	return m->ready_retry_ns;
}

const struct pager_hooks apf_user_pager_hooks = {
	.on_fault = hook_fault,
	.on_installed = hook_installed,
	.on_failed = hook_failed,
	.on_poll = hook_poll,
};

/* --- vCPU loop ---------------------------------------------------------- */

void apf_user_after_exit(struct machine *m, struct vcpu *v)
{
	(void)v;
	/* A page-ready the guest's LAPIC refused waits in the core; the
	 * pager retries it on its clock, but there may be no pager (no lazy
	 * region) or it may sleep: every exit is a chance too. */
	apf_core_retry(m->core);
}

void apf_user_vcpu_init(struct vcpu *v)
{
	/* KVM keeps this set: every exit then carries the registers,
	 * segments and events the kick handler reads, without an ioctl. */
	v->run->kvm_valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS;
}

static bool page_settled(void *ctx, uint64_t page)
{
	return pager_page_settled(ctx, page);
}

void apf_user_after_kick(struct machine *m, struct vcpu *v)
{
	uint64_t t_exit = m->trace ? tsc() : 0;
	struct kvm_sync_regs *s = &v->run->s.regs;
	struct kvm_vcpu_events *ev = &s->events;
	struct apf_guest_state gs = {
		.if_set = (s->regs.rflags & 0x200) != 0,
		.cpl = s->sregs.cs.selector & 3,
		.event_pending = ev->exception.injected || ev->exception.pending ||
				 ev->interrupt.injected || ev->nmi.injected || ev->nmi.pending,
	};
	uint32_t token = apf_core_take_injection(m->core, v->id, &gs, page_settled, &m->pager);

	if (!token)
		return;
	/* Not present: a pending #PF, error code 0, CR2 = token (payload). */
	ev->exception.pending = 1;
	ev->exception.injected = 0;
	ev->exception.nr = 14;
	ev->exception.has_error_code = 1;
	ev->exception.error_code = 0;
	ev->exception_has_payload = 1;
	ev->exception_payload = token;
	ev->flags = (ev->flags & (KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM)) |
		    KVM_VCPUEVENT_VALID_PAYLOAD;
	v->run->kvm_dirty_regs |= KVM_SYNC_X86_EVENTS;
	if (m->trace) {
		/* The access was stamped by the scan just before it faulted. */
		uint64_t access = m->trace->access_tsc;
		uint64_t t_read = __atomic_load_n(&m->host_trace.t_read[v->id], __ATOMIC_ACQUIRE);
		uint64_t t_kick = __atomic_load_n(&m->host_trace.t_kick[v->id], __ATOMIC_ACQUIRE);
		uint64_t t_inject = tsc();
		/* The guest stamps with its own TSC: to the host's clock. */
		if (access)
			access -= v->tsc_offset;
		if (access && access < t_read)
			m->host_trace.access_to_read += t_read - access;
		m->host_trace.read_to_kick += t_kick - t_read;
		m->host_trace.kick_to_exit += t_exit - t_kick;
		m->host_trace.exit_to_inject += t_inject - t_exit;
		m->host_trace.injected++;
		m->trace->inject_tsc = t_inject + v->tsc_offset;
	}
}

void apf_user_msr_exit(struct machine *m, struct vcpu *v)
{
	struct kvm_run *run = v->run;
	int rc;

	if (run->exit_reason == KVM_EXIT_X86_WRMSR) {
		rc = apf_core_wrmsr(m->core, v->id, run->msr.index, run->msr.data);
	} else {
		uint64_t value = 0;
		rc = apf_core_rdmsr(m->core, v->id, run->msr.index, &value);
		run->msr.data = value;
	}
	run->msr.error = rc ? 1 : 0; /* 1: KVM injects #GP */
}
