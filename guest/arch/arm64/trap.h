/* trap: the common entry of every exception, interrupt and system call. */
#ifndef GUEST_ARM64_TRAP_H
#define GUEST_ARM64_TRAP_H

#include <stdint.h>

/* Layout built by entry.S (FRAME_SIZE). */
struct trapframe {
	uint64_t x[31];
	uint64_t sp_el0, elr, spsr;
};
_Static_assert(sizeof(struct trapframe) == 272, "trapframe layout");

/* Vector-table entries (the index entry.S passes). */
enum {
	VEC_EL1_SYNC = 4, VEC_EL1_IRQ = 5,
	VEC_EL0_SYNC = 8, VEC_EL0_IRQ = 9,
};

void trap(struct trapframe *tf, uint64_t index);

/* Returns to the context in the frame at the top of the current stack. */
extern void trap_return(void);

#endif
