/* The built-in reference guest kernel, embedded so `apfvm run` needs no
 * other file.  GUEST_ELF is the path of the linked guest, set by the
 * Makefile. */
	.section .rodata
	.globl apfvm_builtin_guest
	.align 64
apfvm_builtin_guest:
	.incbin GUEST_ELF
apfvm_builtin_guest_end:
	.globl apfvm_builtin_guest_len
	.align 8
apfvm_builtin_guest_len:
	.quad apfvm_builtin_guest_end - apfvm_builtin_guest

	.section .note.GNU-stack, "", @progbits
