/*
 * apf_x86: the KVM paravirtual async page fault protocol, guest side (the
 * Linux/KVM ABI, abi_x86.h and docs/async-pf.md); what the guest then does
 * is guest/core/apf.h's.
 *
 * Not present: the host writes flags = PAGE_NOT_PRESENT in the per-vCPU
 * area and injects #PF with CR2 = token.
 * Page ready: the host writes the token into the area and raises VEC_APF;
 * the handler EOIs, clears the token and writes the ACK MSR before
 * switching to the woken task.
 */
#ifndef GUEST_APF_X86_H
#define GUEST_APF_X86_H

#include "trap.h"

#define VEC_APF 0xec

/* First thing in the #PF handler: returns 1 if this #PF was an async
 * not-present event (handled; the faulting access is retried on return),
 * 0 for an ordinary page fault. */
int apf_handle_pf(struct trapframe *tf);

/* The page-ready interrupt. */
void apf_ready_irq(void);

#endif
