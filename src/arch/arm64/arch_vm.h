/*
 * The arm64 parts of the VMM's types (included by src/arch/arch.h and
 * src/vmm/kvm_vm.h): the VM options a run chooses, and the host's cycle
 * counter.
 */
#ifndef APFVM_ARCH_ARM64_VM_H
#define APFVM_ARCH_ARM64_VM_H

#include <elf.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "apfvm/abi_arm64.h"

#define ARCH_NAME        "arm64"
#define ARCH_SNAPSHOT_ID 2 /* SNAP_ARCH_ARM64 */
#define ARCH_ELF_MACHINE EM_AARCH64
/* A kick frees a vCPU blocked on a lazy page by poisoning the page: KVM's
 * wait for a userfaultfd page is only killable here (the pager poisons it
 * when the kick is decided, pager_config.kick_by_poison). */
#define ARCH_APF_KICK_POISONS true

struct vm_options {
	bool apf_user;   /* forward apfvm's SMCCC calls (KVM_ARM_VM_SMCCC_FILTER) */
};

#define ARCH_MAX_VCPUS 8

/* What a vCPU keeps (struct vcpu.arch), its own thread only: PSTATE as
 * read after the last kick (arch_apf_guest_state), which the not-present
 * that may follow reuses instead of reading it again. */
struct vcpu_arch {
	uint64_t kick_pstate;
};

/* What the VM keeps (struct vm.arch). */
struct vm_arch {
	int gic_fd;      /* the vGICv3 device (0 before arch_vm_init) */
	/* --apf user: the SPI each vCPU registered (0: none; atomic), and
	 * the lock that keeps each edge whole (apf_arm64.c). */
	pthread_mutex_t line_lock;
	uint32_t apf_intid[ARCH_MAX_VCPUS];
};

/* The host's cycle counter: its virtual counter.  A guest's counts from
 * the VM's creation (KVM offsets it), so tsc_offset converts. */
static inline uint64_t host_cycles(void)
{
	uint64_t v;
	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v)::"memory");
	return v;
}

#endif
