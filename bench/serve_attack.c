/*
 * serve_attack: hostile clients of a page server (apfvm serve), to measure
 * how it serves a well-behaved client meanwhile (scripts/bench_serve.sh)
 * and to test that it does (tests/e2e/test_cli.sh).
 *
 *   serve_attack PORT N SECONDS
 *
 * Keeps N connections to 127.0.0.1:PORT open for SECONDS, each from its own
 * loopback address (127.0.1.1, 127.0.1.2, ...: all of 127/8 is local, so a
 * per-address limit does not stop them), and makes a connection again as
 * soon as the server closes one.  Connection i misbehaves as i % 3 says:
 *  0 idle:      a HELLO, then nothing;
 *  1 slowloris: its HELLO, then READs, one byte a second;
 *  2 deaf:      a HELLO, then READs of as many pages as it may, never
 *               reading a byte of what comes back.
 * Says when all N were welcomed the first time, and at the end what
 * happened: connections made, answered BUSY, closed by the server.  Single-threaded and non-blocking: one poll over every socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/page_proto.h"

#define MAX_CONNS 1024

enum kind { IDLE, SLOWLORIS, DEAF };

struct conn {
	int fd;
	enum kind kind;
	unsigned char msg[64]; /* what it sends slowly */
	size_t len, sent;
	double next_byte;      /* slowloris: when the next byte goes */
	uint64_t seq;
	size_t got;            /* bytes of the answer to its HELLO read */
	unsigned char answer[sizeof(struct pgs_welcome)];
	int greeted;
	uint32_t max_count;    /* from the WELCOME */
	uint64_t npages;
};

static struct conn conns[MAX_CONNS];
static unsigned long made, busy, closed;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void open_conn(struct conn *c, unsigned i, uint16_t port)
{
	struct sockaddr_in src = { .sin_family = AF_INET };
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct pgs_hello h;

	src.sin_addr.s_addr = htonl(0x7f000100u + 1 + i); /* 127.0.1.(1+i) */
	inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return;
	int small = 4096;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
	    (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS)) {
		close(c->fd);
		c->fd = -1;
		return;
	}
	made++;
	c->kind = (enum kind)(i % 3);
	pgs_hello_init(&h);
	memcpy(c->msg, &h, sizeof(h));
	c->len = sizeof(h);
	c->sent = c->got = 0;
	c->greeted = 0;
	c->next_byte = now_s();
}

static void close_conn(struct conn *c)
{
	close(c->fd);
	c->fd = -1;
	closed++;
}

/* Sends what the connection sends now; false when the server is gone. */
static int push(struct conn *c, double now)
{
	if (c->kind == SLOWLORIS && c->greeted) {
		if (now < c->next_byte)
			return 1;
		if (c->sent == c->len) {
			struct pgs_read r;
			pgs_read_init(&r, ++c->seq, 0, 1);
			memcpy(c->msg, &r, sizeof(r));
			c->len = sizeof(r);
			c->sent = 0;
		}
		ssize_t n = send(c->fd, c->msg + c->sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN)
			return 0;
		c->sent += n > 0;
		c->next_byte = now + 1.0;
		return 1;
	}
	if (c->sent < c->len) {
		ssize_t n = send(c->fd, c->msg + c->sent, c->len - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != ENOTCONN)
			return 0;
		if (n > 0)
			c->sent += (size_t)n;
		return 1;
	}
	if (c->kind == DEAF && c->greeted) {
		struct pgs_read r;
		c->seq++;
		pgs_read_init(&r, c->seq, (c->seq * c->max_count) % (c->npages - c->max_count + 1),
			      c->max_count);
		memcpy(c->msg, &r, sizeof(r));
		c->len = sizeof(r);
		c->sent = 0;
	}
	return 1;
}

/* Reads the answer to the HELLO (a WELCOME or a BUSY); the deaf never read
 * after it.  False when the server closed. */
static int pull(struct conn *c)
{
	if (c->greeted && c->kind == DEAF)
		return 1;
	unsigned char buf[4096];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN))
		return 0;
	if (n < 0 || c->greeted)
		return 1;
	size_t take = (size_t)n < sizeof(c->answer) - c->got ? (size_t)n : sizeof(c->answer) - c->got;
	memcpy(c->answer + c->got, buf, take);
	c->got += take;
	if (c->got >= PGS_OPENING_SIZE && pgs_is_busy(c->answer)) {
		busy++;
		return 0;
	}
	if (c->got == sizeof(c->answer)) {
		struct pgs_welcome w;
		memcpy(&w, c->answer, sizeof(w));
		if (pgs_welcome_check(&w, NULL) || w.npages < w.max_count)
			return 0;
		/* The deaf ask for as many pages as the server gives. */
		c->max_count = w.max_count;
		c->npages = w.npages;
		c->greeted = 1;
		if (c->kind == SLOWLORIS)
			c->sent = c->len; /* its next message starts a READ */
	}
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: serve_attack PORT N SECONDS\n");
		return 2;
	}
	uint16_t port = (uint16_t)atoi(argv[1]);
	unsigned n = (unsigned)atoi(argv[2]);
	double until = now_s() + atof(argv[3]);
	static struct pollfd p[MAX_CONNS];

	if (!port || n < 1 || n > MAX_CONNS) {
		fprintf(stderr, "serve_attack: PORT 1..65535, N 1..%d\n", MAX_CONNS);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	for (unsigned i = 0; i < n; i++)
		open_conn(&conns[i], i, port);
	int said = 0;
	while (now_s() < until) {
		double now = now_s();
		unsigned greeted = 0;
		for (unsigned i = 0; i < n; i++)
			greeted += conns[i].fd >= 0 && conns[i].greeted;
		if (!said && greeted == n) {
			/* For the caller: every hostile client holds a connection. */
			printf("serve_attack: all %u connections welcomed\n", n);
			fflush(stdout);
			said = 1;
		}
		for (unsigned i = 0; i < n; i++) {
			struct conn *c = &conns[i];
			if (c->fd < 0)
				open_conn(c, i, port);
			if (c->fd >= 0 && (!push(c, now) || !pull(c)))
				close_conn(c);
			p[i].fd = c->fd;
			p[i].events = POLLIN | (c->sent < c->len && c->kind != SLOWLORIS ? POLLOUT : 0);
		}
		poll(p, n, 100);
	}
	printf("serve_attack: %u hostile connections: %lu made, %lu answered busy, %lu closed\n", n,
	       made, busy, closed);
	return 0;
}
