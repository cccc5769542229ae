/*
 * pager_bulk: the pager's fetches that no fault asked for: the prefetch
 * list, then background population (pager.h, "Bulk fetches"), and the
 * eager fill before the guest starts (pager_populate).  Internal to the
 * pager: pager.c calls these from its thread only.
 */
#ifndef APFVM_PAGER_BULK_H
#define APFVM_PAGER_BULK_H

#include "pager/pager.h"

/* Per-page flags (pager.flags). */
enum {
	PAGE_F_FAULTED = 1,    /* a fault on it was read */
	PAGE_F_BULK = 2,       /* its fetch in flight is a bulk one */
	PAGE_F_BACKGROUND = 4, /* ... started by background population */
	PAGE_F_LISTED = 8,     /* on the prefetch list */
};

/* Checks the prefetch list against the region and marks its pages; sets
 * the budget.  From pager_init. */
int pager_bulk_init(struct pager *p, struct apf_err *e);

/* Starts bulk fetches while the budget and free buffers allow and no
 * fault waits for a buffer.  Returns whether it started any. */
bool pager_bulk_pump(struct pager *p);

/* Takes a free buffer (the caller checked nfree). */
static inline unsigned pager_take_buf(struct pager *p, void **buf)
{
	unsigned b = p->free_bufs[--p->nfree];
	*buf = p->bufs + (size_t)b * 4096;
	return b;
}

#endif
