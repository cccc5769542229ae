/*
 * apf_msr_x86: the guest's async-PF registration on x86, the three KVM
 * MSRs (abi_x86.h), decoded as KVM decodes them and handed to the
 * async-fault core in its neutral terms (enable, disable, vector, ack).
 */
#ifndef APFVM_APF_MSR_X86_H
#define APFVM_APF_MSR_X86_H

#include <stdint.h>

#include "apf/apf_core.h"

/* Guest WRMSR of one of the three async-PF MSRs.  Returns 0, or -1 when
 * the write must fail with #GP (as KVM does). */
int apf_x86_wrmsr(struct apf_core *c, unsigned v, uint32_t msr, uint64_t value);

/* Guest RDMSR: the value KVM would return; -1 for an unknown MSR. */
int apf_x86_rdmsr(struct apf_core *c, unsigned v, uint32_t msr, uint64_t *value);

/* A restore: the vector and enable MSRs as the guest had written them,
 * written again in that order and checked as a guest's writes; the
 * enable sends wake-all.  0, or -1 for values a guest could not write. */
int apf_x86_restore_msrs(struct apf_core *c, unsigned v, uint32_t vector, uint64_t msr_en);

#endif
