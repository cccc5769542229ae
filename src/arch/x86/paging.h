/*
 * paging (x86-64): lays out resident guest memory and builds the guest's initial
 * identity-mapped page tables, so the guest starts directly in 64-bit mode.
 *
 * Resident memory: page 0 unmapped (catches null pointers), boot info at
 * APF_BOOT_INFO_GPA, the guest ELF from APF_KERNEL_GPA, then the page
 * tables, a supervisor-only heap (kfree), the trace page and a ring-3 heap
 * (ufree).  4 KiB
 * pages, so ELF segments marked APF_PF_USER get the U/S bit alone.
 * The lazy region is mapped with 2 MiB pages (U/S set): the guest's page
 * size does not matter to the host, which still faults per 4 KiB page.
 */
#ifndef APFVM_PAGING_H
#define APFVM_PAGING_H

#include "vmm/elf_loader.h"
#include "vmm/guest_layout.h"


int paging_build(struct guest_mem *gm, const struct elf_image *img, struct guest_layout *out,
		 struct apf_err *e);

#endif
