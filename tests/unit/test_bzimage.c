/* The bzImage loader's checks and the zero page it builds, on synthetic
 * images laid out as Linux's boot.rst describes (offsets in bzimage.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "arch/x86/linux/bzimage.h"
#include "arch/x86/linux/linux_guest.h"

enum { SETUP_SECTS = 3, SETUP_END = (SETUP_SECTS + 1) * 512, KERNEL = 8192 };

static uint8_t img[SETUP_END + KERNEL];

static void put16(size_t off, uint16_t v)
{
	img[off] = (uint8_t)v;
	img[off + 1] = (uint8_t)(v >> 8);
}

static void put32(size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		img[off + i] = (uint8_t)(v >> (8 * i));
}

static uint32_t zp32(const uint8_t *zp, size_t off)
{
	return (uint32_t)zp[off] | (uint32_t)zp[off + 1] << 8 | (uint32_t)zp[off + 2] << 16 |
	       (uint32_t)zp[off + 3] << 24;
}

/* A minimal image a 2.15 loader accepts, with Linux 6.12's header length. */
static void make_image(void)
{
	memset(img, 0, sizeof(img));
	img[0x1f1] = SETUP_SECTS;
	put16(0x1fe, 0xaa55);
	img[0x200] = 0xeb;           /* jmp */
	img[0x201] = 0x6a;           /* header ends at 0x26c */
	memcpy(img + 0x202, "HdrS", 4);
	put16(0x206, 0x020f);
	put16(0x20e, 0x300);         /* version string at 0x500 */
	memcpy(img + 0x500, "6.12.0-test (builder) #1", 25);
	img[0x211] = 0x01;           /* LOADED_HIGH */
	put32(0x22c, 0x7fffffff);    /* initrd_addr_max */
	put16(0x236, 0x0003);        /* XLF_KERNEL_64 | CAN_BE_LOADED_ABOVE_4G */
	put32(0x238, 2047);          /* cmdline_size */
	put32(0x260, 4u << 20);      /* init_size */
	for (size_t i = 0; i < KERNEL; i++)
		img[SETUP_END + i] = (uint8_t)(i * 7);
}

static int parse(struct bzimage *k, struct apf_err *e)
{
	memset(e, 0, sizeof(*e));
	return bzimage_parse(img, sizeof(img), k, e);
}

TEST(accepts_a_64bit_bzimage_and_finds_its_parts)
{
	struct bzimage k;
	struct apf_err e;

	make_image();
	REQUIRE(parse(&k, &e) == 0);
	CHECK(k.kernel == img + SETUP_END);
	CHECK_EQ_U(k.kernel_size, KERNEL);
	CHECK_EQ_U(k.header_len, 0x26c - 0x1f1);
	CHECK_EQ_U(k.version, 0x020f);
	CHECK_EQ_U(k.init_size, 4u << 20);
	CHECK_EQ_U(k.cmdline_max, 2047);
	CHECK(strcmp(k.kernel_version, "6.12.0-test (builder) #1") == 0);
	/* setup_sects 0 means 4 */
	img[0x1f1] = 0;
	REQUIRE(bzimage_parse(img, sizeof(img), &k, &e) == 0);
	CHECK(k.kernel == img + 5 * 512);
}

/* Each refusal names what is wrong: the user passed the wrong file. */
TEST(refuses_what_it_cannot_boot_with_the_reason)
{
	static const struct {
		size_t off;
		uint8_t value;
		const char *msg;
	} cases[] = {
		{ 0x202, 'X', "not a Linux bzImage" },
		{ 0x1fe, 0x00, "not a Linux bzImage" },
		{ 0x206, 0x0b, "too old" },            /* version 2.11 */
		{ 0x211, 0x00, "LOADED_HIGH" },
		{ 0x236, 0x02, "no 64-bit entry point" },
		{ 0x200, 0x90, "malformed boot header" },
		{ 0x201, 0x10, "malformed boot header" }, /* ends before init_size */
		{ 0x201, 0xf0, "malformed boot header" }, /* runs into the zero page's next field */
		{ 0x1f1, 0xff, "truncated" },           /* setup longer than the file */
		{ 0x263, 0x00, "init_size" },           /* init_size 0 < the kernel */
	};
	struct bzimage k;
	struct apf_err e;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		make_image();
		img[cases[i].off] = cases[i].value;
		if (cases[i].off == 0x263)
			put32(0x260, 0);
		int rc = parse(&k, &e);
		if (rc != -ENOEXEC || !strstr(e.msg, cases[i].msg))
			TEST_FAIL_("case %zu: rc %d, message '%s', expected '%s'", i, rc, e.msg,
				   cases[i].msg);
	}
	make_image();
	memset(&e, 0, sizeof(e));
	CHECK(bzimage_parse(img, 0x200, &k, &e) == -ENOEXEC); /* shorter than the header */
	CHECK(bzimage_parse(img, SETUP_END, &k, &e) == -ENOEXEC); /* setup only */
}

TEST(zero_page_carries_header_cmdline_initrd_and_memory_map)
{
	static uint8_t zp[BZ_ZERO_PAGE_SIZE];
	static const struct bz_e820 map[] = {
		{ 0, 0x9fc00, BZ_E820_RAM },
		{ 0x9fc00, 0x60400, BZ_E820_RESERVED },
		{ 0x100000, 0x3f00000, BZ_E820_RAM },
	};
	struct bz_boot b = { .cmdline_gpa = 0x20000, .initrd_gpa = 0x3000000, .initrd_size = 0x123456,
			     .e820 = map, .ne820 = 3 };
	struct bzimage k;
	struct apf_err e;

	make_image();
	REQUIRE(parse(&k, &e) == 0);
	memset(zp, 0xcc, sizeof(zp));
	REQUIRE(bzimage_zero_page(&k, &b, zp, &e) == 0);
	CHECK(memcmp(zp + 0x202, "HdrS", 4) == 0);
	CHECK_EQ_U(zp[0x1f1], SETUP_SECTS);
	CHECK_EQ_U(zp[0x210], 0xff);            /* type_of_loader */
	CHECK_EQ_U(zp[0x1ef], 0);               /* sentinel */
	CHECK_EQ_U(zp32(zp, 0x228), 0x20000);   /* cmd_line_ptr */
	CHECK_EQ_U(zp32(zp, 0x218), 0x3000000); /* ramdisk_image */
	CHECK_EQ_U(zp32(zp, 0x21c), 0x123456);  /* ramdisk_size */
	CHECK_EQ_U(zp32(zp, 0x0c0), 0);
	CHECK_EQ_U(zp[0x1e8], 3);               /* e820_entries */
	CHECK_EQ_U(zp32(zp, 0x2d0 + 20 + 8), 0x60400);
	CHECK_EQ_U(zp32(zp, 0x2d0 + 20 + 16), BZ_E820_RESERVED);
	CHECK_EQ_U(zp32(zp, 0x2d0 + 40), 0x100000);
	CHECK_EQ_U(zp[0x2d0 + 60], 0);          /* nothing after the last entry */
	CHECK_EQ_U(zp[0xfff], 0);               /* the rest is zero */
}

TEST(zero_page_refuses_an_initrd_too_high_or_too_many_entries)
{
	static uint8_t zp[BZ_ZERO_PAGE_SIZE];
	static struct bz_e820 map[BZ_E820_MAX + 1];
	struct bz_boot b = { .cmdline_gpa = 0x20000, .initrd_gpa = 0x7ffff000, .initrd_size = 0x2000,
			     .e820 = map, .ne820 = 1 };
	struct bzimage k;
	struct apf_err e;

	make_image();
	REQUIRE(parse(&k, &e) == 0);
	CHECK(bzimage_zero_page(&k, &b, zp, &e) == -EINVAL);
	CHECK(strstr(e.msg, "initrd") != NULL);
	b.initrd_size = 0x1000; /* ends exactly at initrd_addr_max + 1 */
	CHECK(bzimage_zero_page(&k, &b, zp, &e) == 0);
	b.ne820 = BZ_E820_MAX + 1;
	CHECK(bzimage_zero_page(&k, &b, zp, &e) == -EINVAL);
	b.ne820 = BZ_E820_MAX;
	CHECK(bzimage_zero_page(&k, &b, zp, &e) == 0);
}

/* The whole layout in guest memory, and the limits it checks: an initrd
 * larger than what fits below the kernel's initrd_max is refused (the
 * check used to wrap around and copy it to a bogus address). */
TEST(guest_layout_places_kernel_initrd_and_refuses_what_does_not_fit)
{
	struct guest_mem gm;
	struct linux_entry entry;
	struct apf_err e;
	static uint8_t initrd[64 << 10];
	size_t big = 24u << 20;
	uint8_t *huge = calloc(1, big);

	REQUIRE(huge != NULL);
	make_image();
	put32(0x22c, (16u << 20) - 1); /* initrd_addr_max: below 16 MiB */
	REQUIRE(gmem_init(&gm, 64u << 20, 0, &e) == 0);
	struct linux_boot b = { .kernel = img, .kernel_len = sizeof(img), .initrd = initrd,
				.initrd_len = sizeof(initrd), .cmdline = "console=ttyS0" };
	memset(&e, 0, sizeof(e));
	REQUIRE(linux_guest_load(&gm, &b, &entry, &e) == 0);
	CHECK_EQ_U(entry.rip, 0x100200);
	CHECK_EQ_U(entry.zero_page, LINUX_ZERO_PAGE_GPA);
	const uint8_t *zp = gmem_ptr(&gm, LINUX_ZERO_PAGE_GPA, 4096);
	CHECK_EQ_U(zp32(zp, 0x218) + zp32(zp, 0x21c), (16u << 20) - (64u << 10) + sizeof(initrd));
	CHECK(memcmp(gmem_ptr(&gm, 0x100000, 16), img + SETUP_END, 16) == 0);
	CHECK(strcmp(gmem_ptr(&gm, LINUX_CMDLINE_GPA, 14), "console=ttyS0") == 0);
	b.initrd = huge;
	b.initrd_len = big;
	CHECK(linux_guest_load(&gm, &b, &entry, &e) == -ENOMEM);
	CHECK(strstr(e.msg, "initrd") != NULL);
	b.initrd_len = 0;
	gmem_destroy(&gm);
	REQUIRE(gmem_init(&gm, 16u << 20, 0, &e) == 0); /* too small for init_size + room */
	CHECK(linux_guest_load(&gm, &b, &entry, &e) == -ENOMEM);
	CHECK(strstr(e.msg, "too small") != NULL);
	gmem_destroy(&gm);
	free(huge);
}

TEST_MAIN(T(accepts_a_64bit_bzimage_and_finds_its_parts),
	  T(guest_layout_places_kernel_initrd_and_refuses_what_does_not_fit),
	  T(refuses_what_it_cannot_boot_with_the_reason),
	  T(zero_page_carries_header_cmdline_initrd_and_memory_map),
	  T(zero_page_refuses_an_initrd_too_high_or_too_many_entries))
