/* --apf user on arm64 (apf_arm64.c): the SMCCC calls KVM forwards. */
#ifndef APFVM_APF_ARM64_HOST_H
#define APFVM_APF_ARM64_HOST_H

struct apf_core;
struct vcpu;

/* A KVM_EXIT_HYPERCALL: one of apfvm's SMCCC functions (abi_arm64.h),
 * decoded for the core (NULL: not --apf user: NOT_SUPPORTED).  Answers in
 * x0-x2; the PC is already past the HVC. */
void apf_arm64_smccc(struct vcpu *v, struct apf_core *core);

#endif
