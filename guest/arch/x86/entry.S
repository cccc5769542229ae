/*
 * Boot entry, trap stubs and the context switch.
 *
 * The VMM enters _start in 64-bit mode with paging on (identity map),
 * RDI = boot-info GPA, interrupts disabled and no usable stack.
 */
	.section .text.entry, "ax"
	.globl _start
_start:
	lea	boot_stack_top(%rip), %rsp
	xor	%ebp, %ebp
	call	kmain
1:	cli
	hlt
	jmp	1b

	.text
/* void gdt_load(const void *gdtr): loads the GDT and reloads every segment. */
	.globl gdt_load
gdt_load:
	lgdt	(%rdi)
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	xor	%eax, %eax
	mov	%ax, %fs
	mov	%ax, %gs
	pop	%rdi		/* return address */
	pushq	$0x08
	pushq	%rdi
	lretq

/* void swtch(uint64_t *save, uint64_t next) */
	.globl swtch
swtch:
	push	%rbp
	push	%rbx
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	mov	%rsp, (%rdi)
	mov	%rsi, %rsp
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbx
	pop	%rbp
	ret

/* Trap stubs: one per vector, 16 bytes apart, so vector v's stub is at
 * trap_stubs + 16 * v.  Each pushes a zero error code if the CPU pushed
 * none, then the vector, and joins trap_common. */
	.globl trap_stubs
	.align 16
trap_stubs:
	vec = 0
	.rept 256
	.align 16
	.if (vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 || vec == 30)
	.else
	pushq	$0
	.endif
	pushq	$vec
	jmp	trap_common
	vec = vec + 1
	.endr

/* Only the caller-saved registers are saved: the C code preserves the
 * callee-saved ones (rbx, rbp, r12-r15) by the ABI, and swtch() saves them
 * when a trap switches tasks.  Every instruction here is emulated on some
 * hosts, so the frame is as small as the ABI allows. */
trap_common:
	push	%rax
	push	%rcx
	push	%rdx
	push	%rsi
	push	%rdi
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	mov	%rsp, %rdi
	call	trap
	.globl trap_return
trap_return:
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rdi
	pop	%rsi
	pop	%rdx
	pop	%rcx
	pop	%rax
	add	$16, %rsp	/* vector, error code */
	iretq

	.bss
	.align 16
boot_stack:
	.space 16384
boot_stack_top:

	.section .note.GNU-stack, "", @progbits
