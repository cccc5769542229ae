/*
 * apf: the guest side of KVM asynchronous page faults (the Linux/KVM ABI,
 * see docs/async-pf.md).
 *
 * Not present: the host writes flags = PAGE_NOT_PRESENT in the per-vCPU
 * area and injects #PF with CR2 = token.  The faulting task is parked
 * under the token and another task runs; if there is none, or the fault
 * came from ring 0, the task waits in place (sti; hlt) instead.
 * Page ready: the host writes the token into the area and raises VEC_APF.
 * The handler EOIs, wakes the task, clears the token, writes the ACK MSR
 * and switches straight to the woken task, so it gets the CPU at once.
 */
#ifndef GUEST_APF_H
#define GUEST_APF_H

#include "trap.h"

#define VEC_APF 0xec

/* Detects the feature (CPUID) and enables it, unless the command line
 * says "no-apf".  After the timer and scheduler are set up. */
void apf_init(void);

/* First thing in the #PF handler: returns 1 if this #PF was an async
 * not-present event (handled; the faulting access is retried on return),
 * 0 for an ordinary page fault. */
int apf_handle_pf(struct trapframe *tf);

/* The page-ready interrupt. */
void apf_ready_irq(void);

/* Disables the feature, wakes every parked task and reports the guest's
 * counters to the host.  At shutdown. */
void apf_shutdown(void);

#endif
