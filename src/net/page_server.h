/*
 * page_server: `apfvm serve`, the server side of the page server protocol
 * (page_proto.h, docs/page-server.md).  It serves the pages of an apfvm
 * image to many clients at once, one thread per connection, each
 * answering its client's pipelined READs in order with the pages and
 * their crc32c.  A READ of count pages is read from the image with one
 * pread; the server counts READs and pages (page_server_stats).
 *
 * Whatever a client sends is checked (page_proto.h) before it is used: a
 * malformed message closes that connection (and says why on stderr, at
 * most PAGE_SERVER_LOG_PER_S lines a second), a READ beyond the image is
 * answered PGS_RANGE, a read error PGS_IO.
 *
 * No client can stall another or the listener, and none holds a slot for
 * long without being served (struct page_server_config): the HELLO, each
 * READ once its first byte came, and each reply must pass whole within
 * io_timeout; a greeted connection without a READ for idle_timeout is
 * closed; at most max_clients connections are served, max_per_peer of
 * them from one address.  A client beyond those is answered BUSY (the
 * client tries again later) and closed; the listener never waits on it.
 */
#ifndef APFVM_PAGE_SERVER_H
#define APFVM_PAGE_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/err.h"

#define PAGE_SERVER_LOG_PER_S   20  /* stderr lines a second, then counted */
#define PAGE_SERVER_REFUSED_MAX 64  /* refused connections lingering for their BUSY */

struct page_server_config {
	uint32_t max_count;       /* pages per READ offered, 1..PGS_MAX_COUNT */
	unsigned max_clients;     /* connections served at once, 1..4096 */
	unsigned max_per_peer;    /* of them from one address, 1..max_clients */
	uint64_t io_timeout_ns;   /* HELLO, a READ once begun, a reply: each whole within */
	uint64_t idle_timeout_ns; /* a greeted connection with no READ this long is closed */
};

/* max_count 16, 256 clients, 32 per address (a tcp: source uses up to
 * two connections), io 10 s, idle 60 s. */
void page_server_config_default(struct page_server_config *c);
/* 0, or -EINVAL with the option at fault named in e. */
int page_server_config_check(const struct page_server_config *c, struct apf_err *e);

/* A connection being served, or a free slot (fd -1). */
struct page_server_slot {
	int fd;
	struct sockaddr_storage peer; /* its address, port 0: what max_per_peer counts */
};

/* A refused connection, kept until its client has read the BUSY. */
struct page_server_refused {
	int fd;
	uint64_t until_ns;
};

struct page_server {
	int image_fd;
	uint64_t data_offset, npages, seed;
	uint32_t pattern;       /* enum apf_pattern: an image's, or a snapshot's */
	struct page_server_config cfg;
	int listen_fd;
	uint16_t port;          /* the port bound (useful with port 0) */
	/* The connections being served, under lock; idle is signalled when
	 * one ends. */
	pthread_mutex_t lock;
	pthread_cond_t idle;
	unsigned clients;
	struct page_server_slot *slots; /* cfg.max_clients of them */
	uint64_t refusals;              /* BUSY answers sent, under lock */
	/* READs answered (any status) and pages sent in them, each counted
	 * as its reply is sent: page_server_stats. */
	atomic_uint_fast64_t reads, pages;
	/* The listener's thread only. */
	struct page_server_refused refused[PAGE_SERVER_REFUSED_MAX];
	/* stderr's throttle, under lock. */
	uint64_t log_second, log_lines, log_dropped;
};

/* Opens what it serves: the image at path (checked as the file source
 * does), or with `snapshot` the snapshot at path, whose PATH.mem it serves
 * (announced as APF_PATTERN_SNAPSHOT with the snapshot's identity), and
 * listens on "ADDR:PORT" (IPv4, or [IPv6]:PORT; port 0 picks one).
 * cfg: NULL for the defaults. */
int page_server_open(struct page_server *s, const char *path, bool snapshot,
		     const char *listen_addr, const struct page_server_config *cfg,
		     struct apf_err *e);

/* Accepts and serves clients until *stop becomes non-zero (checked at
 * least every 200 ms; a signal handler may set it: atomic_int is
 * lock-free) or the listening socket fails.  0, or -errno. */
int page_server_run(struct page_server *s, const atomic_int *stop, struct apf_err *e);

/* What the server did so far; any thread may ask, at any time. */
struct page_server_stats {
	uint64_t reads;    /* READ requests answered, any status (a READ of 16 pages is one) */
	uint64_t pages;    /* pages sent in those answers (counted as each is sent:
			    * a client holding a reply sees it counted) */
	uint64_t clients;  /* connections being served now */
	uint64_t refusals; /* connections answered BUSY */
};
void page_server_stats(struct page_server *s, struct page_server_stats *out);

/* Ends every connection still being served (shut down, its thread
 * waited for), then closes the listener and the image. */
void page_server_close(struct page_server *s);

#endif
