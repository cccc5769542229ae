#include "paging_arm64.h"

#include <errno.h>
#include <string.h>

#include "apfvm/abi_arm64.h"

#define DESC_TABLE  0x3ull         /* levels 1-2: next-level table */
#define DESC_BLOCK  0x1ull         /* levels 1-2: block */
#define DESC_PAGE   0x3ull         /* level 3: page */
#define ATTR_NORMAL (0ull << 2)    /* MAIR index 0 */
#define ATTR_DEVICE (1ull << 2)    /* MAIR index 1 */
#define AP_EL0_RW   (1ull << 6)    /* AP[2:1] = 01: EL1 and EL0 read/write */
#define SH_INNER    (3ull << 8)
#define AF          (1ull << 10)
#define PXN         (1ull << 53)
#define UXN         (1ull << 54)
#define GIB         (1ull << 30)
#define MIB2        (2ull << 20)

#define KERNEL_PAGE (DESC_PAGE | ATTR_NORMAL | SH_INNER | AF | UXN)
/* EL0-writable memory is never EL1-executable (the architecture's rule). */
#define USER_PAGE   (DESC_PAGE | ATTR_NORMAL | SH_INNER | AF | AP_EL0_RW)
#define LAZY_BLOCK  (DESC_BLOCK | ATTR_NORMAL | SH_INNER | AF | AP_EL0_RW | UXN | PXN)
#define DEVICE_BLOCK (DESC_BLOCK | ATTR_DEVICE | AF | UXN | PXN)

int paging_build(struct guest_mem *gm, const struct elf_image *img, struct guest_layout *l,
		 struct apf_err *e)
{
	uint64_t res = gm->resident_size;
	uint64_t res_l2 = (res + GIB - 1) / GIB;
	uint64_t lazy_l2 = (gm->lazy_size + GIB - 1) / GIB;
	uint64_t l3s = (res + MIB2 - 1) / MIB2;
	uint64_t ntables = 1 + res_l2 + lazy_l2 + l3s + 1 /* device window */;
	gpa_t next;

	/* The device window's level-1 entry (the fourth GiB) is its own. */
	if (res > APF_ARM64_MMIO_GPA / GIB * GIB)
		return apf_fail(e, -EINVAL, "resident memory must end below %llu GiB on arm64",
				(unsigned long long)(APF_ARM64_MMIO_GPA / GIB));
	if (APF_LAZY_GPA + gm->lazy_size > (1ull << 39))
		return apf_fail(e, -EINVAL, "the lazy region must end below 512 GiB (39-bit VA)");
	int rc = guest_layout_plan(gm, img, ntables, l, e);
	if (rc)
		return rc;

	next = l->pt_start;
	gpa_t l1 = next;
	l->page_table = l1;
	next += APF_PAGE_SIZE;

	/* Resident: a level-2 table per GiB, level 3 per 2 MiB, 4 KiB pages. */
	for (uint64_t g = 0; g < res_l2; g++) {
		gpa_t l2 = next;
		next += APF_PAGE_SIZE;
		guest_layout_table(gm, l1)[g] = l2 | DESC_TABLE;
		for (uint64_t d = 0; d < 512; d++) {
			gpa_t base = g * GIB + d * MIB2;
			if (base >= res)
				break;
			gpa_t l3 = next;
			next += APF_PAGE_SIZE;
			guest_layout_table(gm, l2)[d] = l3 | DESC_TABLE;
			for (uint64_t t = 0; t < 512; t++) {
				gpa_t page = base + t * APF_PAGE_SIZE;
				if (page >= res)
					break;
				if (page == 0)
					continue; /* null guard */
				guest_layout_table(gm, l3)[t] = page | (guest_layout_is_user(img, l, page) ? USER_PAGE : KERNEL_PAGE);
			}
		}
	}
	/* The device window: one level-2 table, 2 MiB device blocks. */
	gpa_t dev = next;
	next += APF_PAGE_SIZE;
	guest_layout_table(gm, l1)[APF_ARM64_MMIO_GPA / GIB] = dev | DESC_TABLE;
	for (uint64_t a = APF_ARM64_MMIO_GPA; a < APF_ARM64_MMIO_END; a += MIB2)
		guest_layout_table(gm, dev)[(a % GIB) / MIB2] = a | DEVICE_BLOCK;
	/* Lazy region: 2 MiB blocks at APF_LAZY_GPA. */
	for (uint64_t g = 0; g < lazy_l2; g++) {
		gpa_t l2 = next;
		next += APF_PAGE_SIZE;
		guest_layout_table(gm, l1)[APF_LAZY_GPA / GIB + g] = l2 | DESC_TABLE;
		for (uint64_t d = 0; d < 512; d++) {
			uint64_t off = g * GIB + d * MIB2;
			if (off >= gm->lazy_size)
				break;
			guest_layout_table(gm, l2)[d] = (APF_LAZY_GPA + off) | LAZY_BLOCK;
		}
	}
	return next == l->pt_end ? 0 : apf_fail(e, -EFAULT, "internal: page table count");
}
