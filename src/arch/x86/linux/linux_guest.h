/*
 * linux_guest: lays out resident guest memory for an unmodified Linux
 * bzImage and its 64-bit entry (boot.rst): the kernel at 1 MiB, the zero
 * page, the command line, identity page tables for the first 4 GiB and the
 * initrd at the top of RAM.  Memory map given to the kernel:
 *   [0, 0x9fc00) RAM, [0x9fc00, 1 MiB) reserved, [1 MiB, resident end) RAM.
 * The lazy region (APF_LAZY_GPA) is not in it.
 */
#ifndef APFVM_LINUX_GUEST_H
#define APFVM_LINUX_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "vmm/guest_mem.h"

#define LINUX_ZERO_PAGE_GPA 0x7000ull
#define LINUX_PML4_GPA      0x9000ull   /* then the PDPT and four PDs */
#define LINUX_CMDLINE_GPA   0x20000ull

struct linux_boot {
	const uint8_t *kernel;   /* the bzImage file */
	size_t kernel_len;
	const uint8_t *initrd;   /* or NULL */
	size_t initrd_len;
	const char *cmdline;
};

/* Where the vCPU starts: RIP, CR3, and RSI (the zero page). */
struct linux_entry {
	uint64_t rip, pml4, zero_page;
};

/* Loads everything into gm's resident memory.  -ENOEXEC for an image this
 * loader cannot boot, -ENOMEM if resident memory is too small for it (the
 * message says how much is needed), -EINVAL for a command line too long. */
int linux_guest_load(struct guest_mem *gm, const struct linux_boot *b, struct linux_entry *out,
		     struct apf_err *e);

#endif
