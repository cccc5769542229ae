/*
 * apfvm serve's server (src/net/page_server.c) against a client speaking
 * the protocol by hand over loopback: pipelined reads come back in order
 * with pages whose checksums and content are the image's; a read beyond
 * the image is answered "out of range"; a malformed message or another
 * protocol closes that connection only; several clients are served at
 * once.  Client sockets time out after 5 s, so a failure cannot hang.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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
#include "page_server_fixture.h"
#include "test.h"
#include "util/crc32c.h"

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

TEST_MAIN(T(pipelined_reads_come_back_with_the_images_pages),
	  T(a_read_beyond_the_image_is_answered_out_of_range),
	  T(a_malformed_message_closes_only_its_connection), T(another_protocol_is_closed),
	  T(several_clients_are_served_at_once),
	  T(bad_addresses_and_images_are_refused_with_a_message))
