/*
 * A tcp source's connection: making it, greeting the server, sending
 * READs, taking replies, dropping it, and its deadlines (tcp_conn.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "source/tcp_conn.h"

void tcp_conn_init(struct tcp_conn *c, enum source_prio prio, uint32_t tag, uint32_t max_count)
{
	bool ready = c->sock >= 0;

	c->prio = prio;
	c->tag = tag;
	c->state = ready ? CONN_READY : CONN_DOWN;
	c->events = ready ? EPOLLIN : 0;
	c->made = ready;
	c->backoff_ns = TCP_BACKOFF_MIN_NS;
	c->max_count = max_count;
	tcp_queue_init(&c->queue);
}

void tcp_conn_close(struct tcp_conn *c)
{
	if (c->sock >= 0)
		close(c->sock);
	c->sock = -1;
}

/* ---- making and dropping ---------------------------------------------------- */

static void drop(struct tcp_shared *sh, struct tcp_conn *c, int err, const char *cause);

static void set_events(struct tcp_shared *sh, struct tcp_conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u32 = c->tag };

	if (events == c->events)
		return;
	if (epoll_ctl(sh->ep, EPOLL_CTL_MOD, c->sock, &ev) < 0) {
		drop(sh, c, -errno, "cannot watch the socket");
		return;
	}
	c->events = events;
}

/* Drops the connection; every request on it spends an attempt (cause),
 * those left are sent again after the backoff. */
static void drop(struct tcp_shared *sh, struct tcp_conn *c, int err, const char *cause)
{
	/* A connection closed with nothing on it or waiting (the server's
	 * idle timeout) costs nothing: the next fetch connects at once.  Not
	 * so a connection that failed to be made (refused, BUSY). */
	bool idle = tcp_queue_empty(&c->queue) && c->state == CONN_READY;
	uint64_t resume = source_now_ns() + (idle ? 0 : c->backoff_ns);

	c->last_err = err;
	c->last_cause = cause;
	if (c->sock >= 0) {
		epoll_ctl(sh->ep, EPOLL_CTL_DEL, c->sock, NULL);
		close(c->sock);
		c->sock = -1;
	}
	c->state = CONN_DOWN;
	c->tx_len = c->tx_off = c->rx_len = 0;
	tcp_queue_requeue(&sh->reqs, &c->queue, err, cause, resume);
	c->state_due_ns = resume;
	if (!idle)
		c->backoff_ns = c->backoff_ns * 2 > SOURCE_NET_BACKOFF_MAX_NS
					? SOURCE_NET_BACKOFF_MAX_NS
					: c->backoff_ns * 2;
}

/* A connect that failed or timed out spends an attempt of every request
 * waiting for it. */
static void connect_failed(struct tcp_shared *sh, struct tcp_conn *c, int err, const char *cause)
{
	uint64_t resume = source_now_ns() + c->backoff_ns;

	tcp_queue_spend_unsent(&sh->reqs, &c->queue, UINT64_MAX, err, cause, resume);
	drop(sh, c, err, cause);
}

static void start_connect(struct tcp_shared *sh, struct tcp_conn *c)
{
	int one = 1;
	struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = c->tag };

	c->sock = socket(sh->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->sock < 0) {
		connect_failed(sh, c, -errno, "cannot make a socket");
		return;
	}
	setsockopt(c->sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->events = ev.events;
	if (epoll_ctl(sh->ep, EPOLL_CTL_ADD, c->sock, &ev) < 0) {
		connect_failed(sh, c, -errno, "cannot watch the socket");
		return;
	}
	if (c->made++)
		sh->src->reconnects++; /* a bulk connection's first is no reconnect */
	c->state = CONN_CONNECTING;
	c->state_due_ns = source_now_ns() + sh->net.timeout_ns;
	if (connect(c->sock, (struct sockaddr *)&sh->addr, sh->addr_len) < 0 && errno != EINPROGRESS)
		connect_failed(sh, c, -errno, errno == ECONNREFUSED ? "connection refused"
								    : "cannot connect");
}

/* The connection is up: greet the server (the HELLO goes first in tx). */
static void connected(struct tcp_shared *sh, struct tcp_conn *c)
{
	struct pgs_hello h;

	pgs_hello_init(&h);
	memcpy(c->tx, &h, sizeof(h));
	c->tx_len = sizeof(h);
	c->tx_off = 0;
	c->state = CONN_HELLO;
	set_events(sh, c, EPOLLIN | EPOLLOUT);
}

/* ---- sending ------------------------------------------------------------ */

/* Moves unsent request i to the wire, its READ appended to tx. */
static void queue_read(struct tcp_shared *sh, struct tcp_conn *c, uint32_t i, uint64_t now)
{
	struct pgs_read rd;

	tcp_req_send(&sh->reqs, i, c->max_count, now, &rd);
	memcpy(c->tx + c->tx_len, &rd, sizeof(rd));
	c->tx_len += sizeof(rd);
}

void tcp_conn_flush(struct tcp_shared *sh, struct tcp_conn *c)
{
	if (c->state == CONN_DOWN) {
		if (c->queue.unsent.head != TCP_REQ_NONE && source_now_ns() >= c->state_due_ns)
			start_connect(sh, c);
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
		while (c->queue.unsent.head != TCP_REQ_NONE)
			queue_read(sh, c, c->queue.unsent.head, now);
	}
	while (c->tx_off < c->tx_len) {
		ssize_t n = send(c->sock, c->tx + c->tx_off, c->tx_len - c->tx_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			set_events(sh, c, EPOLLIN | EPOLLOUT);
			return;
		}
		if (n < 0) {
			drop(sh, c, -errno, "connection lost while sending");
			return;
		}
		c->tx_off += (size_t)n;
	}
	c->tx_len = c->tx_off = 0;
	set_events(sh, c, EPOLLIN);
}

/* ---- receiving ----------------------------------------------------------- */

/* What a look at the front of rx found. */
enum { TAKE_MORE, TAKE_DONE, TAKE_DROPPED };

static bool same_pages(const struct pgs_welcome *a, const struct pgs_welcome *b)
{
	return a->npages == b->npages && a->pattern == b->pattern && a->seed == b->seed;
}

/* The server's answer to the HELLO: a WELCOME like the first, or BUSY. */
static int take_opening(struct tcp_shared *sh, struct tcp_conn *c, const unsigned char *m,
			size_t avail, size_t *off)
{
	struct pgs_welcome w;
	struct pgs_busy b;

	if (avail >= PGS_OPENING_SIZE && pgs_is_busy(m)) {
		if (avail < sizeof(b))
			return TAKE_MORE;
		memcpy(&b, m, sizeof(b));
		int rc = pgs_busy_check(&b, NULL);
		connect_failed(sh, c, rc == -EBUSY ? -EBUSY : -EPROTO,
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
		drop(sh, c, -EPROTO, "malformed welcome");
		return TAKE_DROPPED;
	}
	if (!same_pages(&w, &sh->first)) {
		source_set_error(sh->src, -ESTALE,
				 "the page server now serves other pages than at the start");
		drop(sh, c, -ESTALE, "serves other pages");
		return TAKE_DROPPED;
	}
	c->max_count = w.max_count;
	c->state = CONN_READY;
	return TAKE_DONE;
}

/* The pages of an OK reply to request i (p: its crcs, then its pages):
 * each one pending whose crc32c matches completes; a corrupt one spends
 * the request's attempt; pages beyond the READ are asked for next. */
static void take_pages(struct tcp_shared *sh, struct tcp_conn *c, uint32_t i,
		       const unsigned char *p)
{
	const struct tcp_req *r = &sh->reqs.req[i];
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
		tcp_req_page_done(&sh->reqs, i, pg);
		good++;
	}
	if (good) {
		c->backoff_ns = TCP_BACKOFF_MIN_NS; /* this server serves */
		if (c->prio == SOURCE_DEMAND) {
			uint64_t rtt = source_now_ns() - r->sent_ns;
			sh->rtt_ns = sh->rtt_ns ? (sh->rtt_ns * 7 + rtt) / 8 : rtt;
		}
	}
	sh->src->corrupt += corrupt;
	if (corrupt)
		tcp_req_attempt_failed(&sh->reqs, i, -EBADMSG, "corrupt page (checksum mismatch)",
				       source_now_ns());
	else
		tcp_req_read_done(&sh->reqs, i); /* fewer pages than asked: the rest next */
}

/* A reply, once whole in rx. */
static int take_reply(struct tcp_shared *sh, struct tcp_conn *c, const unsigned char *m,
		      size_t avail, size_t *off)
{
	struct pgs_reply h;
	struct pgs_read rd;

	if (avail < sizeof(h))
		return TAKE_MORE;
	memcpy(&h, m, sizeof(h));
	uint32_t i = tcp_req_on_wire(&sh->reqs, &c->queue, h.id);
	if (i == TCP_REQ_NONE) {
		drop(sh, c, -EPROTO, "reply to no request (protocol error)");
		return TAKE_DROPPED;
	}
	const struct tcp_req *r = &sh->reqs.req[i];
	pgs_read_init(&rd, r->id, r->page + r->rd_first, r->rd_count);
	if (pgs_reply_check(&h, &rd, NULL)) {
		drop(sh, c, -EPROTO, "malformed reply (protocol error)");
		return TAKE_DROPPED;
	}
	if (h.status != PGS_OK) {
		*off += sizeof(h);
		if (h.status == PGS_RANGE)
			tcp_req_fail(&sh->reqs, i, -ERANGE, "it has no such page");
		else
			tcp_req_attempt_failed(&sh->reqs, i, -EIO,
					       "the server could not read the page",
					       source_now_ns());
		return TAKE_DONE;
	}
	size_t len = sizeof(h) + (size_t)r->rd_count * (4 + APF_PAGE_SIZE);
	if (avail < len)
		return TAKE_MORE;
	*off += len;
	take_pages(sh, c, i, m + sizeof(h));
	return TAKE_DONE;
}

/* Handles the complete messages at the front of rx.  Returns false when the
 * connection was dropped. */
static bool parse(struct tcp_shared *sh, struct tcp_conn *c)
{
	size_t off = 0;

	for (;;) {
		const unsigned char *m = c->rx + off;
		size_t avail = c->rx_len - off;
		int rc = c->state == CONN_HELLO ? take_opening(sh, c, m, avail, &off)
						: take_reply(sh, c, m, avail, &off);
		if (rc == TAKE_DROPPED)
			return false;
		if (rc == TAKE_MORE)
			break;
	}
	memmove(c->rx, c->rx + off, c->rx_len - off);
	c->rx_len -= off;
	return true;
}

static void receive(struct tcp_shared *sh, struct tcp_conn *c)
{
	for (;;) {
		ssize_t n = recv(c->sock, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			drop(sh, c, n ? -errno : -ECONNRESET,
			     n ? "connection lost" : "the server closed the connection");
			return;
		}
		c->rx_len += (size_t)n;
		if (!parse(sh, c))
			return;
	}
}
void tcp_conn_on_socket(struct tcp_shared *sh, struct tcp_conn *c, uint32_t events)
{
	if (c->state == CONN_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(c->sock, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			connect_failed(sh, c, -err, err == ECONNREFUSED ? "connection refused"
									: "cannot connect");
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		connected(sh, c);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		receive(sh, c);
}

/* ---- deadlines ---------------------------------------------------------- */

uint64_t tcp_conn_next_try_ns(const struct tcp_conn *c, uint64_t now)
{
	return c->state == CONN_DOWN && c->state_due_ns > now ? c->state_due_ns : now;
}

uint64_t tcp_conn_due(const struct tcp_shared *sh, const struct tcp_conn *c, uint64_t due)
{
	if (c->state == CONN_CONNECTING || c->state == CONN_HELLO ||
	    (c->state == CONN_DOWN && c->queue.unsent.head != TCP_REQ_NONE))
		if (!due || c->state_due_ns < due)
			due = c->state_due_ns;
	return tcp_queue_due(&sh->reqs, &c->queue, due);
}

void tcp_conn_timer(struct tcp_shared *sh, struct tcp_conn *c, uint64_t now)
{
	if ((c->state == CONN_CONNECTING || c->state == CONN_HELLO) && now >= c->state_due_ns) {
		connect_failed(sh, c, -ETIMEDOUT, c->state == CONN_CONNECTING
							  ? "no connection within the timeout"
							  : "no welcome within the timeout");
	}
	if (tcp_queue_wire_overdue(&sh->reqs, &c->queue, now))
		drop(sh, c, -ETIMEDOUT, "no reply within the timeout");
	/* Requests no connection carried before their deadline: the cause is
	 * the connection's, being made or the last one lost. */
	uint64_t resume = tcp_conn_next_try_ns(c, now);
	int err = c->state == CONN_DOWN && c->last_err ? c->last_err : -ETIMEDOUT;
	const char *cause = c->state == CONN_CONNECTING ? "no connection within the timeout"
			    : c->state == CONN_HELLO	    ? "no welcome within the timeout"
			    : c->state == CONN_DOWN && c->last_cause ? c->last_cause
								     : "not sent within the timeout";
	tcp_queue_spend_unsent(&sh->reqs, &c->queue, now, err, cause, resume);
}
