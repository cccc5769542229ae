#include "paging.h"

#include <errno.h>
#include <string.h>

#include "apfvm/abi.h"

#define PTE_P  0x1ull
#define PTE_W  0x2ull
#define PTE_U  0x4ull
#define PTE_PS 0x80ull
#define GIB    (1ull << 30)
#define MIB2   (2ull << 20)

int paging_build(struct guest_mem *gm, const struct elf_image *img, struct guest_layout *l,
		 struct apf_err *e)
{
	uint64_t res = gm->resident_size;
	uint64_t res_pds = (res + GIB - 1) / GIB;
	uint64_t lazy_pds = (gm->lazy_size + GIB - 1) / GIB;
	uint64_t pts = (res + MIB2 - 1) / MIB2;
	uint64_t ntables = 2 + res_pds + lazy_pds + pts;
	gpa_t next;

	if (res > APF_LAZY_GPA)
		return apf_fail(e, -EINVAL, "resident memory must end below 4 GiB");
	int rc = guest_layout_plan(gm, img, ntables, l, e);
	if (rc)
		return rc;

	next = l->pt_start;
	l->page_table = next;
	next += APF_PAGE_SIZE;
	gpa_t pdpt = next;
	next += APF_PAGE_SIZE;
	guest_layout_table(gm, l->page_table)[0] = pdpt | PTE_P | PTE_W | PTE_U;

	/* Resident: PD per GiB, PT per 2 MiB, 4 KiB pages. */
	for (uint64_t g = 0; g < res_pds; g++) {
		gpa_t pd = next;
		next += APF_PAGE_SIZE;
		guest_layout_table(gm, pdpt)[g] = pd | PTE_P | PTE_W | PTE_U;
		for (uint64_t d = 0; d < 512; d++) {
			gpa_t base = g * GIB + d * MIB2;
			if (base >= res)
				break;
			gpa_t pt = next;
			next += APF_PAGE_SIZE;
			guest_layout_table(gm, pd)[d] = pt | PTE_P | PTE_W | PTE_U;
			for (uint64_t t = 0; t < 512; t++) {
				gpa_t page = base + t * APF_PAGE_SIZE;
				if (page >= res)
					break;
				if (page == 0)
					continue; /* null guard */
				guest_layout_table(gm, pt)[t] = page | PTE_P | PTE_W |
						   (guest_layout_is_user(img, l, page) ? PTE_U : 0);
			}
		}
	}
	/* Lazy region: 2 MiB pages at APF_LAZY_GPA. */
	for (uint64_t g = 0; g < lazy_pds; g++) {
		gpa_t pd = next;
		next += APF_PAGE_SIZE;
		guest_layout_table(gm, pdpt)[APF_LAZY_GPA / GIB + g] = pd | PTE_P | PTE_W | PTE_U;
		for (uint64_t d = 0; d < 512; d++) {
			uint64_t off = g * GIB + d * MIB2;
			if (off >= gm->lazy_size)
				break;
			guest_layout_table(gm, pd)[d] = (APF_LAZY_GPA + off) | PTE_P | PTE_W | PTE_U | PTE_PS;
		}
	}
	return next == l->pt_end ? 0 : apf_fail(e, -EFAULT, "internal: page table count");
}
