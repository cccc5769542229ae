/*
 * libFuzzer target: the bzImage loader (src/arch/x86/linux/bzimage.c) on arbitrary
 * bytes.  Whatever the file, the parser returns 0 or an error with a
 * message and never reads outside it; an image it accepts has its kernel
 * inside the file and a header that fits the zero page, and the zero page
 * built from it carries the header and the loader's fields.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "arch/x86/linux/bzimage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t zp[BZ_ZERO_PAGE_SIZE];
	static const struct bz_e820 map[] = { { 0, 0x9fc00, BZ_E820_RAM },
					      { 0x100000, 0x7f00000, BZ_E820_RAM } };
	struct bz_boot b = { .cmdline_gpa = 0x20000, .e820 = map, .ne820 = 2 };
	struct bzimage k;
	struct apf_err e = { "" };
	uint8_t *copy = NULL;

	/* Half the inputs get the magic fields a real image has, so the
	 * checks behind them are reached from an empty corpus. */
	if (size >= 0x300 && (data[0] & 1)) {
		copy = malloc(size);
		CHECK_OR_DIE(copy != NULL);
		memcpy(copy, data, size);
		memcpy(copy + 0x202, "HdrS", 4);
		copy[0x1fe] = 0x55;
		copy[0x1ff] = 0xaa;
		copy[0x200] = 0xeb;
		copy[0x207] = 0x02;
		copy[0x211] |= 1;
		copy[0x236] |= 1;
		data = copy;
	}
	int rc = bzimage_parse(data, size, &k, &e);
	if (rc) {
		CHECK_OR_DIE(rc < 0 && e.msg[0] != '\0');
		free(copy);
		return 0;
	}
	CHECK_OR_DIE(k.kernel > data && k.kernel_size > 0);
	CHECK_OR_DIE((size_t)(k.kernel - data) + k.kernel_size == size);
	CHECK_OR_DIE(k.header == data + BZ_HEADER_OFFSET && BZ_HEADER_OFFSET + k.header_len <= 0x290);
	CHECK_OR_DIE(k.init_size >= k.kernel_size);
	CHECK_OR_DIE(strlen(k.kernel_version) < sizeof(k.kernel_version));
	CHECK_OR_DIE(bzimage_zero_page(&k, &b, zp, &e) == 0);
	CHECK_OR_DIE(memcmp(zp + 0x202, "HdrS", 4) == 0 && zp[0x210] == 0xff && zp[0x1e8] == 2);
	free(copy);
	return 0;
}
