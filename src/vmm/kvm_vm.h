/*
 * kvm_vm: the KVM virtual machine: VM and vCPU file descriptors, memory
 * slots, in-kernel irqchip, CPUID, and the vCPU's initial 64-bit state.
 * Per-vCPU state lives in struct vcpu so that several vCPUs can be added
 * without changing the VM-wide parts.
 */
#ifndef APFVM_KVM_VM_H
#define APFVM_KVM_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "guest_mem.h"

#define VM_MAX_VCPUS 8

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;     /* valid from vcpu_start() until joined */
	/* Kicks (vcpu_kick, from any thread) signal the vCPU thread only while
	 * `kickable`: set by the thread itself before its first KVM_RUN,
	 * cleared by it as its last act, both under kick_lock, which the
	 * kicker holds around pthread_kill.  So no kick is lost before the
	 * thread runs (immediate_exit is set first and happens-before its
	 * first KVM_RUN) and none targets a thread that was joined.  The
	 * kick is a tgkill to (pid, tid), both set with `kickable`. */
	pthread_mutex_t kick_lock;
	int pid;
	bool kickable;
	int cpu;              /* pin the vCPU thread here, or -1 */
	int tid;              /* its thread id, once started (0 before) */
	/* Guest TSC = host TSC + tsc_offset (mod 2^64), as KVM set it when
	 * the vCPU was created (KVM_VCPU_TSC_OFFSET; 0 where KVM cannot say,
	 * e.g. PVM, whose guests read the host's TSC).  Nested SVM/VMX hosts
	 * apply a large offset: host and guest stamps are only comparable
	 * through it.  Valid while the guest does not write IA32_TSC, which
	 * the reference guest never does.  No TSC scaling is assumed. */
	uint64_t tsc_offset;
};

struct vm_options {
	bool disable_hlt_exits; /* KVM_CAP_X86_DISABLE_EXITS(HLT), before vCPUs */
	uint32_t kvm_features;  /* CPUID 0x40000001.EAX advertised to the guest */
	/* A PC's legacy timer and interrupt wiring (a Linux guest): the
	 * in-kernel PIT, and LINT0 as ExtINT / LINT1 as NMI so the PIC's
	 * interrupts reach the CPU without an I/O APIC description. */
	bool pc_legacy;
};

struct vm {
	int kvm_fd, vm_fd;
	int kick_signal;      /* brings a vCPU thread out of KVM_RUN */
	struct guest_mem *gm;
	uint64_t tsc_khz;
	unsigned nvcpus;
	struct vcpu vcpus[VM_MAX_VCPUS];
};

/* Opens /dev/kvm and creates the VM with its memory slots (resident at GPA
 * 0, lazy at APF_LAZY_GPA) and in-kernel irqchip. */
int vm_create(struct vm *vm, struct guest_mem *gm, const struct vm_options *opt,
	      struct apf_err *e);

/* Creates vCPU `id` entering 64-bit mode at rip with cr3 = pml4 and
 * rdi = rsi = arg (the reference guest's boot info takes RDI, Linux's zero
 * page RSI).  The guest sets its own stack. */
int vm_add_vcpu(struct vm *vm, const struct vm_options *opt, uint64_t rip, uint64_t pml4,
		uint64_t arg, struct apf_err *e);

void vm_destroy(struct vm *vm);

#endif
