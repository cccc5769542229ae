/*
 * obj_fetch: the object source's fetches (obj_source.c is their one
 * user).  The source says which chunks pages wait on, and at what
 * priority; the fetcher hands back each chunk's checked pages, or why
 * they cannot be had.  How: obj_fetch.c puts chunks in fetch slots,
 * adjacent ones together, demand before bulk; each slot (obj_slot.h)
 * reads the disk tier first, asks for the rest with one HTTP Range
 * request, has the worker check every chunk, and retries with backoff.
 *
 * Ownership: the fetcher owns its slots and their two queues, libcurl's
 * multi handle and the epoll set that drives it (the source's event_fd),
 * the retries' timer, the worker (obj_worker.h) and the disk tier
 * (obj_disk.h).  It borrows the source, the manifest and the target,
 * which outlive it.
 *
 * Thread: the pager's, as the source (source.h); the worker's thread is
 * seen only through obj_worker.h.
 *
 * Between the source and the fetcher:
 *  - obj_fetch_want() for a chunk that is neither all-zero nor cached,
 *    and on which a page now waits.  Nothing fetches it yet: it is queued
 *    at prio.  It is queued already or being fetched: the page joins
 *    that, whatever its priority, except that a demand page moves a chunk
 *    queued as bulk to the demand queue, or makes the checks of the bulk
 *    fetch holding it urgent.  Since a wanted chunk has a waiting page, at
 *    most SOURCE_QUEUE_MAX chunks are wanted at once.
 *  - done() is called once for every chunk wanted, when the fetcher lets
 *    go of it: with its pages (checked against the manifest, malloc'd,
 *    now the callee's), or with pages NULL, err (-errno) and why (the
 *    image, the chunk and its pages named, and the cause).  Only from
 *    inside obj_fetch_on_event(), never from obj_fetch_want() or
 *    obj_fetch_start(); done() must not call into the fetcher.  When it
 *    is called the chunk is no longer the fetcher's: wanting it again
 *    fetches it again.
 *  - Wanted chunks start in obj_fetch_start() (after a submit's wants)
 *    and in obj_fetch_on_event(), as slots free; never from inside a
 *    completion, so nothing recurses.
 *  - A failure of the fetcher itself (out of memory, a lost timer, a full
 *    queue) is the source's sticky error (source_set_error): done() may
 *    then never come for some chunks.  The source's retries and corrupt
 *    counts are the fetcher's to keep.
 */
#ifndef APFVM_OBJ_FETCH_H
#define APFVM_OBJ_FETCH_H

#include <stdint.h>

#include "objstore/obj_http.h"
#include "objstore/obj_layout.h"
#include "source/source.h"
#include "util/err.h"
#include "util/sha256.h"

struct obj_fetcher;

/* Chunk `chunk` leaves the fetcher (above): pages, or NULL with err and
 * why (valid during the call only). */
typedef void obj_chunk_done_fn(struct page_source *src, uint32_t chunk, unsigned char *pages,
			       int err, const char *why);

/* What a fetcher works for; the pointers are borrowed (net only during
 * obj_fetch_open). */
struct obj_fetch_setup {
	struct page_source *src;          /* done's first argument, its error and counts */
	const struct obj_manifest *m;     /* checked (obj_manifest_parse) */
	const struct obj_target *target;
	const struct source_net_options *net; /* timeout, tries; store.cache_dir: the disk tier */
	const struct sha256 *manifest_id; /* with store.cache_dir: the manifest's SHA-256,
					   * which names the image's folder there */
	uint64_t first_ns;                /* a fetch's expected time until one is measured */
	obj_chunk_done_fn *done;
};

/* Opens the disk tier (if asked for), starts the worker and sets up
 * libcurl: 0, or -errno with a message (nothing left open). */
int obj_fetch_open(const struct obj_fetch_setup *setup, struct obj_fetcher **out,
		   struct apf_err *e);
/* Stops the worker first, then frees everything; chunks still wanted get
 * no done().  NULL: nothing to do. */
void obj_fetch_close(struct obj_fetcher *fx);

/* The source's event_fd: readable when obj_fetch_on_event() has work. */
int obj_fetch_event_fd(const struct obj_fetcher *fx);

/* A page waits on chunk, at prio (above).  Starts nothing. */
void obj_fetch_want(struct obj_fetcher *fx, uint32_t chunk, enum source_prio prio);
/* Starts the queued chunks that slots are free for. */
void obj_fetch_start(struct obj_fetcher *fx);
/* When event_fd is readable: moves the transfers, takes the worker's
 * checks, tries again what is due, hands finished chunks to done(), then
 * starts queued ones. */
void obj_fetch_on_event(struct obj_fetcher *fx);

/* Nanoseconds a chunk's fetch is expected to take (a moving average of
 * the requests', the disk's reads left out). */
uint64_t obj_fetch_expected_ns(const struct obj_fetcher *fx);

#endif
