/*
 * libFuzzer target: the tcp: page source (src/source/tcp.c) against a page
 * server whose every move comes from the input: replies to the READs it
 * received (any status, a good or corrupt page), raw bytes, BUSY, closing
 * the connection (and the next one's welcome), over real loopback sockets.
 * Whatever the server does, every fetch completes within the source's
 * bound (tries x (timeout + backoff)), and no page reaches the caller
 * unless it holds the image's content.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "fuzz.h"
#include "image/image.h"
#include "net/page_proto.h"
#include "source/open.h"
#include "source/source.h"
#include "util/crc32c.h"

#define NPAGES  64
#define SEED    3
#define FETCHES 8

struct server {
	int listen_fd;
	const uint8_t *in;
	size_t len, at;
};

static uint8_t next(struct server *s)
{
	return s->at < s->len ? s->in[s->at++] : 0xff;
}

static void send_all(int fd, const void *p, size_t n)
{
	(void)!send(fd, p, n, MSG_NOSIGNAL);
}

/* Accepts a connection and welcomes it (or answers BUSY); -1 when none. */
static int greet(struct server *s, bool *busy)
{
	struct pollfd p = { .fd = s->listen_fd, .events = POLLIN };
	if (poll(&p, 1, 500) <= 0)
		return -1;
	int fd = accept(s->listen_fd, NULL, NULL);
	struct pgs_hello h;
	struct pollfd q = { .fd = fd, .events = POLLIN };
	if (fd < 0 || poll(&q, 1, 200) <= 0 || recv(fd, &h, sizeof(h), MSG_WAITALL) != sizeof(h)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	uint8_t how = next(s);
	*busy = how % 16 == 15;
	if (*busy) {
		struct pgs_busy b;
		pgs_busy_init(&b, PGS_BUSY_FULL, 1);
		send_all(fd, &b, sizeof(b));
		return fd;
	}
	struct pgs_welcome w;
	pgs_welcome_init(&w, NPAGES, 16, APF_PATTERN_SEEDED, how % 16 == 14 ? SEED + 1 : SEED);
	send_all(fd, &w, sizeof(w));
	return fd;
}

static void *serve(void *arg)
{
	struct server *s = arg;
	struct pgs_read reads[64];
	unsigned nreads = 0;
	static uint64_t page[512];
	bool busy = false;
	int fd = greet(s, &busy);

	while (fd >= 0 && s->at < s->len) {
		/* The READs that came. */
		struct pollfd p = { .fd = fd, .events = POLLIN };
		while (nreads < 64 && poll(&p, 1, 5) > 0) {
			if (recv(fd, &reads[nreads], sizeof(reads[0]), MSG_WAITALL) != sizeof(reads[0]))
				break;
			nreads++;
		}
		uint8_t op = next(s);
		if (op < 128 && nreads) {
			/* Answer a READ: status, and a good or corrupt page. */
			struct pgs_read *r = &reads[op % nreads];
			struct pgs_reply rep;
			uint8_t how = next(s);
			pgs_reply_init(&rep, r, how % 4 == 3 ? PGS_OK : (enum pgs_status)(how % 4));
			if (how & 0x40)
				rep.id ^= 1u << (how % 24); /* answers another request */
			send_all(fd, &rep, sizeof(rep));
			if (rep.status == PGS_OK) {
				image_fill(SEED, r->page * 512, page, 512);
				uint32_t crc = crc32c(0, page, sizeof(page));
				if (how & 0x80)
					page[how % 512] ^= 1; /* damaged after its crc was taken */
				send_all(fd, &crc, 4);
				send_all(fd, page, sizeof(page));
			}
			*r = reads[--nreads];
		} else if (op < 192) {
			/* Raw bytes. */
			size_t n = op % 64 + 1;
			if (n > s->len - s->at)
				n = s->len - s->at;
			send_all(fd, s->in + s->at, n);
			s->at += n;
		} else {
			/* Close; the next connection is welcomed (or not). */
			close(fd);
			nreads = 0;
			fd = greet(s, &busy);
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct server s = { .in = data, .len = size };
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	pthread_t t;
	char spec[64];
	struct source_net_options net = { .timeout_ns = 30000000ull, .tries = 2 };
	struct page_source *src;
	struct apf_err e;
	static uint64_t bufs[FETCHES][512], want[512];

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	s.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK_OR_DIE(s.listen_fd >= 0 && !bind(s.listen_fd, (struct sockaddr *)&a, sizeof(a)) &&
		     !listen(s.listen_fd, 8) && !getsockname(s.listen_fd, (struct sockaddr *)&a, &alen));
	CHECK_OR_DIE(!pthread_create(&t, NULL, serve, &s));
	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%u", ntohs(a.sin_port));
	int rc = source_open(spec, NPAGES * 4096ull, &net, &src, &e);
	if (!rc) {
		unsigned done = 0;
		uint64_t start = source_now_ns();
		/* tries x (timeout + the longest backoff), and some slack. */
		uint64_t bound = net.tries * (net.timeout_ns + SOURCE_NET_BACKOFF_MAX_NS) + 1000000000ull;
		for (unsigned i = 0; i < FETCHES; i++)
			CHECK_OR_DIE(source_submit(src, i * 7 % NPAGES, bufs[i], (void *)(uintptr_t)i) == 0);
		while (done < FETCHES && !src->error && source_now_ns() - start < bound) {
			struct source_completion c;
			source_wait(src, 20);
			while (source_reap(src, &c)) {
				done++;
				if (c.err)
					continue;
				image_fill(SEED, c.page * 512, want, 512);
				CHECK_OR_DIE(!memcmp(bufs[(uintptr_t)c.cookie], want, sizeof(want)));
			}
		}
		CHECK_OR_DIE(done == FETCHES || src->error);
		source_close(src);
	} else {
		CHECK_OR_DIE(rc < 0 && e.msg[0] != '\0');
	}
	close(s.listen_fd); /* the server's next accept fails at once */
	pthread_join(t, NULL);
	return 0;
}
