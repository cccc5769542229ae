/*
 * regs_arm64: KVM's register ids (ONE_REG) for the registers apfvm reads
 * and writes, and the values it starts the reference guest with.
 */
#ifndef APFVM_REGS_ARM64_H
#define APFVM_REGS_ARM64_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

#define ARM64_CORE_REG(field)                                                       \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |                      \
	 (offsetof(struct kvm_regs, field) / sizeof(uint32_t)))
#define ARM64_SYSREG(op0, op1, crn, crm, op2)                                       \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG |                  \
	 ((uint64_t)(op0) << KVM_REG_ARM64_SYSREG_OP0_SHIFT) |                       \
	 ((uint64_t)(op1) << KVM_REG_ARM64_SYSREG_OP1_SHIFT) |                       \
	 ((uint64_t)(crn) << KVM_REG_ARM64_SYSREG_CRN_SHIFT) |                       \
	 ((uint64_t)(crm) << KVM_REG_ARM64_SYSREG_CRM_SHIFT) |                       \
	 ((uint64_t)(op2) << KVM_REG_ARM64_SYSREG_OP2_SHIFT))

#define ARM64_SYSREG_SCTLR_EL1 ARM64_SYSREG(3, 0, 1, 0, 0)
#define ARM64_SYSREG_TTBR0_EL1 ARM64_SYSREG(3, 0, 2, 0, 0)
#define ARM64_SYSREG_TCR_EL1   ARM64_SYSREG(3, 0, 2, 0, 2)
#define ARM64_SYSREG_ESR_EL1   ARM64_SYSREG(3, 0, 5, 2, 0)
#define ARM64_SYSREG_FAR_EL1   ARM64_SYSREG(3, 0, 6, 0, 0)
#define ARM64_SYSREG_MAIR_EL1  ARM64_SYSREG(3, 0, 10, 2, 0)
#define ARM64_SYSREG_VBAR_EL1  ARM64_SYSREG(3, 0, 12, 0, 0)
#define ARM64_SYSREG_ELR_EL1   ARM64_CORE_REG(elr_el1) /* a core register for KVM */
#define ARM64_REG_CNTVCT       KVM_REG_ARM_TIMER_CNT

/* M, C, I, SA, SA0 off; nTWI and nTWE (EL0 WFI/WFE not trapped); UCT (EL0
 * reads CTR_EL0); SPAN = 1: PSTATE.PAN stays 0 on exception entry, so
 * the kernel reads task memory (the reports it hands the host); the
 * RES1 bits of ARMv8.0. */
#define ARM64_SCTLR_MMU_ON                                                           \
	((1ull << 0) | (1ull << 2) | (1ull << 3) | (1ull << 12) | (1ull << 15) |     \
	 (1ull << 16) | (1ull << 18) | (1ull << 23) |                                \
	 (1ull << 11) | (1ull << 20) | (1ull << 22) | (1ull << 28) | (1ull << 29))
/* EL1h (SP_EL1), D, A, I, F masked. */
#define ARM64_PSTATE_EL1H_MASKED 0x3c5ull

static inline int arm64_set_reg(int vcpu_fd, uint64_t id, uint64_t value)
{
	struct kvm_one_reg r = { .id = id, .addr = (uint64_t)(uintptr_t)&value };
	return ioctl(vcpu_fd, KVM_SET_ONE_REG, &r);
}

static inline int arm64_get_reg(int vcpu_fd, uint64_t id, uint64_t *value)
{
	struct kvm_one_reg r = { .id = id, .addr = (uint64_t)(uintptr_t)value };
	return ioctl(vcpu_fd, KVM_GET_ONE_REG, &r);
}

/* The counter's frequency (CNTFRQ_EL0, which the guest sees too), kHz. */
static inline uint64_t arm64_counter_khz(void)
{
	uint64_t f;
	__asm__ volatile("mrs %0, cntfrq_el0" : "=r"(f));
	return f / 1000;
}

#endif
