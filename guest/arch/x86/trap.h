/* trap: the common entry of every exception, interrupt and system call. */
#ifndef GUEST_TRAP_H
#define GUEST_TRAP_H

#include <stdint.h>

/* Layout built by entry.S: the caller-saved registers (the callee-saved
 * ones stay live in the C code and are saved by swtch() on a task
 * switch), then the stub's vector and error code, then what the CPU
 * pushed. */
struct trapframe {
	uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};
_Static_assert(sizeof(struct trapframe) == 16 * 8, "trapframe layout");

void trap_init(void);
void trap(struct trapframe *tf);

/* Returns to the context in the frame at the top of the current stack
 * (trap_entry.S). */
extern void trap_return(void);

#endif
