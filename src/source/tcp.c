/*
 * The tcp source: pages from a page server (`apfvm serve`, the protocol of
 * net/page_proto.h and docs/page-server.md).
 *
 * Requests.  A submit() is a request for one page; a submit_run() of n
 * contiguous pages is ceil(n / max_count) requests of up to max_count
 * pages each (max_count: the pages per READ the server's first WELCOME
 * offers), each sent as one multi-page READ.  Requests are sent at once
 * without waiting for earlier answers (pipelined), and replies are matched
 * to them by id, in any order.  Each page of a reply carries its crc32c
 * and completes on its own: the good pages of a reply are handed out even
 * if another arrived corrupt, and a request tried again asks only for the
 * span of its pages still pending (a page of it already handed out is
 * read past, its buffer never written again).
 *
 * Two connections.  Demand requests (submit(), runs at SOURCE_DEMAND)
 * travel on the connection made at open; bulk ones (runs at SOURCE_BULK)
 * on a second connection to the same server, made when the first bulk
 * request comes.  A server answers each connection's READs in order, so a
 * demand READ never waits behind bulk replies, in the server or in the
 * TCP stream.  Each connection has its own state, request lists, buffers
 * and backoff (struct tcp_conn), driven by the same code: one failing
 * spends attempts of its own requests only.  Both must serve what the
 * first WELCOME announced.  expected_ns is the demand connection's
 * measured round trip (bulk replies do not feed it).
 *
 * Nothing blocks: the sockets are non-blocking, and the source's event_fd
 * is an epoll set holding them and one timerfd, the timer armed at the
 * next thing due (a request's deadline, a handshake's, or the next
 * reconnect).
 *
 * The bound, by construction: every attempt of a request has a deadline,
 * set when the request is queued (at submit, or when its previous attempt
 * ended, plus the backoff before its connection's next one), not when it
 * is sent.  An attempt that reaches its deadline, sent or not, is spent.
 * So a fetch completes or fails within tries x (timeout_ns + the backoff,
 * at most SOURCE_NET_BACKOFF_MAX_NS) of its submit, whatever the peer
 * does: refuse, close before or after its welcome, answer BUSY, trickle
 * bytes, or send junk; on either connection.
 *
 * What the peer sends is untrusted.  Failures, and what happens:
 *  - a page whose crc32c does not match, or a PGS_IO answer: that request
 *    is sent again for its pages still pending (an attempt spent); the
 *    connection is fine;
 *  - a malformed or unexpected message, a closed or failed connection, or
 *    a sent request at its deadline: that connection is dropped, every
 *    request on it spends an attempt and is sent again over a new
 *    connection of its kind, made after a backoff (100 ms doubling to
 *    SOURCE_NET_BACKOFF_MAX_NS, each connection its own; only a page
 *    received on it resets it) that a failed connect or a BUSY answer also
 *    spends;
 *  - a request not yet sent at its deadline (no connection would carry
 *    it) spends an attempt, with its connection's last failure as cause;
 *  - a request out of attempts fails its pages still pending, with the
 *    cause in their completions; a PGS_RANGE answer fails them at once
 *    (the server has no such page);
 *  - a reconnected server that takes fewer pages per READ than at the
 *    start: a larger request goes as several READs, one after another,
 *    within its attempt;
 *  - a reconnected server (either connection) that serves other pages
 *    than at the start (size, pattern or seed) fails the source as a
 *    whole.
 * A page reaches the completion queue, and so the guest, only after its
 * checksum matched.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "net/net_addr.h"
#include "net/page_proto.h"
#include "net/sock_io.h"
#include "source/tcp.h"

#define BACKOFF_MIN_NS  (100ull * 1000000ull)
#define NO_SLOT         UINT32_MAX
#define NCONN           2 /* indexed by enum source_prio */
/* The largest reply, and the receive buffer: room for it whole, and more. */
#define REPLY_MAX       (sizeof(struct pgs_reply) + PGS_MAX_COUNT * (4 + APF_PAGE_SIZE))
#define RX_SIZE         (REPLY_MAX + 16 * (sizeof(struct pgs_reply) + 4 + APF_PAGE_SIZE))
/* Send buffer: the HELLO's leftover and a READ per request. */
#define TX_SIZE         ((SOURCE_QUEUE_MAX + 1) * sizeof(struct pgs_read))
/* epoll tags: the timer, and connection k as EV_CONN + k. */
#define EV_TIMER        0u
#define EV_CONN         1u

_Static_assert(PGS_MAX_COUNT <= 64, "a request's pending pages are the bits of a uint64_t");
_Static_assert(SOURCE_QUEUE_MAX <= 0x10000, "a READ's id carries its slot in 16 bits");
_Static_assert(SOURCE_DEMAND == 0 && SOURCE_BULK == 1, "connections are indexed by priority");

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_HELLO, CONN_READY };

/* One request, from submit until its last page completed: up to
 * PGS_MAX_COUNT contiguous pages on one connection.  It is on one of that
 * connection's two lists: `unsent` (waiting to be sent, FIFO) or `wire`
 * (its READ sent on the current connection, in send order, so the head is
 * the oldest and times out first). */
struct tcp_req {
	bool used;
	bool on_wire;
	uint8_t conn;               /* enum source_prio: the connection it travels on */
	uint8_t count;              /* pages [page, page + count) */
	uint8_t rd_first, rd_count; /* on the wire: its READ, pages rd_first.. of these */
	uint64_t pending;           /* bit k: page + k not completed yet (never 0) */
	uint64_t page;
	uint64_t submit_ns, sent_ns;
	uint64_t due_ns;            /* the current attempt is spent then */
	uint64_t id;                /* of the READ on the wire: slot | sequence << 16 */
	unsigned attempts;          /* attempts spent */
	uint32_t prev, next;        /* list links (slot indices) */
	void *buf[PGS_MAX_COUNT], *cookie[PGS_MAX_COUNT];
	char why[160];              /* the completions' cause, when it fails */
};

struct req_list {
	uint32_t head, tail;
};

/* One connection to the server and the requests it carries. */
struct tcp_conn {
	int sock;                /* -1 when down */
	uint32_t events;         /* the socket's, in ep */
	enum conn_state state;
	uint64_t state_due_ns;   /* CONNECTING/HELLO: give up then; DOWN: reconnect then */
	uint64_t backoff_ns;
	uint32_t max_count;      /* pages per READ, from its last WELCOME */
	unsigned made;           /* connections started */
	struct req_list unsent, wire;
	const char *last_cause;  /* why its last connection failed (static text) */
	int last_err;
	unsigned char tx[TX_SIZE]; /* READs not yet accepted by the socket */
	size_t tx_len, tx_off;
	unsigned char rx[RX_SIZE];
	size_t rx_len;
};

struct tcp_source {
	struct page_source base; /* first */
	struct source_net_options net;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char peer[64];
	int ep, timer;
	uint64_t armed_ns;
	uint64_t seq;
	struct pgs_welcome first;     /* what the server served at open */
	struct tcp_conn conn[NCONN];  /* [SOURCE_DEMAND]: made at open; [SOURCE_BULK] */
	struct tcp_req req[SOURCE_QUEUE_MAX];
	uint32_t free_slots[SOURCE_QUEUE_MAX];
	unsigned nfree;
	uint64_t rtt_ns;              /* EWMA of answered demand fetches */
};

/* ---- request lists ------------------------------------------------------ */

static void list_init(struct req_list *l)
{
	l->head = l->tail = NO_SLOT;
}

static void list_push(struct tcp_source *t, struct req_list *l, uint32_t i)
{
	t->req[i].prev = l->tail;
	t->req[i].next = NO_SLOT;
	if (l->tail != NO_SLOT)
		t->req[l->tail].next = i;
	else
		l->head = i;
	l->tail = i;
}

static void list_remove(struct tcp_source *t, struct req_list *l, uint32_t i)
{
	struct tcp_req *r = &t->req[i];

	if (r->prev != NO_SLOT)
		t->req[r->prev].next = r->next;
	else
		l->head = r->next;
	if (r->next != NO_SLOT)
		t->req[r->next].prev = r->prev;
	else
		l->tail = r->prev;
}

static unsigned conn_index(const struct tcp_source *t, const struct tcp_conn *c)
{
	return (unsigned)(c - t->conn);
}

/* Moves request i from its connection's wire list to the end of unsent. */
static void unsend(struct tcp_source *t, uint32_t i)
{
	struct tcp_conn *c = &t->conn[t->req[i].conn];

	list_remove(t, &c->wire, i);
	t->req[i].on_wire = false;
	list_push(t, &c->unsent, i);
}

/* ---- completing ------------------------------------------------------- */

static void complete_page(struct tcp_source *t, struct tcp_req *r, unsigned k, int err)
{
	struct source_completion c = {
		.page = r->page + k, .buf = r->buf[k], .cookie = r->cookie[k], .err = err,
		.why = err ? r->why : NULL, .submit_ns = r->submit_ns,
	};

	r->pending &= ~(1ull << k);
	source_complete(&t->base, &c);
}

static void release(struct tcp_source *t, uint32_t i)
{
	struct tcp_req *r = &t->req[i];
	struct tcp_conn *c = &t->conn[r->conn];

	list_remove(t, r->on_wire ? &c->wire : &c->unsent, i);
	r->used = false;
	t->free_slots[t->nfree++] = i;
}

/* Request i ends: its pages still pending complete with err (the cause in
 * its why). */
static void finish(struct tcp_source *t, uint32_t i, int err)
{
	struct tcp_req *r = &t->req[i];

	for (unsigned k = 0; k < r->count; k++)
		if (r->pending & (1ull << k))
			complete_page(t, r, k, err);
	release(t, i);
}

/* The request's attempt ended without (all) its pages (cause: static
 * text).  It is queued again while attempts remain, its next attempt
 * starting at resume_ns (the next connection's time), else fails with
 * err. */
static void attempt_failed(struct tcp_source *t, uint32_t i, int err, const char *cause,
			   uint64_t resume_ns)
{
	struct tcp_req *r = &t->req[i];

	r->attempts++;
	if (r->attempts < t->net.tries) {
		t->base.retries++;
		r->due_ns = resume_ns + t->net.timeout_ns;
		/* Sent: back to the unsent queue's end.  Unsent: stays put
		 * (connect_failed walks that queue). */
		if (r->on_wire)
			unsend(t, i);
		return;
	}
	snprintf(r->why, sizeof(r->why), "page server %s: %s (%u %s)", t->peer, cause,
		 r->attempts, r->attempts == 1 ? "try" : "tries");
	finish(t, i, err);
}

/* ---- a connection ---------------------------------------------------------- */

static void drop(struct tcp_source *t, struct tcp_conn *c, int err, const char *cause);

static void set_events(struct tcp_source *t, struct tcp_conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u32 = EV_CONN + conn_index(t, c) };

	if (events == c->events)
		return;
	if (epoll_ctl(t->ep, EPOLL_CTL_MOD, c->sock, &ev) < 0) {
		drop(t, c, -errno, "cannot watch the socket");
		return;
	}
	c->events = events;
}

/* Drops the connection; every request on it spends an attempt (cause),
 * those left are sent again after the backoff. */
static void drop(struct tcp_source *t, struct tcp_conn *c, int err, const char *cause)
{
	/* A connection closed with nothing on it or waiting (the server's
	 * idle timeout) costs nothing: the next fetch connects at once.  Not
	 * so a connection that failed to be made (refused, BUSY). */
	bool idle = c->wire.head == NO_SLOT && c->unsent.head == NO_SLOT &&
		    c->state == CONN_READY;
	uint64_t resume = source_now_ns() + (idle ? 0 : c->backoff_ns);

	c->last_err = err;
	c->last_cause = cause;
	if (c->sock >= 0) {
		epoll_ctl(t->ep, EPOLL_CTL_DEL, c->sock, NULL);
		close(c->sock);
		c->sock = -1;
	}
	c->state = CONN_DOWN;
	c->tx_len = c->tx_off = c->rx_len = 0;
	/* Requests on the wire go back to the front of the unsent queue, in
	 * their order, unless out of attempts. */
	struct req_list retry;
	list_init(&retry);
	while (c->wire.head != NO_SLOT) {
		uint32_t i = c->wire.head;
		attempt_failed(t, i, err, cause, resume);
		if (t->req[i].used) {
			list_remove(t, &c->unsent, i);
			list_push(t, &retry, i);
		}
	}
	while (c->unsent.head != NO_SLOT) {
		uint32_t i = c->unsent.head;
		list_remove(t, &c->unsent, i);
		list_push(t, &retry, i);
	}
	c->unsent = retry;
	c->state_due_ns = resume;
	if (!idle)
		c->backoff_ns = c->backoff_ns * 2 > SOURCE_NET_BACKOFF_MAX_NS
					? SOURCE_NET_BACKOFF_MAX_NS
					: c->backoff_ns * 2;
}

/* A connect that failed or timed out spends an attempt of every request
 * waiting for it. */
static void connect_failed(struct tcp_source *t, struct tcp_conn *c, int err, const char *cause)
{
	uint32_t i = c->unsent.head;
	uint64_t resume = source_now_ns() + c->backoff_ns;

	while (i != NO_SLOT) {
		uint32_t next = t->req[i].next;
		attempt_failed(t, i, err, cause, resume);
		i = next;
	}
	drop(t, c, err, cause);
}

static void start_connect(struct tcp_source *t, struct tcp_conn *c)
{
	int one = 1;
	struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = EV_CONN + conn_index(t, c) };

	c->sock = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->sock < 0) {
		connect_failed(t, c, -errno, "cannot make a socket");
		return;
	}
	setsockopt(c->sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->events = ev.events;
	if (epoll_ctl(t->ep, EPOLL_CTL_ADD, c->sock, &ev) < 0) {
		connect_failed(t, c, -errno, "cannot watch the socket");
		return;
	}
	if (c->made++)
		t->base.reconnects++; /* a bulk connection's first is no reconnect */
	c->state = CONN_CONNECTING;
	c->state_due_ns = source_now_ns() + t->net.timeout_ns;
	if (connect(c->sock, (struct sockaddr *)&t->addr, t->addr_len) < 0 && errno != EINPROGRESS)
		connect_failed(t, c, -errno, errno == ECONNREFUSED ? "connection refused"
								   : "cannot connect");
}

/* The connection is up: greet the server (the HELLO goes first in tx). */
static void connected(struct tcp_source *t, struct tcp_conn *c)
{
	struct pgs_hello h;

	pgs_hello_init(&h);
	memcpy(c->tx, &h, sizeof(h));
	c->tx_len = sizeof(h);
	c->tx_off = 0;
	c->state = CONN_HELLO;
	set_events(t, c, EPOLLIN | EPOLLOUT);
}

/* Moves unsent request i to the wire, its READ appended to tx: its pages
 * still pending, from the first, as many as the connection takes (fewer
 * than the request only when a reconnected server takes fewer). */
static void queue_read(struct tcp_source *t, struct tcp_conn *c, uint32_t i, uint64_t now)
{
	struct tcp_req *r = &t->req[i];
	unsigned first = (unsigned)__builtin_ctzll(r->pending);
	unsigned span = 64 - (unsigned)__builtin_clzll(r->pending) - first;
	unsigned n = span < c->max_count ? span : c->max_count;
	struct pgs_read rd;

	list_remove(t, &c->unsent, i);
	r->id = i | (++t->seq << 16);
	r->sent_ns = now;
	r->on_wire = true;
	r->rd_first = (uint8_t)first;
	r->rd_count = (uint8_t)n;
	list_push(t, &c->wire, i);
	pgs_read_init(&rd, r->id, r->page + first, n);
	memcpy(c->tx + c->tx_len, &rd, sizeof(rd));
	c->tx_len += sizeof(rd);
}

/* Sends what tx holds; queues READs for unsent requests when ready. */
static void flush(struct tcp_source *t, struct tcp_conn *c)
{
	if (c->state == CONN_DOWN) {
		if (c->unsent.head != NO_SLOT && source_now_ns() >= c->state_due_ns)
			start_connect(t, c);
		return;
	}
	if (c->state == CONN_CONNECTING)
		return;
	if (c->state == CONN_READY) {
		uint64_t now = source_now_ns();
		/* Compact, then append a READ per unsent request (the buffer
		 * holds one per slot, so they always fit). */
		if (c->tx_off) {
			memmove(c->tx, c->tx + c->tx_off, c->tx_len - c->tx_off);
			c->tx_len -= c->tx_off;
			c->tx_off = 0;
		}
		while (c->unsent.head != NO_SLOT)
			queue_read(t, c, c->unsent.head, now);
	}
	while (c->tx_off < c->tx_len) {
		ssize_t n = send(c->sock, c->tx + c->tx_off, c->tx_len - c->tx_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			set_events(t, c, EPOLLIN | EPOLLOUT);
			return;
		}
		if (n < 0) {
			drop(t, c, -errno, "connection lost while sending");
			return;
		}
		c->tx_off += (size_t)n;
	}
	c->tx_len = c->tx_off = 0;
	set_events(t, c, EPOLLIN);
}

/* ---- receiving ----------------------------------------------------------- */

/* What a look at the front of rx found. */
enum { TAKE_MORE, TAKE_DONE, TAKE_DROPPED };

static bool same_pages(const struct pgs_welcome *a, const struct pgs_welcome *b)
{
	return a->npages == b->npages && a->pattern == b->pattern && a->seed == b->seed;
}

/* The server's answer to the HELLO: a WELCOME like the first, or BUSY. */
static int take_opening(struct tcp_source *t, struct tcp_conn *c, const unsigned char *m,
			size_t avail, size_t *off)
{
	struct pgs_welcome w;
	struct pgs_busy b;

	if (avail >= PGS_OPENING_SIZE && pgs_is_busy(m)) {
		if (avail < sizeof(b))
			return TAKE_MORE;
		memcpy(&b, m, sizeof(b));
		int rc = pgs_busy_check(&b, NULL);
		connect_failed(t, c, rc == -EBUSY ? -EBUSY : -EPROTO,
			       rc != -EBUSY ? "malformed busy answer (protocol error)"
			       : b.reason == PGS_BUSY_FULL
				       ? "the server is full (busy)"
				       : "the server is full for this address (busy)");
		return TAKE_DROPPED;
	}
	if (avail < sizeof(w))
		return TAKE_MORE;
	memcpy(&w, m, sizeof(w));
	*off += sizeof(w);
	if (pgs_welcome_check(&w, NULL)) {
		drop(t, c, -EPROTO, "malformed welcome");
		return TAKE_DROPPED;
	}
	if (!same_pages(&w, &t->first)) {
		source_set_error(&t->base, -ESTALE,
				 "the page server now serves other pages than at the start");
		drop(t, c, -ESTALE, "serves other pages");
		return TAKE_DROPPED;
	}
	c->max_count = w.max_count;
	c->state = CONN_READY;
	return TAKE_DONE;
}

/* The pages of an OK reply to request i (p: its crcs, then its pages):
 * each one pending whose crc32c matches completes; a corrupt one spends
 * the request's attempt; pages beyond the READ are asked for next. */
static void take_pages(struct tcp_source *t, struct tcp_conn *c, uint32_t i, const unsigned char *p)
{
	struct tcp_req *r = &t->req[i];
	const unsigned char *pages = p + 4u * r->rd_count;
	unsigned good = 0, corrupt = 0;

	for (unsigned k = 0; k < r->rd_count; k++) {
		unsigned pg = r->rd_first + k;
		const unsigned char *data = pages + (size_t)k * APF_PAGE_SIZE;
		uint32_t crc;

		if (!(r->pending & (1ull << pg)))
			continue; /* handed out after an earlier attempt */
		memcpy(&crc, p + 4u * k, 4);
		if (!pgs_page_ok(data, crc)) {
			corrupt++;
			continue;
		}
		memcpy(r->buf[pg], data, APF_PAGE_SIZE);
		complete_page(t, r, pg, 0);
		good++;
	}
	if (good) {
		c->backoff_ns = BACKOFF_MIN_NS; /* this server serves */
		if (r->conn == SOURCE_DEMAND) {
			uint64_t rtt = source_now_ns() - r->sent_ns;
			t->rtt_ns = t->rtt_ns ? (t->rtt_ns * 7 + rtt) / 8 : rtt;
		}
	}
	t->base.corrupt += corrupt;
	if (corrupt)
		attempt_failed(t, i, -EBADMSG, "corrupt page (checksum mismatch)", source_now_ns());
	else if (!r->pending)
		release(t, i);
	else
		unsend(t, i); /* the server took fewer pages per READ: the rest next */
}

/* A reply, once whole in rx. */
static int take_reply(struct tcp_source *t, struct tcp_conn *c, const unsigned char *m,
		      size_t avail, size_t *off)
{
	struct pgs_reply h;
	struct pgs_read rd;

	if (avail < sizeof(h))
		return TAKE_MORE;
	memcpy(&h, m, sizeof(h));
	uint32_t i = (uint32_t)(h.id & 0xffff);
	struct tcp_req *r = &t->req[i < SOURCE_QUEUE_MAX ? i : 0];
	if (i >= SOURCE_QUEUE_MAX || !r->used || !r->on_wire || r->id != h.id ||
	    r->conn != conn_index(t, c)) {
		drop(t, c, -EPROTO, "reply to no request (protocol error)");
		return TAKE_DROPPED;
	}
	pgs_read_init(&rd, r->id, r->page + r->rd_first, r->rd_count);
	if (pgs_reply_check(&h, &rd, NULL)) {
		drop(t, c, -EPROTO, "malformed reply (protocol error)");
		return TAKE_DROPPED;
	}
	if (h.status != PGS_OK) {
		*off += sizeof(h);
		if (h.status == PGS_RANGE) {
			snprintf(r->why, sizeof(r->why), "page server %s: it has no such page",
				 t->peer);
			finish(t, i, -ERANGE);
		} else {
			attempt_failed(t, i, -EIO, "the server could not read the page",
				       source_now_ns());
		}
		return TAKE_DONE;
	}
	size_t len = sizeof(h) + (size_t)r->rd_count * (4 + APF_PAGE_SIZE);
	if (avail < len)
		return TAKE_MORE;
	*off += len;
	take_pages(t, c, i, m + sizeof(h));
	return TAKE_DONE;
}

/* Handles the complete messages at the front of rx.  Returns false when the
 * connection was dropped. */
static bool parse(struct tcp_source *t, struct tcp_conn *c)
{
	size_t off = 0;

	for (;;) {
		const unsigned char *m = c->rx + off;
		size_t avail = c->rx_len - off;
		int rc = c->state == CONN_HELLO ? take_opening(t, c, m, avail, &off)
						: take_reply(t, c, m, avail, &off);
		if (rc == TAKE_DROPPED)
			return false;
		if (rc == TAKE_MORE)
			break;
	}
	memmove(c->rx, c->rx + off, c->rx_len - off);
	c->rx_len -= off;
	return true;
}

static void receive(struct tcp_source *t, struct tcp_conn *c)
{
	for (;;) {
		ssize_t n = recv(c->sock, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			drop(t, c, n ? -errno : -ECONNRESET,
			     n ? "connection lost" : "the server closed the connection");
			return;
		}
		c->rx_len += (size_t)n;
		if (!parse(t, c))
			return;
	}
}

/* ---- timer and events ------------------------------------------------------ */

/* The earliest of due and what connection c has due (0: nothing). */
static uint64_t conn_due(const struct tcp_source *t, const struct tcp_conn *c, uint64_t due)
{
	if (c->state == CONN_CONNECTING || c->state == CONN_HELLO ||
	    (c->state == CONN_DOWN && c->unsent.head != NO_SLOT))
		if (!due || c->state_due_ns < due)
			due = c->state_due_ns;
	const struct req_list *lists[2] = { &c->wire, &c->unsent };
	for (int l = 0; l < 2; l++)
		for (uint32_t i = lists[l]->head; i != NO_SLOT; i = t->req[i].next)
			if (!due || t->req[i].due_ns < due)
				due = t->req[i].due_ns;
	return due;
}

static void rearm(struct tcp_source *t)
{
	uint64_t due = 0;

	for (int k = 0; k < NCONN; k++)
		due = conn_due(t, &t->conn[k], due);
	if (due == t->armed_ns)
		return;
	struct itimerspec its = { .it_value = { .tv_sec = (time_t)(due / 1000000000ull),
						.tv_nsec = (long)(due % 1000000000ull) } };
	if (due && !its.it_value.tv_sec && !its.it_value.tv_nsec)
		its.it_value.tv_nsec = 1;
	if (timerfd_settime(t->timer, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		source_set_error(&t->base, -errno, "cannot arm the fetch timer");
		return;
	}
	t->armed_ns = due;
}

static void conn_timer(struct tcp_source *t, struct tcp_conn *c, uint64_t now)
{
	if ((c->state == CONN_CONNECTING || c->state == CONN_HELLO) && now >= c->state_due_ns) {
		connect_failed(t, c, -ETIMEDOUT, c->state == CONN_CONNECTING
							 ? "no connection within the timeout"
							 : "no welcome within the timeout");
	}
	for (uint32_t i = c->wire.head; i != NO_SLOT; i = t->req[i].next) {
		if (now >= t->req[i].due_ns) {
			drop(t, c, -ETIMEDOUT, "no reply within the timeout");
			break;
		}
	}
	/* Requests no connection carried before their deadline: the cause is
	 * the connection's, being made or the last one lost. */
	uint64_t resume = c->state == CONN_DOWN && c->state_due_ns > now ? c->state_due_ns : now;
	int err = c->state == CONN_DOWN && c->last_err ? c->last_err : -ETIMEDOUT;
	const char *cause = c->state == CONN_CONNECTING ? "no connection within the timeout"
			    : c->state == CONN_HELLO	    ? "no welcome within the timeout"
			    : c->state == CONN_DOWN && c->last_cause ? c->last_cause
								     : "not sent within the timeout";
	for (uint32_t i = c->unsent.head; i != NO_SLOT;) {
		uint32_t next = t->req[i].next;
		if (now >= t->req[i].due_ns)
			attempt_failed(t, i, err, cause, resume);
		i = next;
	}
}

static void on_timer(struct tcp_source *t)
{
	uint64_t ticks, now = source_now_ns();

	if (read(t->timer, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		source_set_error(&t->base, -errno, "cannot read the fetch timer");
	t->armed_ns = 0;
	for (int k = 0; k < NCONN; k++)
		conn_timer(t, &t->conn[k], now);
}

static void on_socket(struct tcp_source *t, struct tcp_conn *c, uint32_t events)
{
	if (c->state == CONN_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(c->sock, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			connect_failed(t, c, -err, err == ECONNREFUSED ? "connection refused"
								       : "cannot connect");
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		connected(t, c);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		receive(t, c);
}

static void tcp_on_event(struct page_source *s)
{
	struct tcp_source *t = (struct tcp_source *)s;
	struct epoll_event evs[1 + NCONN];
	int n = epoll_wait(t->ep, evs, 1 + NCONN, 0);

	for (int k = 0; k < n; k++) {
		uint32_t tag = evs[k].data.u32;
		if (tag == EV_TIMER)
			on_timer(t);
		else if (tag - EV_CONN < NCONN && t->conn[tag - EV_CONN].sock >= 0)
			on_socket(t, &t->conn[tag - EV_CONN], evs[k].events);
	}
	for (int k = 0; k < NCONN; k++)
		flush(t, &t->conn[k]);
	rearm(t);
}

/* ---- submitting ------------------------------------------------------------ */

static void new_request(struct tcp_source *t, struct tcp_conn *c, uint64_t page, unsigned n,
			void *const *bufs, void *const *cookies, uint64_t now, uint64_t due)
{
	uint32_t i = t->free_slots[--t->nfree];
	struct tcp_req *r = &t->req[i];

	r->used = true;
	r->on_wire = false;
	r->conn = (uint8_t)conn_index(t, c);
	r->count = (uint8_t)n;
	r->pending = n == 64 ? UINT64_MAX : (1ull << n) - 1;
	r->page = page;
	memcpy(r->buf, bufs, n * sizeof(*bufs));
	memcpy(r->cookie, cookies, n * sizeof(*cookies));
	r->submit_ns = now;
	r->due_ns = due;
	r->attempts = 0;
	list_push(t, &c->unsent, i);
}

static int tcp_submit_run(struct page_source *s, uint64_t page, unsigned n, void *const *bufs,
			  void *const *cookies, enum source_prio prio)
{
	struct tcp_source *t = (struct tcp_source *)s;
	struct tcp_conn *c = &t->conn[prio == SOURCE_BULK ? SOURCE_BULK : SOURCE_DEMAND];
	unsigned per = t->first.max_count;

	if (page >= s->npages || !n || n > SOURCE_RUN_MAX || n > s->npages - page)
		return -ERANGE;
	if (t->nfree < (n + per - 1) / per)
		return -EAGAIN;
	/* A first attempt waits for the backoff before the connection's next
	 * try, at most that long. */
	uint64_t now = source_now_ns();
	uint64_t due = (c->state == CONN_DOWN && c->state_due_ns > now ? c->state_due_ns : now) +
		       t->net.timeout_ns;
	for (unsigned done = 0; done < n; done += per)
		new_request(t, c, page + done, n - done < per ? n - done : per, bufs + done,
			    cookies + done, now, due);
	flush(t, c);
	rearm(t);
	return 0;
}

static int tcp_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	return tcp_submit_run(s, page, 1, &buf, &cookie, SOURCE_DEMAND);
}

static uint64_t tcp_expected_ns(struct page_source *s, uint64_t page)
{
	(void)page;
	return ((struct tcp_source *)s)->rtt_ns;
}

static void tcp_destroy(struct page_source *s)
{
	struct tcp_source *t = (struct tcp_source *)s;

	for (int k = 0; k < NCONN; k++)
		if (t->conn[k].sock >= 0)
			close(t->conn[k].sock);
	close(t->timer);
	close(t->ep);
	free(t);
}

static const struct page_source_ops tcp_ops = {
	.name = "tcp",
	.submit = tcp_submit,
	.submit_run = tcp_submit_run,
	.on_event = tcp_on_event,
	.expected_ns = tcp_expected_ns,
	.destroy = tcp_destroy,
};

/* ---- open: the first connection, made synchronously -------------------- */

static int greet(struct tcp_source *t, int sock, struct apf_err *e)
{
	uint64_t start = source_now_ns(), deadline = start + t->net.timeout_ns;
	struct pgs_hello h;
	size_t got = 0;
	int rc, err = 0;
	socklen_t len = sizeof(err);

	if (connect(sock, (struct sockaddr *)&t->addr, t->addr_len) < 0 && errno != EINPROGRESS)
		return apf_fail(e, -errno, "page server %s: cannot connect: %s", t->peer,
				strerror(errno));
	if ((rc = sock_wait_until(sock, POLLOUT, deadline)))
		return apf_fail(e, rc, "page server %s: cannot connect: %s", t->peer,
				rc == -ETIMEDOUT ? "no answer within the timeout" : strerror(-rc));
	getsockopt(sock, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err)
		return apf_fail(e, -err, "page server %s: cannot connect: %s", t->peer,
				strerror(err));
	pgs_hello_init(&h);
	if (send(sock, &h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h))
		return apf_fail(e, -EIO, "page server %s: cannot send the hello", t->peer);
	size_t want = sizeof(t->first);
	while (got < want) {
		if ((rc = sock_wait_until(sock, POLLIN, deadline)))
			return apf_fail(e, rc, "page server %s: no welcome: %s", t->peer,
					rc == -ETIMEDOUT ? "no answer within the timeout"
							 : strerror(-rc));
		ssize_t n = recv(sock, (char *)&t->first + got, sizeof(t->first) - got,
				 MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return apf_fail(e, -ECONNRESET,
					"page server %s: the connection closed before the welcome "
					"(is it an apfvm page server?)", t->peer);
		got += (size_t)n;
		if (want == sizeof(t->first) && got >= PGS_OPENING_SIZE && pgs_is_busy(&t->first))
			want = sizeof(struct pgs_busy);
	}
	struct apf_err pe;
	if (want == sizeof(struct pgs_busy)) {
		struct pgs_busy b;
		memcpy(&b, &t->first, sizeof(b));
		rc = pgs_busy_check(&b, &pe);
		return apf_fail(e, rc, "page server %s: %s", t->peer, pe.msg);
	}
	if ((rc = pgs_welcome_check(&t->first, &pe)))
		return apf_fail(e, rc, "page server %s: %s", t->peer, pe.msg);
	t->rtt_ns = source_now_ns() - start;
	return 0;
}

/* The first connection (the demand one), greeted: a BUSY server is asked
 * again after a backoff, up to the tries; anything else that fails is an
 * error now. */
static int first_connection(struct tcp_source *t, struct apf_err *e)
{
	struct tcp_conn *c = &t->conn[SOURCE_DEMAND];
	uint64_t backoff = BACKOFF_MIN_NS;
	int rc = 0;

	for (unsigned attempt = 1; attempt <= t->net.tries; attempt++) {
		c->sock = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->sock < 0)
			return apf_fail(e, -errno, "page server %s: %s", t->peer, strerror(errno));
		rc = greet(t, c->sock, e);
		if (rc != -EBUSY)
			return rc;
		close(c->sock);
		c->sock = -1;
		if (attempt < t->net.tries) {
			struct timespec ts = { (time_t)(backoff / 1000000000ull),
					       (long)(backoff % 1000000000ull) };
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
			backoff = backoff * 2 > SOURCE_NET_BACKOFF_MAX_NS ? SOURCE_NET_BACKOFF_MAX_NS
									  : backoff * 2;
		}
	}
	struct apf_err last = { { 0 } };
	if (e)
		last = *e;
	return apf_fail(e, rc, "%s (%u %s)", last.msg, t->net.tries,
			t->net.tries == 1 ? "try" : "tries");
}

/* The connections' state once the first is made: the demand one ready,
 * the bulk one down until a bulk request comes; both may carry as many
 * pages per READ as the first WELCOME offered. */
static int init_conns(struct tcp_source *t, struct apf_err *e)
{
	struct tcp_conn *d = &t->conn[SOURCE_DEMAND];
	int one = 1;

	setsockopt(d->sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = EV_TIMER };
	if (epoll_ctl(t->ep, EPOLL_CTL_ADD, t->timer, &ev) < 0 ||
	    (ev.data.u32 = EV_CONN + SOURCE_DEMAND,
	     epoll_ctl(t->ep, EPOLL_CTL_ADD, d->sock, &ev) < 0))
		return apf_fail(e, -errno, "epoll: %s", strerror(errno));
	for (int k = 0; k < NCONN; k++) {
		struct tcp_conn *c = &t->conn[k];
		c->state = c == d ? CONN_READY : CONN_DOWN;
		c->events = c == d ? EPOLLIN : 0;
		c->made = c == d;
		c->backoff_ns = BACKOFF_MIN_NS;
		c->max_count = t->first.max_count;
		list_init(&c->unsent);
		list_init(&c->wire);
	}
	return 0;
}

int source_tcp_open(const char *addr, uint64_t lazy_bytes, const struct source_net_options *net,
		    struct page_source **out, struct apf_err *e)
{
	struct tcp_source *t = calloc(1, sizeof(*t));
	int rc;

	if (!t)
		return apf_fail(e, -ENOMEM, "out of memory");
	t->timer = t->ep = -1;
	for (int k = 0; k < NCONN; k++)
		t->conn[k].sock = -1;
	t->net = *net;
	if ((rc = net_addr_parse(addr, "tcp:", 0, &t->addr, &t->addr_len, e)))
		goto fail;
	net_addr_format(&t->addr, t->peer, sizeof(t->peer));
	t->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	t->ep = epoll_create1(EPOLL_CLOEXEC);
	if (t->timer < 0 || t->ep < 0) {
		rc = apf_fail(e, -errno, "page server %s: %s", t->peer, strerror(errno));
		goto fail;
	}
	if ((rc = first_connection(t, e)))
		goto fail;
	if (t->first.npages * APF_PAGE_SIZE < lazy_bytes) {
		rc = apf_fail(e, -EINVAL,
			      "page server %s serves %llu bytes, less than the %llu asked for "
			      "(run's --lazy, fetch's --size)",
			      t->peer, (unsigned long long)(t->first.npages * APF_PAGE_SIZE),
			      (unsigned long long)lazy_bytes);
		goto fail;
	}
	if ((rc = init_conns(t, e)))
		goto fail;
	source_init(&t->base, &tcp_ops, t->first.npages);
	t->base.event_fd = t->ep;
	t->base.pattern = t->first.pattern;
	t->base.seed = t->first.seed;
	snprintf(t->base.desc, sizeof(t->base.desc), "tcp:%s (seed %llu)", t->peer,
		 (unsigned long long)t->first.seed);
	for (uint32_t i = 0; i < SOURCE_QUEUE_MAX; i++)
		t->free_slots[t->nfree++] = SOURCE_QUEUE_MAX - 1 - i;
	*out = &t->base;
	return 0;
fail:
	for (int k = 0; k < NCONN; k++)
		if (t->conn[k].sock >= 0)
			close(t->conn[k].sock);
	if (t->timer >= 0)
		close(t->timer);
	if (t->ep >= 0)
		close(t->ep);
	free(t);
	return rc;
}
