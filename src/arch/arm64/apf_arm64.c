/*
 * --apf user on arm64: apfvm's protocol (abi_arm64.h, docs/arm64-abi.md).
 *
 *  - setup: KVM forwards apfvm's SMCCC range to userspace
 *    (KVM_ARM_VM_SMCCC_FILTER, Linux 6.4+); the guest registers its area
 *    and interrupt through it (apf_arm64_smccc);
 *  - kick: KVM's wait for a userfaultfd page cannot be interrupted on
 *    arm64, so the pager poisons the page (ARCH_APF_KICK_POISONS): the
 *    vCPU thread gets SIGBUS, KVM_RUN returns with the PC at the access
 *    (vcpu_loop -> apf_user_poison_kick);
 *  - guest state: PSTATE from ONE_REG: IRQs unmasked (I clear) and EL0;
 *  - not-present: token and PC written to the area (the core wrote the
 *    reason), then the VMM takes the IRQ exception for the guest at that
 *    instruction (ONE_REG): deterministic, where a pending interrupt may
 *    lose the race against the refault (ARM ARM D1.13.4: it did, on the
 *    emulated hosts, for most faults);
 *  - page-ready: the core wrote the token, then an edge on the SPI.
 *    The guest clears what it consumed; the core sends the next
 *    page-ready once the token is clear (retried by the pager), so no
 *    acknowledgement exit is needed per event.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>

#include "apf/apf_core.h"
#include "apf_arm64_host.h"
#include "arch/arch.h"
#include "regs_arm64.h"
#include "snapshot/snapshot.h"
#include "vmm/kvm_vm.h"

/* Linux 6.4's uapi, for headers that predate it. */
#ifndef KVM_ARM_VM_SMCCC_CTRL
#define KVM_ARM_VM_SMCCC_CTRL   0
#define KVM_ARM_VM_SMCCC_FILTER 0
#define KVM_SMCCC_FILTER_FWD_TO_USER 2
struct kvm_smccc_filter {
	uint32_t base;
	uint32_t nr_functions;
	uint8_t action;
	uint8_t pad[15];
};
#endif

#define PSTATE_I    (1ull << 7)
#define PSTATE_MODE 0xfull /* M[3:0]: 0 = EL0t */

int arch_apf_setup_vm(struct vm *vm, bool trap_acks, struct apf_err *e)
{
	struct kvm_smccc_filter f = {
		.base = APF_SMCCC_INFO,
		.nr_functions = APF_SMCCC_NR_FUNCTIONS,
		.action = KVM_SMCCC_FILTER_FWD_TO_USER,
	};
	struct kvm_device_attr a = {
		.group = KVM_ARM_VM_SMCCC_CTRL,
		.attr = KVM_ARM_VM_SMCCC_FILTER,
		.addr = (uint64_t)(uintptr_t)&f,
	};

	(void)trap_acks; /* the ACK is an SMCCC call: it always reaches apfvm */
	memset(vm->arch.apf_intid, 0, sizeof(vm->arch.apf_intid));
	if (ioctl(vm->vm_fd, KVM_SET_DEVICE_ATTR, &a) < 0)
		return apf_fail(e, -errno,
				"KVM_ARM_VM_SMCCC_FILTER: %s (--apf user on arm64 needs a host kernel "
				"that forwards SMCCC calls to userspace: Linux 6.4 or later)",
				strerror(errno));
	return 0;
}

void arch_apf_vcpu_init(struct vcpu *v)
{
	(void)v; /* nothing to arm: the kick handler reads registers by ONE_REG */
}

void arch_apf_guest_state(struct vcpu *v, struct apf_guest_state *gs)
{
	uint64_t pstate = PSTATE_I; /* unreadable: cannot take it */

	arm64_get_reg(v->fd, ARM64_CORE_REG(regs.pstate), &pstate);
	v->arch.kick_pstate = pstate; /* for arch_apf_inject_not_present */
	gs->irqs_enabled = !(pstate & PSTATE_I);
	gs->user_mode = (pstate & PSTATE_MODE) == 0; /* EL0 */
	gs->event_pending = false; /* an IRQ already pending is taken first */
}

/* An edge on the registered SPI: the line up then down.  The GIC latches
 * it pending (the guest configured it edge-triggered), so it is taken
 * whenever the guest unmasks IRQs, and needs no acknowledgement. */
static int pulse(struct vm *vm, unsigned v)
{
	struct kvm_irq_level l = {
		.irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) |
		       __atomic_load_n(&vm->arch.apf_intid[v], __ATOMIC_ACQUIRE),
		.level = 1,
	};
	pthread_mutex_lock(&vm->arch.line_lock);
	int rc = ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
	l.level = 0;
	if (!rc && ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		rc = -errno;
	pthread_mutex_unlock(&vm->arch.line_lock);
	return rc;
}

int arch_apf_raise(struct vm *vm, unsigned v, uint8_t vector)
{
	(void)vector; /* the SPI registered: vm.arch.apf_intid[v] */
	if (v >= VM_MAX_VCPUS || !__atomic_load_n(&vm->arch.apf_intid[v], __ATOMIC_ACQUIRE))
		return -EAGAIN; /* unregistered meanwhile: kept until it registers */
	return pulse(vm, v);
}

/* Takes the IRQ exception for the guest, as the CPU would at this
 * instruction boundary (ARM ARM D1.3.1, "exception entry"), to EL1 with
 * SP_EL1: ELR_EL1 = PC, SPSR_EL1 = PSTATE, PSTATE = EL1h with D, A, I, F
 * masked, PC = the IRQ entry of VBAR_EL1 for where it came from.  Only
 * called when an IRQ could be taken here (PSTATE.I clear,
 * arch_apf_guest_state), so the guest sees nothing an interrupt could
 * not have done; its handler finds the not-present in the area, for
 * this very ELR. */
static int take_irq_entry(struct vcpu *v, uint64_t pc, uint64_t pstate)
{
	uint64_t vbar = 0, offset;

	if (arm64_get_reg(v->fd, ARM64_SYSREG_VBAR_EL1, &vbar))
		return -errno;
	switch (pstate & PSTATE_MODE) {
	case 0x0: offset = 0x480; break; /* EL0t: lower EL, AArch64 */
	case 0x4: offset = 0x080; break; /* EL1t: current EL, SP_EL0 */
	case 0x5: offset = 0x280; break; /* EL1h: current EL, SP_ELx */
	default: return -EINVAL;
	}
	if (arm64_set_reg(v->fd, ARM64_SYSREG_ELR_EL1, pc) ||
	    arm64_set_reg(v->fd, ARM64_CORE_REG(spsr[KVM_SPSR_EL1]), pstate) ||
	    arm64_set_reg(v->fd, ARM64_CORE_REG(regs.pstate), ARM64_PSTATE_EL1H_MASKED) ||
	    arm64_set_reg(v->fd, ARM64_CORE_REG(regs.pc), vbar + offset))
		return -errno;
	return 0;
}

int arch_apf_inject_not_present(struct vcpu *v, const struct apf_core_vcpu *cv, uint32_t token)
{
	uint64_t pc = 0;
	uint64_t pstate = v->arch.kick_pstate; /* read for this kick's decision */
	struct apf_arm64_area *a = gmem_ptr(v->vm->gm, cv->area_gpa, sizeof(*a)); /* checked at REGISTER */
	int rc = 0;

	if (arm64_get_reg(v->fd, ARM64_CORE_REG(regs.pc), &pc))
		rc = -errno;
	__atomic_store_n(&a->token, token, __ATOMIC_RELAXED);
	__atomic_store_n(&a->pc, pc, __ATOMIC_RELEASE);
	if (!rc)
		rc = take_irq_entry(v, pc, pstate);
	return rc;
}

/* --- the guest's calls --------------------------------------------------- */

static uint64_t reg(struct vcpu *v, unsigned n)
{
	uint64_t x = 0;
	arm64_get_reg(v->fd, ARM64_CORE_REG(regs.regs[n]), &x);
	return x;
}

static void answer(struct vcpu *v, uint64_t x0, uint64_t x1, uint64_t x2)
{
	arm64_set_reg(v->fd, ARM64_CORE_REG(regs.regs[0]), x0);
	arm64_set_reg(v->fd, ARM64_CORE_REG(regs.regs[1]), x1);
	arm64_set_reg(v->fd, ARM64_CORE_REG(regs.regs[2]), x2);
}

/* REGISTER's checks (docs/arm64-abi.md): an aligned area in resident
 * memory, an SPI the VM has and no other vCPU registered, no unknown
 * flag.  The core checks the memory. */
static int64_t do_register(struct vcpu *v, struct apf_core *core)
{
	uint64_t gpa = (reg(v, 1) & 0xffffffffu) | reg(v, 2) << 32;
	uint64_t intid = reg(v, 3) & 0xffffffffu, flags = reg(v, 4) & 0xffffffffu;

	if (gpa % APF_ARM64_AREA_ALIGN || intid < APF_ARM64_SPI_FIRST || intid > APF_ARM64_SPI_LAST ||
	    (flags & ~(uint64_t)APF_ARM64_SEND_AT_EL1))
		return APF_SMCCC_INVALID;
	struct vm *vm = v->vm;
	for (unsigned i = 0; i < vm->nvcpus; i++)
		if (i != v->id && vm->arch.apf_intid[i] == intid)
			return APF_SMCCC_INVALID;
	/* Set first: the enable sends wake-all on it. */
	__atomic_store_n(&vm->arch.apf_intid[v->id], (uint32_t)intid, __ATOMIC_RELEASE);
	if (apf_core_enable(core, v->id, gpa, sizeof(struct apf_arm64_area), 0,
			    flags & APF_ARM64_SEND_AT_EL1)) {
		__atomic_store_n(&vm->arch.apf_intid[v->id], 0, __ATOMIC_RELEASE);
		return APF_SMCCC_INVALID;
	}
	return APF_SMCCC_SUCCESS;
}

void apf_arm64_smccc(struct vcpu *v, struct apf_core *core)
{
	uint32_t fn = (uint32_t)v->run->hypercall.nr;

	if (!core) {
		answer(v, (uint64_t)(int64_t)APF_SMCCC_NOT_SUPPORTED, 0, 0);
		return;
	}
	switch (fn) {
	case APF_SMCCC_INFO:
		answer(v, APF_ARM64_MAGIC, APF_ARM64_VERSION, 0);
		break;
	case APF_SMCCC_REGISTER:
		answer(v, (uint64_t)do_register(v, core), 0, 0);
		break;
	case APF_SMCCC_UNREGISTER:
		apf_core_disable(core, v->id);
		__atomic_store_n(&v->vm->arch.apf_intid[v->id], 0, __ATOMIC_RELEASE);
		answer(v, APF_SMCCC_SUCCESS, 0, 0);
		break;
	case APF_SMCCC_ACK:
		apf_core_ack(core, v->id); /* a prompt: deliver what is queued */
		answer(v, APF_SMCCC_SUCCESS, 0, 0);
		break;
	default:
		answer(v, (uint64_t)(int64_t)APF_SMCCC_NOT_SUPPORTED, 0, 0);
		break;
	}
}

int arch_apf_restore(struct apf_core *core, unsigned v, const struct snap_apf *a)
{
	return apf_core_enable(core, v, a->area_gpa, 64, (uint8_t)a->vector, a->send_always);
}
