/*
 * pager_uffd: the pager's userfaultfd operations, internal to the pager
 * (pager.c and pager_bulk.c, from the pager thread, but for
 * pager_poison_for_kick's and pager_release's callers, pager.h).  Every
 * page operation works on one page of the region; an ioctl the kernel
 * answers with EAGAIN (the address space changing under it) is retried.
 */
#ifndef APFVM_PAGER_UFFD_H
#define APFVM_PAGER_UFFD_H

#include <linux/userfaultfd.h>

#include "pager/pager.h"

/* UFFDIO_POISON (Linux 6.6), for kernel headers that predate it. */
#ifndef UFFDIO_POISON
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define _UFFDIO_POISON 0x08
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif

/* Creates p->uffd and registers the region; sets can_poison. */
int pager_uffd_register(struct pager *p, struct apf_err *e);

/* A userfaultfd ioctl on the region: 0 or -errno. */
int pager_uffd_ioctl(struct pager *p, unsigned long req, void *arg);

/* Installs a fetched page: UFFDIO_COPY, or UFFDIO_ZEROPAGE for a zero
 * completion (UFFDIO_COPY of zeros over a kick's poison), waking only
 * where a fault was read on the page.  0, or -errno (-EEXIST: mapped by
 * someone else, its content unknown). */
int pager_install(struct pager *p, const struct source_completion *c);

/* Poisons one page (UFFDIO_POISON, Linux 6.6): 0 or -errno. */
int pager_uffd_poison(struct pager *p, uint64_t page);

/* Wakes the threads blocked on one page. */
void pager_uffd_wake(struct pager *p, uint64_t page);

#endif
