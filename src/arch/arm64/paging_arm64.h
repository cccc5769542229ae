/*
 * paging (arm64): lays out resident guest memory and builds the guest's
 * initial identity-mapped stage-1 tables, so the reference guest starts
 * at EL1 with the MMU on (4 KiB granule, 39-bit VA from level 1).
 *
 * Resident memory: page 0 unmapped (catches null pointers), boot info at
 * APF_BOOT_INFO_GPA, the guest ELF from APF_KERNEL_GPA, then the tables,
 * a kernel-only heap (kfree), the trace page and an EL0 heap (ufree).
 * 4 KiB pages: ELF segments marked APF_PF_USER are EL0-accessible and
 * EL0-executable, everything else is EL1-only and never EL0-executable.
 * The lazy region is mapped with 2 MiB blocks (EL0 read/write, never
 * executable); the device window (APF_ARM64_MMIO_GPA) as Device-nGnRnE.
 */
#ifndef APFVM_PAGING_ARM64_H
#define APFVM_PAGING_ARM64_H

#include "vmm/elf_loader.h"
#include "vmm/guest_layout.h"

/* The translation registers the tables are built for. */
#define PAGING_TCR_EL1  (25ull /* T0SZ: 39-bit VA */ | 1ull << 8 /* IRGN0 WBWA */ |   \
			 1ull << 10 /* ORGN0 WBWA */ | 3ull << 12 /* SH0 inner */ |     \
			 1ull << 23 /* EPD1: no TTBR1 walks */ | 2ull << 32 /* IPS 40 bits */)
#define PAGING_MAIR_EL1 0x00ffull /* attr 0: Normal WB, attr 1: Device-nGnRnE */

int paging_build(struct guest_mem *gm, const struct elf_image *img, struct guest_layout *out,
		 struct apf_err *e);

#endif
