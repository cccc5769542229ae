/*
 * apf_arm64: apfvm's arm64 async page fault protocol, guest side
 * (abi_arm64.h, docs/arm64-abi.md); what the guest then does is
 * guest/core/apf.h's.
 *
 * Registration: APF_SMCCC_INFO, then APF_SMCCC_REGISTER with the area and
 * the PPI.  Both events arrive as that PPI, which PSTATE.I masks: the
 * handler reads the area, clears what it consumed, acknowledges
 * (APF_SMCCC_ACK: the host lowers the line), EOIs, and only then parks
 * the task or switches to the woken one.
 */
#ifndef GUEST_APF_ARM64_H
#define GUEST_APF_ARM64_H

#include <stdint.h>

#define APF_PPI 22 /* the INTID the guest registers */

static inline int apf_is_intid(uint32_t intid)
{
	return intid == APF_PPI;
}

/* The PPI, acknowledged (IAR) but not yet EOIed: it EOIs.  elr: where the
 * interrupted context resumes; from_el0: a task was interrupted. */
void apf_irq(uint32_t intid, uint64_t elr, int from_el0);

#endif
