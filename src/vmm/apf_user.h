/*
 * apf_user: `--apf user`, the async-fault core (src/apf/apf_core.h) bound
 * to this VM.  The core decides; this file feeds it events and gives it
 * hands; how the guest is told is the architecture's (arch_apf_*).
 *
 * One async fault, in order:
 *  1. pager thread: the fault's thread id names the vCPU (hook_fault);
 *     the core decides and, going async, kicks that vCPU (vcpu_kick; on
 *     arm64 the pager then poisons the page, pager_config.kick_by_poison);
 *  2. vCPU thread: KVM_RUN returns (vcpu_loop.c), apf_user_after_kick
 *     reads whether the guest can take a not-present
 *     (arch_apf_guest_state), the core hands out the token and the
 *     architecture injects it (arch_apf_inject_not_present);
 *  3. pager thread: the page installed (hook_installed), the core writes
 *     the token and raises page-ready (arch_apf_raise) once the guest has
 *     cleared the one before, retried on the pager's clock (hook_poll).
 * The guest's registration reaches the core through the architecture's
 * exit decoding (x86 MSRs, arm64 SMCCC).
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

/* Creates the core for m's vCPUs (the config's threshold, or the default;
 * its trap_acks) and the pager hooks that feed it (m->pager_hooks). */
int apf_user_init(struct machine *m, struct apf_err *e);

/* vCPU v's own thread, after a kick: injects a not-present if one is due
 * and the guest can take it; true if it did. */
bool apf_user_after_kick(struct machine *m, struct vcpu *v);

/* KVM_RUN ended with SIGBUS on host address addr: if that is a lazy page
 * poisoned to kick this vCPU (arm64), handles the kick (not-present, or a
 * synchronous wait for the page) and returns true; false for any other
 * poisoned memory, which the caller reports. */
bool apf_user_poison_kick(struct machine *m, struct vcpu *v, void *addr);

#endif
