/*
 * guest_layout: the reference guest's resident memory, the same on every
 * architecture: page 0 unmapped (catches null pointers), boot info at
 * APF_BOOT_INFO_GPA, the guest ELF from APF_KERNEL_GPA, then the
 * architecture's page tables, a kernel-only heap (kfree), the trace and
 * progress pages and a heap its tasks may access (ufree) up to the end of --mem.  The
 * architecture builds the tables over it (arch_load_reference).
 */
#ifndef APFVM_GUEST_LAYOUT_H
#define APFVM_GUEST_LAYOUT_H

#include <stdbool.h>

#include "elf_loader.h"
#include "guest_mem.h"

#define GUEST_LAYOUT_KHEAP_SIZE (4ull << 20) /* kernel heap given to the guest */

struct guest_layout {
	gpa_t page_table;     /* the root the vCPU starts with */
	gpa_t pt_start, pt_end;
	gpa_t kfree_start, kfree_end;
	gpa_t trace_gpa;      /* one task-accessible page for struct apf_trace */
	gpa_t progress_gpa;   /* and one for struct apf_progress */
	gpa_t ufree_start, ufree_end;
};

/* Places ntables page-table pages after the image, then the heaps; l is
 * zeroed first.  -EINVAL (with a message) if --mem is too small. */
int guest_layout_plan(const struct guest_mem *gm, const struct elf_image *img, uint64_t ntables,
		      struct guest_layout *l, struct apf_err *e);

/* Whether the page at `page` is task memory: the trace and progress pages, the ufree
 * heap or an ELF segment marked APF_PF_USER. */
bool guest_layout_is_user(const struct elf_image *img, const struct guest_layout *l, gpa_t page);

/* Host pointer to the page-table page at gpa (within the plan). */
uint64_t *guest_layout_table(struct guest_mem *gm, gpa_t gpa);

#endif
