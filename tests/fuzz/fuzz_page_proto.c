/*
 * libFuzzer target: the page server protocol's checks (src/net/
 * page_proto.c), both directions: what a client sends a server (HELLO,
 * READ) and what a server sends a client (WELCOME, BUSY, REPLY), as bytes
 * from the network.  Whatever the bytes, a check returns 0 or an error
 * with a message and never crashes; what it accepts is what the protocol
 * allows (a READ within what is served, a REPLY answering its request, a
 * known status, a BUSY with a known reason).  Headers are resealed (their
 * crc32c set) half of the time, so that the checks behind the checksum are
 * reached.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "net/page_proto.h"
#include "util/crc32c.h"

static void reseal(void *msg, size_t len)
{
	static const uint32_t zero;
	uint32_t crc = crc32c(crc32c(0, msg, len - 4), &zero, 4);
	memcpy((char *)msg + len - 4, &crc, 4);
}

/* The message of type T from the input, resealed if asked. */
#define TAKE(T, var, seal)                                   \
	T var;                                               \
	memset(&var, 0, sizeof(var));                        \
	memcpy(&var, data, size < sizeof(var) ? size : sizeof(var)); \
	if (seal)                                            \
		reseal(&var, sizeof(var))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct apf_err e = { "" };
	int rc;

	if (size < 2)
		return 0;
	uint8_t which = data[0], seal = data[1] & 1;
	data += 2;
	size -= 2;
	switch (which % 5) {
	case 0: {
		TAKE(struct pgs_hello, h, seal);
		rc = pgs_hello_check(&h, &e);
		if (!rc)
			CHECK_OR_DIE(h.type == PGS_HELLO && h.version == PGS_VERSION && !h.reserved && !h.pad);
		break;
	}
	case 1: {
		TAKE(struct pgs_welcome, w, seal);
		rc = pgs_welcome_check(&w, &e);
		if (!rc)
			CHECK_OR_DIE(w.npages && w.max_count >= 1 && w.max_count <= PGS_MAX_COUNT &&
				     w.page_size == PGS_PAGE_SIZE && w.npages <= UINT64_MAX / PGS_PAGE_SIZE);
		break;
	}
	case 2: {
		TAKE(struct pgs_busy, b, seal);
		if (!pgs_is_busy(&b)) {
			rc = -EPROTO; /* a client reads it as a WELCOME */
			e.msg[0] = 'x';
			break;
		}
		rc = pgs_busy_check(&b, &e);
		CHECK_OR_DIE(rc != 0);
		if (rc == -EBUSY)
			CHECK_OR_DIE(b.reason >= 1 && b.reason <= PGS_BUSY_REASON_MAX);
		break;
	}
	case 3: {
		/* A server's view: a READ against what it serves (npages and
		 * max_count from the input too). */
		uint64_t npages = size >= 8 ? (data[size - 1] | (uint64_t)data[size - 2] << 8) : 1;
		uint32_t max_count = size ? data[0] % PGS_MAX_COUNT + 1 : 1;
		TAKE(struct pgs_read, r, seal);
		rc = pgs_read_check(&r, npages, max_count, &e);
		if (!rc)
			CHECK_OR_DIE(r.count >= 1 && r.count <= max_count && r.page < npages &&
				     r.count <= npages - r.page && !r.reserved);
		break;
	}
	default: {
		/* A client's view: a REPLY against the READ it sent. */
		struct pgs_read req;
		uint64_t id = size >= 8 ? data[0] : 1;
		pgs_read_init(&req, id, size >= 2 ? data[1] : 0, size >= 3 ? data[2] % 64 + 1 : 1);
		TAKE(struct pgs_reply, p, seal);
		rc = pgs_reply_check(&p, &req, &e);
		if (!rc)
			CHECK_OR_DIE(p.id == req.id && p.page == req.page && p.count == req.count &&
				     p.status <= PGS_STATUS_MAX);
		break;
	}
	}
	if (rc)
		CHECK_OR_DIE(rc < 0 && e.msg[0] != '\0');
	return 0;
}
