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
#include <sys/uio.h>
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
/* For tests whose retries come from the server's answers, not from
 * timeouts: a timeout no scheduling delay on a loaded machine reaches
 * (the fake server's welcome must not be missed). */
static const struct source_net_options patient = { .timeout_ns = 5000000000ull, .tries = 3 };

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
	int reads;         /* READ requests received (likewise) */
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
		f->reads++;
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

	REQUIRE(fake_fetch(&f, CORRUPT_ONCE, &patient, &r, &serr));
	CHECK_EQ_U(r.done, 32);
	CHECK_EQ_U(r.err[5], 0);
	CHECK_EQ_U(r.bad_content, 0);
	CHECK_EQ_U(f.page5_answers, 2);

	REQUIRE(fake_fetch(&f, CORRUPT_ALWAYS, &patient, &r, &serr));
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
	/* Long enough for the fake's welcome on a loaded machine (open waits
	 * for it as long), short enough for 4 rounds of 2 tries. */
	struct source_net_options net = { .timeout_ns = 200000000ull, .tries = 2 };
	int serr;

	REQUIRE(fake_fetch(&f, SILENT, &net, &r, &serr));
	CHECK_EQ_U(r.done, 32);
	for (unsigned p = 0; p < 32; p++)
		CHECK_EQ_U(r.err[p], -ETIMEDOUT);
	CHECK(strstr(r.why[0], "no reply within the timeout") && strstr(r.why[0], "2 tries"));
	CHECK(strstr(r.why[0], "127.0.0.1:") != NULL);
	/* Every page was asked for twice (its two tries), each retry over a
	 * new connection: how the batches of 8 in flight share connections
	 * depends on when their timeouts fall, so only the bounds are fixed
	 * (one connection per try at least, one per batch and try at most). */
	CHECK_EQ_U(f.reads, 32 * 2);
	CHECK(f.connections >= 2 && f.connections <= 32 / 8 * 2);
}

TEST(a_closed_connection_or_garbage_is_made_again_and_every_page_arrives)
{
	static struct fake f;
	static struct fetch r;
	int serr;

	REQUIRE(fake_fetch(&f, CLOSE_ONCE, &patient, &r, &serr));
	CHECK_EQ_U(r.done, 32);
	CHECK_EQ_U(r.bad_content, 0);
	for (unsigned p = 0; p < 32; p++)
		CHECK_EQ_U(r.err[p], 0);
	CHECK_EQ_U(f.connections, 2);

	REQUIRE(fake_fetch(&f, GARBAGE_ONCE, &patient, &r, &serr));
	CHECK_EQ_U(r.done, 32);
	CHECK_EQ_U(r.bad_content, 0);
	for (unsigned p = 0; p < 32; p++)
		CHECK_EQ_U(r.err[p], 0);
	CHECK_EQ_U(f.connections, 2);
}

TEST(a_server_that_dies_fails_the_fetches_left_with_the_cause)
{
	/* The READs left on its connection wait out one timeout. */
	static const struct source_net_options dies_net = { .timeout_ns = 1000000000ull, .tries = 3 };
	static struct fake f;
	static struct fetch r;
	int serr;
	unsigned ok = 0, failed = 0;

	REQUIRE(fake_fetch(&f, DIES, &dies_net, &r, &serr));
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

	REQUIRE(fake_fetch(&f, RANGE, &patient, &r, &serr));
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

	REQUIRE(fake_fetch(&f, CHANGES, &patient, &r, &serr));
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

/* ---- runs: multi-page READs, on two connections ------------------------- */

/* Every page of a run, by page: its buffer, its cookie is its number. */
static uint64_t run_bufs[1024][512];

struct run_result {
	int err[1024];
	char why[1024][160];
	unsigned done, bad_content, wrong_slot, twice;
	bool seen[1024];
	uint64_t order[1024];  /* pages in completion order */
	uint64_t longest_ns;
};

static void run_reset(struct run_result *r)
{
	memset(r, 0, sizeof(*r));
}

/* Submits pages [first, first + n) as runs of up to `per` pages at prio. */
static bool submit_runs(struct page_source *s, uint64_t first, unsigned n, unsigned per,
			enum source_prio prio)
{
	void *bufs[SOURCE_RUN_MAX], *cookies[SOURCE_RUN_MAX];
	unsigned started;

	for (unsigned done = 0; done < n; done += per) {
		unsigned k = n - done < per ? n - done : per;
		for (unsigned i = 0; i < k; i++) {
			bufs[i] = run_bufs[first + done + i];
			cookies[i] = (void *)(uintptr_t)(first + done + i);
		}
		int rc = source_submit_run(s, first + done, k, bufs, cookies, prio, &started);
		if (rc) {
			printf("# run of %u pages at %llu: %d (%u started)\n", k,
			       (unsigned long long)(first + done), rc, started);
			return false;
		}
	}
	return true;
}

/* Reaps until `want` completions came in all or deadline_ns passed; checks
 * each page delivered against the image (seed).  False on the deadline. */
static bool reap_runs(struct page_source *s, struct run_result *r, unsigned want, uint64_t seed,
		      uint64_t deadline_ns)
{
	static uint64_t expect[512];
	struct source_completion c;

	while (r->done < want) {
		while (source_reap(s, &c)) {
			uint64_t p = (uint64_t)(uintptr_t)c.cookie;
			if (p >= 1024 || c.page != p || c.buf != run_bufs[p]) {
				r->wrong_slot++;
				continue;
			}
			r->twice += r->seen[p];
			r->seen[p] = true;
			r->order[r->done++ % 1024] = p;
			if (source_now_ns() - c.submit_ns > r->longest_ns)
				r->longest_ns = source_now_ns() - c.submit_ns;
			r->err[p] = c.err;
			if (c.err) {
				snprintf(r->why[p], sizeof(r->why[p]), "%s", c.why ? c.why : "(none)");
				continue;
			}
			image_fill(seed, p * 512, expect, 512);
			if (memcmp(run_bufs[p], expect, sizeof(expect)))
				r->bad_content++;
		}
		if (r->done >= want || s->error)
			break;
		uint64_t now = source_now_ns();
		if (now >= deadline_ns)
			return false;
		source_wait(s, (int)((deadline_ns - now) / 1000000) + 1);
	}
	return !s->error;
}

TEST(runs_arrive_page_by_page_in_reads_of_the_servers_max_count_at_both_priorities)
{
	static struct run_result r;
	struct page_source *s;
	struct page_server_stats st;
	struct apf_err e;
	void *bufs[2] = { run_bufs[0], run_bufs[1] }, *cookies[2] = { NULL, NULL };
	unsigned started;

	REQUIRE(start_server()); /* 16 pages per READ */
	REQUIRE(open_source(server.port, NULL, &s, &e) == 0);
	run_reset(&r);
	/* 64 at demand (4 READs), 64 in bulk (4), 37 in bulk crossing READs
	 * (16 + 16 + 5), one page at demand (1). */
	REQUIRE(submit_runs(s, 0, 64, 64, SOURCE_DEMAND));
	REQUIRE(submit_runs(s, 64, 64, 64, SOURCE_BULK));
	REQUIRE(submit_runs(s, 200, 37, 64, SOURCE_BULK));
	REQUIRE(submit_runs(s, 255, 1, 1, SOURCE_DEMAND));
	CHECK(reap_runs(s, &r, 166, SEED, source_now_ns() + WAIT_LIMIT_NS));
	CHECK_EQ_U(r.done, 166);
	CHECK_EQ_U(r.wrong_slot, 0);
	CHECK_EQ_U(r.twice, 0);
	CHECK_EQ_U(r.bad_content, 0);
	for (unsigned p = 0; p < 256; p++)
		if (r.seen[p] && r.err[p])
			TEST_FAIL_("page %u: %d (%s)", p, r.err[p], r.why[p]);
	page_server_stats(&server, &st);
	CHECK_EQ_U(st.reads, 4 + 4 + 3 + 1);
	CHECK_EQ_U(st.pages, 166);
	CHECK_EQ_U(st.clients, 2); /* the demand connection and the bulk one */
	CHECK_EQ_U(s->reconnects, 0);
	CHECK_EQ_U(s->retries, 0);
	/* A run past the end starts nothing. */
	CHECK_EQ_U(source_submit_run(s, 255, 2, bufs, cookies, SOURCE_BULK, &started), -EINVAL);
	CHECK_EQ_U(started, 0);
	CHECK_EQ_U(s->ops->submit_run(s, 255, 2, bufs, cookies, SOURCE_DEMAND), -ERANGE);
	CHECK_EQ_U(s->ops->submit_run(s, 256, 1, bufs, cookies, SOURCE_DEMAND), -ERANGE);
	struct source_completion c;
	CHECK(!source_reap(s, &c));
	page_server_stats(&server, &st);
	CHECK_EQ_U(st.reads, 12); /* nothing was asked for */
	source_close(s);
	stop_server();
}

/* ---- a scripted server: demand and bulk READs told apart by page -------- */

#define SCRIPT_PAGES  1024
#define BULK_BELOW    512 /* the tests fetch pages below this in bulk, the others on demand */
#define SCRIPT_CONNS  8
#define SCRIPT_QUEUE  1100

enum script {
	HOLD_BULK,     /* a connection that carried a bulk READ is answered only once a
			* demand READ was (in order, as apfvm serve answers) */
	BULK_CLOSES,   /* a connection is closed at its first bulk READ */
	BULK_JUNK,     /* a connection gets junk at its first bulk READ */
	DEMAND_CLOSES, /* a connection is closed at its first demand READ */
};

struct sconn {
	int fd;
	bool greeted, bulk, demand, junked;
	unsigned char rx[64 * sizeof(struct pgs_read)];
	size_t rx_len;
	struct pgs_read queue[SCRIPT_QUEUE];
	unsigned head, n;
};

struct scripted {
	enum script how;
	int listen_fd;
	uint16_t port;
	pthread_t thread;
	atomic_int stop;
	bool demand_answered;
	/* Read after the thread ended. */
	unsigned connections, bulk_conns, demand_conns, mixed_conns, bad_reads;
	struct sconn conn[SCRIPT_CONNS];
};

static void sconn_close(struct scripted *sv, struct sconn *c)
{
	sv->bulk_conns += c->bulk;
	sv->demand_conns += c->demand;
	sv->mixed_conns += c->bulk && c->demand;
	close(c->fd);
	c->fd = -1;
}

static bool send_reply(int fd, const struct pgs_read *r)
{
	static uint64_t pages[16][512];
	uint32_t crcs[16];
	struct pgs_reply rep;

	pgs_reply_init(&rep, r, PGS_OK);
	for (uint32_t i = 0; i < r->count; i++) {
		image_fill(SEED, (r->page + i) * 512, pages[i], 512);
		crcs[i] = crc32c(0, pages[i], sizeof(pages[i]));
	}
	struct iovec iov[3] = { { &rep, sizeof(rep) }, { crcs, 4 * r->count },
				{ pages, sizeof(pages[0]) * r->count } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 3 };
	return sendmsg(fd, &m, MSG_NOSIGNAL) == (ssize_t)(sizeof(rep) + 4100 * r->count);
}

/* One READ received on c: queued, or what the script does instead.
 * False when c was closed. */
static bool script_read(struct scripted *sv, struct sconn *c, const struct pgs_read *r)
{
	bool bulk = r->page < BULK_BELOW;

	if (pgs_read_check(r, SCRIPT_PAGES, 16, NULL) || (!bulk && r->page + r->count <= BULK_BELOW)) {
		sv->bad_reads++;
		sconn_close(sv, c);
		return false;
	}
	c->bulk |= bulk;
	c->demand |= !bulk;
	if ((sv->how == BULK_CLOSES && bulk) || (sv->how == DEMAND_CLOSES && !bulk)) {
		sconn_close(sv, c);
		return false;
	}
	if (sv->how == BULK_JUNK && bulk) {
		static const char junk[64] = "HTTP/1.1 200 OK\r\n\r\n";
		if (!c->junked)
			send(c->fd, junk, sizeof(junk), MSG_NOSIGNAL);
		c->junked = true;
		return true;
	}
	if (c->n == SCRIPT_QUEUE) {
		sv->bad_reads++;
		sconn_close(sv, c);
		return false;
	}
	c->queue[(c->head + c->n++) % SCRIPT_QUEUE] = *r;
	return true;
}

/* What came on c: the HELLO (answered), then READs. */
static void script_receive(struct scripted *sv, struct sconn *c)
{
	ssize_t got = recv(c->fd, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len, MSG_DONTWAIT);
	size_t off = 0;

	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (got <= 0) {
		sconn_close(sv, c);
		return;
	}
	c->rx_len += (size_t)got;
	while (c->rx_len - off >= 32) {
		if (!c->greeted) {
			struct pgs_hello h;
			struct pgs_welcome w;
			memcpy(&h, c->rx + off, sizeof(h));
			pgs_welcome_init(&w, SCRIPT_PAGES, 16, APF_PATTERN_SEEDED, SEED);
			if (pgs_hello_check(&h, NULL) ||
			    send(c->fd, &w, sizeof(w), MSG_NOSIGNAL) != (ssize_t)sizeof(w)) {
				sconn_close(sv, c);
				return;
			}
			c->greeted = true;
		} else {
			struct pgs_read r;
			memcpy(&r, c->rx + off, sizeof(r));
			if (!script_read(sv, c, &r))
				return;
		}
		off += 32;
	}
	memmove(c->rx, c->rx + off, c->rx_len - off);
	c->rx_len -= off;
}

/* Answers, in order on each connection, what the script lets go. */
static void script_answer(struct scripted *sv)
{
	bool progress = true;

	while (progress) {
		progress = false;
		for (int k = 0; k < SCRIPT_CONNS; k++) {
			struct sconn *c = &sv->conn[k];
			while (c->fd >= 0 && c->n) {
				if (sv->how == HOLD_BULK && c->bulk && !sv->demand_answered)
					break;
				const struct pgs_read *r = &c->queue[c->head];
				if (!send_reply(c->fd, r)) {
					sconn_close(sv, c);
					break;
				}
				sv->demand_answered |= r->page >= BULK_BELOW;
				c->head = (c->head + 1) % SCRIPT_QUEUE;
				c->n--;
				progress = true;
			}
		}
	}
}

static void script_accept(struct scripted *sv)
{
	struct timeval to = { .tv_sec = 5 };
	int fd = accept(sv->listen_fd, NULL, NULL);

	if (fd < 0)
		return;
	sv->connections++;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &to, sizeof(to)); /* a stuck test fails */
	for (int k = 0; k < SCRIPT_CONNS; k++) {
		if (sv->conn[k].fd < 0) {
			memset(&sv->conn[k], 0, sizeof(sv->conn[k]));
			sv->conn[k].fd = fd;
			return;
		}
	}
	close(fd);
}

static void *script_thread(void *arg)
{
	struct scripted *sv = arg;

	while (!atomic_load(&sv->stop)) {
		struct pollfd p[1 + SCRIPT_CONNS];
		int idx[1 + SCRIPT_CONNS], n = 1;
		p[0] = (struct pollfd){ .fd = sv->listen_fd, .events = POLLIN };
		for (int k = 0; k < SCRIPT_CONNS; k++) {
			if (sv->conn[k].fd < 0)
				continue;
			p[n] = (struct pollfd){ .fd = sv->conn[k].fd, .events = POLLIN };
			idx[n++] = k;
		}
		if (poll(p, (nfds_t)n, 50) <= 0)
			continue;
		if (p[0].revents & POLLIN)
			script_accept(sv);
		for (int j = 1; j < n; j++)
			if (p[j].revents & (POLLIN | POLLHUP | POLLERR) && sv->conn[idx[j]].fd >= 0)
				script_receive(sv, &sv->conn[idx[j]]);
		script_answer(sv);
	}
	for (int k = 0; k < SCRIPT_CONNS; k++)
		if (sv->conn[k].fd >= 0)
			sconn_close(sv, &sv->conn[k]);
	return NULL;
}

static bool script_start(struct scripted *sv, enum script how)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	memset(sv, 0, sizeof(*sv));
	sv->how = how;
	for (int k = 0; k < SCRIPT_CONNS; k++)
		sv->conn[k].fd = -1;
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	sv->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sv->listen_fd < 0 || bind(sv->listen_fd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(sv->listen_fd, 8) || getsockname(sv->listen_fd, (struct sockaddr *)&a, &len))
		return false;
	sv->port = ntohs(a.sin_port);
	return pthread_create(&sv->thread, NULL, script_thread, sv) == 0;
}

static void script_stop(struct scripted *sv)
{
	atomic_store(&sv->stop, 1);
	pthread_join(sv->thread, NULL);
	close(sv->listen_fd);
}

static int open_scripted(const struct scripted *sv, const struct source_net_options *net,
			 struct page_source **s)
{
	char spec[64];
	struct apf_err e;
	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%u", sv->port);
	int rc = source_open(spec, SCRIPT_PAGES * 4096ull, net, s, &e);
	if (rc)
		printf("# open: %s\n", e.msg);
	return rc;
}

/* 512 bulk pages queued, then one demand page: the server holds every
 * reply on a connection that carried a bulk READ until it has answered a
 * demand READ.  Were the demand READ behind the bulk ones on their
 * connection, neither would ever be answered: the wait is bounded, and
 * the test fails saying so. */
TEST(a_demand_page_overtakes_512_bulk_pages_queued_before_it)
{
	static struct scripted sv;
	static struct run_result r;
	struct page_source *s;
	const struct source_net_options net = { .timeout_ns = 20000000000ull, .tries = 1 };
	const uint64_t limit = 10000000000ull;

	REQUIRE(script_start(&sv, HOLD_BULK));
	REQUIRE(open_scripted(&sv, &net, &s) == 0);
	run_reset(&r);
	REQUIRE(submit_runs(s, 0, BULK_BELOW, 64, SOURCE_BULK));
	REQUIRE(submit_runs(s, 700, 1, 1, SOURCE_DEMAND));
	uint64_t deadline = source_now_ns() + limit;
	if (!reap_runs(s, &r, 1, SEED, deadline) || !r.done)
		TEST_FAIL_("no page came within %llu s: the demand READ waited behind the bulk "
			   "ones, which the server holds until it has answered a demand READ",
			   (unsigned long long)(limit / 1000000000ull));
	else if (r.order[0] != 700)
		TEST_FAIL_("page %llu came first, before the demand page 700",
			   (unsigned long long)r.order[0]);
	CHECK(reap_runs(s, &r, BULK_BELOW + 1, SEED, deadline));
	CHECK_EQ_U(r.done, BULK_BELOW + 1);
	CHECK_EQ_U(r.bad_content, 0);
	CHECK_EQ_U(r.wrong_slot + r.twice, 0);
	for (unsigned p = 0; p < BULK_BELOW; p++)
		CHECK_EQ_U(r.err[p], 0);
	CHECK_EQ_U(r.err[700], 0);
	source_close(s);
	script_stop(&sv);
	CHECK_EQ_U(sv.connections, 2);
	CHECK_EQ_U(sv.mixed_conns, 0); /* no demand READ travelled with bulk ones */
	CHECK_EQ_U(sv.bad_reads, 0);
}

/* The server drops or garbles one kind of connection; the other kind's
 * fetches all arrive, and the failing kind's fail within the bound, with
 * the cause. */
static void one_kind_fails(enum script how, const char *cause, const char *or_cause)
{
	static struct scripted sv;
	static struct run_result r;
	struct page_source *s;
	const uint64_t bound = bounded.tries * (bounded.timeout_ns + SOURCE_NET_BACKOFF_MAX_NS);
	bool bulk_fails = how != DEMAND_CLOSES;

	REQUIRE(script_start(&sv, how));
	REQUIRE(open_scripted(&sv, &bounded, &s) == 0);
	run_reset(&r);
	REQUIRE(submit_runs(s, 0, 128, 64, SOURCE_BULK));
	for (unsigned i = 0; i < 32; i++)
		REQUIRE(submit_runs(s, 600 + i, 1, 1, SOURCE_DEMAND));
	CHECK(reap_runs(s, &r, 160, SEED, source_now_ns() + bound + 2000000000ull));
	CHECK_EQ_U(r.done, 160);
	CHECK_EQ_U(r.bad_content, 0);
	CHECK_EQ_U(r.wrong_slot + r.twice, 0);
	CHECK_EQ_U(s->error, 0);
	CHECK(r.longest_ns <= bound + 1000000000ull);
	for (unsigned p = 0; p < SCRIPT_PAGES; p++) {
		if (!r.seen[p])
			continue;
		bool fails = (p < BULK_BELOW) == bulk_fails;
		if (!fails && r.err[p])
			TEST_FAIL_("page %u failed: %s", p, r.why[p]);
		if (fails && (!r.err[p] || !strstr(r.why[p], "(3 tries)") ||
			      (!strstr(r.why[p], cause) && !strstr(r.why[p], or_cause))))
			TEST_FAIL_("page %u: \"%s\" does not say \"%s\" after 3 tries", p,
				   r.err[p] ? r.why[p] : "(it arrived)", cause);
	}
	printf("# %s: the other kind's pages all arrived; the failing kind's failed after up to "
	       "%.2f s: %s\n", how == DEMAND_CLOSES ? "demand connections closed" : how == BULK_JUNK
	       ? "junk on bulk connections" : "bulk connections closed", r.longest_ns / 1e9,
	       r.why[bulk_fails ? 0 : 600]);
	source_close(s);
	script_stop(&sv);
	CHECK_EQ_U(sv.mixed_conns, 0);
	/* The kind that works kept its one connection; the other was made
	 * again for each attempt (more when fetches submitted one by one met
	 * the close at different attempts). */
	CHECK_EQ_U(bulk_fails ? sv.demand_conns : sv.bulk_conns, 1);
	CHECK((bulk_fails ? sv.bulk_conns : sv.demand_conns) >= bounded.tries);
}

TEST(a_bulk_connection_closed_or_garbled_leaves_demand_fetches_alone)
{
	one_kind_fails(BULK_CLOSES, "closed the connection", "connection lost");
	one_kind_fails(BULK_JUNK, "protocol error", "protocol error");
}

TEST(a_demand_connection_closed_leaves_bulk_fetches_alone)
{
	one_kind_fails(DEMAND_CLOSES, "closed the connection", "connection lost");
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
	  T(every_fetch_ends_within_its_bound_whatever_the_server_does),
	  T(runs_arrive_page_by_page_in_reads_of_the_servers_max_count_at_both_priorities),
	  T(a_demand_page_overtakes_512_bulk_pages_queued_before_it),
	  T(a_bulk_connection_closed_or_garbled_leaves_demand_fetches_alone),
	  T(a_demand_connection_closed_leaves_bulk_fetches_alone))
