/*
 * The page server protocol's messages (src/net/page_proto.c): what one
 * side writes, the other accepts; every malformed form a peer could send
 * (another protocol, another version, a damaged header, a request out of
 * range or overflowing, a reply that answers another request, an unknown
 * status, a page that does not match its checksum) is refused with a
 * message saying what is wrong.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "net/page_proto.h"
#include "test.h"
#include "util/crc32c.h"

/* Seals a message edited by a test, as a peer that means it would. */
static void reseal(void *msg, size_t len)
{
	static const uint32_t zero;
	uint32_t crc = crc32c(crc32c(0, msg, len - 4), &zero, 4);
	memcpy((char *)msg + len - 4, &crc, 4);
}

/* rc must be -EPROTO with a message containing needle. */
static void expect_refused(int rc, const struct apf_err *e, const char *needle)
{
	CHECK(rc == -EPROTO);
	if (!strstr(e->msg, needle))
		TEST_FAIL_("message \"%s\" does not mention \"%s\"", e->msg, needle);
}

/* A well-formed READ beyond what is served: -ERANGE (answered, not a
 * protocol error). */
static void expect_out_of_range(int rc, const struct apf_err *e)
{
	CHECK(rc == -ERANGE);
	if (!strstr(e->msg, "beyond the 100 served"))
		TEST_FAIL_("message \"%s\" does not say it is beyond the 100 served", e->msg);
}

TEST(hello_and_welcome_are_accepted)
{
	struct pgs_hello h;
	struct pgs_welcome w;
	struct apf_err e;

	pgs_hello_init(&h);
	CHECK(pgs_hello_check(&h, &e) == 0);
	pgs_welcome_init(&w, 2048, 16, 2, 77);
	CHECK(pgs_welcome_check(&w, &e) == 0);
	CHECK_EQ_U(w.npages, 2048);
	CHECK_EQ_U(w.seed, 77);
}

TEST(another_protocol_or_version_is_refused)
{
	struct pgs_hello h;
	struct pgs_welcome w;
	struct apf_err e;

	pgs_hello_init(&h);
	memcpy(h.magic, "GET / HT", 8);
	reseal(&h, sizeof(h));
	expect_refused(pgs_hello_check(&h, &e), &e, "does not speak apfvm's page server protocol");
	pgs_welcome_init(&w, 1, 1, 0, 0);
	w.version = 2;
	reseal(&w, sizeof(w));
	expect_refused(pgs_welcome_check(&w, &e), &e, "version 2; this apfvm speaks version 1");
}

TEST(damaged_headers_are_refused)
{
	struct pgs_hello h;
	struct pgs_welcome w;
	struct pgs_read r;
	struct pgs_reply p;
	struct apf_err e;

	pgs_hello_init(&h);
	h.reserved ^= 1; /* not resealed: a bit flipped on the way */
	expect_refused(pgs_hello_check(&h, &e), &e, "checksum mismatch");
	pgs_welcome_init(&w, 8, 8, 0, 0);
	w.npages = 9;
	expect_refused(pgs_welcome_check(&w, &e), &e, "checksum mismatch");
	pgs_read_init(&r, 1, 2, 3);
	r.page++;
	expect_refused(pgs_read_check(&r, 100, 8, &e), &e, "checksum mismatch");
	pgs_read_init(&r, 1, 2, 3);
	pgs_reply_init(&p, &r, PGS_OK);
	p.count++;
	expect_refused(pgs_reply_check(&p, &r, &e), &e, "checksum mismatch");
}

TEST(a_welcome_apfvm_cannot_use_is_refused)
{
	struct pgs_welcome w;
	struct apf_err e;

	pgs_welcome_init(&w, 8, 8, 0, 0);
	w.page_size = 8192;
	reseal(&w, sizeof(w));
	expect_refused(pgs_welcome_check(&w, &e), &e, "8192-byte pages");
	pgs_welcome_init(&w, 8, 0, 0, 0);
	expect_refused(pgs_welcome_check(&w, &e), &e, "0 pages per request");
	pgs_welcome_init(&w, 8, PGS_MAX_COUNT + 1, 0, 0);
	expect_refused(pgs_welcome_check(&w, &e), &e, "pages per request");
	pgs_welcome_init(&w, 0, 8, 0, 0);
	expect_refused(pgs_welcome_check(&w, &e), &e, "serves 0 pages");
	pgs_welcome_init(&w, 8, 8, 0, 0);
	w.type = PGS_HELLO;
	reseal(&w, sizeof(w));
	expect_refused(pgs_welcome_check(&w, &e), &e, "message type 1");
}

TEST(reads_within_what_is_served_are_accepted_up_to_the_last_page)
{
	struct pgs_read r;
	struct apf_err e;

	pgs_read_init(&r, 42, 0, 1);
	CHECK(pgs_read_check(&r, 100, 8, &e) == 0);
	pgs_read_init(&r, 43, 92, 8); /* pages 92..99 */
	CHECK(pgs_read_check(&r, 100, 8, &e) == 0);
	pgs_read_init(&r, 44, 99, 1);
	CHECK(pgs_read_check(&r, 100, 8, &e) == 0);
}

TEST(reads_out_of_range_or_too_large_are_refused)
{
	struct pgs_read r;
	struct apf_err e;

	pgs_read_init(&r, 1, 93, 8); /* would end at page 100 */
	expect_out_of_range(pgs_read_check(&r, 100, 8, &e), &e);
	pgs_read_init(&r, 1, 100, 1);
	expect_out_of_range(pgs_read_check(&r, 100, 8, &e), &e);
	pgs_read_init(&r, 1, UINT64_MAX - 1, 4); /* page + count overflows */
	expect_out_of_range(pgs_read_check(&r, 100, 8, &e), &e);
	pgs_read_init(&r, 1, 0, 0);
	expect_refused(pgs_read_check(&r, 100, 8, &e), &e, "for 0 pages");
	pgs_read_init(&r, 1, 0, 9);
	expect_refused(pgs_read_check(&r, 100, 8, &e), &e, "for 9 pages (1..8)");
	pgs_read_init(&r, 1, 0, 1);
	r.type = PGS_REPLY;
	reseal(&r, sizeof(r));
	expect_refused(pgs_read_check(&r, 100, 8, &e), &e, "message type 4");
}

TEST(a_reply_must_answer_its_request)
{
	struct pgs_read r, other;
	struct pgs_reply p;
	struct apf_err e;

	pgs_read_init(&r, 7, 10, 4);
	pgs_reply_init(&p, &r, PGS_OK);
	CHECK(pgs_reply_check(&p, &r, &e) == 0);
	pgs_reply_init(&p, &r, PGS_IO);
	CHECK(pgs_reply_check(&p, &r, &e) == 0);
	pgs_read_init(&other, 7, 11, 4); /* same id, other pages */
	pgs_reply_init(&p, &other, PGS_OK);
	expect_refused(pgs_reply_check(&p, &r, &e), &e, "does not answer request 7");
	pgs_read_init(&other, 8, 10, 4);
	pgs_reply_init(&p, &other, PGS_OK);
	expect_refused(pgs_reply_check(&p, &r, &e), &e, "does not answer request 7");
	pgs_reply_init(&p, &r, PGS_OK);
	p.status = PGS_STATUS_MAX + 1;
	reseal(&p, sizeof(p));
	expect_refused(pgs_reply_check(&p, &r, &e), &e, "unknown status 3");
}

TEST(a_page_must_match_its_checksum)
{
	static unsigned char page[PGS_PAGE_SIZE];

	for (size_t i = 0; i < sizeof(page); i++)
		page[i] = (unsigned char)(i * 13);
	uint32_t crc = crc32c(0, page, sizeof(page));
	CHECK(pgs_page_ok(page, crc));
	page[4000] ^= 0x10;
	CHECK(!pgs_page_ok(page, crc));
}

TEST(reserved_fields_must_be_zero)
{
	struct pgs_hello h;
	struct pgs_welcome w;
	struct pgs_read r;
	struct apf_err e;

	pgs_hello_init(&h);
	h.reserved = 1;
	reseal(&h, sizeof(h));
	expect_refused(pgs_hello_check(&h, &e), &e, "reserved");
	pgs_hello_init(&h);
	h.pad = 1;
	reseal(&h, sizeof(h));
	expect_refused(pgs_hello_check(&h, &e), &e, "reserved");
	pgs_read_init(&r, 1, 2, 3);
	r.reserved = 7;
	reseal(&r, sizeof(r));
	expect_refused(pgs_read_check(&r, 100, 8, &e), &e, "reserved field is 7");
	pgs_welcome_init(&w, 8, 8, 0, 0);
	w.pad = 1;
	reseal(&w, sizeof(w));
	expect_refused(pgs_welcome_check(&w, &e), &e, "reserved fields");
}

TEST(busy_says_why_and_is_told_from_a_welcome)
{
	struct pgs_busy b;
	struct pgs_welcome w;
	struct apf_err e;

	pgs_busy_init(&b, PGS_BUSY_FULL, 64);
	CHECK(pgs_is_busy(&b));
	CHECK(pgs_busy_check(&b, &e) == -EBUSY);
	CHECK(strstr(e.msg, "the server is full (64 clients)") != NULL);
	pgs_busy_init(&b, PGS_BUSY_PEER, 4);
	CHECK(pgs_busy_check(&b, &e) == -EBUSY);
	CHECK(strstr(e.msg, "for this address (4 connections each)") != NULL);
	pgs_welcome_init(&w, 8, 8, 0, 0);
	CHECK(!pgs_is_busy(&w));
	/* Damaged or unknown: a protocol error, not a reason to come back. */
	pgs_busy_init(&b, PGS_BUSY_FULL, 64);
	b.clients++;
	expect_refused(pgs_busy_check(&b, &e), &e, "checksum mismatch");
	pgs_busy_init(&b, 3, 64);
	expect_refused(pgs_busy_check(&b, &e), &e, "reason 3");
	pgs_busy_init(&b, PGS_BUSY_FULL, 64);
	b.version = 2;
	reseal(&b, sizeof(b));
	expect_refused(pgs_busy_check(&b, &e), &e, "version 2");
}

TEST_MAIN(T(hello_and_welcome_are_accepted), T(another_protocol_or_version_is_refused),
	  T(damaged_headers_are_refused), T(a_welcome_apfvm_cannot_use_is_refused),
	  T(reads_within_what_is_served_are_accepted_up_to_the_last_page),
	  T(reads_out_of_range_or_too_large_are_refused), T(a_reply_must_answer_its_request),
	  T(a_page_must_match_its_checksum), T(reserved_fields_must_be_zero),
	  T(busy_says_why_and_is_told_from_a_welcome))
