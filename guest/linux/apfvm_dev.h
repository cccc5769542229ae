/*
 * apfvm_dev: what the Linux guest's /init reaches of apfvm, through
 * /dev/mem: the boot info page, the hypercall port (by ioperm) with its
 * block page, and the lazy region.  Root only, as /init is.
 */
#ifndef GUEST_LINUX_APFVM_DEV_H
#define GUEST_LINUX_APFVM_DEV_H

#include <stddef.h>
#include <stdint.h>

#include "apfvm/abi_x86.h" /* the x86-64 Linux guest */

struct apfvm_dev {
	int mem_fd;                          /* /dev/mem */
	const struct apf_boot_info *info;    /* read-only mapping */
	volatile unsigned char *hcall_page;  /* block at +0, payload after */
};

/* Maps the info page at info_gpa (from the command line) and the block
 * page, and opens the port.  0, or -1 with the reason printed. */
int apfvm_dev_open(struct apfvm_dev *d, uint64_t info_gpa);

/* Issues hypercall nr with arguments a0, a1.  Returns the host's answer:
 * 0 or a negative errno. */
int apfvm_hcall(struct apfvm_dev *d, uint32_t nr, uint64_t a0, uint64_t a1);

/* Issues hypercall nr with a0 = the GPA of a copy of payload (at most
 * 2 KiB). */
int apfvm_hcall_with(struct apfvm_dev *d, uint32_t nr, const void *payload, size_t len);

/* Maps the lazy region read-only: its address, or NULL with the reason
 * printed. */
const void *apfvm_map_lazy(struct apfvm_dev *d);

#endif
