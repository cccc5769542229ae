/*
 * The tcp source: pages from a page server (`apfvm serve`, the protocol of
 * net/page_proto.h and docs/page-server.md) over one TCP connection.
 *
 * Every submit() becomes a one-page READ, sent at once without waiting for
 * earlier answers (pipelined: as many in flight as the pager allows).
 * Replies are matched to their request by id, in any order.  Nothing
 * blocks: the socket is non-blocking, and the source's event_fd is an
 * epoll set holding the socket and one timerfd, the timer armed at the
 * next thing due (a request's deadline, the handshake's, or the next
 * reconnect).
 *
 * The bound, by construction: every attempt of a request has a deadline,
 * set when the request is queued (at submit, or when its previous attempt
 * ended, plus the backoff before the next connection), not when it is
 * sent.  An attempt that reaches its deadline, sent or not, is spent.  So
 * a fetch completes or fails within tries x (timeout_ns + the backoff,
 * at most SOURCE_NET_BACKOFF_MAX_NS) of its submit, whatever the peer
 * does: refuse, close before or after its welcome, answer BUSY, trickle
 * bytes, or send junk.
 *
 * What the peer sends is untrusted.  Failures, and what happens:
 *  - a page whose crc32c does not match, or a PGS_IO answer: that request
 *    is sent again (an attempt spent); the connection is fine;
 *  - a malformed or unexpected message, a closed or failed connection, or
 *    a sent request at its deadline: the connection is dropped, every
 *    request on it spends an attempt and is sent again over a new
 *    connection, made after a backoff (100 ms doubling to
 *    SOURCE_NET_BACKOFF_MAX_NS; only a page received resets it) that a
 *    failed connect or a BUSY answer also spends;
 *  - a request not yet sent at its deadline (no connection would carry
 *    it) spends an attempt, with the last connection's failure as cause;
 *  - a request out of attempts fails, with the cause in its completion;
 *    a PGS_RANGE answer fails it at once (the server has no such page);
 *  - a reconnected server that serves other pages than at the start
 *    (size, pattern or seed) fails the source as a whole.
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
/* Receive buffer: room for many replies (header, crc and page each). */
#define RX_SIZE         (64u * (sizeof(struct pgs_reply) + 4 + APF_PAGE_SIZE))

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_HELLO, CONN_READY };

/* One fetch, from submit() until its completion is queued.  It is on one
 * of two lists: `unsent` (waiting for a connection, FIFO) or `wire` (sent
 * on the current connection, in send order, so the head is the oldest and
 * times out first). */
struct tcp_req {
	bool used;
	bool on_wire;
	uint64_t page;
	void *buf, *cookie;
	uint64_t submit_ns, sent_ns;
	uint64_t due_ns;      /* the current attempt is spent then */
	uint64_t id;          /* of the READ on the wire: slot | sequence << 16 */
	unsigned attempts;    /* attempts spent */
	uint32_t prev, next;  /* list links (slot indices) */
	char why[160];        /* the completion's cause, when it fails */
};

struct req_list {
	uint32_t head, tail;
};

struct tcp_source {
	struct page_source base; /* first */
	struct source_net_options net;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char peer[64];
	int ep, timer, sock;
	uint32_t events;          /* the socket's, in ep */
	enum conn_state state;
	uint64_t state_due_ns;   /* CONNECTING/HELLO: give up then; DOWN: reconnect then */
	uint64_t backoff_ns;
	uint64_t armed_ns;
	uint64_t seq;
	struct pgs_welcome first; /* what the server served at open */
	struct tcp_req req[SOURCE_QUEUE_MAX];
	uint32_t free_slots[SOURCE_QUEUE_MAX];
	unsigned nfree;
	struct req_list unsent, wire;
	/* Send buffer: READs not yet accepted by the socket. */
	unsigned char tx[SOURCE_QUEUE_MAX * sizeof(struct pgs_read)];
	size_t tx_len, tx_off;
	unsigned char rx[RX_SIZE];
	size_t rx_len;
	uint64_t rtt_ns;          /* EWMA of answered fetches */
	const char *last_cause;   /* why the last connection failed (static text) */
	int last_err;
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

/* ---- completing ------------------------------------------------------- */

static void finish(struct tcp_source *t, uint32_t i, int err)
{
	struct tcp_req *r = &t->req[i];
	struct source_completion c = {
		.page = r->page, .buf = r->buf, .cookie = r->cookie, .err = err,
		.why = err ? r->why : NULL, .submit_ns = r->submit_ns,
	};

	list_remove(t, r->on_wire ? &t->wire : &t->unsent, i);
	r->used = false;
	t->free_slots[t->nfree++] = i;
	source_complete(&t->base, &c);
}

/* The request's attempt ended without its page (cause: static text).  It
 * is queued again while attempts remain, its next attempt starting at
 * resume_ns (the next connection's time), else fails with err. */
static void attempt_failed(struct tcp_source *t, uint32_t i, int err, const char *cause,
			   uint64_t resume_ns)
{
	struct tcp_req *r = &t->req[i];

	r->attempts++;
	if (err == -EBADMSG)
		t->base.corrupt++;
	if (r->attempts < t->net.tries) {
		t->base.retries++;
		r->due_ns = resume_ns + t->net.timeout_ns;
		/* Sent: back to the unsent queue's end.  Unsent: stays put
		 * (connect_failed walks that queue). */
		if (r->on_wire) {
			list_remove(t, &t->wire, i);
			r->on_wire = false;
			list_push(t, &t->unsent, i);
		}
		return;
	}
	snprintf(r->why, sizeof(r->why), "page server %s: %s (%u %s)", t->peer, cause,
		 r->attempts, r->attempts == 1 ? "try" : "tries");
	finish(t, i, err);
}

/* ---- the connection ------------------------------------------------------ */

static void rearm(struct tcp_source *t);
static void drop(struct tcp_source *t, int err, const char *cause);

static void set_events(struct tcp_source *t, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = t->sock };

	if (events == t->events)
		return;
	if (epoll_ctl(t->ep, EPOLL_CTL_MOD, t->sock, &ev) < 0) {
		drop(t, -errno, "cannot watch the socket");
		return;
	}
	t->events = events;
}

/* Drops the connection; every request on it spends an attempt (cause),
 * those left are sent again after the backoff. */
static void drop(struct tcp_source *t, int err, const char *cause)
{
	/* A connection closed with nothing on it or waiting (the server's
	 * idle timeout) costs nothing: the next fetch connects at once.  Not
	 * so a connection that failed to be made (refused, BUSY). */
	bool idle = t->wire.head == NO_SLOT && t->unsent.head == NO_SLOT &&
		    t->state == CONN_READY;
	uint64_t resume = source_now_ns() + (idle ? 0 : t->backoff_ns);

	t->last_err = err;
	t->last_cause = cause;
	if (t->sock >= 0) {
		epoll_ctl(t->ep, EPOLL_CTL_DEL, t->sock, NULL);
		close(t->sock);
		t->sock = -1;
	}
	t->state = CONN_DOWN;
	t->tx_len = t->tx_off = t->rx_len = 0;
	/* Requests on the wire go back to the front of the unsent queue, in
	 * their order, unless out of attempts. */
	struct req_list retry;
	list_init(&retry);
	while (t->wire.head != NO_SLOT) {
		uint32_t i = t->wire.head;
		attempt_failed(t, i, err, cause, resume);
		if (t->req[i].used) {
			list_remove(t, &t->unsent, i);
			list_push(t, &retry, i);
		}
	}
	while (t->unsent.head != NO_SLOT) {
		uint32_t i = t->unsent.head;
		list_remove(t, &t->unsent, i);
		list_push(t, &retry, i);
	}
	t->unsent = retry;
	t->state_due_ns = resume;
	if (!idle)
		t->backoff_ns = t->backoff_ns * 2 > SOURCE_NET_BACKOFF_MAX_NS
					? SOURCE_NET_BACKOFF_MAX_NS
					: t->backoff_ns * 2;
}

/* A connect that failed or timed out spends an attempt of every request
 * waiting for it. */
static void connect_failed(struct tcp_source *t, int err, const char *cause)
{
	uint32_t i = t->unsent.head;
	uint64_t resume = source_now_ns() + t->backoff_ns;

	while (i != NO_SLOT) {
		uint32_t next = t->req[i].next;
		attempt_failed(t, i, err, cause, resume);
		i = next;
	}
	drop(t, err, cause);
}

static void start_connect(struct tcp_source *t)
{
	int one = 1;
	struct epoll_event ev = { .events = EPOLLOUT, .data.fd = -1 };

	t->sock = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->sock < 0) {
		connect_failed(t, -errno, "cannot make a socket");
		return;
	}
	setsockopt(t->sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev.data.fd = t->sock;
	t->events = ev.events;
	if (epoll_ctl(t->ep, EPOLL_CTL_ADD, t->sock, &ev) < 0) {
		connect_failed(t, -errno, "cannot watch the socket");
		return;
	}
	t->base.reconnects++;
	t->state = CONN_CONNECTING;
	t->state_due_ns = source_now_ns() + t->net.timeout_ns;
	if (connect(t->sock, (struct sockaddr *)&t->addr, t->addr_len) < 0 && errno != EINPROGRESS)
		connect_failed(t, -errno, errno == ECONNREFUSED ? "connection refused"
								: "cannot connect");
}

/* The connection is up: greet the server (the HELLO goes first in tx). */
static void connected(struct tcp_source *t)
{
	struct pgs_hello h;

	pgs_hello_init(&h);
	memcpy(t->tx, &h, sizeof(h));
	t->tx_len = sizeof(h);
	t->tx_off = 0;
	t->state = CONN_HELLO;
	set_events(t, EPOLLIN | EPOLLOUT);
}

/* Sends what tx holds; queues READs for unsent requests when ready. */
static void flush(struct tcp_source *t)
{
	if (t->state == CONN_DOWN) {
		if (t->unsent.head != NO_SLOT && source_now_ns() >= t->state_due_ns)
			start_connect(t);
		return;
	}
	if (t->state == CONN_CONNECTING)
		return;
	if (t->state == CONN_READY) {
		uint64_t now = source_now_ns();
		/* Compact, then append a READ per unsent request (the buffer
		 * holds one per slot, so they always fit). */
		if (t->tx_off) {
			memmove(t->tx, t->tx + t->tx_off, t->tx_len - t->tx_off);
			t->tx_len -= t->tx_off;
			t->tx_off = 0;
		}
		while (t->unsent.head != NO_SLOT) {
			uint32_t i = t->unsent.head;
			struct tcp_req *r = &t->req[i];
			struct pgs_read rd;

			list_remove(t, &t->unsent, i);
			r->id = i | (++t->seq << 16);
			r->sent_ns = now;
			r->on_wire = true;
			list_push(t, &t->wire, i);
			pgs_read_init(&rd, r->id, r->page, 1);
			memcpy(t->tx + t->tx_len, &rd, sizeof(rd));
			t->tx_len += sizeof(rd);
		}
	}
	while (t->tx_off < t->tx_len) {
		ssize_t n = send(t->sock, t->tx + t->tx_off, t->tx_len - t->tx_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			set_events(t, EPOLLIN | EPOLLOUT);
			return;
		}
		if (n < 0) {
			drop(t, -errno, "connection lost while sending");
			return;
		}
		t->tx_off += (size_t)n;
	}
	t->tx_len = t->tx_off = 0;
	set_events(t, EPOLLIN);
}

/* ---- receiving ----------------------------------------------------------- */

static bool same_pages(const struct pgs_welcome *a, const struct pgs_welcome *b)
{
	return a->npages == b->npages && a->pattern == b->pattern && a->seed == b->seed;
}

/* Handles the complete messages at the front of rx.  Returns false when the
 * connection was dropped. */
static bool parse(struct tcp_source *t)
{
	size_t off = 0;
	bool ok = true;

	while (ok) {
		size_t avail = t->rx_len - off;
		const unsigned char *m = t->rx + off;

		if (t->state == CONN_HELLO) {
			struct pgs_welcome w;
			struct pgs_busy b;
			if (avail >= PGS_OPENING_SIZE && pgs_is_busy(m)) {
				if (avail < sizeof(b))
					break;
				memcpy(&b, m, sizeof(b));
				int rc = pgs_busy_check(&b, NULL);
				connect_failed(t, rc == -EBUSY ? -EBUSY : -EPROTO,
					       rc != -EBUSY ? "malformed busy answer (protocol error)"
					       : b.reason == PGS_BUSY_FULL
						       ? "the server is full (busy)"
						       : "the server is full for this address (busy)");
				return false;
			}
			if (avail < sizeof(w))
				break;
			memcpy(&w, m, sizeof(w));
			off += sizeof(w);
			if (pgs_welcome_check(&w, NULL)) {
				drop(t, -EPROTO, "malformed welcome");
				return false;
			}
			if (!same_pages(&w, &t->first)) {
				source_set_error(&t->base, -ESTALE,
						 "the page server now serves other pages than at the start");
				drop(t, -ESTALE, "serves other pages");
				return false;
			}
			t->state = CONN_READY;
			continue;
		}
		struct pgs_reply h;
		if (avail < sizeof(h))
			break;
		memcpy(&h, m, sizeof(h));
		uint32_t i = (uint32_t)(h.id & 0xffff);
		if (i >= SOURCE_QUEUE_MAX || !t->req[i].used || !t->req[i].on_wire ||
		    t->req[i].id != h.id) {
			drop(t, -EPROTO, "reply to no request (protocol error)");
			return false;
		}
		struct tcp_req *r = &t->req[i];
		struct pgs_read rd;
		pgs_read_init(&rd, r->id, r->page, 1);
		if (pgs_reply_check(&h, &rd, NULL)) {
			drop(t, -EPROTO, "malformed reply (protocol error)");
			return false;
		}
		if (h.status != PGS_OK) {
			off += sizeof(h);
			if (h.status == PGS_RANGE) {
				snprintf(r->why, sizeof(r->why),
					 "page server %s: it has no such page", t->peer);
				finish(t, i, -ERANGE);
			} else {
				attempt_failed(t, i, -EIO, "the server could not read the page",
					       source_now_ns());
			}
			continue;
		}
		if (avail < sizeof(h) + 4 + APF_PAGE_SIZE)
			break;
		uint32_t crc;
		memcpy(&crc, m + sizeof(h), 4);
		memcpy(r->buf, m + sizeof(h) + 4, APF_PAGE_SIZE);
		off += sizeof(h) + 4 + APF_PAGE_SIZE;
		if (!pgs_page_ok(r->buf, crc)) {
			attempt_failed(t, i, -EBADMSG, "corrupt page (checksum mismatch)",
				       source_now_ns());
			continue;
		}
		uint64_t rtt = source_now_ns() - r->sent_ns;
		t->rtt_ns = t->rtt_ns ? (t->rtt_ns * 7 + rtt) / 8 : rtt;
		t->backoff_ns = BACKOFF_MIN_NS; /* this server serves */
		finish(t, i, 0);
	}
	memmove(t->rx, t->rx + off, t->rx_len - off);
	t->rx_len -= off;
	return true;
}

static void receive(struct tcp_source *t)
{
	for (;;) {
		ssize_t n = recv(t->sock, t->rx + t->rx_len, sizeof(t->rx) - t->rx_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			drop(t, n ? -errno : -ECONNRESET,
			     n ? "connection lost" : "the server closed the connection");
			return;
		}
		t->rx_len += (size_t)n;
		if (!parse(t))
			return;
	}
}

/* ---- timer and events ------------------------------------------------------ */

static void rearm(struct tcp_source *t)
{
	uint64_t due = 0;

	if (t->state == CONN_CONNECTING || t->state == CONN_HELLO ||
	    (t->state == CONN_DOWN && t->unsent.head != NO_SLOT))
		due = t->state_due_ns;
	const struct req_list *lists[2] = { &t->wire, &t->unsent };
	for (int l = 0; l < 2; l++)
		for (uint32_t i = lists[l]->head; i != NO_SLOT; i = t->req[i].next)
			if (!due || t->req[i].due_ns < due)
				due = t->req[i].due_ns;
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

static void on_timer(struct tcp_source *t)
{
	uint64_t ticks, now = source_now_ns();

	if (read(t->timer, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		source_set_error(&t->base, -errno, "cannot read the fetch timer");
	t->armed_ns = 0;
	if ((t->state == CONN_CONNECTING || t->state == CONN_HELLO) && now >= t->state_due_ns) {
		connect_failed(t, -ETIMEDOUT, t->state == CONN_CONNECTING
						      ? "no connection within the timeout"
						      : "no welcome within the timeout");
	}
	for (uint32_t i = t->wire.head; i != NO_SLOT; i = t->req[i].next) {
		if (now >= t->req[i].due_ns) {
			drop(t, -ETIMEDOUT, "no reply within the timeout");
			break;
		}
	}
	/* Requests no connection carried before their deadline: the cause is
	 * the connection's, being made or the last one lost. */
	uint64_t resume = t->state == CONN_DOWN && t->state_due_ns > now ? t->state_due_ns : now;
	int err = t->state == CONN_DOWN && t->last_err ? t->last_err : -ETIMEDOUT;
	const char *cause = t->state == CONN_CONNECTING ? "no connection within the timeout"
			    : t->state == CONN_HELLO	    ? "no welcome within the timeout"
			    : t->state == CONN_DOWN && t->last_cause ? t->last_cause
								     : "not sent within the timeout";
	for (uint32_t i = t->unsent.head; i != NO_SLOT;) {
		uint32_t next = t->req[i].next;
		if (now >= t->req[i].due_ns)
			attempt_failed(t, i, err, cause, resume);
		i = next;
	}
}

static void on_socket(struct tcp_source *t, uint32_t events)
{
	if (t->state == CONN_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(t->sock, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			connect_failed(t, -err, err == ECONNREFUSED ? "connection refused"
								    : "cannot connect");
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		connected(t);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		receive(t);
}

static void tcp_on_event(struct page_source *s)
{
	struct tcp_source *t = (struct tcp_source *)s;
	struct epoll_event evs[4];
	int n = epoll_wait(t->ep, evs, 4, 0);

	for (int k = 0; k < n; k++) {
		if (evs[k].data.fd == t->timer)
			on_timer(t);
		else if (t->sock >= 0 && evs[k].data.fd == t->sock)
			on_socket(t, evs[k].events);
	}
	flush(t);
	rearm(t);
}

static int tcp_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	struct tcp_source *t = (struct tcp_source *)s;

	if (page >= s->npages)
		return -ERANGE;
	if (!t->nfree)
		return -EAGAIN;
	uint32_t i = t->free_slots[--t->nfree];
	struct tcp_req *r = &t->req[i];
	r->used = true;
	r->on_wire = false;
	r->page = page;
	r->buf = buf;
	r->cookie = cookie;
	r->submit_ns = source_now_ns();
	/* A first attempt waits for the backoff before the next connection,
	 * at most that long. */
	r->due_ns = (t->state == CONN_DOWN && t->state_due_ns > r->submit_ns ? t->state_due_ns
									      : r->submit_ns) +
		    t->net.timeout_ns;
	r->attempts = 0;
	list_push(t, &t->unsent, i);
	flush(t);
	rearm(t);
	return 0;
}

static uint64_t tcp_expected_ns(struct page_source *s, uint64_t page)
{
	(void)page;
	return ((struct tcp_source *)s)->rtt_ns;
}

static void tcp_destroy(struct page_source *s)
{
	struct tcp_source *t = (struct tcp_source *)s;

	if (t->sock >= 0)
		close(t->sock);
	close(t->timer);
	close(t->ep);
	free(t);
}

static const struct page_source_ops tcp_ops = {
	.name = "tcp",
	.submit = tcp_submit,
	.on_event = tcp_on_event,
	.expected_ns = tcp_expected_ns,
	.destroy = tcp_destroy,
};

/* ---- open: the first connection, made synchronously -------------------- */

static int greet(struct tcp_source *t, struct apf_err *e)
{
	uint64_t start = source_now_ns(), deadline = start + t->net.timeout_ns;
	struct pgs_hello h;
	size_t got = 0;
	int rc, err = 0;
	socklen_t len = sizeof(err);

	if (connect(t->sock, (struct sockaddr *)&t->addr, t->addr_len) < 0 && errno != EINPROGRESS)
		return apf_fail(e, -errno, "page server %s: cannot connect: %s", t->peer,
				strerror(errno));
	if ((rc = sock_wait_until(t->sock, POLLOUT, deadline)))
		return apf_fail(e, rc, "page server %s: cannot connect: %s", t->peer,
				rc == -ETIMEDOUT ? "no answer within the timeout" : strerror(-rc));
	getsockopt(t->sock, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err)
		return apf_fail(e, -err, "page server %s: cannot connect: %s", t->peer,
				strerror(err));
	pgs_hello_init(&h);
	if (send(t->sock, &h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h))
		return apf_fail(e, -EIO, "page server %s: cannot send the hello", t->peer);
	size_t want = sizeof(t->first);
	while (got < want) {
		if ((rc = sock_wait_until(t->sock, POLLIN, deadline)))
			return apf_fail(e, rc, "page server %s: no welcome: %s", t->peer,
					rc == -ETIMEDOUT ? "no answer within the timeout"
							 : strerror(-rc));
		ssize_t n = recv(t->sock, (char *)&t->first + got, sizeof(t->first) - got,
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

/* The first connection, greeted: a BUSY server is asked again after a
 * backoff, up to the tries; anything else that fails is an error now. */
static int first_connection(struct tcp_source *t, struct apf_err *e)
{
	uint64_t backoff = BACKOFF_MIN_NS;
	int rc = 0;

	for (unsigned attempt = 1; attempt <= t->net.tries; attempt++) {
		t->sock = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (t->sock < 0)
			return apf_fail(e, -errno, "page server %s: %s", t->peer, strerror(errno));
		rc = greet(t, e);
		if (rc != -EBUSY)
			return rc;
		close(t->sock);
		t->sock = -1;
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

int source_tcp_open(const char *addr, uint64_t lazy_bytes, const struct source_net_options *net,
		    struct page_source **out, struct apf_err *e)
{
	struct tcp_source *t = calloc(1, sizeof(*t));
	int rc;

	if (!t)
		return apf_fail(e, -ENOMEM, "out of memory");
	t->sock = t->timer = t->ep = -1;
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
	int one = 1;
	setsockopt(t->sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = t->timer };
	if (epoll_ctl(t->ep, EPOLL_CTL_ADD, t->timer, &ev) < 0 ||
	    (ev.data.fd = t->sock, t->events = EPOLLIN,
	     epoll_ctl(t->ep, EPOLL_CTL_ADD, t->sock, &ev) < 0)) {
		rc = apf_fail(e, -errno, "epoll: %s", strerror(errno));
		goto fail;
	}
	source_init(&t->base, &tcp_ops, t->first.npages);
	t->base.event_fd = t->ep;
	t->base.pattern = t->first.pattern;
	t->base.seed = t->first.seed;
	snprintf(t->base.desc, sizeof(t->base.desc), "tcp:%s (seed %llu)", t->peer,
		 (unsigned long long)t->first.seed);
	t->state = CONN_READY;
	t->backoff_ns = BACKOFF_MIN_NS;
	list_init(&t->unsent);
	list_init(&t->wire);
	for (uint32_t i = 0; i < SOURCE_QUEUE_MAX; i++)
		t->free_slots[t->nfree++] = SOURCE_QUEUE_MAX - 1 - i;
	*out = &t->base;
	return 0;
fail:
	if (t->sock >= 0)
		close(t->sock);
	if (t->timer >= 0)
		close(t->timer);
	if (t->ep >= 0)
		close(t->ep);
	free(t);
	return rc;
}
