/*
 * tcp_conn: one connection of a tcp source (source/tcp.h) to its page
 * server, over its whole life: made, greeted (HELLO, then a WELCOME like
 * the first, or BUSY), sending READs for the requests on its queue
 * (tcp_req.h), taking the replies, and dropped and made again after a
 * backoff.  A source has two (tcp.c): one for demand requests, one for
 * bulk ones; each has its own state, queue, buffers and backoff, so one
 * failing spends attempts of its own requests only.
 *
 * States: DOWN (no socket; made again once a request waits and the
 * backoff is over), CONNECTING (a non-blocking connect under way),
 * HELLO (the HELLO sent or being sent, waiting for the answer), READY
 * (READs go out as requests come, pipelined; replies match them by id,
 * in any order).  CONNECTING and HELLO end within the timeout
 * (net.timeout_ns) or fail.
 *
 * What the peer sends is untrusted.  Failures, and what happens:
 *  - a page whose crc32c does not match, or a PGS_IO answer: that request
 *    is sent again for its pages still pending (an attempt spent); the
 *    connection is fine;
 *  - a malformed or unexpected message, a closed or failed connection, or
 *    a sent request at its deadline: the connection is dropped, every
 *    request on it spends an attempt and is sent again over a new
 *    connection of its kind, made after a backoff (100 ms doubling to
 *    SOURCE_NET_BACKOFF_MAX_NS, each connection its own; only a page
 *    received on it resets it) that a failed connect or a BUSY answer also
 *    spends;
 *  - a request not yet sent at its deadline (no connection would carry
 *    it) spends an attempt, with its connection's last failure as cause;
 *  - a request out of attempts fails its pages still pending, with the
 *    cause in their completions; a PGS_RANGE answer fails them at once
 *    (the server has no such page);
 *  - a reconnected server that takes fewer pages per READ than at the
 *    start: a larger request goes as several READs, one after another,
 *    within its attempt;
 *  - a reconnected server (either connection) that serves other pages
 *    than at the start (size, pattern or seed) fails the source as a
 *    whole.
 * A page completes, and so can reach the guest, only after its checksum
 * matched.
 *
 * Contract with tcp.c.  tcp.c opens the source: it makes and greets the
 * demand connection itself (blocking, at open only), fills struct
 * tcp_shared, and calls tcp_conn_init once per connection.  From then on
 * only this file writes a struct tcp_conn (and tcp_req.c its queue):
 * tcp.c queues requests on c->queue (tcp_req_new) and calls
 * tcp_conn_flush; it calls tcp_conn_on_socket when the socket (c->tag in
 * sh->ep) has events, tcp_conn_timer when the timer fires, flushes every
 * connection after either, and arms the timer at the earliest
 * tcp_conn_due.  A connection writes, of the shared state, only rtt_ns
 * (the demand one), the source's counters and failure, and the requests
 * (through tcp_req.h); it never touches the other connection or the
 * timer.  Everything runs on the thread that uses the source (source.h):
 * no locks, and nothing here blocks.
 */
#ifndef APFVM_SOURCE_TCP_CONN_H
#define APFVM_SOURCE_TCP_CONN_H

#include <stdint.h>
#include <sys/socket.h>

#include "apfvm/abi.h"
#include "net/page_proto.h"
#include "source/source.h"
#include "source/tcp_req.h"

#define TCP_BACKOFF_MIN_NS (100ull * 1000000ull)
/* The largest reply, and the receive buffer: room for it whole, and more. */
#define TCP_REPLY_MAX      (sizeof(struct pgs_reply) + PGS_MAX_COUNT * (4 + APF_PAGE_SIZE))
#define TCP_RX_SIZE        (TCP_REPLY_MAX + 16 * (sizeof(struct pgs_reply) + 4 + APF_PAGE_SIZE))
/* Send buffer: the HELLO's leftover and a READ per request. */
#define TCP_TX_SIZE        ((SOURCE_QUEUE_MAX + 1) * sizeof(struct pgs_read))

/* What a source's connections share; tcp.c fills it at open. */
struct tcp_shared {
	struct page_source *src;         /* its counters and failure */
	struct source_net_options net;   /* timeout_ns: of a connect, a welcome, an attempt */
	struct sockaddr_storage addr;    /* the server */
	socklen_t addr_len;
	char peer[64];                   /* the server, for messages */
	int ep;                          /* the epoll set the sockets are watched in */
	struct pgs_welcome first;        /* what the server served at open */
	uint64_t rtt_ns;                 /* EWMA of answered demand fetches */
	struct tcp_reqs reqs;            /* both connections' requests */
};

enum tcp_conn_state { CONN_DOWN, CONN_CONNECTING, CONN_HELLO, CONN_READY };

struct tcp_conn {
	enum source_prio prio;   /* of the requests it carries */
	uint32_t tag;            /* its socket's data in sh->ep (tcp.c's choice) */
	int sock;                /* -1 when down */
	uint32_t events;         /* the socket's, in sh->ep */
	enum tcp_conn_state state;
	uint64_t state_due_ns;   /* CONNECTING/HELLO: give up then; DOWN: reconnect then */
	uint64_t backoff_ns;
	uint32_t max_count;      /* pages per READ, from its last WELCOME */
	unsigned made;           /* connections started */
	struct tcp_queue queue;  /* the requests it carries */
	const char *last_cause;  /* why its last connection failed (static text) */
	int last_err;
	unsigned char tx[TCP_TX_SIZE]; /* READs not yet accepted by the socket */
	size_t tx_len, tx_off;
	unsigned char rx[TCP_RX_SIZE];
	size_t rx_len;
};

/* Sets up c (zeroed but for sock) for requests of priority prio, READs of
 * up to max_count pages, its socket watched in the epoll set with tag.
 * c->sock is -1 (c is down until a request comes) or a connection made
 * and greeted, already watched for EPOLLIN (c is ready). */
void tcp_conn_init(struct tcp_conn *c, enum source_prio prio, uint32_t tag, uint32_t max_count);

/* Closes c's socket, if any (the source is going away). */
void tcp_conn_close(struct tcp_conn *c);

/* When c can next carry a request: now, or the end of the backoff it
 * waits out while down.  A request queued now is due then plus the
 * timeout. */
uint64_t tcp_conn_next_try_ns(const struct tcp_conn *c, uint64_t now);

/* Moves things on: down with requests waiting and the backoff over, it
 * starts connecting; ready, it sends a READ per unsent request; and it
 * sends what the socket did not take before. */
void tcp_conn_flush(struct tcp_shared *sh, struct tcp_conn *c);

/* The socket has events (epoll's): the connect ended, or replies came. */
void tcp_conn_on_socket(struct tcp_shared *sh, struct tcp_conn *c, uint32_t events);

/* What is due at now fails: a connect or welcome past its deadline, a
 * sent request at its deadline (the connection is dropped), an unsent one
 * (an attempt spent). */
void tcp_conn_timer(struct tcp_shared *sh, struct tcp_conn *c, uint64_t now);

/* The earliest of due and what c has due (0: nothing): its state's
 * deadline, its requests' deadlines. */
uint64_t tcp_conn_due(const struct tcp_shared *sh, const struct tcp_conn *c, uint64_t due);

#endif
