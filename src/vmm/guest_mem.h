/*
 * guest_mem: the guest's physical memory as the host sees it, and the one
 * checked way to reach it.
 *
 * Two regions: resident memory at GPA 0 (kernel, stacks, page tables;
 * populated on demand by the host kernel like any anonymous memory) and
 * the lazy region at APF_LAZY_GPA (served by the pager through
 * userfaultfd).  Guest addresses are plain integers (gpa_t); host code
 * never dereferences one without gmem_ptr(), which rejects overflow and
 * anything outside the resident region.  The lazy region is deliberately
 * not reachable through gmem_ptr(): a host thread touching it would block
 * in the pager's userfaultfd.
 */
#ifndef APFVM_GUEST_MEM_H
#define APFVM_GUEST_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef uint64_t gpa_t;

struct guest_mem {
	void *resident;     /* host mapping of [0, resident_size) */
	uint64_t resident_size;
	void *lazy;         /* host mapping of [APF_LAZY_GPA, + lazy_size) */
	uint64_t lazy_size;
};


/* Maps anonymous memory for both regions (lazy_size may be 0). */
int gmem_init(struct guest_mem *gm, uint64_t resident_size, uint64_t lazy_size,
	      struct apf_err *e);
void gmem_destroy(struct guest_mem *gm);

/* Host pointer to [gpa, gpa + len) in resident memory, or NULL if any
 * byte of it lies outside (including wrap-around). */
void *gmem_ptr(const struct guest_mem *gm, gpa_t gpa, uint64_t len);

/* Copies [gpa, gpa + len) of resident memory into buf, reading each guest
 * byte once: validate the copy, never the guest's memory, which other
 * vCPUs may change between a check and a use.  0 or -EFAULT. */
int gmem_read(const struct guest_mem *gm, gpa_t gpa, void *buf, uint64_t len);

/* Copies a NUL-terminated guest string of at most max-1 bytes into buf;
 * returns its length or -EFAULT/-E2BIG. */
int gmem_read_str(const struct guest_mem *gm, gpa_t gpa, char *buf, size_t max);

#endif
