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
 * if another arrived corrupt, and a request tried again asks only for its
 * pages still pending (tcp_req.h).
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
 * What the peer sends is untrusted: each failure, and what follows it (a
 * retry, a new connection after a backoff, a failed fetch with its cause,
 * or the source failed as a whole), is listed in tcp_conn.h.  A page
 * reaches the completion queue, and so the guest, only after its checksum
 * matched.
 *
 * The parts, each calling only the ones after it: this file (the
 * page_source ops, open with its first connection made synchronously, the
 * timer, and which connection an event is for); tcp_conn.c (one
 * connection's life); tcp_req.c (the requests: their lists, completions
 * and attempts).
 */
#include <errno.h>
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
#include "source/tcp_conn.h"

#define NCONN    2 /* indexed by enum source_prio */
/* epoll tags: the timer, and connection k as EV_CONN + k. */
#define EV_TIMER 0u
#define EV_CONN  1u

_Static_assert(SOURCE_DEMAND == 0 && SOURCE_BULK == 1, "connections are indexed by priority");

struct tcp_source {
	struct page_source base;      /* first */
	struct tcp_shared sh;         /* what the connections share */
	struct tcp_conn conn[NCONN];  /* [SOURCE_DEMAND]: made at open; [SOURCE_BULK] */
	int timer;
	uint64_t armed_ns;            /* the timer's expiry, 0: disarmed */
};

/* ---- timer and events ------------------------------------------------------ */

static void rearm(struct tcp_source *t)
{
	uint64_t due = 0;

	for (int k = 0; k < NCONN; k++)
		due = tcp_conn_due(&t->sh, &t->conn[k], due);
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
	for (int k = 0; k < NCONN; k++)
		tcp_conn_timer(&t->sh, &t->conn[k], now);
}

static void tcp_on_event(struct page_source *s)
{
	struct tcp_source *t = (struct tcp_source *)s;
	struct epoll_event evs[1 + NCONN];
	int n = epoll_wait(t->sh.ep, evs, 1 + NCONN, 0);

	for (int k = 0; k < n; k++) {
		uint32_t tag = evs[k].data.u32;
		if (tag == EV_TIMER)
			on_timer(t);
		else if (tag - EV_CONN < NCONN && t->conn[tag - EV_CONN].sock >= 0)
			tcp_conn_on_socket(&t->sh, &t->conn[tag - EV_CONN], evs[k].events);
	}
	for (int k = 0; k < NCONN; k++)
		tcp_conn_flush(&t->sh, &t->conn[k]);
	rearm(t);
}

/* ---- submitting ------------------------------------------------------------ */

static int tcp_submit_run(struct page_source *s, uint64_t page, unsigned n, void *const *bufs,
			  void *const *cookies, enum source_prio prio)
{
	struct tcp_source *t = (struct tcp_source *)s;
	struct tcp_conn *c = &t->conn[prio == SOURCE_BULK ? SOURCE_BULK : SOURCE_DEMAND];
	unsigned per = t->sh.first.max_count;

	if (page >= s->npages || !n || n > SOURCE_RUN_MAX || n > s->npages - page)
		return -ERANGE;
	if (t->sh.reqs.nfree < (n + per - 1) / per)
		return -EAGAIN;
	/* A first attempt waits for the backoff before the connection's next
	 * try, at most that long. */
	uint64_t now = source_now_ns();
	uint64_t due = tcp_conn_next_try_ns(c, now) + t->sh.net.timeout_ns;
	for (unsigned done = 0; done < n; done += per)
		tcp_req_new(&t->sh.reqs, &c->queue, page + done, n - done < per ? n - done : per,
			    bufs + done, cookies + done, now, due);
	tcp_conn_flush(&t->sh, c);
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
	return ((struct tcp_source *)s)->sh.rtt_ns;
}

static void tcp_destroy(struct page_source *s)
{
	struct tcp_source *t = (struct tcp_source *)s;

	for (int k = 0; k < NCONN; k++)
		tcp_conn_close(&t->conn[k]);
	close(t->timer);
	close(t->sh.ep);
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

static int greet(struct tcp_shared *sh, int sock, struct apf_err *e)
{
	uint64_t start = source_now_ns(), deadline = start + sh->net.timeout_ns;
	struct pgs_hello h;
	size_t got = 0;
	int rc, err = 0;
	socklen_t len = sizeof(err);

	if (connect(sock, (struct sockaddr *)&sh->addr, sh->addr_len) < 0 && errno != EINPROGRESS)
		return apf_fail(e, -errno, "page server %s: cannot connect: %s", sh->peer,
				strerror(errno));
	if ((rc = sock_wait_until(sock, POLLOUT, deadline)))
		return apf_fail(e, rc, "page server %s: cannot connect: %s", sh->peer,
				rc == -ETIMEDOUT ? "no answer within the timeout" : strerror(-rc));
	getsockopt(sock, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err)
		return apf_fail(e, -err, "page server %s: cannot connect: %s", sh->peer,
				strerror(err));
	pgs_hello_init(&h);
	if (send(sock, &h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h))
		return apf_fail(e, -EIO, "page server %s: cannot send the hello", sh->peer);
	size_t want = sizeof(sh->first);
	while (got < want) {
		if ((rc = sock_wait_until(sock, POLLIN, deadline)))
			return apf_fail(e, rc, "page server %s: no welcome: %s", sh->peer,
					rc == -ETIMEDOUT ? "no answer within the timeout"
							 : strerror(-rc));
		ssize_t n = recv(sock, (char *)&sh->first + got, sizeof(sh->first) - got,
				 MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return apf_fail(e, -ECONNRESET,
					"page server %s: the connection closed before the welcome "
					"(is it an apfvm page server?)", sh->peer);
		got += (size_t)n;
		if (want == sizeof(sh->first) && got >= PGS_OPENING_SIZE && pgs_is_busy(&sh->first))
			want = sizeof(struct pgs_busy);
	}
	struct apf_err pe;
	if (want == sizeof(struct pgs_busy)) {
		struct pgs_busy b;
		memcpy(&b, &sh->first, sizeof(b));
		rc = pgs_busy_check(&b, &pe);
		return apf_fail(e, rc, "page server %s: %s", sh->peer, pe.msg);
	}
	if ((rc = pgs_welcome_check(&sh->first, &pe)))
		return apf_fail(e, rc, "page server %s: %s", sh->peer, pe.msg);
	sh->rtt_ns = source_now_ns() - start;
	return 0;
}

/* The first connection (the demand one), greeted: a BUSY server is asked
 * again after a backoff, up to the tries; anything else that fails is an
 * error now. */
static int first_connection(struct tcp_source *t, struct apf_err *e)
{
	struct tcp_conn *c = &t->conn[SOURCE_DEMAND];
	uint64_t backoff = TCP_BACKOFF_MIN_NS;
	int rc = 0;

	for (unsigned attempt = 1; attempt <= t->sh.net.tries; attempt++) {
		c->sock = socket(t->sh.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->sock < 0)
			return apf_fail(e, -errno, "page server %s: %s", t->sh.peer, strerror(errno));
		rc = greet(&t->sh, c->sock, e);
		if (rc != -EBUSY)
			return rc;
		close(c->sock);
		c->sock = -1;
		if (attempt < t->sh.net.tries) {
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
	return apf_fail(e, rc, "%s (%u %s)", last.msg, t->sh.net.tries,
			t->sh.net.tries == 1 ? "try" : "tries");
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
	if (epoll_ctl(t->sh.ep, EPOLL_CTL_ADD, t->timer, &ev) < 0 ||
	    (ev.data.u32 = EV_CONN + SOURCE_DEMAND,
	     epoll_ctl(t->sh.ep, EPOLL_CTL_ADD, d->sock, &ev) < 0))
		return apf_fail(e, -errno, "epoll: %s", strerror(errno));
	for (int k = 0; k < NCONN; k++)
		tcp_conn_init(&t->conn[k], (enum source_prio)k, EV_CONN + (uint32_t)k,
			      t->sh.first.max_count);
	return 0;
}

int source_tcp_open(const char *addr, uint64_t lazy_bytes, const struct source_net_options *net,
		    struct page_source **out, struct apf_err *e)
{
	struct tcp_source *t = calloc(1, sizeof(*t));
	int rc;

	if (!t)
		return apf_fail(e, -ENOMEM, "out of memory");
	t->timer = t->sh.ep = -1;
	for (int k = 0; k < NCONN; k++)
		t->conn[k].sock = -1;
	t->sh.net = *net;
	if ((rc = net_addr_parse(addr, "tcp:", 0, &t->sh.addr, &t->sh.addr_len, e)))
		goto fail;
	net_addr_format(&t->sh.addr, t->sh.peer, sizeof(t->sh.peer));
	t->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	t->sh.ep = epoll_create1(EPOLL_CLOEXEC);
	if (t->timer < 0 || t->sh.ep < 0) {
		rc = apf_fail(e, -errno, "page server %s: %s", t->sh.peer, strerror(errno));
		goto fail;
	}
	if ((rc = first_connection(t, e)))
		goto fail;
	if (t->sh.first.npages * APF_PAGE_SIZE < lazy_bytes) {
		rc = apf_fail(e, -EINVAL,
			      "page server %s serves %llu bytes, less than the %llu asked for "
			      "(run's --lazy, fetch's --size)",
			      t->sh.peer, (unsigned long long)(t->sh.first.npages * APF_PAGE_SIZE),
			      (unsigned long long)lazy_bytes);
		goto fail;
	}
	if ((rc = init_conns(t, e)))
		goto fail;
	source_init(&t->base, &tcp_ops, t->sh.first.npages);
	t->base.event_fd = t->sh.ep;
	t->base.pattern = t->sh.first.pattern;
	t->base.seed = t->sh.first.seed;
	snprintf(t->base.desc, sizeof(t->base.desc), "tcp:%s (seed %llu)", t->sh.peer,
		 (unsigned long long)t->sh.first.seed);
	t->sh.src = &t->base;
	tcp_reqs_init(&t->sh.reqs, &t->base, t->sh.peer, &t->sh.net);
	*out = &t->base;
	return 0;
fail:
	for (int k = 0; k < NCONN; k++)
		tcp_conn_close(&t->conn[k]);
	if (t->timer >= 0)
		close(t->timer);
	if (t->sh.ep >= 0)
		close(t->sh.ep);
	free(t);
	return rc;
}
