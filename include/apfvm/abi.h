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
	/* The scan's working set (apf_scan_select below), in millionths:
	 * fraction 1..APF_SCAN_PPM, drift 0..APF_SCAN_PPM with
	 * apf_scan_params_ok(); the guest refuses anything else. */
	uint32_t scan_fraction_ppm;
	uint32_t scan_drift_ppm;
};
_Static_assert(sizeof(struct apf_boot_info) == 648, "apf_boot_info layout (fields appended)");
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

/* ------------------------------------------------------------------ */
/* The scan's working set: each page of the lazy region gets a hash value
 * u, uniform in [0, APF_SCAN_PPM), a pure function of (seed, page index)
 * (the seed is order_seed, the page index counts from the region's
 * start), so the host and the tests know which pages a scan reads.
 *
 * With fraction F and drift D (millionths of APF_SCAN_PPM), a page is
 * selected iff u < F - F*D or u >= 1 - F*D (F*D rounded to a millionth):
 * about F of the pages, of which the share 1 - D is the D = 0 set's (u <
 * F) and the share D comes from [1 - F*D, 1), outside it.  Same size
 * whatever D; the overlap with the D = 0 set is exactly the kept part
 * (1 - D of it) as long as F * (1 + D) <= 1, which apf_scan_params_ok()
 * requires: beyond it the replacements would partly come from the D = 0
 * set itself.  So a run at D = 0 and one at D = 0.3 read sets that differ
 * by 30% of their pages.                                              */

#define APF_SCAN_PPM 1000000u /* the whole: fractions are in millionths */

struct apf_scan_set {
	uint64_t seed;
	uint32_t keep; /* selected: u < keep ... */
	uint32_t from; /* ... or u >= from (keep <= from) */
};

/* The page's hash value u in [0, APF_SCAN_PPM): splitmix64 of the page
 * index under a seed kept apart from the image's. */
static inline uint32_t apf_scan_hash(uint64_t seed, uint64_t page)
{
	uint64_t z = apf_image_word(seed ^ 0x5ca7f4ac7105e7ull, page);
	return (uint32_t)(((z >> 32) * APF_SCAN_PPM) >> 32);
}

/* The millionths of the set that drift replaces: F*D, rounded. */
static inline uint32_t apf_scan_moved(uint32_t fraction_ppm, uint32_t drift_ppm)
{
	return (uint32_t)(((uint64_t)fraction_ppm * drift_ppm + APF_SCAN_PPM / 2) / APF_SCAN_PPM);
}

/* Whether (fraction, drift) names a set: 0 < F <= 1, 0 <= D <= 1 and
 * enough pages outside the D = 0 set to replace the drifted ones
 * (F + F*D <= 1). */
static inline int apf_scan_params_ok(uint32_t fraction_ppm, uint32_t drift_ppm)
{
	return fraction_ppm >= 1 && fraction_ppm <= APF_SCAN_PPM && drift_ppm <= APF_SCAN_PPM &&
	       (uint64_t)fraction_ppm + apf_scan_moved(fraction_ppm, drift_ppm) <= APF_SCAN_PPM;
}

/* The set for (seed, fraction, drift); the parameters must pass
 * apf_scan_params_ok(). */
static inline struct apf_scan_set apf_scan_set(uint64_t seed, uint32_t fraction_ppm,
					       uint32_t drift_ppm)
{
	uint32_t moved = apf_scan_moved(fraction_ppm, drift_ppm);
	struct apf_scan_set s = { seed, fraction_ppm - moved, APF_SCAN_PPM - moved };
	return s;
}

/* Whether the scan reads page (an index into the lazy region). */
static inline int apf_scan_select(const struct apf_scan_set *s, uint64_t page)
{
	if (s->keep == APF_SCAN_PPM)
		return 1; /* the whole region: no hash needed */
	uint32_t u = apf_scan_hash(s->seed, page);
	return u < s->keep || u >= s->from;
}

/* How many of the pages [first, first + n) the set selects: what a scan
 * of that share reports (struct apf_task_result.pages). */
static inline uint64_t apf_scan_count(const struct apf_scan_set *s, uint64_t first, uint64_t n)
{
	uint64_t count = 0;

	if (s->keep == APF_SCAN_PPM)
		return n;
	for (uint64_t i = 0; i < n; i++)
		count += (uint64_t)apf_scan_select(s, first + i);
	return count;
}

/* A scan task's share of the lazy region's npages pages: task index of
 * count takes [*first, *first + *n). */
static inline void apf_scan_share(uint64_t npages, uint32_t index, uint32_t count,
				  uint64_t *first, uint64_t *n)
{
	*first = npages * index / count;
	*n = npages * (index + 1) / count - *first;
}

#endif /* APFVM_ABI_H */
