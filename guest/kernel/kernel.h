/*
 * Reference guest kernel: shared helpers.  Ring 0 runs in KVM's
 * instruction emulator on some hosts (~0.4 us per instruction): keep every
 * path short, never copy or scan memory here, leave that to ring 3.
 */
#ifndef GUEST_KERNEL_H
#define GUEST_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "apfvm/abi.h"

#define KSTACK_SIZE 16384
#define USTACK_SIZE 65536

extern const struct apf_boot_info *boot_info;

/* Console and failure reporting (hcall.c). */
void kputs(const char *s);
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kassert_fail(const char *file, int line, const char *expr) __attribute__((noreturn));
void kdone(uint64_t status) __attribute__((noreturn));
void hcall(uint32_t nr, uint64_t a0, uint64_t a1, uint64_t a2);

#define KASSERT(e) ((e) ? (void)0 : kassert_fail(__FILE__, __LINE__, #e))

/* Bump allocators over the boot-info heaps (main.c); never freed. */
void *kalloc(uint64_t size);  /* supervisor-only, page aligned */
void *ualloc(uint64_t size);  /* ring-3 accessible, page aligned */

/* Command line switches (main.c). */
int cmdline_has(const char *word);

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void cpuid(uint32_t leaf, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

static inline uint64_t read_cr2(void)
{
	uint64_t v;
	__asm__ volatile("mov %%cr2, %0" : "=r"(v));
	return v;
}

/* Waits for the next interrupt with interrupts enabled, then disables them
 * again.  `sti; hlt` is the one ring-0 sequence that reliably takes a
 * pending interrupt on an emulated ring 0. */
static inline void halt_once(void)
{
	__asm__ volatile("sti; hlt; cli" ::: "memory");
}

#endif
