/*
 * apf_user: `--apf user` wired to KVM.  The async-fault core
 * (src/apf/apf_core.h) decides; this file gives it hands on this VM and
 * feeds it events; how the guest is told is the architecture's
 * (arch_apf_* in src/arch/arch.h):
 *
 *  - VM setup: the architecture makes KVM leave its own async path alone
 *    and route the guest's registration to the VMM (x86: HLT exits off,
 *    the enable and vector MSRs filtered to userspace; arm64: the vendor
 *    SMCCC call forwarded to userspace);
 *  - pager hooks: each fault names its thread (UFFD_FEATURE_THREAD_ID); a
 *    fault by a vCPU thread goes to the core, which may kick that vCPU out
 *    of its blocked fault; each installed page goes to the core, which
 *    raises page-ready (area.token, then the architecture's interrupt)
 *    once the guest has cleared the token of the one before, retrying
 *    from the pager thread while one waits;
 *  - vCPU loop: after a kick (KVM_RUN = -EINTR, the PC still at the
 *    faulting access) the architecture reads whether the guest can take a
 *    not-present, the core decides, and the architecture delivers it.
 */
#ifndef APFVM_APF_USER_H
#define APFVM_APF_USER_H

#include "apf/apf_core.h"
#include "machine.h"

/* Default threshold: what one async round trip costs the guest on this
 * project's hosts (kick, injection, not-present path, page-ready path,
 * two task switches: about 0.5 ms of vCPU time with an emulated ring 0).
 * Measured by sweeping the fetch latency with the threshold forced to 1 ns
 * against --apf off (docs/async-pf.md); async starts to pay near 500 us.
 * Faults expected to take less are served synchronously.  On hardware
 * virtualization the round trip is far cheaper: lower it there. */
#define APF_USER_DEFAULT_THRESHOLD_NS 500000ull

/* VM capabilities and registration traps; before vCPUs are created. */
int apf_user_setup_vm(struct vm *vm, bool trap_acks, struct apf_err *e);

/* Creates the core for m's vCPUs (c's threshold, or the default; its
 * trap_acks) and the pager hooks that feed it (m->pager_hooks). */
int apf_user_init(struct machine *m, const struct apfvm_config *c, struct apf_err *e);

extern const struct pager_hooks apf_user_pager_hooks; /* ctx: the machine */

/* vCPU loop entry points (vCPU v's own thread). */
void apf_user_vcpu_init(struct vcpu *v); /* once, before the first KVM_RUN */
/* After a kick: injects a not-present if one is due and the guest can
 * take it; true if it did. */
bool apf_user_after_kick(struct machine *m, struct vcpu *v);
/* KVM_RUN ended with SIGBUS on host address addr: if that is a lazy page
 * poisoned to kick this vCPU (arm64), handles the kick (not-present, or a
 * synchronous wait for the page) and returns true; false for any other
 * poisoned memory, which the caller reports. */
bool apf_user_poison_kick(struct machine *m, struct vcpu *v, void *addr);
void apf_user_after_exit(struct machine *m, struct vcpu *v); /* any exit to the VMM */

#endif
