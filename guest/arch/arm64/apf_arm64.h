/*
 * apf_arm64: apfvm's arm64 async page fault protocol, guest side
 * (abi_arm64.h, docs/arm64-abi.md); what the guest then does is
 * guest/core/apf.h's.
 *
 * Registration: APF_SMCCC_INFO, then APF_SMCCC_REGISTER with the area and
 * an SPI (edge-triggered, routed to this CPU).  Both events arrive as an
 * IRQ, which PSTATE.I masks: page-ready as that SPI, not-present as an
 * IRQ exception the host takes for the guest.  The handler EOIs, reads
 * the area, clears what it consumed, and only then parks the task or
 * switches to the woken one.
 */
#ifndef GUEST_APF_ARM64_H
#define GUEST_APF_ARM64_H

#include <stdint.h>

#define APF_INTID 48 /* the SPI the guest registers (vCPU 0) */

static inline int apf_is_intid(uint32_t intid)
{
	return intid == APF_INTID;
}

/* Every IRQ, once the interrupt (if any) was EOIed: handles what the
 * area holds.  A page-ready comes with the SPI; a not-present with an
 * IRQ entry the host takes for the guest at the faulting instruction,
 * which the GIC may call spurious, or the same IRQ as another interrupt.
 * elr: where the interrupted context resumes; from_el0: a task was
 * interrupted.  Returns 1 if it handled an event (the current task may
 * have been parked and resumed since). */
int apf_interrupt(uint64_t elr, int from_el0);

#endif
