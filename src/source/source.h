/*
 * source: where the pages of a lazy region come from.
 *
 * Every source is asynchronous by contract: submit() starts a fetch and
 * returns at once; the finished fetch is handed back later by reap().  A
 * source that has its data at hand (zero, a local file) completes inside
 * submit(); the completion still travels through reap(), so the pager
 * treats every source alike.  Several fetches may be in flight at once; the
 * caller bounds how many (it owns the page buffers).
 *
 * Threading: a source is used by one thread (the pager's) only.
 *
 * This header is the interface and what every kind shares; each kind's
 * constructor is in its own header (source/zero.h, file.h, tcp.h, raw.h,
 * delay.h, window.h, objstore/obj_source.h), and source_open
 * (source/open.h) opens the sources a user names by spec.
 */
#ifndef APFVM_SOURCE_H
#define APFVM_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include "objstore/obj_store.h"
#include "util/err.h"

struct page_source;

struct source_completion {
	uint64_t page;  /* page index within the source */
	void *buf;      /* the buffer given to submit(), now holding the page */
	void *cookie;   /* opaque, from submit() */
	int err;        /* 0 or -errno; buf content undefined on error */
	const char *why; /* with err: the cause in words ("page server 10.0.0.2:7000:
			  * no reply within 5 s, 3 tries"), or NULL (strerror
			  * says it); valid until the next call into the source */
	bool zero;      /* the page is all zeros; buf was not written */
	uint64_t submit_ns; /* CLOCK_MONOTONIC at submit */
};

/* Who waits for a fetch.  A demand fetch (a fault waits on it) never
 * queues behind bulk ones: a source with a shared channel gives it its own
 * (tcp: a second connection; objects: a reserved request slot). */
enum source_prio {
	SOURCE_DEMAND = 0, /* a vCPU is blocked on the page */
	SOURCE_BULK = 1,   /* prefetch, background population: nobody waits yet */
};

#define SOURCE_RUN_MAX 64 /* pages per submit_run */

struct page_source_ops {
	const char *name;
	/* Starts fetching page `page` (< npages) into buf (4096 bytes), at
	 * demand priority. */
	int (*submit)(struct page_source *s, uint64_t page, void *buf, void *cookie);
	/* Optional: starts fetching the contiguous pages [page, page + n)
	 * (1 <= n <= SOURCE_RUN_MAX, all < npages) into bufs[i] with
	 * cookies[i], at priority prio, in as few requests as the kind
	 * allows (one multi-page READ on tcp:, one preadv on a file, one
	 * chunk range on objects).  Completions still come one per page,
	 * as from submit().  0; or -errno, and then none of the n started.
	 * NULL: source_submit_run falls back to n submit() calls. */
	int (*submit_run)(struct page_source *s, uint64_t page, unsigned n, void *const *bufs,
			  void *const *cookies, enum source_prio prio);
	/* Called when event_fd is readable: moves finished fetches to the
	 * completion queue.  May be NULL for sources without an fd. */
	void (*on_event)(struct page_source *s);
	/* Nanoseconds a fetch submitted now is expected to take. */
	uint64_t (*expected_ns)(struct page_source *s, uint64_t page);
	void (*destroy)(struct page_source *s);
};

#define SOURCE_QUEUE_MAX 1024 /* completions queued at once: bounds in-flight */

struct page_source {
	const struct page_source_ops *ops;
	char desc[128];      /* for messages: "file:img (seed 42)" */
	uint64_t npages;     /* pages the source can serve */
	uint32_t pattern;    /* enum apf_pattern: what the guest should expect */
	uint64_t seed;       /* for APF_PATTERN_SEEDED */
	int event_fd;        /* readable when on_event has work, or -1 */
	/* Completion queue (FIFO ring), filled through source_complete(). */
	struct source_completion queue[SOURCE_QUEUE_MAX];
	unsigned head, count;
	/* Sticky failure of the source itself (a lost timer, an overflowing
	 * queue): 0 or -errno, with what failed.  Once set, completions may
	 * be missing: the user (the pager) must stop serving and report it. */
	int error;
	const char *error_what;
	uint64_t fetched;     /* completions handed out */
	uint64_t retries;     /* remote: fetches tried again */
	uint64_t corrupt;     /* remote: pages that arrived corrupt (never handed out) */
	uint64_t reconnects;  /* remote: connections made again */
	uint64_t busy_ns;     /* sum of (completion - submit) over them */
};

/* How the remote sources (tcp:, s3://, http(s)://) bear a misbehaving
 * peer: a fetch with no answer within timeout_ns is tried again (tcp: over
 * a new connection), as is one whose data arrives corrupt; after `tries`
 * attempts it fails, with the cause.  Fetches never wait on a dead peer
 * longer than about tries x (timeout + backoff), the backoff at most
 * SOURCE_NET_BACKOFF_MAX_NS for tcp: and 2 s for objects. */
struct source_net_options {
	uint64_t timeout_ns; /* 1 ms .. SOURCE_NET_TIMEOUT_MAX_NS */
	unsigned tries;      /* 1 .. SOURCE_NET_TRIES_MAX */
	struct obj_store_options store; /* s3:// and http(s):// */
};
#define SOURCE_NET_TIMEOUT_DEFAULT_NS (5ull * 1000000000ull)
#define SOURCE_NET_TIMEOUT_MAX_NS     (600ull * 1000000000ull)
#define SOURCE_NET_TRIES_DEFAULT      3
#define SOURCE_NET_TRIES_MAX          100
#define SOURCE_NET_BACKOFF_MAX_NS     (1000ull * 1000000ull)

void source_close(struct page_source *s);

static inline int source_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	return s->ops->submit(s, page, buf, cookie);
}

/* ops->submit_run, or n submit() calls where the kind has none (on an
 * error there, the pages already started stay started: their number is
 * returned in *started; with submit_run it is 0 or n). */
int source_submit_run(struct page_source *s, uint64_t page, unsigned n, void *const *bufs,
		      void *const *cookies, enum source_prio prio, unsigned *started);

/* For users other than the pager (which waits on event_fd among its own
 * fds): waits up to timeout_ms (-1: no bound but the source's own
 * timeouts) for event_fd, then lets the source queue what finished.  0;
 * -ETIME when the time ran out; -EINVAL for a source without an fd (it
 * completes inside submit: waiting would never end); -errno. */
int source_wait(struct page_source *s, int timeout_ms);

/* Takes the oldest finished fetch; returns false if none. */
bool source_reap(struct page_source *s, struct source_completion *out);

/* For implementations: queues a finished fetch (stamps nothing). */
void source_complete(struct page_source *s, const struct source_completion *c);

/* Marks the source failed (the first failure is kept). */
void source_set_error(struct page_source *s, int err, const char *what);

/* Shared part of every source's setup. */
void source_init(struct page_source *s, const struct page_source_ops *ops, uint64_t npages);

uint64_t source_now_ns(void);

#endif
