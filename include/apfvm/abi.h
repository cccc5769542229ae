/*
 * apfvm ABI: everything the VMM (host) and the reference guest kernel both
 * compile.  Self-contained: C11 and <stdint.h> only, fixed-width fields,
 * layouts locked with static asserts.  All guest addresses are guest-physical
 * (the guest runs identity-mapped), carried as plain integers.
 *
 * This header is architecture-neutral.  Each architecture adds its own
 * (one header each): how a hypercall is made and the async page fault
 * protocol.  abi_x86.h: the KVM paravirtual protocol exactly as Linux
 * speaks it (Documentation/virt/kvm/x86/msr.rst, docs/async-pf.md);
 * abi_arm64.h: apfvm's arm64 protocol (docs/arm64-abi.md).
 */
#ifndef APFVM_ABI_H
#define APFVM_ABI_H

#include <stdint.h>

/* ------------------------------------------------------------------ */
/* Guest-physical memory map, fixed by the VMM and described to the guest
 * in struct apf_boot_info.                                            */

#define APF_PAGE_SIZE      4096u
#define APF_BOOT_INFO_GPA  0x1000u       /* one page, read-only by contract */
#define APF_KERNEL_GPA     0x100000u     /* guest ELF segments start here */
#define APF_LAZY_GPA       0x100000000ull /* lazy region: 4 GiB and up */
#define APF_LAZY_ALIGN     0x200000ull   /* lazy size granule (2 MiB pages) */

/* ELF program-header flag (in the OS-specific range) marking a segment that
 * ring 3 may access; the VMM maps such pages with the U/S bit set. */
#define APF_PF_USER        0x00100000u

/* ------------------------------------------------------------------ */
/* Hypercalls: the guest hands the host the GPA of a struct apf_hcall
 * (how is the architecture's: abi_x86.h, abi_arm64.h).  The host reads
 * the block, acts, and may write `ret` back.                          */

enum apf_hcall_nr {
	APF_HC_CONSOLE = 1, /* a0 = gpa of text, a1 = length (<= 4096) */
	APF_HC_RESULT  = 2, /* a0 = gpa of struct apf_task_result */
	APF_HC_ASSERT  = 3, /* a0 = gpa of file name, a1 = line, a2 = gpa of expr */
	APF_HC_FATAL   = 4, /* a0 = gpa of struct apf_fatal */
	APF_HC_DONE    = 5, /* a0 = exit status (0 = all tasks completed) */
	APF_HC_APF_STATS = 6, /* a0 = gpa of struct apf_guest_stats */
	APF_HC_LINUX_STATS = 7, /* a0 = gpa of struct apf_linux_stats */
	APF_HC_MAX
};

struct apf_hcall {
	uint32_t nr;
	uint32_t ret; /* written by the host: 0 or a negative errno */
	uint64_t a0, a1, a2;
};
_Static_assert(sizeof(struct apf_hcall) == 32, "apf_hcall layout");

/* ------------------------------------------------------------------ */
/* Workloads.                                                          */

enum apf_task_kind {
	APF_TASK_COMPUTE = 1,
	APF_TASK_SCAN    = 2,
};

#define APF_MAX_TASKS 16

enum apf_scan_order {
	APF_SCAN_SEQUENTIAL = 0,
	APF_SCAN_RANDOM     = 1,
};

/* Expected content of the lazy region. */
enum apf_pattern {
	APF_PATTERN_ZERO   = 0, /* every word is 0 */
	APF_PATTERN_SEEDED = 1, /* word i is apf_image_word(seed, i) */
	/* Host side only, never given to a guest: a snapshot's memory
	 * (served or packed), known by its page checksums; the seed is the
	 * snapshot's identity (snap_identity). */
	APF_PATTERN_SNAPSHOT = 2,
	APF_PATTERN_MAX = APF_PATTERN_SNAPSHOT,
};

struct apf_task_spec {
	uint32_t kind;  /* enum apf_task_kind */
	uint32_t index; /* index among tasks of the same kind */
	uint32_t count; /* number of tasks of the same kind */
	uint32_t pad;
};
_Static_assert(sizeof(struct apf_task_spec) == 16, "apf_task_spec layout");

/* Reported once per task through APF_HC_RESULT. */
struct apf_task_result {
	uint32_t kind;        /* enum apf_task_kind */
	uint32_t id;          /* task id, 1-based, unique in the run */
	uint64_t runtime_tsc; /* first instruction to report, in TSC ticks */
	uint64_t work;        /* compute: work units done */
	uint64_t pages;       /* scan: pages checked */
	uint64_t mismatches;  /* scan: words that differed from the pattern */
	uint64_t first_bad;   /* scan: word index of the first mismatch, or ~0 */
	uint64_t stall_tsc;   /* scan: TSC ticks spent waiting for its pages
			       * (first touch of each page until it returned) */
};
_Static_assert(sizeof(struct apf_task_result) == 56, "apf_task_result layout");

/* Reported through APF_HC_FATAL by the guest's unexpected-exception path.
 * The fields hold the architecture's own registers:
 *   x86:   vector, error code, RIP, CS, RFLAGS, RSP, CR2;
 *   arm64: vector-table offset, ESR_EL1, ELR_EL1, SPSR_EL1, 0, SP, FAR_EL1. */
struct apf_fatal {
	uint64_t vector, error_code, pc, mode, flags, sp, fault_addr;
	uint64_t task_id; /* 0 if no task was running */
};
_Static_assert(sizeof(struct apf_fatal) == 64, "apf_fatal layout");

/* Asynchronous page faults, on every architecture: a not-present names
 * the fault with a 32-bit token (never 0), the page-ready the same token;
 * this one wakes every waiter instead.                                */
#define APF_WAKE_ALL_TOKEN 0xffffffffu
/* The not-present reason the host writes in the guest's area. */
#define APF_REASON_PAGE_NOT_PRESENT 1u

/* What the guest counted, reported through APF_HC_APF_STATS at the end. */
struct apf_guest_stats {
	uint64_t enabled;     /* 1 if the guest turned async PF on */
	uint64_t not_present; /* not-present #PFs taken */
	uint64_t ready;       /* page-ready interrupts with a specific token */
	uint64_t wake_all;    /* page-ready interrupts with the wake-all token */
	uint64_t dummy;       /* ready arrived before its not-present */
	uint64_t halts;       /* not-presents waited out in place */
	uint64_t parked_max;  /* most tasks parked at once */
	uint64_t np_tsc;      /* TSC ticks in the not-present path (with trace) */
	uint64_t ready_tsc;   /* TSC ticks in the page-ready path (with trace) */
};
_Static_assert(sizeof(struct apf_guest_stats) == 72, "apf_guest_stats layout");

/* ------------------------------------------------------------------ */
/* The Linux guest (apfvm run --kernel; its memory map: abi_x86.h).     */

/* What Linux itself shows of async PF, read by /init after the tasks
 * ended; reported through APF_HC_LINUX_STATS. */
struct apf_linux_stats {
	uint64_t boot_ns;        /* CLOCK_BOOTTIME when /init started */
	uint64_t hyp_interrupts; /* row HYP of /proc/interrupts: page-ready
				  * interrupts, wake-all included */
	uint64_t probed;         /* 1 if the two kprobes below counted */
	uint64_t task_waits;     /* calls of kvm_async_pf_task_wait_schedule:
				  * not-present #PFs a task slept on */
	uint64_t task_wakes;     /* calls of kvm_async_pf_task_wake */
	uint64_t task_switches;  /* voluntary context switches of the scan
				  * processes, summed */
	/* Command line "apfvm.kernel-reads=N": before the tasks start, /init
	 * passes the lazy region's first N pages through a pipe, so Linux's
	 * kernel reads them (copy_from_user: faults in kernel mode, which the
	 * host must serve synchronously), and verifies what comes out. */
	uint64_t kernel_reads;
	uint64_t kernel_read_mismatches; /* words that differed */
};
_Static_assert(sizeof(struct apf_linux_stats) == 64, "apf_linux_stats layout");

/* ------------------------------------------------------------------ */
/* Progress (reference guest): one ring-3 accessible page where each
 * compute task keeps its work count as it goes (work[id - 1]), so that the
 * host can read how far the workload had come when it took a snapshot.
 * Not part of the async-PF ABI: an apfvm measurement aid.              */

struct apf_progress {
	volatile uint64_t work[APF_MAX_TASKS];
};

/* ------------------------------------------------------------------ */
/* Fault-path tracing (apfvm run --trace): one ring-3 accessible page that
 * the host, the guest kernel and the scan task all stamp with the TSC (the
 * guest's TSC is the host's on the hosts apfvm targets).  Not part of the
 * async-PF ABI: an apfvm measurement aid.                              */

struct apf_trace {
	volatile uint64_t access_tsc; /* scan: just before touching a new page */
	volatile uint64_t inject_tsc; /* host: just before a not-present is injected */
	volatile uint64_t raise_tsc;  /* host: just before page-ready is raised */
	/* Guest kernel accumulators (TSC ticks, and how many). */
	uint64_t np_delivery;  /* inject_tsc -> #PF handler entry */
	uint64_t np_handler;   /* #PF handler entry -> switch to another task */
	uint64_t np_count;
	uint64_t rdy_delivery; /* raise_tsc -> page-ready handler entry */
	uint64_t rdy_handler;  /* handler entry -> switch to the woken task */
	uint64_t rdy_ack;      /* of which: the ACK MSR write */
	uint64_t rdy_count;
	volatile uint64_t rdy_switch_tsc; /* guest: switching to the woken task */
	uint64_t resume;       /* scan: rdy_switch_tsc -> its access completed */
	uint64_t resume_count;
	volatile uint64_t np_switch_tsc; /* guest: switching away from the faulting task */
	uint64_t np_resume;    /* compute: np_switch_tsc -> it runs again in ring 3 */
	uint64_t np_resume_count;
};

/* ------------------------------------------------------------------ */
/* Boot information, written by the VMM at APF_BOOT_INFO_GPA before the
 * first instruction; a register holds its address at entry (RDI on x86,
 * X0 on arm64).                                                       */

#define APF_BOOT_MAGIC   0x31544f4246504140ull /* "@APFBOT1" */
#define APF_CMDLINE_MAX  256

struct apf_boot_info {
	uint64_t magic;
	uint64_t mem_size;    /* resident memory: [0, mem_size) */
	uint64_t kfree_start; /* free memory, supervisor-only */
	uint64_t kfree_end;
	uint64_t ufree_start; /* free memory, ring-3 accessible */
	uint64_t ufree_end;
	uint64_t lazy_base;   /* lazy region (ring-3 accessible) */
	uint64_t lazy_size;
	uint64_t tsc_khz;     /* the guest's cycle counter (x86: TSC, arm64:
			       * CNTVCT_EL0) in kHz */
	uint64_t seed;        /* image seed when pattern == SEEDED */
	uint64_t order_seed;  /* seed of the random scan order */
	uint64_t duration_us; /* compute alone: how long to run */
	uint32_t pattern;     /* enum apf_pattern */
	uint32_t scan_order;  /* enum apf_scan_order */
	uint32_t timer_hz;    /* scheduler tick */
	uint32_t ntasks;
	uint64_t trace_gpa;   /* struct apf_trace page, or 0: no tracing */
	uint64_t progress_gpa; /* struct apf_progress page, or 0 */
	struct apf_task_spec tasks[APF_MAX_TASKS];
	char cmdline[APF_CMDLINE_MAX]; /* NUL-terminated */
};
_Static_assert(sizeof(struct apf_boot_info) <= APF_PAGE_SIZE, "boot info fits a page");

/* ------------------------------------------------------------------ */
/* Deterministic image content: every 8-byte word of page data is a pure
 * function of (seed, word index), so the guest can verify every byte it
 * reads without the host's help.  splitmix64 of the index, offset by
 * the seed.                                                            */

static inline uint64_t apf_image_word(uint64_t seed, uint64_t index)
{
	uint64_t z = seed + (index + 1) * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The word the guest expects at index under pattern (enum apf_pattern). */
static inline uint64_t apf_expected_word(uint32_t pattern, uint64_t seed, uint64_t index)
{
	return pattern == APF_PATTERN_SEEDED ? apf_image_word(seed, index) : 0;
}

#endif /* APFVM_ABI_H */
