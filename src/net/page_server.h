/*
 * page_server: `apfvm serve`, the server side of the page server protocol
 * (page_proto.h, docs/page-server.md).  It serves the pages of an apfvm
 * image to any number of clients at once, one thread per connection,
 * each answering its client's pipelined READs in order with the pages and
 * their crc32c.
 *
 * Whatever a client sends is checked (page_proto.h) before it is used: a
 * malformed message closes that connection (and says why on stderr), a
 * READ beyond the image is answered PGS_RANGE, a read error PGS_IO.  No
 * client can stall another or the listener: a HELLO must come within
 * PAGE_SERVER_HELLO_TIMEOUT_S and a reply must leave within
 * PAGE_SERVER_SEND_TIMEOUT_S, or the connection is closed.
 */
#ifndef APFVM_PAGE_SERVER_H
#define APFVM_PAGE_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

#define PAGE_SERVER_HELLO_TIMEOUT_S 10
#define PAGE_SERVER_SEND_TIMEOUT_S  30
#define PAGE_SERVER_MAX_CLIENTS     64

struct page_server {
	int image_fd;
	uint64_t data_offset, npages, seed;
	uint32_t pattern;       /* enum apf_pattern: an image's, or a snapshot's */
	uint32_t max_count;
	int listen_fd;
	uint16_t port;          /* the port bound (useful with port 0) */
	/* The connections being served (their sockets, -1 for a free slot),
	 * under lock; idle is signalled when one ends. */
	pthread_mutex_t lock;
	pthread_cond_t idle;
	int clients;
	int conn_fd[PAGE_SERVER_MAX_CLIENTS];
};

/* Opens what it serves: the image at path (checked as the file source
 * does), or with `snapshot` the snapshot at path, whose PATH.mem it serves
 * (announced as APF_PATTERN_SNAPSHOT with the snapshot's identity), and
 * listens on "ADDR:PORT" (IPv4, or [IPv6]:PORT; port 0 picks one).
 * max_count: the pages per READ offered, 1..PGS_MAX_COUNT. */
int page_server_open(struct page_server *s, const char *path, bool snapshot,
		     const char *listen_addr, uint32_t max_count, struct apf_err *e);

/* Accepts and serves clients until *stop becomes non-zero (checked at
 * least every 200 ms; a signal handler may set it: atomic_int is
 * lock-free) or the listening socket fails.  0, or -errno. */
int page_server_run(struct page_server *s, const atomic_int *stop, struct apf_err *e);

/* Ends every connection still being served (shut down, its thread
 * waited for), then closes the listener and the image. */
void page_server_close(struct page_server *s);

#endif
