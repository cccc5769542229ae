/*
 * arm64 boot entry, exception vectors and the context switch.
 *
 * The VMM enters _start at EL1h with the MMU on (identity map), DAIF
 * masked, x0 = boot-info GPA and no usable stack.
 */
#define FRAME_SIZE 272 /* struct trapframe: x0-x30, sp_el0, elr, spsr */

	.section .text.entry, "ax"
	.globl _start
_start:
	adrp	x1, boot_stack_top
	add	x1, x1, :lo12:boot_stack_top
	mov	sp, x1
	adrp	x1, vectors
	add	x1, x1, :lo12:vectors
	msr	vbar_el1, x1
	isb
	mov	x29, #0
	bl	kmain
1:	wfi
	b	1b

	.text
/* The vector table: 16 entries of 0x80 bytes.  Each saves x0/x1, puts
 * its index in x0 (4-7: from EL1, 8-11: from EL0; sync, IRQ, FIQ,
 * SError in that order) and joins trap_entry. */
	.macro	ventry index
	.balign	0x80
	sub	sp, sp, #FRAME_SIZE
	stp	x0, x1, [sp, #0]
	mov	x0, #\index
	b	trap_entry
	.endm

	.balign	0x800
	.globl	vectors
vectors:
	.irp	i, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
	ventry	\i
	.endr

/* Saves the whole frame (every register: a trap may switch tasks, and
 * EL0's registers are all live), then calls trap(frame, index). */
trap_entry:
	stp	x2, x3, [sp, #16]
	stp	x4, x5, [sp, #32]
	stp	x6, x7, [sp, #48]
	stp	x8, x9, [sp, #64]
	stp	x10, x11, [sp, #80]
	stp	x12, x13, [sp, #96]
	stp	x14, x15, [sp, #112]
	stp	x16, x17, [sp, #128]
	stp	x18, x19, [sp, #144]
	stp	x20, x21, [sp, #160]
	stp	x22, x23, [sp, #176]
	stp	x24, x25, [sp, #192]
	stp	x26, x27, [sp, #208]
	stp	x28, x29, [sp, #224]
	mrs	x9, sp_el0
	stp	x30, x9, [sp, #240]
	mrs	x10, elr_el1
	mrs	x11, spsr_el1
	stp	x10, x11, [sp, #256]
	mov	x1, x0
	mov	x0, sp
	mov	x29, #0
	bl	trap
	.globl	trap_return
trap_return:
	ldp	x30, x9, [sp, #240]
	msr	sp_el0, x9
	ldp	x10, x11, [sp, #256]
	msr	elr_el1, x10
	msr	spsr_el1, x11
	ldp	x0, x1, [sp, #0]
	ldp	x2, x3, [sp, #16]
	ldp	x4, x5, [sp, #32]
	ldp	x6, x7, [sp, #48]
	ldp	x8, x9, [sp, #64]
	ldp	x10, x11, [sp, #80]
	ldp	x12, x13, [sp, #96]
	ldp	x14, x15, [sp, #112]
	ldp	x16, x17, [sp, #128]
	ldp	x18, x19, [sp, #144]
	ldp	x20, x21, [sp, #160]
	ldp	x22, x23, [sp, #176]
	ldp	x24, x25, [sp, #192]
	ldp	x26, x27, [sp, #208]
	ldp	x28, x29, [sp, #224]
	add	sp, sp, #FRAME_SIZE
	eret

/* void swtch(uint64_t *save, uint64_t next): saves the callee-saved
 * registers (x19-x30) on the current stack, stores the stack pointer in
 * *save, loads `next` and returns through its saved x30. */
	.globl	swtch
swtch:
	sub	sp, sp, #96
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	mov	x9, sp
	str	x9, [x0]
	mov	sp, x1
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	add	sp, sp, #96
	ret

	.bss
	.balign	16
boot_stack:
	.space	16384
boot_stack_top:

	.section .note.GNU-stack, "", %progbits
