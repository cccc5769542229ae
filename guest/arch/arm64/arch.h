/*
 * The reference guest kernel's arm64 layer: the inline primitives
 * guest/core asks of an architecture (every guest/arch/<arch>/arch.h
 * defines the same names; the hooks it implements in its own files are
 * declared in guest/core/kernel.h).
 *
 * The kernel runs at EL1 (SP_EL1) with IRQs masked (PSTATE.I) except
 * while waiting (arch_halt_once); tasks run at EL0.  The VMM starts the
 * kernel with the MMU on over its own page tables (src/arch/arm64).
 */
#ifndef GUEST_ARCH_ARM64_H
#define GUEST_ARCH_ARM64_H

#include <stdint.h>

#include "apfvm/abi_arm64.h"


#define SYSREG_READ(name)                                          \
	({                                                         \
		uint64_t v_;                                       \
		__asm__ volatile("mrs %0, " #name : "=r"(v_)); \
		v_;                                                \
	})
#define SYSREG_WRITE(name, v) __asm__ volatile("msr " #name ", %0" ::"r"((uint64_t)(v)) : "memory")

static inline void isb(void)
{
	__asm__ volatile("isb" ::: "memory");
}

/* The cycle counter boot_info->tsc_khz describes: the virtual counter. */
static inline uint64_t arch_cycles(void)
{
	uint64_t v;
	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v)::"memory");
	return v;
}

/* Waits for the next interrupt, then takes it with IRQs unmasked for one
 * instruction.  WFI with PSTATE.I set still wakes on a pending IRQ, so an
 * interrupt that comes between the caller's check and the WFI is not
 * slept through (the race `sti; hlt` closes on x86). */
static inline void arch_halt_once(void)
{
	__asm__ volatile("wfi; msr daifclr, #2; isb; msr daifset, #2" ::: "memory");
}

/* Stops this CPU for good (after the host was told why). */
static inline void __attribute__((noreturn)) arch_stop(void)
{
	for (;;)
		__asm__ volatile("msr daifset, #0xf; wfi" ::: "memory");
}

/* Hands the host the hypercall block: a store of its GPA to the doorbell
 * (an MMIO exit; abi_arm64.h).  The kernel runs identity-mapped. */
static inline void arch_hcall(struct apf_hcall *block)
{
	/* The block's stores are ordered before the doorbell's (the memory
	 * clobber keeps the compiler from sinking them; DMB the CPU). */
	__asm__ volatile("dmb ish; str %0, [%1]" ::"r"((uint64_t)block), "r"(APF_ARM64_HCALL_GPA)
			 : "memory");
}

#endif
