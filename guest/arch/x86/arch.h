/*
 * The reference guest kernel's x86-64 layer: the inline primitives
 * guest/core asks of an architecture (every guest/arch/<arch>/arch.h
 * defines the same names; the hooks it implements in its own files are
 * declared in guest/core/kernel.h).
 *
 * The kernel runs in ring 0 with interrupts disabled except while halted
 * (arch_halt_once); tasks run in ring 3.  Ring 0 runs in KVM's
 * instruction emulator on some hosts (~0.4 us per instruction): keep
 * every path short.
 */
#ifndef GUEST_ARCH_X86_H
#define GUEST_ARCH_X86_H

#include <stdint.h>

#include "apfvm/abi_x86.h"


/* --- CPU primitives ----------------------------------------------------- */

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}

static inline void cpuid(uint32_t leaf, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

static inline uint64_t read_cr2(void)
{
	uint64_t v;
	__asm__ volatile("mov %%cr2, %0" : "=r"(v));
	return v;
}

/* The cycle counter boot_info->tsc_khz describes: the TSC. */
static inline uint64_t arch_cycles(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/* Waits for the next interrupt with interrupts enabled, then disables them
 * again.  `sti; hlt` is the one ring-0 sequence that reliably takes a
 * pending interrupt on an emulated ring 0. */
static inline void arch_halt_once(void)
{
	__asm__ volatile("sti; hlt; cli" ::: "memory");
}

/* Stops this CPU for good (after the host was told why). */
static inline void __attribute__((noreturn)) arch_stop(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* Hands the host the hypercall block (abi_x86.h: OUT of its GPA). */
static inline void arch_hcall(struct apf_hcall *block)
{
	__asm__ volatile("outl %0, %w1" ::"a"((uint32_t)(uint64_t)block), "Nd"(APF_HCALL_PORT)
			 : "memory");
}

#endif
