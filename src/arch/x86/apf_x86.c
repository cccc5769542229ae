/*
 * --apf user on x86-64: the KVM paravirtual protocol's delivery (abi_x86.h).
 *
 *  - setup: KVM_CAP_EXCEPTION_PAYLOAD (a pending #PF carries CR2 = token),
 *    and the enable and vector MSRs filtered to userspace so the guest's
 *    own WRMSRs tell the VMM the area and the vector (exits_x86.c);
 *  - guest state after a kick: RFLAGS.IF, CPL and pending events, from
 *    KVM_CAP_SYNC_REGS (every exit carries them, no ioctl);
 *  - not-present: a pending #PF, error code 0, CR2 = token, set through
 *    the synced events;
 *  - page-ready: an MSI with the guest's vector to its LAPIC.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "apf/apf_core.h"
#include "arch/arch.h"
#include "arch/x86/apf_msr_x86.h"
#include "snapshot/snapshot.h"
#include "vmm/kvm_vm.h"

int arch_apf_setup_vm(struct vm *vm, bool trap_acks, struct apf_err *e)
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

void arch_apf_vcpu_init(struct vcpu *v)
{
	/* KVM keeps this set: every exit then carries the registers,
	 * segments and events the kick handler reads, without an ioctl. */
	v->run->kvm_valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS;
}

void arch_apf_guest_state(struct vcpu *v, struct apf_guest_state *gs)
{
	struct kvm_sync_regs *s = &v->run->s.regs;
	struct kvm_vcpu_events *ev = &s->events;

	gs->irqs_enabled = (s->regs.rflags & 0x200) != 0; /* IF */
	gs->user_mode = (s->sregs.cs.selector & 3) == 3;   /* CPL 3 */
	gs->event_pending = ev->exception.injected || ev->exception.pending ||
			    ev->interrupt.injected || ev->nmi.injected || ev->nmi.pending;
}

int arch_apf_inject_not_present(struct vcpu *v, const struct apf_core_vcpu *cv, uint32_t token)
{
	struct kvm_vcpu_events *ev = &v->run->s.regs.events;

	(void)cv; /* KVM carries the token: CR2 */
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
	return 0;
}

int arch_apf_raise(struct vm *vm, unsigned v, uint8_t vector)
{
	struct kvm_msi msi;

	memset(&msi, 0, sizeof(msi));
	msi.address_lo = 0xfee00000u | (v << 12); /* fixed delivery to APIC id v */
	msi.data = vector;
	int rc = ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi);
	if (rc < 0)
		return -errno;
	/* 0: the guest blocked it (its LAPIC is software-disabled, as while
	 * Linux boots: it enables async PF before its APIC). */
	return rc == 0 ? -EAGAIN : 0;
}

int arch_apf_restore(struct apf_core *core, unsigned v, const struct snap_apf *a)
{
	/* As the guest wrote them: the MSRs, checked as a guest's writes. */
	if (a->msr_en)
		return apf_x86_restore_msrs(core, v, a->vector, a->msr_en);
	return apf_core_enable(core, v, a->area_gpa, 64, (uint8_t)a->vector, a->send_always);
}
