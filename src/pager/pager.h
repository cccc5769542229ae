/*
 * pager: serves the lazy region's missing pages.
 *
 * The lazy region is host memory registered with userfaultfd (MISSING
 * mode); nothing in it is populated before the guest touches it.  When a
 * vCPU touches an absent page, its thread blocks in the kernel and the
 * pager thread reads the fault from the uffd, asks the page source for the
 * page and, when the fetch completes, installs it with UFFDIO_COPY (or
 * UFFDIO_ZEROPAGE), which also wakes every thread blocked on it.
 *
 * Page state: every page is ABSENT, FETCHING, PRESENT or FAILED.  A fault
 * on a FETCHING page joins the fetch in progress; each page is fetched at
 * most once.  Up to `max_inflight` fetches overlap; further faults wait in
 * FIFO order for a buffer.
 *
 * Errors: a page that cannot be fetched or installed is FAILED and is
 * never mapped with other content.  Where the host kernel can (6.6+,
 * UFFDIO_POISON) it is poisoned: every access to it, blocked or later,
 * fails (a user access gets SIGBUS; KVM makes KVM_RUN fail or sends the
 * vCPU thread SIGBUS).  Elsewhere it stays missing: an access blocks until
 * the thread is signalled (a vCPU kick frees it on 6.2+).  The error is
 * reported (on_error, `error_msg`) and the pager goes on serving other
 * pages.  If the source itself fails, every page being fetched and every
 * later fault fails the same way.  The pager never unregisters the region
 * on its own: only pager_release() and pager_destroy() do, and after them
 * an unfetched page reads as zeros (plain anonymous memory).
 *
 * Bulk fetches (pager_bulk.c): besides the faults, the pager can fetch
 * pages nobody waits for yet, at the source's BULK priority: a working
 * set's pages in the order it lists them (prefetch), then, with
 * populate_background, every page still absent, lowest first.  They hold
 * at most `bulk_inflight` of the buffers, so a fault always finds one
 * soon; a fault waiting for a buffer goes before every bulk fetch; a fault
 * on a page being bulk-fetched joins that fetch.  Bulk fetches go out as
 * runs of contiguous pages (source_submit_run).  A bulk fetch that fails
 * leaves its page absent (a fault fetches it again), unless the source
 * itself failed.  Once every page is present, the pager stops using the
 * source (on_populated: its owner may close it).
 *
 * Threading: pager_start() spawns one thread that owns the page state, the
 * source and the uffd.  Other threads only call pager_stop() and read
 * struct pager_stats after it returns.
 */
#ifndef APFVM_PAGER_H
#define APFVM_PAGER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "source/source.h"
#include "util/err.h"
#include "util/log_histo.h"

enum page_state { PAGE_ABSENT = 0, PAGE_FETCHING = 1, PAGE_PRESENT = 2, PAGE_FAILED = 3 };

struct pager_stats {
	uint64_t faults_total;    /* uffd page-fault messages */
	uint64_t faults_joined;   /* on a page already being fetched */
	uint64_t faults_spurious; /* on a page already present (raced a copy) */
	uint64_t pages_fetched;   /* completed fetches installed */
	uint64_t bytes_fetched;
	uint64_t fetch_errors;    /* fetches or installs that failed */
	uint64_t pages_failed;    /* pages made FAILED (fetch errors, a failed source) */
	uint64_t faults_failed;   /* faults read on a FAILED page */
	uint64_t inflight_max;    /* most fetches in flight at once */
	uint64_t fault_ns_sum;    /* sum over faults of read -> page installed */
	uint64_t fault_us_p50;    /* per fetched page: first fault read -> installed */
	uint64_t fault_us_p99;
	/* Pages the guest waited for: the first fault on each absent or
	 * fetching page (repeat and spurious faults not counted). */
	uint64_t demand_faults;
	struct log_histo demand_us; /* their wait: first fault read -> installed */
	/* Bulk fetches (prefetch, background population). */
	uint64_t pages_prefetched;  /* installed by a bulk fetch */
	uint64_t pages_background;  /* of which fetched by background population */
	uint64_t prefetch_joined;   /* demand faults on a page being bulk-fetched */
	uint64_t bulk_requests;     /* submit_run calls */
	uint64_t bulk_errors;       /* bulk fetches that failed (page left absent) */
	uint64_t prefetch_listed;   /* pages of the prefetch list */
	uint64_t prefetch_loaded;   /* of them present (by any fetch) */
	/* CLOCK_MONOTONIC ns (0: not reached): every listed page present;
	 * every page present (after which the source was released). */
	uint64_t ws_loaded_ns, populated_ns;
};

/* Called from the pager thread (see apf_core.h for the user-mode host
 * side that uses them).  on_fault: every fault on an absent or fetching
 * page, after its fetch was started; tid names the faulting thread;
 * expected_ns is the source's estimate for a new fetch; in_flight says the
 * page was already being fetched; it returns true if it kicked the
 * faulting vCPU out of its wait (an async fault), which the pager then
 * completes by poisoning the page where the config says so
 * (kick_by_poison).  on_installed: a page on_fault was called for is now
 * present (a bulk page no fault was read on is installed silently). */
struct pager_hooks {
	bool (*on_fault)(void *ctx, uint32_t tid, uint64_t page, uint64_t expected_ns,
			 bool in_flight);
	void (*on_installed)(void *ctx, uint64_t page);
	/* The page failed (see Errors above): its fetch is over, and a retried
	 * access fails instead of waiting for it. */
	void (*on_failed)(void *ctx, uint64_t page);
	/* Optional: called after every wake-up of the pager thread; returns
	 * how soon (ns) it wants to be called again if nothing else wakes the
	 * thread, 0 for not at all (the user-mode host side retries queued
	 * page-readies this way). */
	uint64_t (*on_poll)(void *ctx);
	void *ctx;
};

struct pager_config {
	void *host_base;     /* host address of the lazy region, page aligned */
	uint64_t size;       /* bytes, multiple of 4096 */
	struct page_source *source; /* borrowed; serves at least size/4096 pages */
	unsigned max_inflight;      /* 1..SOURCE_QUEUE_MAX */
	int cpu;             /* pin the pager thread to this CPU, or -1 */
	/* Called from the pager thread at the first error (a page that cannot
	 * be served, a failed source), `error_msg` then saying what, and
	 * again at the first blocking one.  blocking: some access to a failed
	 * page stays blocked (no poisoning here, or the pager stopped
	 * serving): the caller must stop the threads using the region.  Else
	 * every such access fails and the pager serves the other pages. */
	void (*on_error)(void *ctx, bool blocking);
	void *ctx;
	const struct pager_hooks *hooks; /* optional */
	/* A kick (hooks->on_fault returned true) frees the blocked thread by
	 * poisoning the page (pager_poison_for_kick): arm64, where KVM's wait
	 * for the page cannot be interrupted by a signal. */
	bool kick_by_poison;
	/* Optional: called once, from the pager thread, when the
	 * notify_pages-th fetched page is installed (with ctx); 0: never. */
	uint64_t notify_pages;
	void (*on_pages_fetched)(void *ctx);
	/* What the region is, for messages ("page 7 of the lazy region");
	 * NULL: "lazy region". */
	const char *region;
	/* Bulk fetches (see above).  prefetch: page indices of this region,
	 * each < size/4096 and listed once, fetched in this order from the
	 * start (borrowed until pager_stop).  bulk_inflight: buffers bulk
	 * fetches may hold, 1..max_inflight (0: half of max_inflight, at
	 * least 1). */
	const uint32_t *prefetch;
	uint64_t nprefetch;
	bool populate_background;
	unsigned bulk_inflight;
	/* Called once from the pager thread when every page is present: the
	 * pager never touches the source again, so its owner may close it
	 * there.  Optional. */
	void (*on_populated)(void *ctx);
	/* Keep the order of first faults (pager_touches): a working-set
	 * recording. */
	bool record_touches;
};

struct pager {
	struct pager_config cfg;
	int uffd;
	int stop_fd;         /* eventfd: pager_stop() */
	int epoll_fd;
	pthread_t thread;
	bool running;
	/* The thread did not stop in time (stuck in a page source's fetch)
	 * and was left running, detached: nothing it can reach may be freed
	 * (pager_destroy leaks the pager; apfvm_run leaks the machine). */
	bool abandoned;
	uint8_t *state;      /* enum page_state per page */
	uint8_t *kick_poisoned; /* per page: poisoned to kick a vCPU (atomic) */
	uint64_t *fault_ns;  /* per page: when its first fault was read */
	uint32_t *service_us; /* per demand-fetched page, in install order */
	uint64_t nservice;
	uint8_t *flags;      /* PAGE_F_* per page (pager thread only) */
	uint64_t *bulk_ns;   /* per page being bulk-fetched: when it started */
	uint32_t *touches;   /* record_touches: pages in first-fault order */
	uint64_t ntouches;
	unsigned bulk_budget, bulk_inflight;
	uint64_t pf_next, bg_next; /* next prefetch list index, background page */
	uint64_t npresent;   /* pages present */
	bool source_released; /* populated: the source is no longer used */
	uint64_t npages;
	/* Buffers: max_inflight pages; free list of indices. */
	unsigned char *bufs;
	unsigned *free_bufs;
	unsigned nfree;
	/* Pages waiting for a buffer (FIFO). */
	uint32_t *waitq;
	uint64_t wq_head, wq_count;
	unsigned inflight;
	bool can_poison;     /* the kernel has UFFDIO_POISON (probed at init) */
	bool no_pwait2;      /* the kernel lacks epoll_pwait2 (before 5.11) */
	bool source_failed;  /* the source failed: every new fault fails */
	bool broken;         /* the uffd cannot be read: the thread ends */
	int error;           /* first error (-errno), or 0 */
	bool error_blocking; /* a blocking error was reported */
	char error_msg[256];
	struct pager_stats stats;
};

/* Creates the uffd and registers [host_base, host_base + size). */
int pager_init(struct pager *p, const struct pager_config *cfg, struct apf_err *e);

/* Installs every page of the region from `src` (which may differ from the
 * configured source: e.g. the same data without added latency) before the
 * guest runs, so nothing faults: the "resident" baseline.  Call before
 * pager_start(). */
int pager_populate(struct pager *p, struct page_source *src, struct apf_err *e);

/* record_touches: the region's pages in first-fault order (n of them);
 * each page's fault time is pager_fault_ns().  After pager_stop. */
const uint32_t *pager_touches(const struct pager *p, uint64_t *n);
uint64_t pager_fault_ns(const struct pager *p, uint64_t page);

/* Starts the pager thread. */
int pager_start(struct pager *p, struct apf_err *e);

/* Stops and joins the thread.  Faults still blocked on the region stay
 * blocked (stop those threads first: a signal frees a KVM vCPU on 6.2+,
 * pager_release() on older kernels).  0, or -errno if the thread could not
 * be told to stop (it then keeps running). */
int pager_stop(struct pager *p);

/* pager_stop(), waiting at most timeout_ns for the thread: a page source
 * stuck in a fetch (a read on a stalled network file system) must not
 * hang the run.  -ETIMEDOUT: the thread was abandoned (see `abandoned`);
 * faults still blocked on the region are not released (pager_release). */
int pager_stop_within(struct pager *p, uint64_t timeout_ns);

/* Unregisters the region: every thread blocked in a fault on it is
 * released and sees a zero-filled page, so call it only for threads that
 * will not use the data: the last resort for a stopped vCPU that a kick
 * cannot free (host kernels before 6.2; its pending kick makes KVM_RUN
 * return before the guest runs again). */
void pager_release(struct pager *p);

void pager_destroy(struct pager *p);

/* The kick where KVM's wait for a page cannot be interrupted (arm64):
 * poisons `page`, which is being fetched, so the vCPU blocked on it gets
 * SIGBUS and leaves KVM_RUN; its later accesses get SIGBUS too until the
 * fetch installs the page over the poison.  Pager thread only (done for
 * a kicked fault with kick_by_poison; public for tests).
 * 0 or -errno (-EOPNOTSUPP: no UFFDIO_POISON, before Linux 6.6). */
int pager_poison_for_kick(struct pager *p, uint64_t page);

/* Whether a SIGBUS on `page` is such a kick's (not a failed page's);
 * safe from any thread. */
bool pager_page_kick_poisoned(const struct pager *p, uint64_t page);

/* Whether lazy page `page` is present; safe from any thread. */
bool pager_page_present(const struct pager *p, uint64_t page);

/* Whether its fetch is over: present or failed; safe from any thread. */
bool pager_page_settled(const struct pager *p, uint64_t page);

/* Pages of the region currently in each state (walks the state array). */
uint64_t pager_count_state(const struct pager *p, enum page_state st);

#endif
