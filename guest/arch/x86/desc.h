/* desc: GDT with ring-3 segments, the TSS, and the IDT. */
#ifndef GUEST_DESC_H
#define GUEST_DESC_H

#include <stdint.h>

#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UDATA 0x1b /* 0x18 | RPL 3 */
#define SEL_UCODE 0x23 /* 0x20 | RPL 3 */
#define SEL_TSS   0x28

void desc_init(void);

/* The stack the CPU switches to on a trap from ring 3. */
void desc_set_kernel_stack(uint64_t rsp0);

/* Points vector v at its stub; dpl3 lets ring 3 raise it with int3. */
void desc_set_gate(unsigned v, int dpl3);

#endif
