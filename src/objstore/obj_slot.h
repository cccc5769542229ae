/*
 * obj_slot: one fetch slot's work, inside the fetcher (obj_fetch.h).  The
 * fetcher (obj_fetch.c) decides which chunks a free slot takes and when,
 * and routes events to the slot they belong to; the slot (obj_slot.c)
 * gets those chunks, checked, to the source, or fails them.
 *
 * A slot is started on chunks that lie back to back in KEY.data
 * (obj_slot_start).  From then until it frees itself (used false again)
 * those chunks are the slot's: it reads the disk tier's copies first
 * (on the worker), asks for the rest with one HTTP Range request, has
 * every chunk of the reply checked on the worker, hands each good one to
 * done() as it passes, fetches damaged ones again, retries a failed
 * attempt after a backoff, and after `tries` attempts fails every chunk
 * still needed through done().  A chunk's fetch_of is set to OBJ_SLOT_NONE
 * before it goes to done().
 *
 * The fetcher hands the slot its events: a job of its back from the
 * worker (obj_slot_checked), its transfer finished in curl
 * (obj_slot_replied; CURLOPT_PRIVATE is the slot), its backoff over
 * (obj_slot_retry, when used && !active && !working and due_ns has
 * passed).  None of them starts another slot or arms the timer: the
 * fetcher does both after them (only curl's own timer callback may run
 * while a transfer is added).  The fetcher reads used, active, working,
 * due_ns and prio to schedule and to arm its timer, and sets urgent when
 * a demand page joins the slot; the rest is the slot's.
 *
 * Thread: the pager's, as the whole source.
 */
#ifndef APFVM_OBJ_SLOT_H
#define APFVM_OBJ_SLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objstore/obj_disk.h"
#include "objstore/obj_http.h"
#include "objstore/obj_layout.h"
#include "objstore/obj_worker.h"
#include "source/source.h"

#define OBJ_FETCHES_MAX  32 /* fetch slots: requests (or disk reads) at once */
#define OBJ_RANGE_CHUNKS 8  /* chunks in one slot (obj_fetch.c bounds its bytes) */
#define OBJ_SLOT_NONE    UINT32_MAX /* fetch_of: in no slot and no queue */

_Static_assert(OBJ_WORKER_QUEUE >= OBJ_FETCHES_MAX * OBJ_RANGE_CHUNKS,
	       "the worker takes a job for every chunk of every slot");

/* A fetch slot: chunk[0..n) lie back to back in KEY.data; need has bit k
 * while chunk[k] is still to be handed over (its fetch_of is this slot);
 * the others were handed over or given up.  Its buffer holds the last
 * reply and is freed only once no job points into it (working == 0). */
struct obj_slot {
	bool used, active;  /* used: holds chunks; active: a transfer in curl */
	bool on_disk;       /* its jobs read the disk tier (else check a reply) */
	bool urgent;        /* a demand page waits: its checks go first */
	enum source_prio prio; /* the queue it came from: counts against the
				* bulk slots while bulk */
	unsigned n;
	uint32_t chunk[OBJ_RANGE_CHUNKS];
	uint32_t need;
	unsigned working;   /* of its jobs, at the worker */
	struct obj_job job[OBJ_RANGE_CHUNKS];
	unsigned attempts;  /* requests made for the chunks still needed */
	uint64_t due_ns;    /* !active and !working: when to try again */
	uint64_t start_ns;
	CURL *h;
	unsigned char *buf;
	size_t len, want;
	bool overflow, ignored_range, error_body;
	bool whole_ok;      /* the request is for the whole data object */
	char why[160];      /* the last attempt's failure */
};

/* The slots and what their work needs; the fetcher sets it up and owns
 * it (obj_fetch_open, obj_fetch_close). */
struct obj_slots {
	struct page_source *src;          /* its sticky error, retries and corrupt counts */
	const struct obj_manifest *m;
	const struct obj_target *target;
	/* obj_fetch_setup.done (obj_chunk_done_fn): a chunk leaves the fetcher */
	void (*done)(struct page_source *src, uint32_t chunk, unsigned char *pages, int err,
		     const char *why);
	uint64_t timeout_ns;
	unsigned tries;
	CURLM *multi;
	struct obj_worker worker;
	struct obj_disk disk;             /* dirfd -1: no disk tier */
	uint32_t *fetch_of;               /* per chunk: its slot, OBJ_SLOT_NONE, or a
					   * queue (the fetcher's values) */
	uint64_t ewma_ns;                 /* of the requests' times (obj_fetch_expected_ns) */
	struct obj_slot slot[OBJ_FETCHES_MAX];
};

/* Its curl handle: 0 or -ENOMEM. */
int obj_slot_open(struct obj_slot *f);
/* After the worker stopped: its transfer dropped, its memory freed. */
void obj_slot_close(struct obj_slots *ss, struct obj_slot *f);

/* Starts free slot f on chunks[0..n) (1..OBJ_RANGE_CHUNKS of them, back
 * to back in KEY.data, each wanted and in no slot) from the fetcher's
 * queue prio: the disk tier's copies first, else the transfer.  Hands
 * nothing over itself. */
void obj_slot_start(struct obj_slots *ss, struct obj_slot *f, const uint32_t *chunks, unsigned n,
		    enum source_prio prio);
/* f's backoff is over: the transfer again. */
void obj_slot_retry(struct obj_slots *ss, struct obj_slot *f);
/* The worker gave back job j (its tag names the slot and the chunk). */
void obj_slot_checked(struct obj_slots *ss, struct obj_job *j);
/* f's transfer finished in curl with cc. */
void obj_slot_replied(struct obj_slots *ss, struct obj_slot *f, CURLcode cc);

#endif
