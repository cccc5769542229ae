/*
 * The arm64 reference guest's stage-1 tables (src/arch/arm64/paging_arm64.c),
 * built on this machine and walked as the MMU would walk them (4 KiB
 * granule, 39-bit VA from level 1): what each kind of guest memory maps
 * to and with which permissions.  Plain C: no arm64 machine needed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The x86 build links its own paging_build: this one is renamed. */
#define paging_build arm64_paging_build
#include "../../src/arch/arm64/paging_arm64.c"
#undef paging_build

#include "test.h"

#define AP_EL0     (1ull << 6)
#define AP_RO      (1ull << 7)
#define ATTR_IDX(d) (((d) >> 2) & 7)

struct walk {
	int valid;
	int level;      /* of the leaf: 2 (2 MiB block) or 3 (page) */
	uint64_t desc;
	uint64_t out;   /* output address of va */
};

static struct walk translate(struct guest_mem *gm, uint64_t root, uint64_t va)
{
	struct walk w = { 0 };
	uint64_t table = root;

	for (int level = 1; level <= 3; level++) {
		unsigned shift = 39 - 9 * (unsigned)level;
		uint64_t *t = gmem_ptr(gm, table, APF_PAGE_SIZE);
		if (!t)
			return w;
		uint64_t d = t[(va >> shift) & 511];
		if (!(d & 1))
			return w;
		uint64_t addr = d & 0x0000fffffffff000ull;
		if (level == 3 || !(d & 2)) { /* page, or block */
			if (level == 3 && !(d & 2))
				return w; /* reserved encoding */
			w.valid = 1;
			w.level = level;
			w.desc = d;
			w.out = (addr & ~((1ull << shift) - 1)) | (va & ((1ull << shift) - 1));
			return w;
		}
		table = addr;
	}
	return w;
}

static struct guest_mem gm;
static struct guest_layout layout;
static struct elf_image img;

static int build(uint64_t mem, uint64_t lazy, struct apf_err *e)
{
	gmem_destroy(&gm);
	if (gmem_init(&gm, mem, lazy, e))
		return -1;
	memset(&img, 0, sizeof(img));
	img.entry = APF_KERNEL_GPA;
	img.nsegs = 2;
	img.segs[0] = (struct elf_segment){ APF_KERNEL_GPA, APF_KERNEL_GPA + 0x8000, false };
	img.segs[1] = (struct elf_segment){ APF_KERNEL_GPA + 0x8000, APF_KERNEL_GPA + 0xa000, true };
	img.end = APF_KERNEL_GPA + 0xa000;
	return arm64_paging_build(&gm, &img, &layout, e);
}

TEST(kernel_memory_is_el1_only_and_never_el0_executable)
{
	struct apf_err e;
	REQUIRE(build(64ull << 20, 4ull << 20, &e) == 0);
	uint64_t addrs[] = { APF_BOOT_INFO_GPA, APF_KERNEL_GPA, APF_KERNEL_GPA + 0x7000,
			     layout.pt_start, layout.kfree_start, layout.kfree_end - 8 };
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		struct walk w = translate(&gm, layout.page_table, addrs[i]);
		REQUIRE(w.valid && w.level == 3);
		CHECK_EQ_U(w.out, addrs[i]);
		CHECK(!(w.desc & AP_EL0));
		CHECK(w.desc & UXN);
		CHECK(!(w.desc & PXN)); /* the kernel runs there */
		CHECK_EQ_U(ATTR_IDX(w.desc), 0); /* Normal memory */
		CHECK(w.desc & AF);
	}
}

TEST(task_memory_is_el0_accessible_and_el0_executable)
{
	struct apf_err e;
	REQUIRE(build(64ull << 20, 4ull << 20, &e) == 0);
	uint64_t addrs[] = { APF_KERNEL_GPA + 0x8000, APF_KERNEL_GPA + 0x9ff8, layout.trace_gpa,
			     layout.ufree_start, layout.ufree_end - 8 };
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		struct walk w = translate(&gm, layout.page_table, addrs[i]);
		REQUIRE(w.valid && w.level == 3);
		CHECK_EQ_U(w.out, addrs[i]);
		CHECK(w.desc & AP_EL0);
		CHECK(!(w.desc & AP_RO));
		CHECK(!(w.desc & UXN));
	}
}

TEST(null_page_and_holes_are_unmapped)
{
	struct apf_err e;
	REQUIRE(build(64ull << 20, 4ull << 20, &e) == 0);
	uint64_t holes[] = { 0, 8, 0xfff, 64ull << 20, (64ull << 20) + (2ull << 20),
			     APF_ARM64_MMIO_GPA - 4096, APF_ARM64_MMIO_END,
			     APF_LAZY_GPA - 4096, APF_LAZY_GPA + (4ull << 20) };
	for (size_t i = 0; i < sizeof(holes) / sizeof(holes[0]); i++)
		CHECK(!translate(&gm, layout.page_table, holes[i]).valid);
}

TEST(lazy_region_is_el0_data_in_2mib_blocks)
{
	struct apf_err e;
	REQUIRE(build(64ull << 20, 6ull << 20, &e) == 0);
	for (uint64_t off = 0; off < (6ull << 20); off += 0x123000) {
		struct walk w = translate(&gm, layout.page_table, APF_LAZY_GPA + off);
		REQUIRE(w.valid);
		CHECK_EQ_U(w.level, 2);
		CHECK_EQ_U(w.out, APF_LAZY_GPA + off);
		CHECK(w.desc & AP_EL0);
		CHECK((w.desc & UXN) && (w.desc & PXN));
		CHECK_EQ_U(ATTR_IDX(w.desc), 0);
	}
}

TEST(device_window_is_device_memory_for_the_kernel_only)
{
	struct apf_err e;
	REQUIRE(build(64ull << 20, 0, &e) == 0);
	uint64_t addrs[] = { APF_ARM64_GICD_GPA, APF_ARM64_GICR_GPA + 0x10100, APF_ARM64_HCALL_GPA };
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		struct walk w = translate(&gm, layout.page_table, addrs[i]);
		REQUIRE(w.valid);
		CHECK_EQ_U(w.out, addrs[i]);
		CHECK_EQ_U(ATTR_IDX(w.desc), 1); /* MAIR attr 1: Device-nGnRnE */
		CHECK(!(w.desc & AP_EL0));
		CHECK((w.desc & UXN) && (w.desc & PXN));
	}
	/* The MAIR value the VMM sets agrees: attr 0 Normal WB, attr 1 Device. */
	CHECK_EQ_U(PAGING_MAIR_EL1 & 0xff, 0xff);
	CHECK_EQ_U((PAGING_MAIR_EL1 >> 8) & 0xff, 0x00);
	CHECK_EQ_U(PAGING_TCR_EL1 & 0x3f, 25); /* 39-bit VA: the walk above */
}

TEST(layout_limits_are_refused_with_a_reason)
{
	struct apf_err e;
	CHECK(build(2ull << 20, 0, &e) < 0);
	CHECK(strstr(e.msg, "--mem is too small") != NULL);
	/* Resident memory up to the device window's GiB fits; beyond, not
	 * (guest memory is mapped without reserve: only touched pages cost). */
	CHECK(build(3ull << 30, 0, &e) == 0);
	CHECK(translate(&gm, layout.page_table, (3ull << 30) - 4096).valid);
	CHECK(build((3ull << 30) + (2ull << 20), 0, &e) < 0);
	CHECK(strstr(e.msg, "below 3 GiB") != NULL);
	gmem_destroy(&gm);
}

TEST_MAIN(T(kernel_memory_is_el1_only_and_never_el0_executable),
	  T(task_memory_is_el0_accessible_and_el0_executable), T(null_page_and_holes_are_unmapped),
	  T(lazy_region_is_el0_data_in_2mib_blocks),
	  T(device_window_is_device_memory_for_the_kernel_only),
	  T(layout_limits_are_refused_with_a_reason))
