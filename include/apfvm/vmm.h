/*
 * apfvm library interface: run one guest whose memory is served lazily.
 *
 * This is the boundary another VMM would lift: a configuration in, a run,
 * statistics out.  Library code never exits or prints (except the guest
 * console echo, if asked); failures come back as a negative errno with a
 * one-line explanation in struct apf_err.
 */
#ifndef APFVM_VMM_H
#define APFVM_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "apfvm/abi.h"
#include "util/err.h"
#include "util/log_histo.h"

enum apfvm_apf_mode {
	APFVM_APF_OFF = 0,    /* synchronous baseline: the vCPU blocks per fault */
	APFVM_APF_KERNEL = 1, /* the host kernel's KVM delivers async PF events */
	APFVM_APF_USER = 2,   /* the VMM is the host side of async PF */
};

/* Upper bounds apfvm_run() accepts (and the command line enforces): large
 * enough for any real use, small enough that no sum of them overflows a
 * 64-bit nanosecond clock. */
#define APFVM_MAX_LATENCY_NS   (60ull * 1000000000ull)        /* one fetch */
#define APFVM_MAX_DURATION_NS  (7ull * 24 * 3600 * 1000000000ull) /* run, timeout */
#define APFVM_MAX_THRESHOLD_NS APFVM_MAX_LATENCY_NS

struct page_source;
struct source_net_options;

struct apfvm_config {
	const void *guest_elf;      /* guest kernel image (ELF), in memory */
	size_t guest_elf_len;
	const char *guest_name;     /* for messages */
	/* Instead of the reference guest: an unmodified Linux bzImage (and an
	 * initrd, or NULL), in memory.  Its console (COM1) goes to `console`;
	 * the run ends when it resets (Linux's `reboot=k`). */
	const void *linux_kernel;
	size_t linux_kernel_len;
	const void *linux_initrd;
	size_t linux_initrd_len;
	const void *linux_busybox;  /* a static busybox for apfvm's initramfs
				     * (/bin/sh ...), or NULL: none */
	size_t linux_busybox_len;
	uint64_t mem_size;          /* resident bytes */
	uint64_t lazy_size;         /* lazy region bytes (multiple of 2 MiB) */
	const char *source;         /* "zero", "file:PATH", "tcp:ADDR:PORT",
				     * "s3://BUCKET/KEY", "http(s)://HOST/PATH" */
	/* Remote sources: a fetch unanswered for fetch_timeout_ns, or whose
	 * page arrives corrupt, is tried again, fetch_tries times in all
	 * before it fails (0: the defaults, 5 s and 3). */
	uint64_t fetch_timeout_ns;
	unsigned fetch_tries;
	/* s3:// sources: endpoint and region (NULL: from the environment,
	 * docs/object-storage.md); s3:// and http(s)://: bytes of
	 * decompressed chunks kept in memory (0: 64 MiB). */
	const char *s3_endpoint, *s3_region;
	uint64_t object_cache_bytes;
	const char *object_cache_dir; /* NULL, or a disk tier for fetched chunks */
	uint64_t object_cache_dir_bytes; /* its bound (0: 1 GiB) */
	/* Instead of `source`: the embedder's own page source (src/source/
	 * source.h), borrowed, serving at least lazy_size bytes.  It models
	 * its own latency: the latency fields must be 0. */
	struct page_source *page_source;
	uint64_t latency_min_ns;    /* added per fetch: uniform [min, max] */
	uint64_t latency_max_ns;
	uint64_t latency_seed;
	bool trace;                 /* stamp the fault path (struct apf_trace) */
	bool populate;              /* install every lazy page before the guest
				     * starts: the resident baseline */
	/* Fewer faults (docs/working-set.md).  record_ws_path: write the
	 * pages the guest faulted on (both regions of a restore, the lazy
	 * region of a boot), in first-touch order, to this file when the
	 * run ends well.  prefetch_ws_path: fetch that file's pages in its
	 * order from the start, ahead of the guest.  populate_background:
	 * then every page still absent, until all memory is local and the
	 * source is closed.  bulk_inflight: fetches those keep in flight,
	 * beside max_inflight's for faults (0: 128; the two at most 1024). */
	const char *record_ws_path;
	const char *prefetch_ws_path;
	bool populate_background;
	unsigned bulk_inflight;
	enum apfvm_apf_mode apf;
	uint64_t apf_threshold_ns;  /* user mode: go async above this expected
				     * wait; 0 = the measured default */
	bool apf_trap_acks;         /* user mode: the guest's ACK MSR writes exit
				     * to apfvm (counted, their order checked)
				     * instead of staying in KVM */
	unsigned ntasks;
	struct apf_task_spec tasks[APF_MAX_TASKS];
	uint64_t duration_ns;       /* compute alone: run time */
	uint32_t scan_order;        /* enum apf_scan_order */
	uint64_t order_seed;        /* also the seed of the scan's working set */
	/* The scan's working set (apfvm/abi.h, apf_scan_select), in
	 * millionths: each scan task reads the pages of its share that a hash
	 * of (order_seed, page) selects, about scan_fraction_ppm of them
	 * (default APF_SCAN_PPM: all), of which scan_drift_ppm are replaced
	 * by pages outside the drift-0 set; apf_scan_params_ok() must hold. */
	uint32_t scan_fraction_ppm;
	uint32_t scan_drift_ppm;
	unsigned timer_hz;
	unsigned max_inflight;      /* fetches in flight at once */
	int vcpu_cpu, pager_cpu;    /* pinning, -1 = let the scheduler place */
	uint64_t timeout_ns;        /* 0 = none; else the run fails after it */
	char cmdline[APF_CMDLINE_MAX];
	FILE *console;              /* echo of the guest console, or NULL */
	/* Signal sent to a vCPU thread to bring it out of KVM_RUN (0 =
	 * SIGUSR1).  Blocked in vCPU threads except inside KVM_RUN, where it
	 * interrupts a blocked fault; taken with sigtimedwait().  If the process has no
	 * handler for it, apfvm_run() installs an empty one (process-wide);
	 * an embedder that uses the signal itself picks another one, or keeps
	 * its own handler: any handler will do. */
	int kick_signal;
	/* Snapshot (docs/snapshot.md): stop the guest, write PATH and
	 * PATH.mem, and end the run (the report then says so: snapshot_taken).
	 * When: at snapshot_at_ns of the run, or once snapshot_after_pages
	 * pages of the lazy region have been fetched (exactly one of the two):
	 * a point in the guest's progress, the same on a fast host as on a
	 * slow one.  NULL: none. */
	const char *snapshot_path;
	uint64_t snapshot_at_ns;
	uint64_t snapshot_after_pages;
	/* Restore: run the snapshot at PATH instead of booting a guest; its
	 * memory is served lazily (latency, inflight, pinning and the mode
	 * apply; the guest and workload come from the snapshot).  NULL: boot. */
	const char *restore_path;
	/* Restore: where the snapshot's memory comes from instead of
	 * PATH.mem: a remote source ("tcp:ADDR:PORT": apfvm serve --snapshot;
	 * "s3://...", "http(s)://...": apfvm pack --snapshot) serving exactly
	 * this snapshot's memory; every page is still checked against the
	 * snapshot's checksums.  NULL: PATH.mem. */
	const char *restore_memory;
};

/* The remote sources' settings of c (fetch_timeout_ns ... object_cache_dir)
 * as src/source/source.h takes them, defaults filled in. */
void apfvm_net_options(const struct apfvm_config *c, struct source_net_options *net);

struct apfvm_task_stats {
	uint32_t kind;              /* enum apf_task_kind */
	uint32_t id;
	double runtime_s;
	uint64_t work;              /* compute */
	uint64_t pages, mismatches; /* scan */
	uint64_t first_bad;         /* scan: first mismatching word, or UINT64_MAX */
	double stall_s;             /* scan: time spent waiting for its pages */
};

struct apfvm_stats {
	/* A restore: from apfvm_run()'s start (the snapshot opened) to the
	 * vCPU's first KVM_RUN, and resident memory's pager (the lazy
	 * region's counts are the ones above). */
	bool restored;
	double first_run_ms;
	/* Where that time went, each phase's end from the same start: the
	 * snapshot read and checked, the VM and pagers ready, the state back. */
	double opened_ms, vm_ready_ms, state_ms;
	uint64_t resident_pages_fetched, resident_faults;
	/* The compute tasks' work units when the snapshot was taken (the
	 * results' work counts the whole run): the restored part is the rest.
	 * Known for the reference guest only. */
	bool work_at_snapshot_known;
	uint64_t work_at_snapshot;
	bool snapshot_taken;        /* --snapshot: written; the run ended there */
	double snapshot_at_s;       /* when it was taken, from the vCPU's start */
	enum apfvm_apf_mode mode;
	char platform[96];          /* where it ran: platform/platform.h */
	char source[160];
	uint64_t latency_min_ns, latency_max_ns;
	double wall_s;              /* vCPU start to guest done */
	uint64_t pages_fetched, bytes_fetched;
	uint64_t pages_failed;      /* could not be fetched: never mapped */
	/* Remote sources: fetches tried again (timeouts, lost connections,
	 * corrupt pages), pages that arrived corrupt (never mapped), and
	 * connections made again. */
	uint64_t source_retries, source_corrupt, source_reconnects;
	uint64_t faults_failed;     /* faults on a failed page */
	uint64_t faults_total, faults_sync, faults_async;
	uint64_t faults_joined;     /* on a page already being fetched */
	/* --apf user: why each fault was synchronous (they add up, with
	 * faults_async and faults_spurious, to faults_total). */
	uint64_t sync_policy, sync_cannot_deliver, sync_cap, repeat_waits;
	uint64_t sync_disabled, sync_raced, faults_spurious;
	uint64_t fault_us_p50, fault_us_p99; /* fault read -> page installed */
	uint64_t apf_threshold_ns;
	uint64_t host_not_present, host_ready, host_wake_all, host_gp;
	uint64_t host_acks;         /* ACK writes that reached the VMM (only
				     * with apf_trap_acks) */
	uint64_t host_acks_early;   /* of which: the area's token not yet
				     * cleared (the guest's order is wrong) */
	uint64_t host_dropped, host_outstanding_max;
	/* Retries of page-readies that waited for the guest to clear the
	 * token of the one before (per vCPU and attempt). */
	uint64_t host_ready_retries;
	uint64_t host_ready_refused; /* raises the guest's LAPIC refused (retried) */
	uint64_t host_area_gpa;     /* vCPU 0's async-PF area (the guest's choice) */
	uint64_t inflight_max;
	double fault_us_mean;       /* fault read -> page installed */
	uint64_t tsc_khz;
	uint64_t lazy_pages;
	/* Fewer faults, over both regions of a restore (the lazy region of a
	 * boot): pages the guest waited for (its first fault on each, sync or
	 * async) and the histogram of those waits; pages fetched ahead of it
	 * (prefetch list and background population), of which background
	 * population's, and those a fault then waited for (it came before
	 * their fetch ended); the prefetch list's pages and how many of them
	 * arrived; bulk fetches' requests and failures (a failure leaves the
	 * page to a fault).  Times from apfvm_run()'s start (0: not reached):
	 * the guest's first instruction, the prefetch list all present, all
	 * memory present (its sources then closed). */
	uint64_t demand_faults;
	struct log_histo demand_us;
	uint64_t pages_prefetched, pages_background, prefetch_joined;
	uint64_t prefetch_listed, prefetch_loaded, bulk_requests, bulk_errors;
	double first_instruction_ms, ws_loaded_ms, populated_ms;
	bool ws_recorded;           /* --record-ws written */
	uint64_t ws_recorded_pages;
	/* KVM's own counters for vCPU 0 (0 where KVM does not provide them). */
	uint64_t kvm_exits, kvm_pf_taken, kvm_insn_emulation, kvm_signal_exits, kvm_halt_exits;
	bool kvm_has_pf_and_emulation; /* the two counters exist (x86 KVM) */
	bool apf_reported;          /* the guest sent its async PF counters */
	struct apf_guest_stats apf; /* the guest's async PF counters */
	bool linux_reported;        /* a Linux guest's /init sent what Linux counted */
	struct apf_linux_stats linux_apf;
	unsigned ntasks;
	struct apfvm_task_stats tasks[APF_MAX_TASKS];
	/* --trace: mean microseconds per async fault of each step of the
	 * fault path (0 where a mode cannot observe it). */
	bool traced;
	struct apfvm_fault_path {
		double access_to_read;   /* guest access -> pager reads the uffd event */
		double read_to_kick;     /* decision -> kick sent */
		double kick_to_exit;     /* kick -> vCPU thread out of KVM_RUN */
		double exit_to_inject;   /* -> KVM_RUN re-entered with the #PF pending */
		double np_delivery;      /* -> guest #PF handler entry */
		double np_handler;       /* guest not-present path, up to the switch */
		double install_to_raise; /* page installed -> page-ready raised */
		double rdy_delivery;     /* raise -> guest page-ready handler entry */
		double rdy_handler;      /* guest page-ready path, up to the switch */
		double rdy_ack;          /* of which: the ACK MSR write */
		double np_resume;        /* not-present switch -> the other task runs
					  * again in ring 3 (within one work unit) */
		double resume;           /* guest switches to the woken task -> its
					  * access completes (iret, EPT fault) */
		double stall_per_page;   /* the scan's own wait per page, all faults */
		uint64_t faults, readies, readies_after_ack;
	} path;
};

/* Fills defaults: 64M resident, no lazy region, zero source, compute:1,
 * 2 s duration, 100 Hz, 64 in flight, no pinning, no timeout. */
void apfvm_config_defaults(struct apfvm_config *c);

/* Runs the guest to completion.  Returns 0 if every task reported; on a
 * guest crash, a failed fetch or a timeout returns a negative errno with
 * the reason in e (stats are still filled as far as known).
 * Process-wide, once: a SIGBUS handler that takes KVM's report of a guest
 * access to a page that could not be fetched (docs/architecture.md) and
 * passes every other SIGBUS to the handler installed before it. */
int apfvm_run(const struct apfvm_config *c, struct apfvm_stats *st, struct apf_err *e);

/* The --apf mode the snapshot at `path` was taken in (validated as
 * apfvm_run() would).  A restore may run in another (docs/snapshot.md). */
int apfvm_snapshot_mode(const char *path, enum apfvm_apf_mode *mode, struct apf_err *e);

const char *apfvm_mode_name(enum apfvm_apf_mode m);

/* Whether this build's architecture has mode m (arm64 has no `kernel`). */
bool apfvm_mode_exists(enum apfvm_apf_mode m);

/* Writes the human summary / the JSON document. */
void apfvm_stats_print(FILE *f, const struct apfvm_stats *st);
int apfvm_stats_write_json(FILE *f, const struct apfvm_stats *st);

/* The built-in reference guest kernel. */
extern const unsigned char apfvm_builtin_guest[];
extern const size_t apfvm_builtin_guest_len;

#endif
