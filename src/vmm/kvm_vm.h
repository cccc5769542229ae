/*
 * kvm_vm: the KVM virtual machine: VM and vCPU file descriptors and memory
 * slots; the architecture adds its interrupt controller, CPU features and
 * the vCPU's initial state (src/arch/arch.h).
 * Per-vCPU state lives in struct vcpu so that several vCPUs can be added
 * without changing the VM-wide parts.
 */
#ifndef APFVM_KVM_VM_H
#define APFVM_KVM_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "arch/arch.h"
#include "guest_mem.h"

#define VM_MAX_VCPUS 8
#ifdef ARCH_MAX_VCPUS
_Static_assert(ARCH_MAX_VCPUS == VM_MAX_VCPUS, "per-vCPU arrays of the architecture");
#endif

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
	/* Guest cycle counter = host_cycles() + tsc_offset (mod 2^64), as
	 * KVM set it when the vCPU was created (arch_vcpu_init).  x86: the
	 * TSC offset (KVM_VCPU_TSC_OFFSET; 0 where KVM cannot say, e.g. PVM,
	 * whose guests read the host's TSC; nested SVM/VMX hosts apply a
	 * large one); arm64: the virtual counter's.  Host and guest stamps
	 * are only comparable through it.  No scaling is assumed. */
	uint64_t tsc_offset;
	struct vcpu_arch arch; /* the architecture's (arch_vm.h) */
};

struct vm {
	int kvm_fd, vm_fd;
	int kick_signal;      /* brings a vCPU thread out of KVM_RUN */
	struct guest_mem *gm;
	uint64_t tsc_khz;     /* the guest's cycle counter frequency, kHz */
	unsigned nvcpus;
	struct vcpu vcpus[VM_MAX_VCPUS];
	struct vm_arch arch;  /* the architecture's (arch_vm.h) */
};

/* Opens /dev/kvm and creates the VM with its interrupt controller
 * (arch_vm_init) and memory slots (resident at GPA 0, lazy at
 * APF_LAZY_GPA). */
int vm_create(struct vm *vm, struct guest_mem *gm, const struct vm_options *opt,
	      struct apf_err *e);

/* Creates the next vCPU, starting at `entry` (arch_vcpu_init).  The
 * guest sets its own stack. */
int vm_add_vcpu(struct vm *vm, const struct vm_options *opt, const struct arch_entry *entry,
		struct apf_err *e);

/* After the last vm_add_vcpu (arch_vm_finalize). */
int vm_finalize(struct vm *vm, const struct vm_options *opt, struct apf_err *e);

void vm_destroy(struct vm *vm);

/* Makes v leave KVM_RUN soon; safe from any thread (vcpu_loop.h, Kicks). */
void vcpu_kick(struct vcpu *v);

/* A few of KVM's own counters for vCPU v (KVM_GET_STATS_FD), read at the
 * end of a run: how often it exited, took shadow/EPT page faults, and how
 * many guest instructions KVM had to emulate (on hosts that emulate guest
 * ring 0, the main cost of a guest kernel path). */
struct kvm_vcpu_counters {
	uint64_t exits, pf_taken, insn_emulation, signal_exits, halt_exits, irq_injections;
	/* Whether KVM has pf_taken and insn_emulation (x86 KVM does; arm64
	 * KVM counts neither). */
	int has_pf_and_emulation;
};

/* Fills c from the vCPU's binary stats; counters KVM lacks stay 0.
 * Returns 0 or -errno. */
int vcpu_read_counters(struct vcpu *v, struct kvm_vcpu_counters *c);

#endif
