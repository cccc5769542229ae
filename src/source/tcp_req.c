/*
 * The tcp source's requests: their lists, their pages' completions, and
 * their attempts (tcp_req.h).
 */
#include <stdio.h>
#include <string.h>

#include "source/tcp_req.h"

/* ---- lists ----------------------------------------------------------- */

static void list_init(struct tcp_req_list *l)
{
	l->head = l->tail = TCP_REQ_NONE;
}

static void list_push(struct tcp_reqs *rs, struct tcp_req_list *l, uint32_t i)
{
	rs->req[i].prev = l->tail;
	rs->req[i].next = TCP_REQ_NONE;
	if (l->tail != TCP_REQ_NONE)
		rs->req[l->tail].next = i;
	else
		l->head = i;
	l->tail = i;
}

static void list_remove(struct tcp_reqs *rs, struct tcp_req_list *l, uint32_t i)
{
	struct tcp_req *r = &rs->req[i];

	if (r->prev != TCP_REQ_NONE)
		rs->req[r->prev].next = r->next;
	else
		l->head = r->next;
	if (r->next != TCP_REQ_NONE)
		rs->req[r->next].prev = r->prev;
	else
		l->tail = r->prev;
}

void tcp_queue_init(struct tcp_queue *q)
{
	list_init(&q->unsent);
	list_init(&q->wire);
}

void tcp_reqs_init(struct tcp_reqs *rs, struct page_source *src, const char *peer,
		   const struct source_net_options *net)
{
	rs->src = src;
	rs->peer = peer;
	rs->net = net;
	rs->seq = 0;
	rs->nfree = 0;
	for (uint32_t i = 0; i < SOURCE_QUEUE_MAX; i++)
		rs->free_slots[rs->nfree++] = SOURCE_QUEUE_MAX - 1 - i;
}

/* ---- a request's life ---------------------------------------------------- */

void tcp_req_new(struct tcp_reqs *rs, struct tcp_queue *q, uint64_t page, unsigned n,
		 void *const *bufs, void *const *cookies, uint64_t now, uint64_t due)
{
	uint32_t i = rs->free_slots[--rs->nfree];
	struct tcp_req *r = &rs->req[i];

	r->used = true;
	r->on_wire = false;
	r->queue = q;
	r->count = (uint8_t)n;
	r->pending = n == 64 ? UINT64_MAX : (1ull << n) - 1;
	r->page = page;
	memcpy(r->buf, bufs, n * sizeof(*bufs));
	memcpy(r->cookie, cookies, n * sizeof(*cookies));
	r->submit_ns = now;
	r->due_ns = due;
	r->attempts = 0;
	list_push(rs, &q->unsent, i);
}

void tcp_req_send(struct tcp_reqs *rs, uint32_t i, unsigned max_count, uint64_t now,
		  struct pgs_read *rd)
{
	struct tcp_req *r = &rs->req[i];
	unsigned first = (unsigned)__builtin_ctzll(r->pending);
	unsigned span = 64 - (unsigned)__builtin_clzll(r->pending) - first;
	unsigned n = span < max_count ? span : max_count;

	list_remove(rs, &r->queue->unsent, i);
	r->id = i | (++rs->seq << 16);
	r->sent_ns = now;
	r->on_wire = true;
	r->rd_first = (uint8_t)first;
	r->rd_count = (uint8_t)n;
	list_push(rs, &r->queue->wire, i);
	pgs_read_init(rd, r->id, r->page + first, n);
}

uint32_t tcp_req_on_wire(const struct tcp_reqs *rs, const struct tcp_queue *q, uint64_t id)
{
	uint32_t i = (uint32_t)(id & 0xffff);

	if (i >= SOURCE_QUEUE_MAX)
		return TCP_REQ_NONE;
	const struct tcp_req *r = &rs->req[i];
	if (!r->used || !r->on_wire || r->id != id || r->queue != q)
		return TCP_REQ_NONE;
	return i;
}

/* Moves request i from its wire list to the end of unsent. */
static void unsend(struct tcp_reqs *rs, uint32_t i)
{
	struct tcp_queue *q = rs->req[i].queue;

	list_remove(rs, &q->wire, i);
	rs->req[i].on_wire = false;
	list_push(rs, &q->unsent, i);
}

static void complete_page(struct tcp_reqs *rs, struct tcp_req *r, unsigned k, int err)
{
	struct source_completion c = {
		.page = r->page + k, .buf = r->buf[k], .cookie = r->cookie[k], .err = err,
		.why = err ? r->why : NULL, .submit_ns = r->submit_ns,
	};

	r->pending &= ~(1ull << k);
	source_complete(rs->src, &c);
}

void tcp_req_page_done(struct tcp_reqs *rs, uint32_t i, unsigned k)
{
	complete_page(rs, &rs->req[i], k, 0);
}

static void release(struct tcp_reqs *rs, uint32_t i)
{
	struct tcp_req *r = &rs->req[i];

	list_remove(rs, r->on_wire ? &r->queue->wire : &r->queue->unsent, i);
	r->used = false;
	rs->free_slots[rs->nfree++] = i;
}

void tcp_req_read_done(struct tcp_reqs *rs, uint32_t i)
{
	if (!rs->req[i].pending)
		release(rs, i);
	else
		unsend(rs, i);
}

/* Request i ends: its pages still pending complete with err (the cause in
 * its why). */
static void finish(struct tcp_reqs *rs, uint32_t i, int err)
{
	struct tcp_req *r = &rs->req[i];

	for (unsigned k = 0; k < r->count; k++)
		if (r->pending & (1ull << k))
			complete_page(rs, r, k, err);
	release(rs, i);
}

void tcp_req_fail(struct tcp_reqs *rs, uint32_t i, int err, const char *cause)
{
	struct tcp_req *r = &rs->req[i];

	snprintf(r->why, sizeof(r->why), "page server %s: %s", rs->peer, cause);
	finish(rs, i, err);
}

void tcp_req_attempt_failed(struct tcp_reqs *rs, uint32_t i, int err, const char *cause,
			    uint64_t resume_ns)
{
	struct tcp_req *r = &rs->req[i];

	r->attempts++;
	if (r->attempts < rs->net->tries) {
		rs->src->retries++;
		r->due_ns = resume_ns + rs->net->timeout_ns;
		/* Sent: back to the unsent queue's end.  Unsent: stays put
		 * (tcp_queue_spend_unsent walks that queue). */
		if (r->on_wire)
			unsend(rs, i);
		return;
	}
	snprintf(r->why, sizeof(r->why), "page server %s: %s (%u %s)", rs->peer, cause,
		 r->attempts, r->attempts == 1 ? "try" : "tries");
	finish(rs, i, err);
}

/* ---- a connection's queue ------------------------------------------------ */

void tcp_queue_requeue(struct tcp_reqs *rs, struct tcp_queue *q, int err, const char *cause,
		       uint64_t resume_ns)
{
	struct tcp_req_list retry;

	list_init(&retry);
	while (q->wire.head != TCP_REQ_NONE) {
		uint32_t i = q->wire.head;
		tcp_req_attempt_failed(rs, i, err, cause, resume_ns);
		if (rs->req[i].used) {
			list_remove(rs, &q->unsent, i);
			list_push(rs, &retry, i);
		}
	}
	while (q->unsent.head != TCP_REQ_NONE) {
		uint32_t i = q->unsent.head;
		list_remove(rs, &q->unsent, i);
		list_push(rs, &retry, i);
	}
	q->unsent = retry;
}

void tcp_queue_spend_unsent(struct tcp_reqs *rs, struct tcp_queue *q, uint64_t due_ns, int err,
			    const char *cause, uint64_t resume_ns)
{
	for (uint32_t i = q->unsent.head; i != TCP_REQ_NONE;) {
		uint32_t next = rs->req[i].next;
		if (rs->req[i].due_ns <= due_ns)
			tcp_req_attempt_failed(rs, i, err, cause, resume_ns);
		i = next;
	}
}

bool tcp_queue_wire_overdue(const struct tcp_reqs *rs, const struct tcp_queue *q, uint64_t now)
{
	for (uint32_t i = q->wire.head; i != TCP_REQ_NONE; i = rs->req[i].next)
		if (now >= rs->req[i].due_ns)
			return true;
	return false;
}

uint64_t tcp_queue_due(const struct tcp_reqs *rs, const struct tcp_queue *q, uint64_t due)
{
	const struct tcp_req_list *lists[2] = { &q->wire, &q->unsent };

	for (int l = 0; l < 2; l++)
		for (uint32_t i = lists[l]->head; i != TCP_REQ_NONE; i = rs->req[i].next)
			if (!due || rs->req[i].due_ns < due)
				due = rs->req[i].due_ns;
	return due;
}
