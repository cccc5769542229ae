/*
 * machine: one guest and everything the VMM keeps for it: the data every
 * part of the VMM shares.  Its lifecycle, the only code that starts or
 * stops its threads, is lifecycle.h.
 *
 * Threading: each vCPU thread writes only its own vCPU's state and, under
 * report_lock, the run state (guest_report.h); the pager threads write
 * their pagers and, through the hooks, the async-fault core (its own
 * lock).  `stop` is set once and never cleared.
 */
#ifndef APFVM_MACHINE_H
#define APFVM_MACHINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>

#include "apfvm/abi.h"
#include "apfvm/vmm.h"
#include "apf/apf_core.h"
#include "guest_layout.h"
#include "guest_mem.h"
#include "kvm_vm.h"
#include "pager/pager.h"
#include "snapshot/snapshot.h"

struct pc_devices; /* a Linux guest's PC devices (x86) */
struct machine_loader;
struct machine;

/* What the guest told the host, and how the run ended. */
struct guest_report {
	unsigned nresults;
	struct apf_task_result results[APF_MAX_TASKS];
	bool apf_reported;  /* APF_HC_APF_STATS arrived */
	struct apf_guest_stats apf;
	bool linux_reported; /* APF_HC_LINUX_STATS arrived */
	struct apf_linux_stats linux_stats;
	bool done;          /* APF_HC_DONE arrived */
	uint64_t status;    /* its status: 0 = every task completed */
	bool failed;        /* the guest crashed or asserted, or the VMM gave up */
	char failure[1024]; /* the first failure, for the user */
};

/* A region of guest memory served lazily: the lazy region of a boot, or
 * either region of a restore.  Each pointer is NULL until made. */
struct machine_region {
	const char *name;            /* "lazy region", "resident memory" */
	void *host_base;
	uint64_t size;
	struct page_source *source;  /* what the pager fetches from */
	struct page_source *raw;     /* the same without added latency (owned
				      * by `source` when that is a wrapper,
				      * else by the region: raw_owned) */
	bool raw_owned;              /* raw is a source of its own, closed
				      * with the region's */
	/* What the source serves (its pattern and seed, for the guest to
	 * verify), kept from when it opened: once the pagers run, only the
	 * pager thread may touch the source (it may close it). */
	uint32_t pattern;
	uint64_t seed;
	char source_desc[128];       /* its description, likewise */
	bool borrowed;               /* the embedder's source: not closed */
	struct pager *pager;         /* made by machine_start */
	/* Set by the pager thread once every page is present (lifecycle.c):
	 * the source was closed then (source and raw NULL), its remote
	 * counters kept here. */
	uint64_t retries, corrupt, reconnects;
};

enum { MACHINE_LAZY, MACHINE_RESIDENT, MACHINE_REGIONS };

/* The guest kind's part of the machine, set by its loader. */
struct guest_kind {
	struct guest_layout layout;  /* the reference guest's (else zero) */
	gpa_t boot_info_gpa;         /* struct apf_boot_info, or 0: none */
	unsigned expected_results;   /* task results the guest must report */
	/* x86 Linux: the PC devices, and their port I/O (NULL otherwise). */
	struct pc_devices *pc;
	void (*port_io)(struct machine *m, struct vcpu *v);
};

/* The working set being replayed (machine_ws.h): each region's prefetch
 * list, and when the pagers started (t = 0 of a recording). */
struct machine_ws {
	uint32_t *list[MACHINE_REGIONS];
	uint64_t n[MACHINE_REGIONS];
	uint64_t base_ns;
	/* The memory its files describe (taken before any source can be
	 * let go): identity, pages, resident pages first. */
	struct sha256 identity;
	uint64_t mem_pages, resident_pages;
};

/* A restore's own state (snapshot_load.c). */
struct restore_state {
	struct snap_image *snap;     /* the open snapshot */
	struct snap_apf apf;         /* the guest's async-PF registration */
	const struct snap_section *vcpu_state, *vm_state;
	uint32_t guest_kind;         /* SNAP_GUEST_REFERENCE or SNAP_GUEST_LINUX */
	uint64_t work_at_snapshot;   /* the compute tasks' work by then */
	bool has_progress;           /* work_at_snapshot is known */
	/* Phases' ends (CLOCK_MONOTONIC): snapshot checked; VM and pagers
	 * ready; the state back in KVM. */
	uint64_t phase_ns[3];
};

/* --trace: the shared stamp page (host view) and the host's sums, in TSC
 * ticks, written by the pager thread (read/kick/install/raise) and the
 * vCPU thread (exit/inject), read after both stopped. */
struct machine_trace {
	struct apf_trace *page;
	/* Written by the pager thread, read by the vCPU thread after the
	 * kick: atomic (release/acquire). */
	uint64_t t_read[VM_MAX_VCPUS], t_kick[VM_MAX_VCPUS];
	uint64_t access_to_read, read_to_kick, kick_to_exit, exit_to_inject;
	uint64_t injected;
	uint64_t install_to_raise, raised_on_install, raised_on_ack;
};

struct machine {
	const struct apfvm_config *cfg;
	const struct machine_loader *loader;
	struct guest_mem gm;
	struct vm vm;
	struct vm_options vm_opt;          /* what the VM was created with */
	struct machine_region region[MACHINE_REGIONS];
	struct apf_core *core;             /* --apf user; NULL otherwise */
	struct pager_hooks pager_hooks;    /* the core's, for the lazy pager */
	uint64_t ready_retry_ns;           /* pager thread: next page-ready retry */
	struct guest_kind guest;
	struct restore_state restore;
	struct machine_ws ws;
	struct machine_trace trace;
	void *snapshot_bufs;               /* a failed snapshot's fetch buffers,
					    * freed after the sources close */
	FILE *console;                     /* guest console echo, or NULL */

	/* The run state (guest_report.h), shared by every thread. */
	struct guest_report report;
	pthread_mutex_t report_lock;
	atomic_bool stop;
	pthread_cond_t stopped;            /* broadcast when stop or a point is set */
	/* Broadcast when a lazy page settles while a vCPU thread waits for
	 * one outside KVM_RUN (page_waiters > 0), and when stop is set. */
	pthread_cond_t page_arrived;
	atomic_uint page_waiters;
	bool pages_point;                  /* --snapshot-after-pages reached */
	_Atomic bool snapshot_requested;   /* the vCPU completes its last exit */
	/* A thread of the run did not end within its bound and was left
	 * behind: the machine is leaked, never freed under it. */
	bool abandoned;
	uint64_t start_ns;                 /* CLOCK_MONOTONIC at machine_create */
	uint64_t run_ns;                   /* when the vCPUs were started */
	_Atomic uint64_t first_run_ns;     /* the first KVM_RUN */
};

/* The machine a vCPU belongs to. */
#define machine_of(vcpu) \
	((struct machine *)(void *)((char *)(vcpu)->vm - offsetof(struct machine, vm)))

/* The lazy region's pager, or NULL. */
static inline struct pager *machine_lazy_pager(const struct machine *m)
{
	return m->region[MACHINE_LAZY].pager;
}

#endif
