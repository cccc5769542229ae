#include "page_proto.h"

#include <errno.h>
#include <string.h>

#include "apfvm/abi.h"
#include "util/crc32c.h"

/* crc32c of a message header whose last 4 bytes are its hdr_crc field,
 * taken as 0. */
static uint32_t hdr_crc(const void *msg, size_t len)
{
	static const uint32_t zero;
	return crc32c(crc32c(0, msg, len - 4), &zero, 4);
}

#define SEAL(m) ((m)->hdr_crc = hdr_crc((m), sizeof(*(m))))
#define SEALED(m) ((m)->hdr_crc == hdr_crc((m), sizeof(*(m))))

void pgs_hello_init(struct pgs_hello *h)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, PGS_MAGIC, 8);
	h->type = PGS_HELLO;
	h->version = PGS_VERSION;
	SEAL(h);
}

void pgs_welcome_init(struct pgs_welcome *w, uint64_t npages, uint32_t max_count,
		      uint32_t pattern, uint64_t seed)
{
	memset(w, 0, sizeof(*w));
	memcpy(w->magic, PGS_MAGIC, 8);
	w->type = PGS_WELCOME;
	w->version = PGS_VERSION;
	w->npages = npages;
	w->page_size = PGS_PAGE_SIZE;
	w->max_count = max_count;
	w->pattern = pattern;
	w->seed = seed;
	SEAL(w);
}

void pgs_busy_init(struct pgs_busy *b, enum pgs_busy_reason reason, uint32_t clients)
{
	memset(b, 0, sizeof(*b));
	memcpy(b->magic, PGS_MAGIC, 8);
	b->type = PGS_BUSY;
	b->version = PGS_VERSION;
	b->reason = reason;
	b->clients = clients;
	SEAL(b);
}

void pgs_read_init(struct pgs_read *r, uint64_t id, uint64_t page, uint32_t count)
{
	memset(r, 0, sizeof(*r));
	r->type = PGS_READ;
	r->count = count;
	r->id = id;
	r->page = page;
	SEAL(r);
}

void pgs_reply_init(struct pgs_reply *r, const struct pgs_read *req, enum pgs_status status)
{
	memset(r, 0, sizeof(*r));
	r->type = PGS_REPLY;
	r->status = status;
	r->id = req->id;
	r->page = req->page;
	r->count = req->count;
	SEAL(r);
}

/* The opening messages: the magic first (is this our protocol at all?),
 * then the version (which one?), then the header's checksum. */
static int opening_check(const char magic[8], uint32_t type, uint32_t want_type, uint32_t version,
			 int sealed, const char *what, struct apf_err *e)
{
	if (memcmp(magic, PGS_MAGIC, 8))
		return apf_fail(e, -EPROTO, "the peer does not speak apfvm's page server protocol "
				"(no " PGS_MAGIC " in its %s)", what);
	if (version != PGS_VERSION)
		return apf_fail(e, -EPROTO, "the peer speaks page server protocol version %u; this "
				"apfvm speaks version %u", version, PGS_VERSION);
	if (!sealed)
		return apf_fail(e, -EPROTO, "page server %s: header checksum mismatch", what);
	if (type != want_type)
		return apf_fail(e, -EPROTO, "page server %s: message type %u", what, type);
	return 0;
}

int pgs_hello_check(const struct pgs_hello *h, struct apf_err *e)
{
	int rc = opening_check(h->magic, h->type, PGS_HELLO, h->version, SEALED(h), "hello", e);
	if (rc)
		return rc;
	if (h->reserved || h->pad)
		return apf_fail(e, -EPROTO, "page server hello: reserved fields are not 0");
	return 0;
}

int pgs_is_busy(const void *opening)
{
	uint32_t type;
	memcpy(&type, (const char *)opening + 8, 4);
	return !memcmp(opening, PGS_MAGIC, 8) && type == PGS_BUSY;
}

int pgs_busy_check(const struct pgs_busy *b, struct apf_err *e)
{
	int rc = opening_check(b->magic, b->type, PGS_BUSY, b->version, SEALED(b), "busy reply", e);
	if (rc)
		return rc;
	if (b->reason < 1 || b->reason > PGS_BUSY_REASON_MAX || b->reserved)
		return apf_fail(e, -EPROTO, "page server busy reply: reason %u", b->reason);
	if (b->reason == PGS_BUSY_FULL)
		return apf_fail(e, -EBUSY, "the server is full (%u clients)", b->clients);
	return apf_fail(e, -EBUSY, "the server is full for this address (%u connections each)",
			b->clients);
}

int pgs_welcome_check(const struct pgs_welcome *w, struct apf_err *e)
{
	int rc = opening_check(w->magic, w->type, PGS_WELCOME, w->version, SEALED(w), "welcome", e);
	if (rc)
		return rc;
	if (w->page_size != PGS_PAGE_SIZE)
		return apf_fail(e, -EPROTO, "the page server serves %u-byte pages; apfvm's are %u",
				w->page_size, PGS_PAGE_SIZE);
	if (w->max_count < 1 || w->max_count > PGS_MAX_COUNT)
		return apf_fail(e, -EPROTO, "the page server takes %u pages per request (1..%u expected)",
				w->max_count, PGS_MAX_COUNT);
	if (w->npages == 0 || w->npages > UINT64_MAX / PGS_PAGE_SIZE)
		return apf_fail(e, -EPROTO, "the page server says it serves %llu pages",
				(unsigned long long)w->npages);
	if (w->pattern > APF_PATTERN_MAX)
		return apf_fail(e, -EPROTO, "the page server announces content pattern %u "
				"(0..%u expected)", w->pattern, APF_PATTERN_MAX);
	if (w->pad || w->reserved)
		return apf_fail(e, -EPROTO, "page server welcome: reserved fields are not 0");
	return 0;
}

int pgs_read_check(const struct pgs_read *r, uint64_t npages, uint32_t max_count,
		   struct apf_err *e)
{
	if (!SEALED(r))
		return apf_fail(e, -EPROTO, "read request: header checksum mismatch");
	if (r->type != PGS_READ)
		return apf_fail(e, -EPROTO, "read request: message type %u", r->type);
	if (r->reserved)
		return apf_fail(e, -EPROTO, "read request: reserved field is %u, not 0", r->reserved);
	if (r->count < 1 || r->count > max_count)
		return apf_fail(e, -EPROTO, "read request for %u pages (1..%u)", r->count, max_count);
	/* page + count <= npages, without overflowing. */
	if (r->page >= npages || r->count > npages - r->page)
		return apf_fail(e, -ERANGE, "read request for pages %llu+%u: beyond the %llu served",
				(unsigned long long)r->page, r->count, (unsigned long long)npages);
	return 0;
}

int pgs_reply_check(const struct pgs_reply *r, const struct pgs_read *req, struct apf_err *e)
{
	if (!SEALED(r))
		return apf_fail(e, -EPROTO, "page server reply: header checksum mismatch");
	if (r->type != PGS_REPLY)
		return apf_fail(e, -EPROTO, "page server reply: message type %u", r->type);
	if (r->id != req->id || r->page != req->page || r->count != req->count)
		return apf_fail(e, -EPROTO, "page server reply for pages %llu+%u does not answer "
				"request %llu (pages %llu+%u)", (unsigned long long)r->page, r->count,
				(unsigned long long)req->id, (unsigned long long)req->page, req->count);
	if (r->status > PGS_STATUS_MAX)
		return apf_fail(e, -EPROTO, "page server reply: unknown status %u", r->status);
	return 0;
}

int pgs_page_ok(const void *page, uint32_t crc)
{
	return crc32c(0, page, PGS_PAGE_SIZE) == crc;
}
