/*
 * apfvm ABI, arm64 part: the machine the VMM gives the reference guest
 * (where its interrupt controller and hypercall doorbell are, which
 * interrupts it uses), and apfvm's arm64 asynchronous page fault protocol
 * (docs/arm64-abi.md gives every rule and the reason for it).  With abi.h.
 *
 * No arm64 kernel has asynchronous page faults; this protocol answers the
 * review of the 2020 RFC: registration through a vendor SMCCC call (so a
 * guest asks the hypervisor, not a device), both events as one maskable
 * interrupt (PSTATE.I and the GIC priority mask block them; no emulated
 * exception entry, no PC ranges), a 32-bit token AArch32 guests can hold,
 * and a per-event sequence the guest checks, so a real fault is never
 * taken for an async one.
 */
#ifndef APFVM_ABI_ARM64_H
#define APFVM_ABI_ARM64_H

#include "abi.h"

/* ------------------------------------------------------------------ */
/* The machine (guest-physical addresses).  Resident memory must end
 * below APF_ARM64_MMIO_GPA.                                           */

#define APF_ARM64_MMIO_GPA   0xf0000000ull /* device window: 2 MiB blocks */
#define APF_ARM64_GICD_GPA   0xf0000000ull /* GICv3 distributor, 64 KiB */
#define APF_ARM64_GICR_GPA   0xf0100000ull /* redistributors, 128 KiB each */
#define APF_ARM64_MMIO_END   0xf0400000ull

/* The reference guest's hypercall: a 64-bit store of its struct
 * apf_hcall's GPA to this doorbell (an MMIO exit to the VMM). */
#define APF_ARM64_HCALL_GPA  0xf0200000ull

#define APF_ARM64_PPI_VTIMER 27  /* the architected EL1 virtual timer */
/* The SPIs a guest may register for async page faults (one per vCPU):
 * the VM's GIC has 256 interrupt IDs, none wired to a device. */
#define APF_ARM64_SPI_FIRST  32
#define APF_ARM64_SPI_LAST   255

/* ------------------------------------------------------------------ */
/* Asynchronous page faults: apfvm's vendor hypervisor service.  Calls
 * are SMCCC fast calls through HVC in the vendor-specific hypervisor
 * range (owner 6), SMC32 convention (so AArch32 guests can make them);
 * function numbers above the ones KVM itself uses (0-63, 127).       */

#define APF_SMCCC_FN(n)        (0x86000000u | (n))
#define APF_SMCCC_FN_BASE      0x100u
#define APF_SMCCC_INFO         APF_SMCCC_FN(0x100) /* -> w0 = APF_ARM64_MAGIC,
						    * w1 = version, w2 = features */
#define APF_SMCCC_REGISTER     APF_SMCCC_FN(0x101) /* w1:w2 = area GPA (low, high),
						    * w3 = INTID (an SPI the guest
						    * made edge-triggered and routed
						    * to this vCPU), w4 = flags
						    * -> w0 = status */
#define APF_SMCCC_UNREGISTER   APF_SMCCC_FN(0x102) /* -> w0 = status */
#define APF_SMCCC_ACK          APF_SMCCC_FN(0x103) /* optional prompt -> w0 = status */
#define APF_SMCCC_NR_FUNCTIONS 4

#define APF_ARM64_MAGIC        0x41504631u /* "APF1" */
#define APF_ARM64_VERSION      1u

/* Status in w0: SMCCC's own for an unknown call, then ours. */
#define APF_SMCCC_SUCCESS        0
#define APF_SMCCC_NOT_SUPPORTED  (-1)
#define APF_SMCCC_INVALID        (-2)

/* REGISTER flags (w4). */
#define APF_ARM64_SEND_AT_EL1  (1u << 0) /* also for faults taken at EL1 */

/* The per-vCPU area (APF_ARM64_AREA_ALIGN aligned, in resident memory).
 * The host writes; the guest reads and clears.  Its first 8 bytes have
 * the layout of the x86 area (flags, token), so one host side serves
 * both.
 *  - not-present: reason = APF_REASON_PAGE_NOT_PRESENT, token, and pc =
 *    the faulting instruction's address (ELR_EL1 at the interrupt), then
 *    the SPI gets an edge.  The guest reads and zeroes `reason` first
 *    thing (a zero reason: not for it), and checks pc == ELR_EL1.
 *  - page-ready: ready_token = the token (or APF_WAKE_ALL_TOKEN), then
 *    the SPI gets an edge.  The guest zeroes ready_token; the host sends
 *    the next one once it finds it zero (APF_SMCCC_ACK makes it look at
 *    once).
 * The size is fixed by the ABI, not by a cache-line size: the guest
 * aligns it to CTR_EL0's writeback granule, the host never assumes one. */
struct apf_arm64_area {
	uint32_t reason;      /* APF_REASON_PAGE_NOT_PRESENT or 0 */
	uint32_t ready_token; /* page-ready token or 0 */
	uint32_t token;       /* not-present token */
	uint32_t pad;
	uint64_t pc;          /* not-present: the faulting instruction */
	uint8_t reserved[40];
};
_Static_assert(sizeof(struct apf_arm64_area) == 64, "arm64 apf area layout");

#define APF_ARM64_AREA_ALIGN 64u

#endif /* APFVM_ABI_ARM64_H */
