/*
 * apfvm serve's server (src/net/page_server.c) against a client speaking
 * the protocol by hand over loopback: pipelined reads come back in order
 * with pages whose checksums and content are the image's; a read beyond
 * the image is answered "out of range"; a malformed message or another
 * protocol closes that connection only; several clients are served at
 * once.  Under attack: a trickled hello, an idle client, a trickled
 * request and a client that never reads are each closed within their
 * timeout; clients beyond the limits (in all, and per address: the tests
 * connect from several loopback addresses) are answered BUSY, and served
 * once a slot frees; a flood of them is a few lines on stderr.  A
 * snapshot whose zero pages are holes in its memory file is served with
 * those pages as zeros.  Client sockets time out after 5 s, so a failure
 * cannot hang.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "image/image.h"
#include "net/page_proto.h"
#include "net/page_server.h"
#include "page_server_fixture.h"
#include "snapshot/snapshot.h"
#include "source/open.h"
#include "source/source.h"
#include "source/window.h"
#include "test.h"
#include "util/crc32c.h"
#include "util/thread.h"

/* For helpers that return a value: a broken precondition ends the
 * program with a FAIL line (the tier counts it). */
#define MUST(cond)                                                                    \
	do {                                                                          \
		if (!(cond)) {                                                        \
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
			exit(1);                                                      \
		}                                                                     \
	} while (0)

#define NPAGES 64
#define SEED   9

#define server fixture_server

static void start(void)
{
	REQUIRE(fixture_start(NPAGES, SEED, 8));
}

static void finish(void)
{
	fixture_stop_server();
}

static int connect_client(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(server.port) };
	struct timeval to = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	MUST(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &to, sizeof(to));
	return fd;
}

/* len bytes, or fails the test; returns 0, or 1 if the peer closed first. */
static int recv_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
		if (n == 0)
			return 1;
		MUST(n > 0); /* a timeout here is a failure */
		got += (size_t)n;
	}
	return 0;
}

static void send_all(int fd, const void *buf, size_t len)
{
	REQUIRE(send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len);
}

static int hello(void)
{
	struct pgs_hello h;
	struct pgs_welcome w;
	struct apf_err e;
	int fd = connect_client();

	pgs_hello_init(&h);
	send_all(fd, &h, sizeof(h));
	MUST(recv_full(fd, &w, sizeof(w)) == 0);
	MUST(pgs_welcome_check(&w, &e) == 0);
	CHECK_EQ_U(w.npages, NPAGES);
	CHECK_EQ_U(w.seed, SEED);
	CHECK_EQ_U(w.pattern, APF_PATTERN_SEEDED);
	CHECK_EQ_U(w.max_count, 8);
	return fd;
}

/* Receives the reply to req and checks every page against the image. */
static void expect_pages(int fd, const struct pgs_read *req)
{
	static uint64_t page[512], want[512];
	struct pgs_reply rep;
	uint32_t crcs[PGS_MAX_COUNT];
	struct apf_err e;

	REQUIRE(recv_full(fd, &rep, sizeof(rep)) == 0);
	REQUIRE(pgs_reply_check(&rep, req, &e) == 0);
	CHECK_EQ_U(rep.status, PGS_OK);
	REQUIRE(recv_full(fd, crcs, req->count * sizeof(uint32_t)) == 0);
	for (uint32_t i = 0; i < req->count; i++) {
		REQUIRE(recv_full(fd, page, sizeof(page)) == 0);
		CHECK(pgs_page_ok(page, crcs[i]));
		image_fill(SEED, (req->page + i) * 512, want, 512);
		CHECK(memcmp(page, want, sizeof(page)) == 0);
	}
}

TEST(pipelined_reads_come_back_with_the_images_pages)
{
	start();
	int fd = hello();
	struct pgs_read r[3];

	pgs_read_init(&r[0], 1, 0, 4);
	pgs_read_init(&r[1], 2, 56, 8);
	pgs_read_init(&r[2], 3, 10, 1);
	send_all(fd, r, sizeof(r)); /* all three before any reply */
	for (int i = 0; i < 3; i++)
		expect_pages(fd, &r[i]);
	close(fd);
	finish();
}

TEST(a_read_beyond_the_image_is_answered_out_of_range)
{
	start();
	int fd = hello();
	struct pgs_read r, ok;
	struct pgs_reply rep;
	struct apf_err e;

	pgs_read_init(&r, 5, 63, 2);
	pgs_read_init(&ok, 6, 63, 1);
	send_all(fd, &r, sizeof(r));
	send_all(fd, &ok, sizeof(ok));
	REQUIRE(recv_full(fd, &rep, sizeof(rep)) == 0);
	REQUIRE(pgs_reply_check(&rep, &r, &e) == 0);
	CHECK_EQ_U(rep.status, PGS_RANGE);
	expect_pages(fd, &ok); /* nothing followed the status; the connection goes on */
	close(fd);
	finish();
}

TEST(a_malformed_message_closes_only_its_connection)
{
	start();
	int bad = hello(), good = hello();
	struct pgs_read r, ok;
	char buf[1];

	pgs_read_init(&r, 1, 0, 1);
	r.page = 2; /* not resealed: damaged */
	send_all(bad, &r, sizeof(r));
	CHECK(recv_full(bad, buf, 1) == 1); /* closed */
	close(bad);
	pgs_read_init(&ok, 9, 3, 2);
	send_all(good, &ok, sizeof(ok));
	expect_pages(good, &ok);
	close(good);
	finish();
}

TEST(another_protocol_is_closed)
{
	start();
	static const char http[32] = "GET / HTTP/1.0\r\n\r\n";
	int fd = connect_client();
	char buf[1];

	send_all(fd, http, sizeof(http));
	CHECK(recv_full(fd, buf, 1) == 1);
	close(fd);
	finish();
}

TEST(several_clients_are_served_at_once)
{
	start();
	int fds[8];
	struct pgs_read r[8];

	for (int i = 0; i < 8; i++) {
		fds[i] = hello();
		pgs_read_init(&r[i], 100 + (uint64_t)i, (uint64_t)i * 8, 8);
		send_all(fds[i], &r[i], sizeof(r[i]));
	}
	for (int i = 7; i >= 0; i--) {
		expect_pages(fds[i], &r[i]);
		close(fds[i]);
	}
	finish();
}

TEST(bad_addresses_and_images_are_refused_with_a_message)
{
	static const struct {
		const char *listen, *why;
	} bad[] = {
		{ "localhost:7000", "'localhost' is not a numeric IPv4 or IPv6 address" },
		{ "127.0.0.1", "expected ADDR:PORT" },
		{ "127.0.0.1:70000", "port 0..65535" },
		{ "127.0.0.1:-1", "port 0..65535" },
		{ "[::1:7000", "is not a numeric IPv4 or IPv6 address" },
	};
	struct page_server s;
	struct page_server_config cfg;
	struct apf_err e;

	page_server_config_default(&cfg);
	start(); /* for its image */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(page_server_open(&s, fixture_image, false, bad[i].listen, &cfg, &e) == -EINVAL);
		if (!strstr(e.msg, bad[i].why))
			TEST_FAIL_("--listen %s: \"%s\" does not say \"%s\"", bad[i].listen, e.msg,
				   bad[i].why);
	}
	CHECK(page_server_open(&s, "/nonexistent/img", false, "127.0.0.1:0", &cfg, &e) == -ENOENT);
	CHECK(strstr(e.msg, "cannot open image") != NULL);
	finish();
}

/* ---- limits: clients that hold a slot without being served -------------- */

#define NS_PER_MS 1000000ull


/* A client socket from the loopback address `from` (all of 127/8 is
 * local), connected to the server. */
static int connect_from(const char *from)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(server.port) };
	struct sockaddr_in src = { .sin_family = AF_INET };
	struct timeval to = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	inet_pton(AF_INET, from, &src.sin_addr);
	MUST(fd >= 0 && bind(fd, (struct sockaddr *)&src, sizeof(src)) == 0);
	MUST(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &to, sizeof(to));
	return fd;
}

/* Reads until the server ends the connection (an end or a reset), sending
 * `trickle` a byte every 50 ms if given; returns the ns it took, or
 * UINT64_MAX if it was still open after 5 s. */
static uint64_t time_to_close(int fd, const char *trickle, size_t trickle_len)
{
	uint64_t start = monotonic_ns();
	size_t sent = 0;
	char buf[4096];

	while (monotonic_ns() - start < 5000 * NS_PER_MS) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (trickle && sent < trickle_len && send(fd, trickle + sent, 1, MSG_NOSIGNAL) == 1)
			sent++;
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return monotonic_ns() - start;
	}
	return UINT64_MAX;
}

/* Waits (bounded) until the server serves n connections. */
static bool clients_become(unsigned n)
{
	uint64_t start = monotonic_ns();
	while (fixture_clients() != n) {
		if (monotonic_ns() - start > 5000 * NS_PER_MS)
			return false;
		poll(NULL, 0, 5);
	}
	return true;
}

TEST(slow_idle_or_deaf_clients_are_closed_within_their_timeouts)
{
	struct page_server_config cfg;
	struct pgs_hello h;
	struct pgs_read r;
	const uint64_t io = 300 * NS_PER_MS, idle = 600 * NS_PER_MS, slack = 1500 * NS_PER_MS;

	page_server_config_default(&cfg);
	cfg.max_count = 8;
	cfg.io_timeout_ns = io;
	cfg.idle_timeout_ns = idle;
	REQUIRE(fixture_start_with(NPAGES, SEED, &cfg));
	pgs_hello_init(&h);

	/* A HELLO a byte every 50 ms: the whole HELLO has io, not each byte. */
	int fd = connect_client();
	uint64_t t = time_to_close(fd, (const char *)&h, sizeof(h));
	printf("# a trickled hello: closed after %.2f s (io timeout %.1f s)\n", t / 1e9, io / 1e9);
	CHECK(t >= io - 50 * NS_PER_MS && t <= io + slack);
	close(fd);

	/* Greeted, then nothing. */
	fd = hello();
	t = time_to_close(fd, NULL, 0);
	printf("# an idle client: closed after %.2f s (idle timeout %.1f s)\n", t / 1e9, idle / 1e9);
	CHECK(t >= idle - 50 * NS_PER_MS && t <= idle + slack);
	close(fd);

	/* Greeted, then a READ a byte every 50 ms. */
	fd = hello();
	pgs_read_init(&r, 1, 0, 1);
	t = time_to_close(fd, (const char *)&r, sizeof(r));
	CHECK(t <= io + slack);
	close(fd);

	/* Greeted, READs of 8 pages, and never a reply read: the server's
	 * send gives up within io once the socket buffers are full. */
	int small = 4096;
	fd = hello();
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	for (uint64_t i = 0; i < 512; i++) {
		pgs_read_init(&r, i, (i * 8) % NPAGES, 8);
		if (send(fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(r))
			break;
	}
	CHECK(clients_become(0));
	close(fd);
	finish();
}

/* The server's idle timeout closes a quiet tcp: source's connection; its
 * next fetch connects again and is served, no attempt spent. */
TEST(an_idle_close_costs_the_tcp_source_nothing)
{
	struct page_server_config cfg;
	struct page_source *s;
	struct source_completion c = { .page = UINT64_MAX };
	struct apf_err e;
	static uint64_t page[512];
	char spec[64];
	struct source_net_options net = { .timeout_ns = 2000000000ull, .tries = 1 };

	page_server_config_default(&cfg);
	cfg.idle_timeout_ns = 200 * NS_PER_MS;
	REQUIRE(fixture_start_with(NPAGES, SEED, &cfg));
	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%u", server.port);
	REQUIRE(source_open(spec, NPAGES * 4096ull, &net, &s, &e) == 0);
	REQUIRE(clients_become(1));
	REQUIRE(clients_become(0)); /* closed for idleness */
	/* The source sees the close when it next looks at its socket. */
	source_wait(s, 100);
	REQUIRE(source_submit(s, 3, page, NULL) == 0);
	uint64_t start = monotonic_ns();
	while (!source_reap(s, &c) && monotonic_ns() - start < 5000 * NS_PER_MS)
		source_wait(s, 100);
	CHECK_EQ_U(c.page, 3);
	CHECK_EQ_U(c.err, 0);
	CHECK_EQ_U(s->retries, 0);
	CHECK_EQ_U(s->reconnects, 1);
	source_close(s);
	finish();
}

TEST(clients_beyond_the_limits_are_answered_busy_and_served_once_a_slot_frees)
{
	struct page_server_config cfg;
	struct pgs_hello h;
	struct pgs_busy b;
	struct pgs_welcome w;
	struct apf_err e;
	int fds[4];

	page_server_config_default(&cfg);
	cfg.max_count = 8;
	cfg.max_clients = 4;
	cfg.max_per_peer = 2;
	REQUIRE(fixture_start_with(NPAGES, SEED, &cfg));
	pgs_hello_init(&h);

	static const char *const from[4] = { "127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.3" };
	for (int i = 0; i < 4; i++) {
		fds[i] = connect_from(from[i]);
		send_all(fds[i], &h, sizeof(h));
		REQUIRE(recv_full(fds[i], &w, sizeof(w)) == 0);
		CHECK(pgs_welcome_check(&w, &e) == 0);
	}
	/* A third from 127.0.0.2's neighbour 127.0.0.1: its address is full. */
	int fd = connect_from("127.0.0.1");
	send_all(fd, &h, sizeof(h));
	REQUIRE(recv_full(fd, &b, sizeof(b)) == 0);
	CHECK(pgs_is_busy(&b));
	CHECK(pgs_busy_check(&b, &e) == -EBUSY);
	CHECK(strstr(e.msg, "full for this address (2 connections each)") != NULL);
	CHECK(recv_full(fd, &b, 1) == 1); /* then closed */
	close(fd);
	/* Another address: the server is full. */
	fd = connect_from("127.0.0.4");
	send_all(fd, &h, sizeof(h));
	REQUIRE(recv_full(fd, &b, sizeof(b)) == 0);
	CHECK(pgs_busy_check(&b, &e) == -EBUSY);
	CHECK(strstr(e.msg, "the server is full (4 clients)") != NULL);
	close(fd);

	/* The tcp: source asks again after a backoff, then says why. */
	char spec[64];
	struct page_source *s;
	struct source_net_options net = { .timeout_ns = 1000000000ull, .tries = 2 };
	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%u", server.port);
	CHECK(source_open(spec, 4096, &net, &s, &e) == -EBUSY);
	CHECK(strstr(e.msg, "full for this address") && strstr(e.msg, "(2 tries)"));

	/* A slot freed is a slot served. */
	close(fds[0]);
	REQUIRE(clients_become(3));
	REQUIRE(source_open(spec, 4096, &net, &s, &e) == 0);
	source_close(s);
	for (int i = 1; i < 4; i++)
		close(fds[i]);
	finish();
}

TEST(a_flood_of_connections_is_a_few_lines_on_stderr)
{
	struct page_server_config cfg;
	char path[] = "/tmp/apfvm-serve-stderr.XXXXXX";
	int out = mkstemp(path), saved = dup(2);

	page_server_config_default(&cfg);
	cfg.max_count = 8;
	cfg.max_clients = cfg.max_per_peer = 1;
	REQUIRE(out >= 0 && saved >= 0);
	REQUIRE(fixture_start_with(NPAGES, SEED, &cfg));
	int held = hello();
	fflush(stderr);
	dup2(out, 2);
	for (int i = 0; i < 100; i++) {
		int fd = connect_client();
		char c;
		recv(fd, &c, 1, 0); /* its BUSY */
		close(fd);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(held);
	finish();
	FILE *f = fdopen(out, "r");
	char line[512];
	unsigned lines = 0;
	rewind(f);
	while (fgets(line, sizeof(line), f))
		lines++;
	fclose(f);
	unlink(path);
	printf("# 100 refused connections: %u lines on stderr\n", lines);
	/* PAGE_SERVER_LOG_PER_S a second; the flood may straddle a second. */
	CHECK(lines >= 1 && lines <= 2 * PAGE_SERVER_LOG_PER_S + 1);
}

/* A READ of 8 pages is one request, read with one pread: the server's
 * counters say so (what tests elsewhere use to prove pages were never
 * fetched). */
TEST(reads_and_pages_served_are_counted)
{
	struct page_server_stats st;
	struct pgs_read r[3];
	struct pgs_reply rep;
	struct apf_err e;

	start();
	page_server_stats(&server, &st);
	CHECK_EQ_U(st.reads, 0);
	CHECK_EQ_U(st.pages, 0);
	int fd = hello();
	pgs_read_init(&r[0], 1, 8, 8);
	pgs_read_init(&r[1], 2, 63, 1);
	pgs_read_init(&r[2], 3, 60, 8); /* beyond the image: answered, no pages */
	send_all(fd, r, sizeof(r));
	expect_pages(fd, &r[0]);
	expect_pages(fd, &r[1]);
	REQUIRE(recv_full(fd, &rep, sizeof(rep)) == 0);
	CHECK(pgs_reply_check(&rep, &r[2], &e) == 0 && rep.status == PGS_RANGE);
	page_server_stats(&server, &st);
	CHECK_EQ_U(st.reads, 3);
	CHECK_EQ_U(st.pages, 9);
	CHECK_EQ_U(st.clients, 1);
	close(fd);
	finish();
}

/* Fetches every page of s (up to 16 at once) into pages[]; false if
 * they did not all come whole within 30 s.  zero[p]: completed as zero. */
static bool fetch_every_page(struct page_source *s, uint64_t (*pages)[512], bool *zero,
			     unsigned *failed)
{
	static uint64_t bufs[16][512];
	unsigned free_list[16], nfree = 0, done = 0;
	uint64_t next = 0, deadline = source_now_ns() + 30000000000ull;
	struct source_completion c;

	*failed = 0;
	for (unsigned i = 0; i < 16; i++)
		free_list[nfree++] = i;
	while (done < s->npages && !s->error && source_now_ns() < deadline) {
		while (next < s->npages && nfree) {
			unsigned b = free_list[--nfree];
			if (source_submit(s, next, bufs[b], (void *)(uintptr_t)b))
				return false;
			next++;
		}
		bool any = false;
		while (source_reap(s, &c)) {
			unsigned b = (unsigned)(uintptr_t)c.cookie;
			any = true;
			free_list[nfree++] = b;
			done++;
			*failed += c.err != 0;
			zero[c.page] = c.zero;
			if (c.zero)
				memset(pages[c.page], 0, 4096);
			else
				memcpy(pages[c.page], bufs[b], 4096);
		}
		if (!any && done < s->npages)
			source_wait(s, 100);
	}
	return done == s->npages && !s->error;
}

TEST(a_snapshots_zero_pages_are_served_as_zeros_from_its_holes)
{
	enum { SNAP_PAGES = 96 };
	static uint64_t mem[SNAP_PAGES][512], got[SNAP_PAGES][512];
	static struct sha256 digests[SNAP_PAGES];
	static bool zero[SNAP_PAGES];
	char dir[] = "/tmp/apfvm-serve-snap.XXXXXX", spath[64], mpath[64];
	struct snap_writer w;
	struct snap_image snap;
	struct page_source *tcp, *win;
	struct apf_err e;
	uint64_t next = 0;
	unsigned failed;
	struct stat st;

	/* Data in pages 3, 40-41 and 90; the rest (the last 5 among them)
	 * zero: holes. */
	for (unsigned p = 0; p < SNAP_PAGES; p++)
		if (p == 3 || p == 40 || p == 41 || p == 90)
			for (unsigned i = 0; i < 512; i++)
				mem[p][i] = ((uint64_t)p << 32) | i;
	REQUIRE(mkdtemp(dir) != NULL);
	snprintf(spath, sizeof(spath), "%s/s", dir);
	snprintf(mpath, sizeof(mpath), "%s/s.mem", dir);
	REQUIRE(snap_write_begin(&w, spath, SNAP_ARCH_X86_64, 64 * 4096, 32 * 4096, &e) == 0);
	REQUIRE(snap_write_memory(&w, mem, sizeof(mem), digests, &next, &e) == 0);
	REQUIRE(snap_write_section(&w, SNAP_SEC_PAGE_DIGESTS, 0, digests, sizeof(digests), &e) == 0);
	REQUIRE(snap_write_end(&w, &e) == 0);
	REQUIRE(stat(mpath, &st) == 0);
	CHECK_EQ_U(st.st_size, SNAP_PAGES * 4096);
	CHECK((uint64_t)st.st_blocks * 512 <= 8 * 4096); /* holes */

	fixture_stop = 0;
	REQUIRE(page_server_open(&fixture_server, spath, true, "127.0.0.1:0", NULL, &e) == 0);
	REQUIRE(pthread_create(&fixture_thread, NULL, fixture_run, NULL) == 0);
	char spec[64];
	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%u", server.port);
	REQUIRE(snap_open_state(&snap, spath, &e) == 0);
	/* Every page as served, the holes among them: the snapshot's bytes. */
	REQUIRE(source_open(spec, 0, NULL, &tcp, &e) == 0);
	CHECK_EQ_U(tcp->pattern, APF_PATTERN_SNAPSHOT);
	CHECK_EQ_U(tcp->seed, snap_identity(&snap));
	CHECK(fetch_every_page(tcp, got, zero, &failed));
	CHECK_EQ_U(failed, 0);
	CHECK(memcmp(got, mem, sizeof(mem)) == 0);
	source_close(tcp);
	/* Through the checked window (a restore): the same, each page checked,
	 * the zero ones never asked for: the server sends only the 4 others. */
	struct page_server_stats before, after;
	page_server_stats(&fixture_server, &before);
	REQUIRE(source_open(spec, 0, NULL, &tcp, &e) == 0);
	REQUIRE(source_window_wrap(tcp, &snap, 0, SNAP_PAGES, &win, &e) == 0);
	memset(got, 0xff, sizeof(got));
	CHECK(fetch_every_page(win, got, zero, &failed));
	CHECK_EQ_U(failed, 0);
	CHECK(memcmp(got, mem, sizeof(mem)) == 0);
	for (unsigned p = 0; p < SNAP_PAGES; p++)
		CHECK_EQ_U(zero[p], snap_page_is_zero(&snap, p));
	CHECK_EQ_U(tcp->fetched, 4); /* pages 3, 40, 41, 90 */
	page_server_stats(&fixture_server, &after);
	CHECK_EQ_U(after.pages - before.pages, 4);
	source_close(win);
	snap_close(&snap);
	fixture_stop = 1;
	pthread_join(fixture_thread, NULL);
	page_server_close(&fixture_server);
	unlink(spath);
	unlink(mpath);
	rmdir(dir);
}

TEST_MAIN(T(pipelined_reads_come_back_with_the_images_pages),
	  T(a_read_beyond_the_image_is_answered_out_of_range),
	  T(a_malformed_message_closes_only_its_connection), T(another_protocol_is_closed),
	  T(several_clients_are_served_at_once),
	  T(bad_addresses_and_images_are_refused_with_a_message),
	  T(slow_idle_or_deaf_clients_are_closed_within_their_timeouts),
	  T(an_idle_close_costs_the_tcp_source_nothing),
	  T(clients_beyond_the_limits_are_answered_busy_and_served_once_a_slot_frees),
	  T(a_flood_of_connections_is_a_few_lines_on_stderr),
	  T(reads_and_pages_served_are_counted),
	  T(a_snapshots_zero_pages_are_served_as_zeros_from_its_holes))
