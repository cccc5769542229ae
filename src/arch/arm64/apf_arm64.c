/*
 * --apf user on arm64: apfvm's protocol (abi_arm64.h, docs/arm64-abi.md).
 *
 *  - setup: KVM forwards apfvm's SMCCC range to userspace
 *    (KVM_ARM_VM_SMCCC_FILTER, Linux 6.4+); the guest registers its area
 *    and PPI through it (apf_arm64_smccc);
 *  - kick: KVM's wait for a userfaultfd page cannot be interrupted on
 *    arm64, so the pager poisons the page: the vCPU thread gets SIGBUS,
 *    KVM_RUN returns with the PC at the access (vcpu_loop ->
 *    apf_user_poison_kick);
 *  - guest state: PSTATE from ONE_REG: IRQs unmasked (I clear) and EL0;
 *  - not-present: token and PC written to the area (the core wrote the
 *    reason), then the PPI line raised;
 *  - page-ready: the core wrote the token, the PPI line raised;
 *  - the line is level: it stays up until the guest's ACK, which lowers
 *    it unless the area still holds an event (under line_lock, so an
 *    event written meanwhile keeps it up).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>

#include "apf/apf_core.h"
#include "apf_arm64_host.h"
#include "arch/arch.h"
#include "regs_arm64.h"
#include "vmm/machine.h"
#include "vmm/vcpu_loop.h"

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
	memset(vm->arch.apf_ppi, 0, sizeof(vm->arch.apf_ppi));
	if (ioctl(vm->vm_fd, KVM_SET_DEVICE_ATTR, &a) < 0)
		return apf_fail(e, -errno,
				"KVM_ARM_VM_SMCCC_FILTER: %s (--apf user on arm64 needs a host kernel "
				"that forwards SMCCC calls to userspace: Linux 6.4 or later)",
				strerror(errno));
	return 0;
}

void arch_apf_kick(struct machine *m, unsigned v, uint64_t page)
{
	(void)v; /* the vCPU blocked on the page is the one that leaves */
	/* If the page cannot be poisoned (no UFFDIO_POISON), KVM's wait
	 * cannot be left: the fault is served synchronously, and the core
	 * sees the page arrive before any injection ("raced"). */
	pager_poison_for_kick(&m->pager, page);
}

void arch_apf_vcpu_init(struct vcpu *v)
{
	(void)v;
}

void arch_apf_guest_state(struct machine *m, struct vcpu *v, struct apf_guest_state *gs)
{
	uint64_t pstate = PSTATE_I; /* unreadable: cannot take it */

	(void)m;
	arm64_get_reg(v->fd, ARM64_CORE_REG(regs.pstate), &pstate);
	gs->if_set = !(pstate & PSTATE_I);
	gs->cpl = (pstate & PSTATE_MODE) == 0 ? 3 : 0; /* EL0 is the x86 ring 3 */
	gs->event_pending = false; /* an IRQ already pending is taken first */
}

static int set_line(struct machine *m, unsigned v, int level)
{
	struct kvm_irq_level l = {
		.irq = (KVM_ARM_IRQ_TYPE_PPI << KVM_ARM_IRQ_TYPE_SHIFT) | (v << KVM_ARM_IRQ_VCPU_SHIFT) |
		       m->vm.arch.apf_ppi[v],
		.level = (uint32_t)level,
	};
	return ioctl(m->vm.vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

int arch_apf_raise(struct machine *m, unsigned v, uint8_t vector)
{
	(void)vector; /* m->vm.arch.apf_ppi[v] */
	if (v >= VM_MAX_VCPUS || !m->vm.arch.apf_ppi[v])
		return -EINVAL;
	pthread_mutex_lock(&m->vm.arch.line_lock);
	int rc = set_line(m, v, 1);
	pthread_mutex_unlock(&m->vm.arch.line_lock);
	return rc;
}

void arch_apf_inject_not_present(struct machine *m, struct vcpu *v, uint32_t token)
{
	uint64_t area = m->core->vcpus[v->id].area_gpa, pc = 0;
	struct apf_arm64_area *a = gmem_ptr(&m->gm, area, sizeof(*a)); /* checked at REGISTER */

	arm64_get_reg(v->fd, ARM64_CORE_REG(regs.pc), &pc);
	__atomic_store_n(&a->token, token, __ATOMIC_RELAXED);
	__atomic_store_n(&a->pc, pc, __ATOMIC_RELEASE);
	int rc = arch_apf_raise(m, v->id, 0);
	if (rc)
		machine_fail(m, "vCPU %u: cannot raise the async-PF interrupt: %s", v->id,
			     strerror(-rc));
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
 * memory, a PPI other than the timers' and the GIC's own, no unknown
 * flag.  The core checks the memory. */
static int64_t do_register(struct machine *m, struct vcpu *v)
{
	uint64_t gpa = (reg(v, 1) & 0xffffffffu) | reg(v, 2) << 32;
	uint64_t intid = reg(v, 3) & 0xffffffffu, flags = reg(v, 4) & 0xffffffffu;

	if (gpa % APF_ARM64_AREA_ALIGN || intid < 16 || intid > 31 || intid == 25 || intid == 26 ||
	    intid == 27 || intid == 30 || (flags & ~(uint64_t)APF_ARM64_SEND_AT_EL1))
		return APF_SMCCC_INVALID;
	pthread_mutex_lock(&m->vm.arch.line_lock);
	if (m->vm.arch.apf_ppi[v->id] && m->vm.arch.apf_ppi[v->id] != intid)
		set_line(m, v->id, 0);
	m->vm.arch.apf_ppi[v->id] = (uint32_t)intid;
	pthread_mutex_unlock(&m->vm.arch.line_lock);
	if (apf_core_enable(m->core, v->id, gpa, sizeof(struct apf_arm64_area), (uint8_t)intid,
			    flags & APF_ARM64_SEND_AT_EL1))
		return APF_SMCCC_INVALID;
	return APF_SMCCC_SUCCESS;
}

static void do_ack(struct machine *m, struct vcpu *v)
{
	uint64_t gpa = m->core->vcpus[v->id].area_gpa;
	const struct apf_arm64_area *a = gmem_ptr(&m->gm, gpa, sizeof(*a));

	pthread_mutex_lock(&m->vm.arch.line_lock);
	if (m->vm.arch.apf_ppi[v->id])
		set_line(m, v->id, a && (__atomic_load_n(&a->reason, __ATOMIC_ACQUIRE) ||
					 __atomic_load_n(&a->ready_token, __ATOMIC_ACQUIRE)));
	pthread_mutex_unlock(&m->vm.arch.line_lock);
	apf_core_ack(m->core, v->id);
}

void apf_arm64_smccc(struct machine *m, struct vcpu *v)
{
	uint32_t fn = (uint32_t)v->run->hypercall.nr;

	if (!m->core) {
		answer(v, (uint64_t)(int64_t)APF_SMCCC_NOT_SUPPORTED, 0, 0);
		return;
	}
	switch (fn) {
	case APF_SMCCC_INFO:
		answer(v, APF_ARM64_MAGIC, APF_ARM64_VERSION, 0);
		break;
	case APF_SMCCC_REGISTER:
		answer(v, (uint64_t)do_register(m, v), 0, 0);
		break;
	case APF_SMCCC_UNREGISTER:
		apf_core_disable(m->core, v->id);
		pthread_mutex_lock(&m->vm.arch.line_lock);
		if (m->vm.arch.apf_ppi[v->id])
			set_line(m, v->id, 0);
		m->vm.arch.apf_ppi[v->id] = 0;
		pthread_mutex_unlock(&m->vm.arch.line_lock);
		answer(v, APF_SMCCC_SUCCESS, 0, 0);
		break;
	case APF_SMCCC_ACK:
		do_ack(m, v);
		answer(v, APF_SMCCC_SUCCESS, 0, 0);
		break;
	default:
		answer(v, (uint64_t)(int64_t)APF_SMCCC_NOT_SUPPORTED, 0, 0);
		break;
	}
}
