#include "guest_layout.h"

#include <errno.h>
#include <string.h>

#include "apfvm/abi.h"

int guest_layout_plan(const struct guest_mem *gm, const struct elf_image *img, uint64_t ntables,
		      struct guest_layout *l, struct apf_err *e)
{
	memset(l, 0, sizeof(*l));
	l->pt_start = img->end;
	l->pt_end = l->pt_start + ntables * APF_PAGE_SIZE;
	l->kfree_start = l->pt_end;
	l->kfree_end = l->kfree_start + GUEST_LAYOUT_KHEAP_SIZE;
	l->trace_gpa = l->kfree_end;
	l->progress_gpa = l->trace_gpa + APF_PAGE_SIZE;
	l->ufree_start = l->progress_gpa + APF_PAGE_SIZE;
	l->ufree_end = gm->resident_size;
	if (l->ufree_end < l->ufree_start + (1ull << 20))
		return apf_fail(e, -EINVAL,
				"--mem is too small: the guest image, page tables and heaps need %llu KiB + 1 MiB",
				(unsigned long long)(l->ufree_start >> 10));
	return 0;
}

bool guest_layout_is_user(const struct elf_image *img, const struct guest_layout *l, gpa_t page)
{
	if (page >= l->trace_gpa && page < l->ufree_end) /* trace, progress, ufree */
		return true;
	for (unsigned i = 0; i < img->nsegs; i++)
		if (img->segs[i].user && page >= img->segs[i].start && page < img->segs[i].end)
			return true;
	return false;
}

uint64_t *guest_layout_table(struct guest_mem *gm, gpa_t gpa)
{
	return gmem_ptr(gm, gpa, APF_PAGE_SIZE); /* the plan guarantees non-NULL */
}
