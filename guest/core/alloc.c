/*
 * Reference guest kernel: the two bump allocators over the heaps the boot
 * info gives (kernel-only and task-accessible).  Nothing is ever freed.
 */
#include "kernel.h"

static uint64_t knext, kend_, unext, uend_;

void kalloc_init(uint64_t kstart, uint64_t kend, uint64_t ustart, uint64_t uend)
{
	knext = kstart;
	kend_ = kend;
	unext = ustart;
	uend_ = uend;
}

static void *bump(uint64_t *next, uint64_t end, uint64_t size)
{
	uint64_t p = *next;
	size = (size + APF_PAGE_SIZE - 1) & ~(uint64_t)(APF_PAGE_SIZE - 1);
	KASSERT(size <= end - p);
	*next = p + size;
	return (void *)p;
}

void *kalloc(uint64_t size)
{
	return bump(&knext, kend_, size);
}

void *ualloc(uint64_t size)
{
	return bump(&unext, uend_, size);
}
