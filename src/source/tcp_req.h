/*
 * tcp_req: the requests of a tcp source (source/tcp.h), from submit until
 * their last page completed: which pages each asks for, which are still
 * pending, the queue it waits on, its attempts and deadline, and how it
 * ends.  No I/O here: the connections (tcp_conn.h) send the requests and
 * read the replies, and tell this file what became of them.
 *
 * A request is up to PGS_MAX_COUNT contiguous pages that travel on one
 * connection.  From tcp_req_new until it is released it is on exactly one
 * of that connection's two lists (struct tcp_queue): `unsent` (waiting to
 * be sent, FIFO) or `wire` (its READ sent on the current connection, in
 * send order, so the head is the oldest and times out first).  Its pages
 * complete one by one (a page's buffer is written, and the page handed
 * out, only once); a request sent again asks only for the span of its
 * pages still pending, and a page of that span already handed out is read
 * past.
 *
 * Attempts.  Every attempt has a deadline (due_ns), set when the request
 * is queued (at submit, or when its previous attempt ended), not when it
 * is sent: its connection's next try (after the backoff) plus the
 * timeout.  An attempt that ended without all its pages is spent: the
 * request is queued again while attempts remain (net->tries), else its
 * pages still pending fail, the cause in their completions.
 *
 * Ownership: only this file writes a request or a queue; the connections
 * read a request's fields (what its READ asked for, its buffers).  The
 * table and the queues belong to one source and are used by the thread
 * that uses it (source.h): no locks.
 */
#ifndef APFVM_SOURCE_TCP_REQ_H
#define APFVM_SOURCE_TCP_REQ_H

#include <stdbool.h>
#include <stdint.h>

#include "net/page_proto.h"
#include "source/source.h"

#define TCP_REQ_NONE UINT32_MAX /* no request: the end of a list */

_Static_assert(PGS_MAX_COUNT <= 64, "a request's pending pages are the bits of a uint64_t");
_Static_assert(SOURCE_QUEUE_MAX <= 0x10000, "a READ's id carries its slot in 16 bits");

struct tcp_req_list {
	uint32_t head, tail; /* slot indices, or TCP_REQ_NONE */
};

/* One connection's requests (the connection holds it). */
struct tcp_queue {
	struct tcp_req_list unsent, wire;
};

struct tcp_req {
	bool used;
	bool on_wire;               /* on queue->wire, else on queue->unsent */
	uint8_t count;              /* pages [page, page + count) */
	uint8_t rd_first, rd_count; /* on the wire: its READ, pages rd_first.. of these */
	uint64_t pending;           /* bit k: page + k not completed yet (never 0) */
	uint64_t page;
	uint64_t submit_ns, sent_ns;
	uint64_t due_ns;            /* the current attempt is spent then */
	uint64_t id;                /* of the READ on the wire: slot | sequence << 16 */
	unsigned attempts;          /* attempts spent */
	struct tcp_queue *queue;    /* of the connection it travels on */
	uint32_t prev, next;        /* list links (slot indices) */
	void *buf[PGS_MAX_COUNT], *cookie[PGS_MAX_COUNT];
	char why[160];              /* the completions' cause, when it fails */
};

/* The requests of one source: a slot each, the free slots a stack. */
struct tcp_reqs {
	struct page_source *src;             /* completions go to it; it counts retries */
	const char *peer;                    /* names the server in a failure's cause */
	const struct source_net_options *net; /* tries, timeout_ns */
	uint64_t seq;                        /* READs sent: the upper bits of their ids */
	struct tcp_req req[SOURCE_QUEUE_MAX];
	uint32_t free_slots[SOURCE_QUEUE_MAX];
	unsigned nfree;
};

/* Every slot free (rs was zeroed: no slot used); src, peer and net must
 * outlive rs. */
void tcp_reqs_init(struct tcp_reqs *rs, struct page_source *src, const char *peer,
		   const struct source_net_options *net);

void tcp_queue_init(struct tcp_queue *q);

static inline bool tcp_queue_empty(const struct tcp_queue *q)
{
	return q->unsent.head == TCP_REQ_NONE && q->wire.head == TCP_REQ_NONE;
}

/* A request for pages [page, page + n) (1 <= n <= PGS_MAX_COUNT) into
 * bufs[k] with cookies[k], submitted at now, its first attempt spent at
 * due, at the end of q's unsent list.  The caller checked rs->nfree. */
void tcp_req_new(struct tcp_reqs *rs, struct tcp_queue *q, uint64_t page, unsigned n,
		 void *const *bufs, void *const *cookies, uint64_t now, uint64_t due);

/* Moves unsent request i to the end of its wire list and fills rd, its
 * READ: its pages still pending, from the first, at most max_count of
 * them (fewer than the request only when a reconnected server takes
 * fewer per READ).  The id is new. */
void tcp_req_send(struct tcp_reqs *rs, uint32_t i, unsigned max_count, uint64_t now,
		  struct pgs_read *rd);

/* The request a reply's id names, if it is on q's wire; else TCP_REQ_NONE
 * (the reply answers nothing this connection asked). */
uint32_t tcp_req_on_wire(const struct tcp_reqs *rs, const struct tcp_queue *q, uint64_t id);

/* Page k of request i arrived whole (its buffer written): it completes. */
void tcp_req_page_done(struct tcp_reqs *rs, uint32_t i, unsigned k);

/* Request i, on the wire, got every page its READ asked for: released
 * when none is pending, else back to the end of unsent for the rest (its
 * READ was cut short by the server's max_count), the attempt not spent. */
void tcp_req_read_done(struct tcp_reqs *rs, uint32_t i);

/* The attempt of request i ended without (all) its pages (cause: static
 * text, err: -errno).  It is queued again while attempts remain, its next
 * attempt starting at resume_ns (its connection's next try): sent, at the
 * end of unsent; unsent, where it is.  Else its pages still pending fail
 * with err and it is released. */
void tcp_req_attempt_failed(struct tcp_reqs *rs, uint32_t i, int err, const char *cause,
			    uint64_t resume_ns);

/* Request i fails now, attempts left or not: its pages still pending
 * complete with err ("page server PEER: cause"), and it is released. */
void tcp_req_fail(struct tcp_reqs *rs, uint32_t i, int err, const char *cause);

/* q's connection was dropped: every request on its wire spends an attempt
 * (tcp_req_attempt_failed); those left go back to the front of unsent, in
 * the order they were sent, ahead of those that never were. */
void tcp_queue_requeue(struct tcp_reqs *rs, struct tcp_queue *q, int err, const char *cause,
		       uint64_t resume_ns);

/* Every unsent request of q due at or before due_ns (UINT64_MAX: all)
 * spends an attempt. */
void tcp_queue_spend_unsent(struct tcp_reqs *rs, struct tcp_queue *q, uint64_t due_ns, int err,
			    const char *cause, uint64_t resume_ns);

/* Whether a request on q's wire is at its deadline at now. */
bool tcp_queue_wire_overdue(const struct tcp_reqs *rs, const struct tcp_queue *q, uint64_t now);

/* The earliest of due and the deadlines of q's requests (0: none). */
uint64_t tcp_queue_due(const struct tcp_reqs *rs, const struct tcp_queue *q, uint64_t due);

#endif
