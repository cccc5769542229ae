/* The built-in reference guest kernel, embedded so `apfvm run` needs no
 * other file, and the Linux guest's built-in /init (x86-64 builds).  GUEST_ELF and
 * LINUX_INIT are their paths, set by the Makefile. */
	.section .rodata
	.globl apfvm_builtin_guest
	.balign 64
apfvm_builtin_guest:
	.incbin GUEST_ELF
apfvm_builtin_guest_end:
	.globl apfvm_builtin_guest_len
	.balign 8
apfvm_builtin_guest_len:
	.quad apfvm_builtin_guest_end - apfvm_builtin_guest

#ifdef LINUX_INIT
	.globl apfvm_linux_init
	.balign 64
apfvm_linux_init:
	.incbin LINUX_INIT
apfvm_linux_init_end:
	.globl apfvm_linux_init_len
	.balign 8
apfvm_linux_init_len:
	.quad apfvm_linux_init_end - apfvm_linux_init
#endif

	.section .note.GNU-stack, "", @progbits
