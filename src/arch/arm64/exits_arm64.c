/*
 * arm64 exits: the reference guest's hypercall doorbell (an MMIO store),
 * apfvm's SMCCC calls (--apf user, forwarded by KVM), and the ways a guest
 * dies, each reported with the registers KVM holds.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "apf_arm64_host.h"
#include "arch/arch.h"
#include "regs_arm64.h"
#include "vmm/kvm_vm.h"

void arch_describe_regs(struct vcpu *v, char *buf, size_t len)
{
	uint64_t pc = 0, pstate = 0, sp = 0, elr = 0, esr = 0, far = 0;

	arm64_get_reg(v->fd, ARM64_CORE_REG(regs.pc), &pc);
	arm64_get_reg(v->fd, ARM64_CORE_REG(regs.pstate), &pstate);
	arm64_get_reg(v->fd, ARM64_CORE_REG(sp_el1), &sp);
	arm64_get_reg(v->fd, ARM64_SYSREG_ELR_EL1, &elr);
	arm64_get_reg(v->fd, ARM64_SYSREG_ESR_EL1, &esr);
	arm64_get_reg(v->fd, ARM64_SYSREG_FAR_EL1, &far);
	snprintf(buf, len, "PC=0x%llx PSTATE=0x%llx SP_EL1=0x%llx ELR_EL1=0x%llx "
		 "ESR_EL1=0x%llx FAR_EL1=0x%llx",
		 (unsigned long long)pc, (unsigned long long)pstate, (unsigned long long)sp,
		 (unsigned long long)elr, (unsigned long long)esr, (unsigned long long)far);
}

void arch_decode_exit(struct vcpu *v, struct apf_core *core, struct vcpu_exit *x)
{
	struct kvm_run *run = v->run;

	/* Every exit passes here: only what the kind needs is written. */
	x->kind = VCPU_EXIT_HANDLED;
	switch (run->exit_reason) {
	case KVM_EXIT_MMIO:
		/* The reference guest's hypercall doorbell: an 8-byte store of
		 * the block's address. */
		if (run->mmio.phys_addr == APF_ARM64_HCALL_GPA && run->mmio.is_write &&
		    run->mmio.len == 8) {
			x->kind = VCPU_EXIT_HYPERCALL;
			memcpy(&x->gpa, run->mmio.data, 8);
		} else {
			x->kind = VCPU_EXIT_MMIO_UNBACKED;
		}
		break;
	case KVM_EXIT_HYPERCALL:
		/* Only apfvm's own SMCCC range is forwarded (--apf user). */
		apf_arm64_smccc(v, core);
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		x->kind = VCPU_EXIT_FAIL;
		snprintf(x->what, sizeof(x->what),
			 "the guest powered off or reset (PSCI, event type %u)", run->system_event.type);
		break;
	default:
		x->kind = VCPU_EXIT_UNKNOWN;
		break;
	}
}

static const char *vector_name(uint64_t index)
{
	static const char *const names[16] = {
		"sync (EL1, SP_EL0)", "IRQ (EL1, SP_EL0)", "FIQ (EL1, SP_EL0)", "SError (EL1, SP_EL0)",
		"sync (EL1)", "IRQ (EL1)", "FIQ (EL1)", "SError (EL1)",
		"sync (EL0)", "IRQ (EL0)", "FIQ (EL0)", "SError (EL0)",
		"sync (EL0, AArch32)", "IRQ (EL0, AArch32)", "FIQ (EL0, AArch32)", "SError (EL0, AArch32)",
	};
	return index < 16 ? names[index] : "unknown vector";
}

static const char *class_name(uint64_t esr)
{
	switch (esr >> 26) {
	case 0x00: return "unknown instruction";
	case 0x15: return "SVC";
	case 0x16: return "HVC";
	case 0x18: return "system register access";
	case 0x20: return "instruction abort from EL0";
	case 0x21: return "instruction abort";
	case 0x22: return "PC alignment fault";
	case 0x24: return "data abort from EL0";
	case 0x25: return "data abort";
	case 0x26: return "SP alignment fault";
	case 0x3c: return "BRK";
	default: return "exception";
	}
}

void arch_describe_fatal(const struct apf_fatal *f, char *buf, size_t len)
{
	snprintf(buf, len,
		 "%s (%s, vector entry %llu) in %s: ELR_EL1=0x%llx SPSR_EL1=0x%llx ESR_EL1=0x%llx "
		 "FAR_EL1=0x%llx SP=0x%llx",
		 class_name(f->error_code), vector_name(f->vector), (unsigned long long)f->vector,
		 (f->mode & 0xf) == 0 ? "EL0" : "EL1", (unsigned long long)f->pc,
		 (unsigned long long)f->mode, (unsigned long long)f->error_code,
		 (unsigned long long)f->fault_addr, (unsigned long long)f->sp);
}

void arch_describe_port_io(const struct kvm_run *run, char *buf, size_t len)
{
	(void)run; /* arm64 has no port I/O exits */
	snprintf(buf, len, "unexpected port I/O");
}
