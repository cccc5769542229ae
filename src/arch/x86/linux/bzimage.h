/*
 * bzimage: an x86 Linux kernel image as the 64-bit boot protocol sees it
 * (Linux's Documentation/arch/x86/boot.rst and zero-page.rst), and the
 * zero page (struct boot_params) a VMM hands the kernel at entry.
 *
 * The VMM loads the protected-mode part of the image at BZ_LOAD_GPA and
 * enters it in 64-bit mode at BZ_LOAD_GPA + 0x200 with RSI = the zero
 * page's GPA, paging on, an identity map covering the kernel through
 * init_size, the zero page and the command line, interrupts off.
 *
 * Everything read from the file is untrusted: bzimage_parse() checks each
 * field it uses and refuses, with a message naming the field, what this
 * loader cannot boot (no 64-bit entry point, a protocol older than 2.12,
 * a kernel that does not fit).
 */
#ifndef APFVM_BZIMAGE_H
#define APFVM_BZIMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define BZ_LOAD_GPA       0x100000ull /* where the protected-mode kernel goes */
#define BZ_ENTRY_OFFSET   0x200       /* the 64-bit entry, from the load address */
#define BZ_ZERO_PAGE_SIZE 4096
#define BZ_E820_MAX       128         /* entries the zero page holds */
#define BZ_HEADER_OFFSET  0x1f1       /* struct setup_header in file and zero page */

/* What the loader needs of a parsed image; pointers into the caller's copy
 * of the file, which must outlive this. */
struct bzimage {
	const uint8_t *header;   /* file + BZ_HEADER_OFFSET */
	size_t header_len;       /* bytes of setup_header to copy */
	const uint8_t *kernel;   /* the protected-mode kernel */
	size_t kernel_size;
	uint16_t version;        /* boot protocol, e.g. 0x020f */
	uint32_t init_size;      /* memory the kernel needs from its load address */
	uint32_t cmdline_max;    /* longest command line it takes, without the NUL */
	uint32_t initrd_max;     /* highest address an initrd may end at, plus 1 */
	char kernel_version[64]; /* the image's version string, or "" */
};

enum bz_e820_type { BZ_E820_RAM = 1, BZ_E820_RESERVED = 2 };

struct bz_e820 {
	uint64_t addr, size;
	uint32_t type;
};

/* Where the VMM put things, for the zero page. */
struct bz_boot {
	uint64_t cmdline_gpa;    /* NUL-terminated, at most cmdline_max bytes */
	uint64_t initrd_gpa, initrd_size; /* 0, 0: none */
	const struct bz_e820 *e820;
	unsigned ne820;          /* at most BZ_E820_MAX */
};

/* Checks `file` (size bytes) and fills k.  0, or -ENOEXEC (not a bzImage
 * this loader can boot) / -EINVAL with the reason in e. */
int bzimage_parse(const uint8_t *file, size_t size, struct bzimage *k, struct apf_err *e);

/* Builds the zero page in zp (BZ_ZERO_PAGE_SIZE bytes): zeroed, the
 * image's setup_header copied in, loader type "undefined" (0xff), the
 * command line, initrd and e820 table from b.  -EINVAL if b does not fit
 * the image's limits (initrd above initrd_max, too many e820 entries). */
int bzimage_zero_page(const struct bzimage *k, const struct bz_boot *b, uint8_t *zp,
		      struct apf_err *e);

#endif
