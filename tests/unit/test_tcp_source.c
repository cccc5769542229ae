/*
 * The tcp: page source (src/source/tcp.c) over loopback: against apfvm's
 * page server, every page arrives with the image's content, many in
 * flight; against a misbehaving server (a thread here speaking the
 * protocol by hand), each failure ends as the source promises: corrupt
 * pages are fetched again and never delivered, a silent server times out,
 * a closed connection is made again, a dead server fails the fetches with
 * the cause, a server that changed its pages fails the source.  Every
 * wait is bounded (WAIT_LIMIT_NS), so a broken source fails the test
 * instead of hanging it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "image/image.h"
#include "net/page_proto.h"
#include "net/page_server.h"
#include "source/open.h"
#include "source/source.h"
#include "page_server_fixture.h"
#include "test.h"
#include "util/crc32c.h"

#define NPAGES        256
#define SEED          21
#define INFLIGHT      64
#define WAIT_LIMIT_NS (30ull * 1000000000ull)

/* ---- the client side: fetch pages and wait, bounded -------------------- */

struct fetch {
	int err[NPAGES];
	char why[NPAGES][160];
	unsigned done, bad_content;
	uint64_t longest_ns; /* of the fetches, from submit to completion */
	uint64_t bufs[INFLIGHT][512];
	uint64_t want[512];
};

/* Fetches pages [0, n) with up to `inflight` in flight and checks each
 * delivered page against the image's content.  Returns false if the
 * source stopped completing (WAIT_LIMIT_NS) or failed as a whole. */
static bool fetch_pages(struct page_source *s, unsigned n, unsigned inflight, struct fetch *f)
{
	unsigned free_list[INFLIGHT], nfree = 0, next = 0;
	uint64_t deadline = source_now_ns() + WAIT_LIMIT_NS;
	struct source_completion c;

	memset(f, 0, offsetof(struct fetch, bufs));
	for (unsigned i = 0; i < inflight; i++)
		free_list[nfree++] = i;
	while (f->done < n) {
		while (next < n && nfree) {
			unsigned b = free_list[--nfree];
			int rc = source_submit(s, next, f->bufs[b], (void *)(uintptr_t)b);
			if (rc) {
				printf("# submit of page %u: %d\n", next, rc);
				return false;
			}
			next++;
		}
		while (source_reap(s, &c)) {
			unsigned b = (unsigned)(uintptr_t)c.cookie;
			free_list[nfree++] = b;
			f->done++;
			if (source_now_ns() - c.submit_ns > f->longest_ns)
				f->longest_ns = source_now_ns() - c.submit_ns;
			f->err[c.page] = c.err;
			if (c.err) {
				snprintf(f->why[c.page], sizeof(f->why[c.page]), "%s",
					 c.why ? c.why : "(none)");
				continue;
			}
			image_fill(SEED, c.page * 512, f->want, 512);
			if (memcmp(f->bufs[b], f->want, sizeof(f->want)))
				f->bad_content++;
		}
		if (s->error || f->done == n)
			break;
		if (next < n && nfree)
			continue; /* submit more before waiting */
		uint64_t now = source_now_ns();
		if (now >= deadline) {
			printf("# %u of %u pages came within the limit\n", f->done, n);
			return false;
		}
		source_wait(s, (int)((deadline - now) / 1000000) + 1);
	}
	if (s->error)
		printf("# the source failed: %s\n", s->error_what);
	return !s->error;
}

/* ---- apfvm's page server, in a thread ------------------------------------ */

#define server fixture_server

static bool start_server(void)
{
	return fixture_start(NPAGES, SEED, 16);
}

static void stop_server(void)
{
	fixture_stop_server();
}

static const struct source_net_options quick = { .timeout_ns = 200000000ull, .tries = 3 };

static int open_source(uint16_t port, const struct source_net_options *net,
		       struct page_source **s, struct apf_err *e)
{
	char spec[64];
	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%u", port);
	return source_open(spec, NPAGES * 4096ull, net, s, e);
}

TEST(every_page_arrives_with_the_images_content_many_in_flight)
{
	struct page_source *s;
	struct apf_err e;
	static struct fetch f;

	REQUIRE(start_server());
	REQUIRE(open_source(server.port, NULL, &s, &e) == 0);
	CHECK_EQ_U(s->npages, NPAGES);
	CHECK_EQ_U(s->seed, SEED);
	CHECK_EQ_U(s->pattern, APF_PATTERN_SEEDED);
	CHECK(fetch_pages(s, NPAGES, INFLIGHT, &f));
	CHECK_EQ_U(f.done, NPAGES);
	CHECK_EQ_U(f.bad_content, 0);
	for (unsigned p = 0; p < NPAGES; p++)
		CHECK_EQ_U(f.err[p], 0);
	CHECK(s->ops->expected_ns(s, 0) > 0); /* measured: feeds the async policy */
	/* One at a time works too, and a page beyond the source is refused. */
	CHECK(fetch_pages(s, 8, 1, &f));
	CHECK_EQ_U(f.bad_content, 0);
	CHECK_EQ_U(source_submit(s, NPAGES, f.bufs[0], NULL), -ERANGE);
	source_close(s);
	stop_server();
}

TEST(a_server_that_cannot_be_reached_or_is_too_small_is_an_error_at_open)
{
	struct page_source *s;
	struct apf_err e;

	/* A port nobody listens on: bind one, close it. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	close(fd);
	CHECK_EQ_U(open_source(ntohs(a.sin_port), &quick, &s, &e), -ECONNREFUSED);
	CHECK(strstr(e.msg, "cannot connect") && strstr(e.msg, "refused"));

	REQUIRE(start_server());
	char spec[64];
	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%u", server.port);
	CHECK_EQ_U(source_open(spec, 2 * NPAGES * 4096ull, NULL, &s, &e), -EINVAL);
	CHECK(strstr(e.msg, "less than the 2097152 asked for (run's --lazy, fetch's --size)") != NULL);
	stop_server();

	static const char *const bad[] = { "tcp:", "tcp:localhost:7000", "tcp:127.0.0.1",
					   "tcp:127.0.0.1:0", "tcp:127.0.0.1:70000" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.msg[0] = '\0';
		CHECK_EQ_U(source_open(bad[i], 4096, NULL, &s, &e), -EINVAL);
		CHECK(strstr(e.msg, "tcp:") != NULL);
	}
	struct source_net_options no_tries = { .timeout_ns = 1000000000ull, .tries = 0 };
	CHECK_EQ_U(source_open("tcp:127.0.0.1:1", 4096, &no_tries, &s, &e), -EINVAL);
}

/* ---- a misbehaving server --------------------------------------------------- */

enum behaviour {
	CORRUPT_ONCE,   /* page 5's first answer is corrupt */
	CORRUPT_ALWAYS, /* page 5 is always corrupt */
	SILENT,         /* never answers a READ */
	CLOSE_ONCE,     /* closes the first connection after 10 answers */
	DIES,           /* closes after 10 answers, and stops listening */
	GARBAGE_ONCE,   /* one reply header is garbage (the first connection) */
	RANGE,          /* page 7 is "out of range" */
	CHANGES,        /* closes after 10 answers; the next welcome has another seed */
	NO_WELCOME,     /* accepts, never welcomes */
	/* The first connection answers 10 READs and closes; later ones: */
	LATER_CLOSED_AT_ONCE,      /* closed on accept */
	LATER_CLOSED_AFTER_WELCOME, /* welcomed, then closed */
	LATER_JUNK,                /* welcomed, then junk */
	LATER_BUSY,                /* answered BUSY */
	LATER_TRICKLE,             /* welcomed; each reply a byte every 20 ms */
	LATER_SLOW_WELCOME,        /* the welcome a byte every 20 ms */
};

static bool later(enum behaviour b)
{
	return b >= LATER_CLOSED_AT_ONCE;
}

struct fake {
	enum behaviour b;
	int listen_fd;
	uint16_t port;
	pthread_t thread;
	atomic_int stop;
	int connections;   /* accepted (fake's thread only; read after join) */
	int page5_answers;
};

static int recv_full(int fd, void *buf, size_t len, atomic_int *quit)
{
	size_t got = 0;
	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (atomic_load(quit))
			return -1;
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/* Serves one connection as f->b says; returns when it is to be closed. */
static void fake_serve(struct fake *f, int fd)
{
	struct pgs_hello h;
	struct pgs_welcome w;
	struct pgs_read r;
	uint64_t page[512];
	int answers = 0;

	bool hostile = later(f->b) && f->connections > 1;

	if (hostile && f->b == LATER_CLOSED_AT_ONCE)
		return;
	if (recv_full(fd, &h, sizeof(h), &f->stop) || f->b == NO_WELCOME) {
		while (!atomic_load(&f->stop) && recv_full(fd, &h, 1, &f->stop) == 0)
			;
		return;
	}
	if (hostile && f->b == LATER_BUSY) {
		struct pgs_busy b;
		pgs_busy_init(&b, PGS_BUSY_FULL, 64);
		send(fd, &b, sizeof(b), MSG_NOSIGNAL);
		recv_full(fd, &h, 1, &f->stop); /* until the client closes */
		return;
	}
	pgs_welcome_init(&w, NPAGES, 16, APF_PATTERN_SEEDED,
			 f->b == CHANGES && f->connections > 1 ? SEED + 1 : SEED);
	if (hostile && f->b == LATER_SLOW_WELCOME) {
		for (size_t i = 0; i < sizeof(w) && !atomic_load(&f->stop); i++) {
			if (send(fd, (char *)&w + i, 1, MSG_NOSIGNAL) != 1)
				return;
			poll(NULL, 0, 20);
		}
		return;
	}
	if (send(fd, &w, sizeof(w), MSG_NOSIGNAL) != (ssize_t)sizeof(w))
		return;
	if (hostile && f->b == LATER_CLOSED_AFTER_WELCOME)
		return;
	if (hostile && f->b == LATER_JUNK) {
		static const char junk[64] = "HTTP/1.1 200 OK\r\n\r\n";
		send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
		recv_full(fd, &h, 1, &f->stop);
		return;
	}
	while (recv_full(fd, &r, sizeof(r), &f->stop) == 0) {
		if (f->b == SILENT)
			continue;
		if ((f->b == CLOSE_ONCE && f->connections == 1 && answers == 10) ||
		    ((f->b == DIES || f->b == CHANGES || later(f->b)) && answers == 10))
			return;
		if (hostile && f->b == LATER_TRICKLE) {
			struct pgs_reply rep;
			pgs_reply_init(&rep, &r, PGS_OK);
			for (size_t i = 0; i < sizeof(rep) && !atomic_load(&f->stop); i++) {
				if (send(fd, (char *)&rep + i, 1, MSG_NOSIGNAL) != 1)
					return;
				poll(NULL, 0, 20);
			}
			return;
		}
		struct pgs_reply rep;
		pgs_reply_init(&rep, &r, f->b == RANGE && r.page == 7 ? PGS_RANGE : PGS_OK);
		if (f->b == GARBAGE_ONCE && f->connections == 1 && answers == 10)
			rep.id ^= 0x5a5a0000; /* header no longer matches its crc */
		image_fill(SEED, r.page * 512, page, 512);
		uint32_t crc = crc32c(0, page, sizeof(page));
		if (r.page == 5 && ((f->b == CORRUPT_ONCE && f->page5_answers++ == 0) ||
				    f->b == CORRUPT_ALWAYS))
			page[100] ^= 1; /* content changed after its crc was taken */
		struct iovec iov[3] = { { &rep, sizeof(rep) }, { &crc, 4 }, { page, sizeof(page) } };
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = rep.status == PGS_OK ? 3 : 1 };
		if (sendmsg(fd, &m, MSG_NOSIGNAL) < 0)
			return;
		answers++;
	}
}

static void *fake_thread(void *arg)
{
	struct fake *f = arg;

	while (!atomic_load(&f->stop)) {
		struct pollfd p = { .fd = f->listen_fd, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		int fd = accept(f->listen_fd, NULL, NULL);
		if (fd < 0)
			continue;
		f->connections++;
		fake_serve(f, fd);
		close(fd);
		if (f->b == DIES) {
			close(f->listen_fd); /* later connects are refused */
			f->listen_fd = -1;
			break;
		}
	}
	return NULL;
}

static bool fake_start(struct fake *f, enum behaviour b)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	memset(f, 0, sizeof(*f));
	f->b = b;
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->listen_fd < 0 || bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(f->listen_fd, 4) || getsockname(f->listen_fd, (struct sockaddr *)&a, &len))
		return false;
	f->port = ntohs(a.sin_port);
	return pthread_create(&f->thread, NULL, fake_thread, f) == 0;
}

static void fake_stop(struct fake *f)
{
	atomic_store(&f->stop, 1);
	pthread_join(f->thread, NULL);
	if (f->listen_fd >= 0)
		close(f->listen_fd);
}

/* Opens a source on a fake server behaving as b and fetches 32 pages,
 * 8 in flight. */
static bool fake_fetch(struct fake *f, enum behaviour b, const struct source_net_options *net,
		       struct fetch *out, int *source_error)
{
	struct page_source *s;
	struct apf_err e;
	bool ok;

	if (!fake_start(f, b))
		return false;
	if (open_source(f->port, net, &s, &e)) {
		fprintf(stderr, "open: %s\n", e.msg);
		fake_stop(f);
		return false;
	}
	ok = fetch_pages(s, 32, 8, out) || s->error;
	*source_error = s->error;
	source_close(s);
	fake_stop(f);
	return ok;
}

TEST(a_corrupt_page_is_fetched_again_and_never_delivered)
{
	static struct fake f;
	static struct fetch r;
	int serr;

	REQUIRE(fake_fetch(&f, CORRUPT_ONCE, &quick, &r, &serr));
	CHECK_EQ_U(r.done, 32);
	CHECK_EQ_U(r.err[5], 0);
	CHECK_EQ_U(r.bad_content, 0);
	CHECK_EQ_U(f.page5_answers, 2);

	REQUIRE(fake_fetch(&f, CORRUPT_ALWAYS, &quick, &r, &serr));
	CHECK_EQ_U(r.done, 32);
	CHECK_EQ_U(r.err[5], -EBADMSG);
	CHECK(strstr(r.why[5], "corrupt page") && strstr(r.why[5], "3 tries"));
	CHECK_EQ_U(r.err[4], 0);
	CHECK_EQ_U(r.err[6], 0);
	CHECK_EQ_U(r.bad_content, 0); /* the corrupt one was never handed out */
}

TEST(a_silent_server_times_out_with_the_cause)
{
	static struct fake f;
	static struct fetch r;
	struct source_net_options net = { .timeout_ns = 50000000ull, .tries = 2 };
	int serr;

	REQUIRE(fake_fetch(&f, SILENT, &net, &r, &serr));
	CHECK_EQ_U(r.done, 32);
	for (unsigned p = 0; p < 32; p++)
		CHECK_EQ_U(r.err[p], -ETIMEDOUT);
	CHECK(strstr(r.why[0], "no reply within the timeout") && strstr(r.why[0], "2 tries"));
	CHECK(strstr(r.why[0], "127.0.0.1:") != NULL);
	/* Each batch of 8 in flight was tried again over a new connection: */
	CHECK_EQ_U(f.connections, 32 / 8 * 2);
}

TEST(a_closed_connection_or_garbage_is_made_again_and_every_page_arrives)
{
	static struct fake f;
	static struct fetch r;
	int serr;

	REQUIRE(fake_fetch(&f, CLOSE_ONCE, &quick, &r, &serr));
	CHECK_EQ_U(r.done, 32);
	CHECK_EQ_U(r.bad_content, 0);
	for (unsigned p = 0; p < 32; p++)
		CHECK_EQ_U(r.err[p], 0);
	CHECK_EQ_U(f.connections, 2);

	REQUIRE(fake_fetch(&f, GARBAGE_ONCE, &quick, &r, &serr));
	CHECK_EQ_U(r.done, 32);
	CHECK_EQ_U(r.bad_content, 0);
	for (unsigned p = 0; p < 32; p++)
		CHECK_EQ_U(r.err[p], 0);
	CHECK_EQ_U(f.connections, 2);
}

TEST(a_server_that_dies_fails_the_fetches_left_with_the_cause)
{
	static struct fake f;
	static struct fetch r;
	int serr;
	unsigned ok = 0, failed = 0;

	REQUIRE(fake_fetch(&f, DIES, &quick, &r, &serr));
	CHECK_EQ_U(r.done, 32);
	for (unsigned p = 0; p < 32; p++) {
		ok += r.err[p] == 0;
		failed += r.err[p] == -ECONNREFUSED;
	}
	/* 10 were answered, but closing with READs unread resets the
	 * connection, which may discard answers not yet read: those are tried
	 * again, and refused. */
	CHECK(ok <= 10 && ok >= 1);
	CHECK_EQ_U(ok + failed, 32);
	CHECK_EQ_U(r.bad_content, 0);
	CHECK(strstr(r.why[31], "connection refused") && strstr(r.why[31], "3 tries"));
}

TEST(a_page_the_server_does_not_have_fails_at_once)
{
	static struct fake f;
	static struct fetch r;
	int serr;

	REQUIRE(fake_fetch(&f, RANGE, &quick, &r, &serr));
	CHECK_EQ_U(r.done, 32);
	CHECK_EQ_U(r.err[7], -ERANGE);
	CHECK(strstr(r.why[7], "no such page") != NULL);
	CHECK_EQ_U(r.err[8], 0);
	CHECK_EQ_U(f.connections, 1);
}

TEST(a_server_that_changed_its_pages_fails_the_source)
{
	static struct fake f;
	static struct fetch r;
	int serr;

	REQUIRE(fake_fetch(&f, CHANGES, &quick, &r, &serr));
	CHECK_EQ_U(serr, -ESTALE);
	CHECK_EQ_U(r.bad_content, 0);
}

TEST(a_server_that_never_welcomes_is_an_error_at_open)
{
	static struct fake f;
	struct page_source *s;
	struct apf_err e;
	struct source_net_options net = { .timeout_ns = 100000000ull, .tries = 1 };

	REQUIRE(fake_start(&f, NO_WELCOME));
	CHECK_EQ_U(open_source(f.port, &net, &s, &e), -ETIMEDOUT);
	CHECK(strstr(e.msg, "no welcome") != NULL);
	fake_stop(&f);
}

/* Whatever a server does after the source opened, every fetch ends within
 * tries x (timeout + the longest backoff) of its submit, with the cause.
 * The servers run side by side, each with its own source. */
static const struct hostile_peer {
	enum behaviour b;
	const char *name;
	const char *cause, *or_cause; /* what the failures say (either) */
} hostile_peers[] = {
	{ DIES, "refuses connections", "connection refused", NULL },
	{ SILENT, "never answers", "no reply within the timeout", NULL },
	/* Closed with the HELLO unread: a reset, or an end if it came first. */
	{ LATER_CLOSED_AT_ONCE, "closes on accept", "connection lost", "closed the connection" },
	{ LATER_CLOSED_AFTER_WELCOME, "closes after its welcome", "closed the connection",
	  "connection lost" },
	{ LATER_JUNK, "sends junk after its welcome", "protocol error", NULL },
	{ LATER_BUSY, "answers BUSY", "the server is full", NULL },
	{ LATER_TRICKLE, "trickles its replies", "no reply within the timeout", NULL },
	{ LATER_SLOW_WELCOME, "trickles its welcome", "no welcome within the timeout", NULL },
};
#define NHOSTILE (sizeof(hostile_peers) / sizeof(hostile_peers[0]))

struct hostile_run {
	const struct hostile_peer *peer;
	struct fake f;
	struct fetch r;
	bool ok;
};

static const struct source_net_options bounded = { .timeout_ns = 200000000ull, .tries = 3 };

static void *hostile_fetch(void *arg)
{
	struct hostile_run *h = arg;
	int serr;
	h->ok = fake_fetch(&h->f, h->peer->b, &bounded, &h->r, &serr);
	return NULL;
}

TEST(every_fetch_ends_within_its_bound_whatever_the_server_does)
{
	const uint64_t bound = bounded.tries * (bounded.timeout_ns + SOURCE_NET_BACKOFF_MAX_NS);
	/* Timers fire late on a busy machine; a lost bound is unbounded. */
	const uint64_t slack = 1000000000ull;
	static struct hostile_run runs[NHOSTILE];
	pthread_t threads[NHOSTILE];

	for (size_t k = 0; k < NHOSTILE; k++) {
		runs[k].peer = &hostile_peers[k];
		REQUIRE(pthread_create(&threads[k], NULL, hostile_fetch, &runs[k]) == 0);
	}
	for (size_t k = 0; k < NHOSTILE; k++)
		pthread_join(threads[k], NULL);
	for (size_t k = 0; k < NHOSTILE; k++) {
		const struct hostile_peer *peer = runs[k].peer;
		const struct fetch *r = &runs[k].r;
		unsigned failed = 0, p_failed = 0;
		CHECK(runs[k].ok);
		for (unsigned p = 0; p < 32; p++)
			if (r->err[p]) {
				failed++;
				p_failed = p;
			}
		printf("# a server that %s: fetches fail after up to %.2f s (bound %.1f s): %s\n",
		       peer->name, r->longest_ns / 1e9, bound / 1e9, failed ? r->why[p_failed] : "-");
		CHECK_EQ_U(r->done, 32);
		CHECK_EQ_U(r->bad_content, 0);
		CHECK(failed >= 32 - 10);
		CHECK(r->longest_ns <= bound + slack);
		const char *why = r->why[p_failed];
		if (failed && !strstr(why, peer->cause) && !(peer->or_cause && strstr(why, peer->or_cause)))
			TEST_FAIL_("a server that %s: \"%s\" does not say \"%s\"", peer->name, why,
				   peer->cause);
	}
}

TEST_MAIN(T(every_page_arrives_with_the_images_content_many_in_flight),
	  T(a_server_that_cannot_be_reached_or_is_too_small_is_an_error_at_open),
	  T(a_corrupt_page_is_fetched_again_and_never_delivered),
	  T(a_silent_server_times_out_with_the_cause),
	  T(a_closed_connection_or_garbage_is_made_again_and_every_page_arrives),
	  T(a_server_that_dies_fails_the_fetches_left_with_the_cause),
	  T(a_page_the_server_does_not_have_fails_at_once),
	  T(a_server_that_changed_its_pages_fails_the_source),
	  T(a_server_that_never_welcomes_is_an_error_at_open),
	  T(every_fetch_ends_within_its_bound_whatever_the_server_does))
