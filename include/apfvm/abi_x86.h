/*
 * apfvm ABI, x86-64 part: how the reference guest makes a hypercall, the
 * KVM paravirtual async page fault protocol exactly as Linux and KVM speak
 * it (Documentation/virt/kvm/x86/msr.rst, cpuid.rst; docs/async-pf.md),
 * and where the Linux guest's /init finds the VMM.  With abi.h.
 */
#ifndef APFVM_ABI_X86_H
#define APFVM_ABI_X86_H

#include "abi.h"

/* The reference guest's hypercall: a 32-bit OUT of the GPA of its struct
 * apf_hcall (below 4 GiB) to APF_HCALL_PORT. */
#define APF_HCALL_PORT     0x6a0u

/* ------------------------------------------------------------------ */
/* Asynchronous page faults: the x86 KVM paravirtual ABI, exactly as Linux
 * and KVM speak it (Documentation/virt/kvm/x86/msr.rst, cpuid.rst).    */

#define KVM_CPUID_SIGNATURE        0x40000000u /* "KVMKVMKVM\0\0\0" */
#define KVM_CPUID_FEATURES         0x40000001u
#define KVM_FEATURE_ASYNC_PF       4
#define KVM_FEATURE_ASYNC_PF_VMEXIT 10
#define KVM_FEATURE_ASYNC_PF_INT   14
#define KVM_FEATURE_CLOCKSOURCE2   3  /* kvmclock, answered by KVM itself */
#define KVM_FEATURE_CLOCKSOURCE_STABLE_BIT 24

#define MSR_KVM_ASYNC_PF_EN        0x4b564d02u
#define MSR_KVM_ASYNC_PF_INT       0x4b564d06u
#define MSR_KVM_ASYNC_PF_ACK       0x4b564d07u

#define KVM_ASYNC_PF_ENABLED           (1ull << 0)
#define KVM_ASYNC_PF_SEND_ALWAYS       (1ull << 1)
#define KVM_ASYNC_PF_DELIVERY_AS_PF_VMEXIT (1ull << 2)
#define KVM_ASYNC_PF_DELIVERY_AS_INT   (1ull << 3)

#define KVM_PV_REASON_PAGE_NOT_PRESENT APF_REASON_PAGE_NOT_PRESENT
#define KVM_APF_WAKE_ALL_TOKEN         APF_WAKE_ALL_TOKEN

/* The per-vCPU area whose GPA the guest writes to MSR_KVM_ASYNC_PF_EN
 * (64-byte aligned).  flags: the host writes PAGE_NOT_PRESENT before
 * injecting #PF (CR2 = token); the guest reads and clears it first thing.
 * token: the host writes a ready token before raising the vector; the
 * guest clears it, then writes 1 to MSR_KVM_ASYNC_PF_ACK. */
struct kvm_vcpu_pv_apf_data {
	uint32_t flags;
	uint32_t token;
	uint8_t pad[56];
};
_Static_assert(sizeof(struct kvm_vcpu_pv_apf_data) == 64, "apf area layout");

/* ------------------------------------------------------------------ */
/* The Linux guest (apfvm run --kernel): its /init, built by apfvm, finds
 * a struct apf_boot_info at APF_LINUX_INFO_GPA (named on the kernel
 * command line as "apfvm.info=0xd0000") and issues hypercalls with blocks
 * it writes at APF_LINUX_HCALL_GPA.  Both pages lie in the e820 hole below
 * 1 MiB, which Linux never allocates and its /dev/mem always maps; /init
 * maps them, and the lazy region, through /dev/mem (docs/linux-guest.md).
 * Its tasks' lazy_base is then the address of that mapping.            */

#define APF_LINUX_INFO_GPA  0xd0000u
#define APF_LINUX_HCALL_GPA 0xd1000u
#define APF_LINUX_INFO_GPA_STR "0xd0000"
#define APF_LINUX_INFO_ARG  "apfvm.info="

#endif /* APFVM_ABI_X86_H */
