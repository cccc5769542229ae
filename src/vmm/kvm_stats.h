/*
 * kvm_stats: a few of KVM's own per-vCPU counters (KVM_GET_STATS_FD), read
 * at the end of a run: how often the vCPU exited, took shadow/EPT page
 * faults, and how many guest instructions KVM had to emulate (on hosts that
 * emulate guest ring 0, the main cost of a guest kernel path).
 */
#ifndef APFVM_KVM_STATS_H
#define APFVM_KVM_STATS_H

#include <stdint.h>

struct kvm_vcpu_counters {
	uint64_t exits, pf_taken, insn_emulation, signal_exits, halt_exits, irq_injections;
	/* Whether KVM has pf_taken and insn_emulation (x86 KVM does; arm64
	 * KVM counts neither). */
	int has_pf_and_emulation;
};

/* Fills c from the vCPU's binary stats; counters KVM lacks stay 0.
 * Returns 0 or -errno. */
int kvm_stats_read(int vcpu_fd, struct kvm_vcpu_counters *c);

#endif
