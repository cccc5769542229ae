/*
 * Reference guest kernel: the architecture-neutral core (guest/core) and
 * what it shares with each architecture's layer (guest/arch/<arch>, whose
 * arch.h this includes).  Ring 0 runs in KVM's instruction emulator on
 * some hosts (~0.4 us per instruction): keep every path short, never copy
 * or scan memory here, leave that to the tasks.
 */
#ifndef GUEST_KERNEL_H
#define GUEST_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "apfvm/abi.h"
#include "arch.h"

#define KSTACK_SIZE 16384
#define USTACK_SIZE 65536

extern const struct apf_boot_info *boot_info;

/* Console and failure reporting (console.c). */
void kputs(const char *s);
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kassert_fail(const char *file, int line, const char *expr) __attribute__((noreturn));
void kdone(uint64_t status) __attribute__((noreturn));
void hcall(uint32_t nr, uint64_t a0, uint64_t a1, uint64_t a2);

#define KASSERT(e) ((e) ? (void)0 : kassert_fail(__FILE__, __LINE__, #e))

/* Bump allocators over the boot-info heaps (alloc.c); never freed.
 * kalloc_init gives them the heaps, once, before the first call. */
void kalloc_init(uint64_t kstart, uint64_t kend, uint64_t ustart, uint64_t uend);
void *kalloc(uint64_t size);  /* kernel-only, page aligned */
void *ualloc(uint64_t size);  /* task-accessible, page aligned */

/* Command line switches (main.c). */
int cmdline_has(const char *word);

/* --- what each architecture implements (guest/arch/<arch>) ------------ */

struct task;
/* Vectors, the interrupt controller and whatever else the CPU needs. */
void arch_init(void);
/* The periodic scheduler tick at hz. */
void arch_timer_start(unsigned hz);
/* The command line's crash=KIND self-tests that need this architecture. */
void arch_selftest_crash(void);
/* `probe-exits`: the cost of the exits an async fault is made of. */
void arch_probe_exits(uint64_t tsc_khz);
/* Task contexts.  A task's first switch-in enters it at entry(arg) on
 * ustack_top, unprivileged; the idle task's runs fn in the kernel. */
void arch_task_init_user(struct task *t, uint64_t entry, uint64_t arg, uint64_t ustack_top);
void arch_task_init_kernel(struct task *t, void (*fn)(void));
/* Switches from prev (its context saved in prev) to next. */
void arch_task_switch(struct task *prev, struct task *next);

/* The system calls of guest/user/uapi.h (syscall.c): what the
 * architecture's trap handler calls with the task's number and
 * arguments; returns the result (-1 for a refused call). */
uint64_t syscall_dispatch(uint64_t nr, uint64_t a0, uint64_t a1);

#endif
