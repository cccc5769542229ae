/*
 * elf_loader: validates a guest ELF and copies its PT_LOAD segments into
 * resident guest memory.  The ELF is untrusted input (--guest FILE): every
 * offset, size and address is checked before use.
 */
#ifndef APFVM_ELF_LOADER_H
#define APFVM_ELF_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest_mem.h"

#define ELF_MAX_SEGMENTS 16

struct elf_segment {
	gpa_t start, end; /* page-rounded [start, end) */
	bool user;        /* APF_PF_USER: ring 3 may access it */
};

struct elf_image {
	gpa_t entry;
	gpa_t end;        /* page-rounded end of the highest segment */
	unsigned nsegs;
	struct elf_segment segs[ELF_MAX_SEGMENTS];
};

/* Loads `blob` (len bytes; `name` for messages) into gm.  Segments must lie
 * in [APF_KERNEL_GPA, limit). */
int elf_load(struct guest_mem *gm, const void *blob, size_t len, const char *name, gpa_t limit,
	     struct elf_image *out, struct apf_err *e);

#endif
