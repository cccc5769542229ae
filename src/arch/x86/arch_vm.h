/*
 * The x86-64 parts of the VMM's types (included by src/arch/arch.h and
 * src/vmm/kvm_vm.h): the VM options a run chooses, and the host's cycle
 * counter.
 */
#ifndef APFVM_ARCH_X86_VM_H
#define APFVM_ARCH_X86_VM_H

#include <elf.h>
#include <stdbool.h>
#include <stdint.h>

#include "apfvm/abi_x86.h"

#define ARCH_NAME        "x86-64"
#define ARCH_SNAPSHOT_ID 1 /* SNAP_ARCH_X86_64 */
#define ARCH_ELF_MACHINE EM_X86_64
/* A kick frees a vCPU blocked on a lazy page by its signal: KVM's wait
 * for a userfaultfd page is interruptible (Linux 6.2+). */
#define ARCH_APF_KICK_POISONS false

struct vm_options {
	bool disable_hlt_exits; /* KVM_CAP_X86_DISABLE_EXITS(HLT), before vCPUs */
	uint32_t kvm_features;  /* CPUID 0x40000001.EAX advertised to the guest */
	/* A PC's legacy timer and interrupt wiring (a Linux guest): the
	 * in-kernel PIT, and LINT0 as ExtINT / LINT1 as NMI so the PIC's
	 * interrupts reach the CPU without an I/O APIC description. */
	bool pc_legacy;
};

/* What a vCPU keeps (struct vcpu.arch): nothing beyond the generic. */
struct vcpu_arch {
	int unused;
};

/* What the VM keeps (struct vm.arch): nothing beyond the generic. */
struct vm_arch {
	int unused;
};

/* The host's cycle counter, the one the guest's (TSC) is offset from. */
static inline uint64_t host_cycles(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return ((uint64_t)hi << 32) | lo;
}

#endif
