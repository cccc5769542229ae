/*
 * page_proto: the wire format of apfvm's page server protocol, version 1
 * (docs/page-server.md): the messages `apfvm serve` and the tcp: page
 * source exchange, and the checks each side makes on what it receives
 * before anything else looks at it.  No I/O here: encoding and checking
 * only, so that both ends and the fuzzer share one definition.
 *
 * Every message starts with a fixed header whose own crc32c covers it;
 * a reply's pages each carry their crc32c.  Integers are little-endian
 * (the byte order of every architecture apfvm runs on).
 *
 * Conversation: the client sends a HELLO, the server answers WELCOME
 * (what it serves), then the client sends READ requests without waiting
 * (pipelined, each with an id of its choosing) and the server answers
 * each with a reply carrying the same id, in any order.  A server that
 * cannot take the client answers BUSY instead of WELCOME, at once, and
 * closes: the client tries again later.  BUSY came after version 1's
 * first release; a client that does not know it refuses it as a
 * message of another type, as it must any unknown message.
 */
#ifndef APFVM_PAGE_PROTO_H
#define APFVM_PAGE_PROTO_H

#include <stdint.h>

#include "util/err.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the page server protocol is little-endian, as this code's hosts"
#endif

#define PGS_MAGIC       "APFVMPGS" /* 8 bytes, no NUL on the wire */
#define PGS_VERSION     1
#define PGS_PAGE_SIZE   4096
#define PGS_MAX_COUNT   64         /* pages per READ */

enum pgs_type {
	PGS_HELLO = 1,
	PGS_WELCOME = 2,
	PGS_READ = 3,
	PGS_REPLY = 4,
	PGS_BUSY = 5,
};

/* Why a server answers BUSY. */
enum pgs_busy_reason {
	PGS_BUSY_FULL = 1,     /* it serves as many clients as it takes */
	PGS_BUSY_PEER = 2,     /* it serves as many from the client's address */
	PGS_BUSY_REASON_MAX = PGS_BUSY_PEER,
};

/* A reply's status: 0, or why the server has no data for it. */
enum pgs_status {
	PGS_OK = 0,
	PGS_RANGE = 1, /* the pages are beyond what the server serves */
	PGS_IO = 2,    /* the server could not read them */
	PGS_STATUS_MAX = PGS_IO,
};

/* Client -> server, first. */
struct pgs_hello {
	char magic[8];
	uint32_t type;         /* PGS_HELLO */
	uint32_t version;      /* PGS_VERSION */
	uint64_t reserved;     /* 0 */
	uint32_t pad;          /* 0 */
	uint32_t hdr_crc;      /* crc32c of the message, this field 0 */
};
_Static_assert(sizeof(struct pgs_hello) == 32, "pgs_hello layout");

/* Server -> client, the answer to HELLO: what is served. */
struct pgs_welcome {
	char magic[8];
	uint32_t type;         /* PGS_WELCOME */
	uint32_t version;      /* PGS_VERSION */
	uint64_t npages;       /* pages 0 .. npages-1 can be read */
	uint32_t page_size;    /* PGS_PAGE_SIZE */
	uint32_t max_count;    /* pages per READ this server accepts, 1..PGS_MAX_COUNT */
	uint32_t pattern;      /* the content's pattern and seed (apfvm images: */
	uint32_t pad;          /* enum apf_pattern), for the guest to verify */
	uint64_t seed;
	uint32_t reserved;     /* 0 */
	uint32_t hdr_crc;
};
_Static_assert(sizeof(struct pgs_welcome) == 56, "pgs_welcome layout");

/* Server -> client, instead of a WELCOME: not now (then it closes).  The
 * same size and opening as a HELLO, shorter than a WELCOME: a client
 * reading a WELCOME sees the type once 16 bytes are in. */
struct pgs_busy {
	char magic[8];
	uint32_t type;         /* PGS_BUSY */
	uint32_t version;      /* PGS_VERSION */
	uint32_t reason;       /* enum pgs_busy_reason */
	uint32_t clients;      /* how many it takes (of that address, for _PEER) */
	uint32_t reserved;     /* 0 */
	uint32_t hdr_crc;
};
_Static_assert(sizeof(struct pgs_busy) == 32, "pgs_busy layout");
#define PGS_OPENING_SIZE 16 /* magic, type, version: enough to tell the two apart */

/* Client -> server: pages [page, page + count). */
struct pgs_read {
	uint32_t type;         /* PGS_READ */
	uint32_t count;        /* 1 .. the WELCOME's max_count */
	uint64_t id;           /* echoed in the reply */
	uint64_t page;
	uint32_t reserved;     /* 0 */
	uint32_t hdr_crc;
};
_Static_assert(sizeof(struct pgs_read) == 32, "pgs_read layout");

/* Server -> client: the answer to one READ.  With status PGS_OK it is
 * followed by count crc32c values (uint32_t, one per page), then the count
 * pages; otherwise by nothing. */
struct pgs_reply {
	uint32_t type;         /* PGS_REPLY */
	uint32_t status;       /* enum pgs_status */
	uint64_t id;           /* the READ's */
	uint64_t page;         /* the READ's */
	uint32_t count;        /* the READ's */
	uint32_t hdr_crc;
};
_Static_assert(sizeof(struct pgs_reply) == 32, "pgs_reply layout");

void pgs_hello_init(struct pgs_hello *h);
void pgs_welcome_init(struct pgs_welcome *w, uint64_t npages, uint32_t max_count,
		      uint32_t pattern, uint64_t seed);
void pgs_busy_init(struct pgs_busy *b, enum pgs_busy_reason reason, uint32_t clients);
void pgs_read_init(struct pgs_read *r, uint64_t id, uint64_t page, uint32_t count);
void pgs_reply_init(struct pgs_reply *r, const struct pgs_read *req, enum pgs_status status);

/*
 * The checks, each on bytes just received (untrusted); 0, or -EPROTO with
 * a message naming what is wrong.  A server checks a HELLO, and each READ
 * against what it serves (-ERANGE: a well-formed READ for pages beyond
 * them, answered with PGS_RANGE); a client checks the WELCOME, and each
 * reply header against the READ it sent with that id.
 */
int pgs_hello_check(const struct pgs_hello *h, struct apf_err *e);
int pgs_welcome_check(const struct pgs_welcome *w, struct apf_err *e);
/* Whether the first PGS_OPENING_SIZE bytes of a server's answer to HELLO
 * are a BUSY's (then read sizeof(struct pgs_busy), not a WELCOME). */
int pgs_is_busy(const void *opening);
/* 0 for a well-formed BUSY, its message (e) saying why the server refused:
 * "the server is full (64 clients)". */
int pgs_busy_check(const struct pgs_busy *b, struct apf_err *e);
int pgs_read_check(const struct pgs_read *r, uint64_t npages, uint32_t max_count,
		   struct apf_err *e);
int pgs_reply_check(const struct pgs_reply *r, const struct pgs_read *req, struct apf_err *e);

/* Whether one page received in a reply matches the crc32c it came with. */
int pgs_page_ok(const void *page, uint32_t crc);

#endif
