#include "linux_guest.h"

#include <errno.h>
#include <string.h>

#include "bzimage.h"

#define MIB (1ull << 20)
#define PAGE 4096ull
#define LOW_RAM_END 0x9fc00ull /* the rest below 1 MiB: BIOS area, reserved */

/* Identity map of [0, 4 GiB) with 2 MiB pages: PML4, one PDPT, four PDs. */
static void build_page_tables(struct guest_mem *gm)
{
	uint64_t *pml4 = gmem_ptr(gm, LINUX_PML4_GPA, PAGE);
	uint64_t *pdpt = gmem_ptr(gm, LINUX_PML4_GPA + PAGE, PAGE);

	memset(pml4, 0, 6 * PAGE);
	pml4[0] = (LINUX_PML4_GPA + PAGE) | 0x3; /* present, writable */
	for (uint64_t i = 0; i < 4; i++) {
		uint64_t pd_gpa = LINUX_PML4_GPA + (2 + i) * PAGE;
		uint64_t *pd = gmem_ptr(gm, pd_gpa, PAGE);
		pdpt[i] = pd_gpa | 0x3;
		for (uint64_t j = 0; j < 512; j++)
			pd[j] = ((i << 30) + (j << 21)) | 0x83; /* 2 MiB page */
	}
}

int linux_guest_load(struct guest_mem *gm, const struct linux_boot *b, struct linux_entry *out,
		     struct apf_err *e)
{
	struct bzimage k;
	int rc = bzimage_parse(b->kernel, b->kernel_len, &k, e);
	if (rc)
		return rc;
	uint64_t ram = gm->resident_size;
	uint64_t kernel_end = BZ_LOAD_GPA + ((k.init_size + PAGE - 1) & ~(PAGE - 1));
	uint64_t initrd_size = (b->initrd_len + PAGE - 1) & ~(PAGE - 1);
	uint64_t initrd_top = ram < (uint64_t)k.initrd_max + 1 ? ram : (uint64_t)k.initrd_max + 1;
	initrd_top &= ~(PAGE - 1);
	if (kernel_end + initrd_size + 16 * MIB > ram)
		return apf_fail(e, -ENOMEM,
				"--mem %llu MiB is too small for this kernel (%s): it needs %llu MiB from 1 MiB "
				"(init_size)%s, plus room to run: give at least %llu MiB",
				(unsigned long long)(ram / MIB),
				k.kernel_version[0] ? k.kernel_version : "version not stated",
				(unsigned long long)(k.init_size / MIB),
				b->initrd_len ? " and the initrd" : "",
				(unsigned long long)((kernel_end + initrd_size) / MIB + 64));
	if (b->initrd_len && (initrd_size > initrd_top || initrd_top - initrd_size < kernel_end))
		return apf_fail(e, -ENOMEM, "the initrd does not fit below 0x%llx above the kernel",
				(unsigned long long)initrd_top);
	size_t cmdline_len = strlen(b->cmdline);
	if (cmdline_len > k.cmdline_max || cmdline_len >= PAGE)
		return apf_fail(e, -EINVAL, "the command line is %zu bytes: this kernel takes at most %u",
				cmdline_len, k.cmdline_max < PAGE ? k.cmdline_max : (unsigned)PAGE - 1);

	memcpy(gmem_ptr(gm, BZ_LOAD_GPA, k.kernel_size), k.kernel, k.kernel_size);
	memcpy(gmem_ptr(gm, LINUX_CMDLINE_GPA, cmdline_len + 1), b->cmdline, cmdline_len + 1);
	uint64_t initrd_gpa = 0;
	if (b->initrd_len) {
		initrd_gpa = initrd_top - initrd_size;
		memcpy(gmem_ptr(gm, initrd_gpa, b->initrd_len), b->initrd, b->initrd_len);
	}
	build_page_tables(gm);
	const struct bz_e820 map[] = {
		{ 0, LOW_RAM_END, BZ_E820_RAM },
		{ LOW_RAM_END, MIB - LOW_RAM_END, BZ_E820_RESERVED },
		{ MIB, ram - MIB, BZ_E820_RAM },
	};
	struct bz_boot boot = { .cmdline_gpa = LINUX_CMDLINE_GPA, .initrd_gpa = initrd_gpa,
				.initrd_size = b->initrd_len, .e820 = map, .ne820 = 3 };
	rc = bzimage_zero_page(&k, &boot, gmem_ptr(gm, LINUX_ZERO_PAGE_GPA, BZ_ZERO_PAGE_SIZE), e);
	if (rc)
		return rc;
	out->rip = BZ_LOAD_GPA + BZ_ENTRY_OFFSET;
	out->pml4 = LINUX_PML4_GPA;
	out->zero_page = LINUX_ZERO_PAGE_GPA;
	return 0;
}
