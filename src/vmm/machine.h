/*
 * machine: one running guest and everything the VMM keeps for it.  Owned by
 * run.c; the vCPU loop and the hypercall handlers receive it.
 *
 * Threading: each vCPU thread writes only its own vCPU's state and the
 * guest report (hypercalls are serialized per vCPU; with several vCPUs the
 * report is guarded by report_lock).  `stop` is the one flag every thread
 * reads; it is set once and never cleared.
 */
#ifndef APFVM_MACHINE_H
#define APFVM_MACHINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>

#include "apfvm/abi.h"
#include "guest_layout.h"
#include "guest_mem.h"
#include "apfvm/vmm.h"
#include "kvm_vm.h"
#include "apf/apf_core.h"
#include "pager/pager.h"
#include "snapshot/snapshot.h"

struct pc_devices; /* a Linux guest's PC devices (x86) */

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

struct machine {
	struct guest_mem gm;
	struct vm vm;
	struct page_source *source;
	struct page_source *raw_source; /* source without added latency (owned
					 * by `source` when that is a wrapper) */
	bool source_borrowed;           /* the embedder's (config.page_source) */
	struct pager pager;
	bool pager_ready;
	struct apf_core *core; /* --apf user: the host side; NULL otherwise */
	struct pager_hooks pager_hooks;
	/* --trace: the shared stamp page (host view) and host-side sums in TSC
	 * ticks, written by the pager thread (read/kick/install/raise) and the
	 * vCPU thread (exit/inject), read after both stopped. */
	struct apf_trace *trace;
	struct {
		/* Written by the pager thread, read by the vCPU thread after
		 * the kick: atomic (release/acquire). */
		uint64_t t_read[VM_MAX_VCPUS], t_kick[VM_MAX_VCPUS];
		uint64_t access_to_read, read_to_kick, kick_to_exit, exit_to_inject;
		uint64_t injected;
		uint64_t install_to_raise, raised_on_install, raised_on_ack;
	} host_trace;
	uint64_t ready_retry_ns; /* pager thread: the next page-ready retry's delay */
	struct guest_report report;
	pthread_mutex_t report_lock;
	atomic_bool stop;
	/* A thread of the run (the vCPU's, a pager's) did not end within its
	 * bound and was left behind: the machine is leaked, never freed under
	 * it. */
	bool abandoned;
	pthread_cond_t stopped; /* signalled (report_lock) when stop is set */
	/* Signalled (report_lock) when a lazy page settles while a vCPU
	 * thread waits for one outside KVM_RUN (page_waiters > 0: a page
	 * poisoned to kick it, apf_user_poison_kick), and when stop is set. */
	pthread_cond_t page_arrived;
	atomic_uint page_waiters;
	FILE *console;      /* guest console echo, or NULL */
	/* x86 guest kinds' port I/O: the reference guest's hypercall port, or
	 * a Linux guest's PC devices (`pc`, NULL otherwise); unused on arm64,
	 * which has no ports. */
	void (*port_io)(struct machine *m, struct vcpu *v);
	struct pc_devices *pc;
	unsigned expected_results; /* task results the guest kind must report */
	/* The reference guest's memory layout (zero for other kinds). */
	struct guest_layout layout;
	/* Where the guest kind wants its struct apf_boot_info (0: nowhere),
	 * written once the vCPU exists. */
	gpa_t boot_info_gpa;
	struct vm_options vm_opt; /* what the VM was created with */
	/* A restore (snapshot_vm.h): the snapshot, and resident memory's own
	 * pager and source (the lazy region's are `pager` and `source`). */
	struct snap_image snap;
	bool snap_open;
	struct pager res_pager;
	bool res_pager_ready;
	struct page_source *res_source;
	struct page_source *res_raw_source; /* without added latency (owned by res_source) */
	bool snapshot_taken;     /* --snapshot: written, the run ended there */
	uint64_t snapshot_taken_ns; /* when, from the vCPU's start */
	/* --snapshot: set before the stop; the vCPU then completes its last
	 * exit before its thread ends (vcpu_loop.c). */
	_Atomic bool snapshot_requested;
	/* --snapshot-after-pages: the pager installed that many pages (set
	 * under report_lock, with `stopped` broadcast). */
	bool snapshot_point;
	/* A restore: the compute tasks' work when the snapshot was taken, if
	 * known (the reference guest's progress page). */
	uint64_t work_at_snapshot;
	bool has_progress;
	struct snap_apf restore_apf; /* the guest's async-PF registration, or zeros */
	/* A failed snapshot's fetch buffers, still targets of fetches in
	 * flight: freed after the sources are closed. */
	void *snapshot_bufs;
	/* A restore's phases ended (CLOCK_MONOTONIC): the snapshot read and
	 * checked; the VM, its vCPU and the pagers ready; the state back in KVM. */
	uint64_t restore_phase_ns[3];
	uint64_t start_ns;       /* CLOCK_MONOTONIC when apfvm_run began */
	_Atomic uint64_t first_run_ns; /* when the vCPU first entered KVM_RUN */
};

/* The machine a vCPU belongs to. */
#define machine_of(vcpu) \
	((struct machine *)(void *)((char *)(vcpu)->vm - offsetof(struct machine, vm)))

/* Records the first failure (later ones are dropped) and stops the run. */
void machine_fail(struct machine *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The pagers' on_error (run.c): a page that could not be served. */
void machine_pager_error(void *ctx, bool blocking);
/* The same for the resident memory's pager (a restore's). */
void machine_res_pager_error(void *ctx, bool blocking);

/* Asks every vCPU to leave KVM_RUN and end the run. */
void machine_stop(struct machine *m);


#endif
