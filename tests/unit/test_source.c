/*
 * Page sources: zero, file, and the delay wrapper that models remote
 * storage.  Completions always travel through source_reap(); the delay
 * wrapper is driven exactly as the pager drives it, by poll() on event_fd.
 * The checked window (a snapshot's memory): pages checked against their
 * SHA-256, the snapshot's zero pages never asked of the inner source, by
 * submit() or submit_run().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "image/image.h"
#include "net/page_proto.h"
#include "pager/pager.h"
#include "source/delay.h"
#include "source/file.h"
#include "source/open.h"
#include "source/raw.h"
#include "source/source.h"
#include "source/window.h"
#include "source/zero.h"
#include "crc_forge.h"
#include "test.h"
#include "util/crc32c.h"

#define MS 1000000ull
#define US 1000ull

static int make_image(char *path, uint64_t size, uint64_t seed)
{
	strcpy(path, "/tmp/apfvm-source-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return image_create(path, size, seed, NULL);
}

static int open_source(const char *spec, uint64_t lazy_bytes, struct page_source **s,
		       struct apf_err *e)
{
	*s = NULL;
	memset(e, 0, sizeof(*e));
	return source_open(spec, lazy_bytes, NULL, s, e);
}

/* ------------------------------------------------------------------ */
/* zero                                                                */

TEST(zero_source_completes_through_reap)
{
	struct page_source *s;
	struct source_completion c;
	struct apf_err e;
	static unsigned char buf[APF_PAGE_SIZE];
	int cookie;

	REQUIRE(open_source("zero", 16 * APF_PAGE_SIZE, &s, &e) == 0);
	CHECK_EQ_U(s->npages, 16);
	CHECK_EQ_U(s->pattern, APF_PATTERN_ZERO);
	CHECK(s->event_fd == -1);
	CHECK(!strcmp(s->desc, "zero"));
	CHECK(!source_reap(s, &c)); /* nothing submitted yet */

	memset(buf, 0xab, sizeof(buf));
	uint64_t before = source_now_ns();
	REQUIRE(source_submit(s, 3, buf, &cookie) == 0);
	memset(&c, 0xee, sizeof(c));
	REQUIRE(source_reap(s, &c));
	CHECK_EQ_U(c.page, 3);
	CHECK(c.buf == buf);
	CHECK(c.cookie == &cookie);
	CHECK_EQ_U(c.err, 0);
	CHECK(c.zero);
	CHECK(c.submit_ns >= before && c.submit_ns <= source_now_ns());
	CHECK_EQ_U(buf[0], 0xab); /* a zero completion does not write buf */
	CHECK_EQ_U(buf[APF_PAGE_SIZE - 1], 0xab);
	CHECK(!source_reap(s, &c));
	CHECK_EQ_U(s->fetched, 1);

	/* the last page is fine, one past it is not */
	CHECK_EQ_U(source_submit(s, 15, buf, NULL), 0);
	CHECK(source_reap(s, &c) && c.page == 15);
	CHECK_EQ_U(source_submit(s, 16, buf, NULL), (uint64_t)-ERANGE);
	CHECK_EQ_U(source_submit(s, UINT64_MAX, buf, NULL), (uint64_t)-ERANGE);
	CHECK(!source_reap(s, &c)); /* a refused submit queues nothing */
	source_close(s);
}

TEST(zero_source_reaps_in_submit_order)
{
	struct page_source *s;
	struct source_completion c;
	struct apf_err e;
	static unsigned char bufs[8][APF_PAGE_SIZE];
	static const uint64_t pages[8] = { 7, 0, 5, 5, 1, 6, 2, 3 };

	REQUIRE(open_source("zero", 8 * APF_PAGE_SIZE, &s, &e) == 0);
	for (int i = 0; i < 8; i++)
		REQUIRE(source_submit(s, pages[i], bufs[i], &bufs[i][1]) == 0);
	for (int i = 0; i < 8; i++) {
		REQUIRE(source_reap(s, &c));
		CHECK_EQ_U(c.page, pages[i]);
		CHECK(c.buf == bufs[i]);
		CHECK(c.cookie == &bufs[i][1]);
	}
	CHECK(!source_reap(s, &c));
	CHECK_EQ_U(s->fetched, 8);
	source_close(s);
}

/* ------------------------------------------------------------------ */
/* file                                                                */

TEST(file_source_serves_image_words)
{
	char path[64], spec[80];
	struct page_source *s;
	struct source_completion c;
	struct apf_err e;
	static uint64_t buf[APF_PAGE_SIZE / 8];
	const uint64_t seed = 77;

	REQUIRE(make_image(path, 32 * APF_PAGE_SIZE, seed) == 0);
	snprintf(spec, sizeof(spec), "file:%s", path);
	int rc = open_source(spec, 16 * APF_PAGE_SIZE, &s, &e);
	if (rc) {
		TEST_FAIL_("source_open(%s): %d: %s", spec, rc, e.msg);
		unlink(path);
		return;
	}
	CHECK_EQ_U(s->pattern, APF_PATTERN_SEEDED);
	CHECK_EQ_U(s->seed, seed);
	CHECK_EQ_U(s->npages, 32); /* the whole image, not just the lazy part */
	CHECK(strstr(s->desc, "77") != NULL);

	static const uint64_t pages[] = { 0, 5, 31 };
	for (size_t p = 0; p < sizeof(pages) / sizeof(pages[0]); p++) {
		memset(buf, 0, sizeof(buf));
		REQUIRE(source_submit(s, pages[p], buf, (void *)&pages[p]) == 0);
		REQUIRE(source_reap(s, &c));
		CHECK_EQ_U(c.page, pages[p]);
		CHECK_EQ_U(c.err, 0);
		CHECK(!c.zero);
		CHECK(c.buf == buf);
		CHECK(c.cookie == &pages[p]);
		unsigned bad = 0;
		for (unsigned i = 0; i < APF_PAGE_SIZE / 8; i++)
			if (buf[i] != apf_image_word(seed, pages[p] * (APF_PAGE_SIZE / 8) + i))
				bad++;
		if (bad)
			TEST_FAIL_("page %llu: %u words differ from the image pattern",
				   (unsigned long long)pages[p], bad);
	}
	CHECK_EQ_U(source_submit(s, 32, buf, NULL), (uint64_t)-ERANGE);
	CHECK(!source_reap(s, &c));
	source_close(s);
	unlink(path);
}

TEST(file_source_reports_a_file_that_shrank)
{
	char path[64], spec[80];
	struct page_source *s;
	struct source_completion c;
	struct apf_err e;
	static unsigned char buf[APF_PAGE_SIZE];

	REQUIRE(make_image(path, 8 * APF_PAGE_SIZE, 1) == 0);
	snprintf(spec, sizeof(spec), "file:%s", path);
	REQUIRE(open_source(spec, 8 * APF_PAGE_SIZE, &s, &e) == 0);
	REQUIRE(truncate(path, IMAGE_HEADER_SIZE + 4 * APF_PAGE_SIZE + 100) == 0);
	REQUIRE(source_submit(s, 2, buf, NULL) == 0);
	REQUIRE(source_reap(s, &c));
	CHECK_EQ_U(c.err, 0);
	REQUIRE(source_submit(s, 4, buf, NULL) == 0); /* partly there */
	REQUIRE(source_reap(s, &c));
	CHECK(c.err < 0);
	REQUIRE(source_submit(s, 7, buf, NULL) == 0); /* gone */
	REQUIRE(source_reap(s, &c));
	CHECK_EQ_U(c.page, 7);
	CHECK(c.err < 0);
	source_close(s);
	unlink(path);
}

TEST(file_source_image_smaller_than_lazy_region)
{
	char path[64], spec[80];
	struct page_source *s;
	struct apf_err e;

	REQUIRE(make_image(path, 4 * APF_PAGE_SIZE, 1) == 0);
	snprintf(spec, sizeof(spec), "file:%s", path);
	CHECK(open_source(spec, 8 * APF_PAGE_SIZE, &s, &e) == -EINVAL);
	CHECK(s == NULL);
	CHECK(strstr(e.msg, "asked for (run's --lazy, fetch's --size)") != NULL);
	CHECK(strstr(e.msg, path) != NULL);
	/* exactly the lazy size is fine */
	CHECK(open_source(spec, 4 * APF_PAGE_SIZE, &s, &e) == 0);
	source_close(s);
	unlink(path);
}

/* A FIFO (or device) as image: rejected at once.  open() of a FIFO used to
 * block forever waiting for a writer; alarm() turns a hang into a crash. */
TEST(file_source_rejects_fifo_and_devices_without_blocking)
{
	struct page_source *s = NULL;
	struct apf_err e;
	char path[64];

	snprintf(path, sizeof(path), "/tmp/apfvm-fifo-%d", (int)getpid());
	REQUIRE(mkfifo(path, 0600) == 0);
	alarm(10);
	CHECK(source_file_open(path, 4096, &s, &e) == -EINVAL);
	CHECK(strstr(e.msg, "not a regular file") != NULL);
	CHECK(source_file_open("/dev/zero", 4096, &s, &e) == -EINVAL);
	CHECK(source_file_open("/tmp", 4096, &s, &e) == -EINVAL);
	alarm(0);
	CHECK(s == NULL);
	unlink(path);
}

TEST(source_open_rejects_bad_specs)
{
	struct page_source *s;
	struct apf_err e;
	char path[64], spec[96];

	CHECK(open_source("file:", 4096, &s, &e) == -EINVAL);
	CHECK(strstr(e.msg, "file:PATH") != NULL);
	CHECK(s == NULL);

	CHECK(open_source("bogus", 4096, &s, &e) == -EINVAL);
	CHECK(strstr(e.msg, "bogus") != NULL);
	CHECK(strstr(e.msg, "zero") != NULL);

	CHECK(open_source("", 4096, &s, &e) == -EINVAL);
	CHECK(e.msg[0] != '\0');
	CHECK(open_source(NULL, 4096, &s, &e) == -EINVAL);
	CHECK(open_source("Zero", 4096, &s, &e) == -EINVAL);

	CHECK(open_source("file:/nonexistent/apfvm/x.img", 4096, &s, &e) == -ENOENT);
	CHECK(strstr(e.msg, "/nonexistent/apfvm/x.img") != NULL);
	CHECK(strstr(e.msg, "No such file") != NULL);

	/* a file that is not an image */
	strcpy(path, "/tmp/apfvm-source-XXXXXX");
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	CHECK_EQ_U(write(fd, "hello, world\n", 13), 13);
	close(fd);
	snprintf(spec, sizeof(spec), "file:%s", path);
	CHECK(open_source(spec, 4096, &s, &e) == -EINVAL);
	CHECK(strstr(e.msg, "mkimage") != NULL);
	CHECK(s == NULL);
	unlink(path);
}

/* ------------------------------------------------------------------ */
/* delay wrapper                                                       */

struct arrival {
	struct source_completion c;
	uint64_t at_ns; /* when source_reap handed it out */
};

/* Reaps until n completions arrived, waiting on event_fd with poll() and
 * calling on_event as the pager does.  Returns the count reaped (< n if a
 * wait of timeout_ms found nothing). */
static unsigned reap_all(struct page_source *s, struct arrival *out, unsigned n, int timeout_ms)
{
	unsigned got = 0;

	while (got < n) {
		struct source_completion c;
		while (got < n && source_reap(s, &c)) {
			out[got].at_ns = source_now_ns();
			out[got].c = c;
			got++;
		}
		if (got == n)
			break;
		struct pollfd pfd = { .fd = s->event_fd, .events = POLLIN };
		int rc = poll(&pfd, 1, timeout_ms);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;
		s->ops->on_event(s);
	}
	return got;
}

static int open_delayed(uint64_t npages, uint64_t min_ns, uint64_t max_ns, uint64_t seed,
			struct page_source **out)
{
	struct page_source *inner;
	struct apf_err e;

	if (source_zero_open(npages, &inner, &e))
		return -1;
	if (source_delay_wrap(inner, min_ns, max_ns, seed, out, &e)) {
		source_close(inner);
		return -1;
	}
	return 0;
}

TEST(delay_wrapper_keeps_inner_identity)
{
	char path[64], spec[80];
	struct page_source *inner, *s;
	struct apf_err e;

	REQUIRE(make_image(path, 8 * APF_PAGE_SIZE, 99) == 0);
	snprintf(spec, sizeof(spec), "file:%s", path);
	REQUIRE(open_source(spec, 8 * APF_PAGE_SIZE, &inner, &e) == 0);
	REQUIRE(source_delay_wrap(inner, 1 * MS, 3 * MS, 1, &s, &e) == 0);
	CHECK_EQ_U(s->npages, 8);
	CHECK_EQ_U(s->pattern, APF_PATTERN_SEEDED);
	CHECK_EQ_U(s->seed, 99);
	CHECK(!strcmp(s->desc, inner->desc));
	CHECK(s->event_fd >= 0);
	CHECK(s->ops->on_event != NULL);
	/* the expected cost includes the mean added latency */
	CHECK(s->ops->expected_ns(s, 0) >= 2 * MS);
	source_close(s); /* closes inner too (ASan would report a leak) */
	unlink(path);
}

TEST(delay_wrapper_rejects_inverted_range)
{
	struct page_source *inner, *s = NULL;
	struct apf_err e;

	REQUIRE(source_zero_open(4, &inner, &e) == 0);
	memset(&e, 0, sizeof(e));
	CHECK(source_delay_wrap(inner, 5 * MS, 1 * MS, 1, &s, &e) == -EINVAL);
	CHECK(s == NULL);
	CHECK(e.msg[0] != '\0');
	source_close(inner); /* on failure the caller still owns inner */
}

/* The library bounds the delay itself, whatever the caller parsed. */
TEST(delay_wrapper_rejects_latency_beyond_its_bound)
{
	struct page_source *inner, *s = NULL;
	struct apf_err e;

	REQUIRE(source_zero_open(4, &inner, &e) == 0);
	memset(&e, 0, sizeof(e));
	CHECK(source_delay_wrap(inner, 0, UINT64_MAX, 1, &s, &e) == -EINVAL);
	CHECK(source_delay_wrap(inner, 0, SOURCE_DELAY_MAX_NS + 1, 1, &s, &e) == -EINVAL);
	CHECK(s == NULL);
	CHECK(strstr(e.msg, "at most 60 s") != NULL);
	REQUIRE(source_delay_wrap(inner, 0, SOURCE_DELAY_MAX_NS, 1, &s, &e) == 0);
	source_close(s);
}

/* More completions than the queue holds (a caller that broke the in-flight
 * bound): the source is marked failed, the process is not aborted. */
TEST(completion_queue_overflow_marks_the_source_failed)
{
	struct page_source *s;
	struct apf_err e;
	struct source_completion c = { .page = 1 };

	REQUIRE(source_zero_open(4, &s, &e) == 0);
	for (unsigned i = 0; i <= SOURCE_QUEUE_MAX; i++)
		source_complete(s, &c);
	CHECK(s->error == -EOVERFLOW);
	CHECK(strstr(s->error_what, "overflow") != NULL);
	CHECK_EQ_U(s->count, SOURCE_QUEUE_MAX);
	source_close(s);
}

TEST(fixed_delay_overlaps_fetches)
{
	enum { N = 32 };
	static unsigned char bufs[N][APF_PAGE_SIZE];
	struct arrival got[N];
	struct page_source *s;
	const uint64_t delay = 2 * MS;

	REQUIRE(open_delayed(64, delay, delay, 1, &s) == 0);
	uint64_t start = source_now_ns();
	for (unsigned i = 0; i < N; i++)
		REQUIRE(source_submit(s, i * 2, bufs[i], &bufs[i]) == 0);
	unsigned n = reap_all(s, got, N, 5000);
	uint64_t elapsed = source_now_ns() - start;
	CHECK_EQ_U(n, N);

	unsigned seen[N] = { 0 };
	for (unsigned i = 0; i < n; i++) {
		const struct source_completion *c = &got[i].c;
		if (got[i].at_ns < c->submit_ns + delay)
			TEST_FAIL_("page %llu came back %llu ns after submit, before the %llu ns delay",
				   (unsigned long long)c->page,
				   (unsigned long long)(got[i].at_ns - c->submit_ns),
				   (unsigned long long)delay);
		CHECK(c->page % 2 == 0 && c->page < 2 * N);
		unsigned k = (unsigned)(c->page / 2);
		if (k < N) {
			seen[k]++;
			CHECK(c->buf == bufs[k]);
			CHECK(c->cookie == &bufs[k]);
		}
		CHECK(c->zero);
		CHECK_EQ_U(c->err, 0);
	}
	for (unsigned k = 0; k < N; k++)
		CHECK_EQ_U(seen[k], 1);
	/* serially this would take 64 ms */
	if (elapsed >= 20 * MS)
		TEST_FAIL_("32 fetches of 2 ms took %llu us: they did not overlap",
			   (unsigned long long)(elapsed / US));
	CHECK_EQ_U(s->fetched, N);
	source_close(s);
}

TEST(random_delay_reorders_and_respects_minimum)
{
	enum { N = 64 };
	static unsigned char bufs[N][APF_PAGE_SIZE];
	struct arrival got[N];
	struct page_source *s;
	const uint64_t lo = 200 * US, hi = 5 * MS;

	REQUIRE(open_delayed(N, lo, hi, 12345, &s) == 0);
	for (unsigned i = 0; i < N; i++)
		REQUIRE(source_submit(s, i, bufs[i], NULL) == 0);
	unsigned n = reap_all(s, got, N, 5000);
	CHECK_EQ_U(n, N);

	unsigned inversions = 0, seen[N] = { 0 };
	for (unsigned i = 0; i < n; i++) {
		const struct source_completion *c = &got[i].c;
		if (got[i].at_ns < c->submit_ns + lo)
			TEST_FAIL_("page %llu came back %llu ns after submit, before the 200 us minimum",
				   (unsigned long long)c->page,
				   (unsigned long long)(got[i].at_ns - c->submit_ns));
		if (c->page < N)
			seen[c->page]++;
		if (i && c->page < got[i - 1].c.page)
			inversions++;
	}
	for (unsigned k = 0; k < N; k++)
		CHECK_EQ_U(seen[k], 1);
	CHECK(inversions > 0);
	source_close(s);
}

TEST(delay_refuses_past_queue_bound_and_bad_pages)
{
	static unsigned char buf[APF_PAGE_SIZE];
	struct source_completion c;
	struct page_source *s;

	REQUIRE(open_delayed(SOURCE_QUEUE_MAX + 1, 10000 * MS, 10000 * MS, 1, &s) == 0);
	CHECK_EQ_U(source_submit(s, SOURCE_QUEUE_MAX + 1, buf, NULL), (uint64_t)-ERANGE);
	for (unsigned i = 0; i < SOURCE_QUEUE_MAX; i++)
		if (source_submit(s, i, buf, NULL) != 0) {
			TEST_FAIL_("submit %u of %u refused", i, SOURCE_QUEUE_MAX);
			break;
		}
	CHECK_EQ_U(source_submit(s, SOURCE_QUEUE_MAX, buf, NULL), (uint64_t)-EAGAIN);
	CHECK(!source_reap(s, &c)); /* 10 s out: nothing is due */
	struct pollfd pfd = { .fd = s->event_fd, .events = POLLIN };
	CHECK_EQ_U(poll(&pfd, 1, 0), 0);
	source_close(s); /* with fetches still pending: no leak, no crash */
}

TEST(zero_delay_range_completes_at_once)
{
	static unsigned char buf[APF_PAGE_SIZE];
	struct source_completion c;
	struct page_source *s;

	REQUIRE(open_delayed(4, 0, 0, 1, &s) == 0);
	REQUIRE(source_submit(s, 1, buf, NULL) == 0);
	CHECK(source_reap(s, &c));
	CHECK_EQ_U(c.page, 1);
	source_close(s);
}

/* ------------------------------------------------------------------ */
/* runs (submit_run)                                                   */

static uint64_t run_pages[SOURCE_RUN_MAX][APF_PAGE_SIZE / 8];

/* Submits the run [page, page + n) into run_pages (cookie i: &run_pages[i])
 * and reaps one completion per page, in order, each checked: its buffer
 * and cookie, one submit time for all, and (if seed) the image's words. */
static void check_run(struct page_source *s, uint64_t page, unsigned n, enum source_prio prio,
		      const uint64_t *seed, int want_err_from, int want_err)
{
	void *bufs[SOURCE_RUN_MAX], *cookies[SOURCE_RUN_MAX];
	struct source_completion c, first = { 0 };
	unsigned started;

	memset(run_pages, 0x5a, sizeof(run_pages));
	for (unsigned i = 0; i < n; i++) {
		bufs[i] = run_pages[i];
		cookies[i] = &run_pages[i][1];
	}
	REQUIRE(source_submit_run(s, page, n, bufs, cookies, prio, &started) == 0);
	CHECK_EQ_U(started, n);
	for (unsigned i = 0; i < n; i++) {
		REQUIRE(source_reap(s, &c));
		if (!i)
			first = c;
		CHECK_EQ_U(c.page, page + i);
		CHECK(c.buf == run_pages[i] && c.cookie == &run_pages[i][1]);
		CHECK_EQ_U(c.submit_ns, first.submit_ns);
		if (want_err_from >= 0 && i >= (unsigned)want_err_from) {
			CHECK_EQ_U(c.err, want_err);
			continue;
		}
		CHECK_EQ_U(c.err, 0);
		for (unsigned w = 0; seed && w < APF_PAGE_SIZE / 8; w++)
			if (run_pages[i][w] != apf_image_word(*seed, (page + i) * 512 + w)) {
				TEST_FAIL_("run at %llu: page %llu differs from the image at word %u",
					   (unsigned long long)page,
					   (unsigned long long)(page + i), w);
				break;
			}
	}
	CHECK(!source_reap(s, &c));
}

TEST(file_runs_read_every_page_and_complete_each_on_its_own)
{
	char path[64], spec[80];
	struct page_source *s;
	struct source_completion c;
	struct apf_err e;
	const uint64_t seed = 31;
	void *bufs[2] = { run_pages[0], run_pages[1] }, *cookies[2] = { NULL, NULL };
	unsigned started;

	REQUIRE(make_image(path, 100 * APF_PAGE_SIZE, seed) == 0);
	snprintf(spec, sizeof(spec), "file:%s", path);
	REQUIRE(open_source(spec, 100 * APF_PAGE_SIZE, &s, &e) == 0);
	REQUIRE(s->ops->submit_run != NULL);
	check_run(s, 0, SOURCE_RUN_MAX, SOURCE_DEMAND, &seed, -1, 0);
	check_run(s, 36, SOURCE_RUN_MAX, SOURCE_BULK, &seed, -1, 0); /* to the last page */
	check_run(s, 99, 1, SOURCE_BULK, &seed, -1, 0);
	check_run(s, 7, 13, SOURCE_DEMAND, &seed, -1, 0);
	CHECK_EQ_U(s->fetched, 64 + 64 + 1 + 13);
	/* Past the end, or too long: nothing started. */
	CHECK_EQ_U(source_submit_run(s, 99, 2, bufs, cookies, SOURCE_BULK, &started), -EINVAL);
	CHECK_EQ_U(started, 0);
	CHECK_EQ_U(source_submit_run(s, 0, SOURCE_RUN_MAX + 1, bufs, cookies, SOURCE_BULK, &started),
		   -EINVAL);
	CHECK_EQ_U(source_submit_run(s, 0, 0, bufs, cookies, SOURCE_BULK, &started), -EINVAL);
	CHECK_EQ_U(s->ops->submit_run(s, 100, 1, bufs, cookies, SOURCE_DEMAND), -ERANGE);
	CHECK_EQ_U(s->ops->submit_run(s, UINT64_MAX, 2, bufs, cookies, SOURCE_DEMAND), -ERANGE);
	CHECK(!source_reap(s, &c));
	/* The file shrinks under the source: a run over its new end has the
	 * pages before it, then fails from the page cut short on. */
	REQUIRE(truncate(path, IMAGE_HEADER_SIZE + 20 * APF_PAGE_SIZE + 100) == 0);
	check_run(s, 10, 16, SOURCE_DEMAND, &seed, 10, -EIO);
	check_run(s, 30, 8, SOURCE_BULK, NULL, 0, -EIO);
	source_close(s);
	unlink(path);
}

TEST(raw_runs_read_every_page_and_report_zero_pages)
{
	char path[] = "/tmp/apfvm-raw-run.XXXXXX";
	struct page_source *s;
	struct source_completion c;
	struct apf_err e;
	static uint64_t page[512];
	void *bufs[SOURCE_RUN_MAX], *cookies[SOURCE_RUN_MAX];
	unsigned started;
	int fd = mkstemp(path);

	REQUIRE(fd >= 0);
	/* 40 pages: every third all zeros, the others the image's words. */
	for (uint64_t p = 0; p < 40; p++) {
		if (p % 3)
			image_fill(4, p * 512, page, 512);
		else
			memset(page, 0, sizeof(page));
		REQUIRE(pwrite(fd, page, sizeof(page), (off_t)(p * APF_PAGE_SIZE)) == APF_PAGE_SIZE);
	}
	REQUIRE(source_raw_open(fd, 40, "raw test", &s, &e) == 0);
	for (unsigned i = 0; i < 40; i++) {
		bufs[i] = run_pages[i];
		cookies[i] = (void *)(uintptr_t)i;
	}
	REQUIRE(source_submit_run(s, 0, 40, bufs, cookies, SOURCE_BULK, &started) == 0);
	for (unsigned i = 0; i < 40; i++) {
		REQUIRE(source_reap(s, &c));
		CHECK_EQ_U(c.page, i);
		CHECK(c.cookie == (void *)(uintptr_t)i);
		CHECK_EQ_U(c.err, 0);
		CHECK_EQ_U(c.zero, i % 3 == 0);
		image_fill(4, i * 512ull, page, 512);
		if (i % 3 && memcmp(run_pages[i], page, sizeof(page)))
			TEST_FAIL_("raw page %u differs", i);
	}
	CHECK_EQ_U(source_submit_run(s, 39, 2, bufs, cookies, SOURCE_BULK, &started), -EINVAL);
	CHECK(!source_reap(s, &c));
	source_close(s);
	close(fd);
	unlink(path);
}

/* A run through the delay wrapper is one request: the inner source reads
 * it as a run, and all its pages come back together, one delay after the
 * submit; runs with different delays do not interleave. */
TEST(delay_wrapper_delays_a_run_as_one_request)
{
	enum { RUNS = 4, PER = 16 };
	char path[64], spec[80];
	struct page_source *inner, *s;
	struct apf_err e;
	static uint64_t bufs_mem[RUNS * PER][512];
	void *bufs[RUNS * PER], *cookies[RUNS * PER];
	struct arrival got[RUNS * PER];
	const uint64_t seed = 8, lo = 1 * MS, hi = 30 * MS;
	unsigned started;

	REQUIRE(make_image(path, 128 * APF_PAGE_SIZE, seed) == 0);
	snprintf(spec, sizeof(spec), "file:%s", path);
	REQUIRE(open_source(spec, 128 * APF_PAGE_SIZE, &inner, &e) == 0);
	REQUIRE(source_delay_wrap(inner, lo, hi, 99, &s, &e) == 0);
	for (unsigned i = 0; i < RUNS * PER; i++) {
		bufs[i] = bufs_mem[i];
		cookies[i] = (void *)(uintptr_t)i;
	}
	for (unsigned r = 0; r < RUNS; r++)
		REQUIRE(source_submit_run(s, r * 32, PER, bufs + r * PER, cookies + r * PER,
					  r % 2 ? SOURCE_BULK : SOURCE_DEMAND, &started) == 0);
	unsigned n = reap_all(s, got, RUNS * PER, 5000);
	CHECK_EQ_U(n, RUNS * PER);
	for (unsigned i = 0; i < n; i++) {
		const struct source_completion *c = &got[i].c;
		unsigned k = (unsigned)(uintptr_t)c->cookie;
		REQUIRE(k < RUNS * PER);
		CHECK_EQ_U(c->page, (k / PER) * 32 + k % PER);
		CHECK(c->buf == bufs_mem[k]);
		CHECK_EQ_U(c->err, 0);
		CHECK(got[i].at_ns >= c->submit_ns + lo);
		CHECK(c->buf && bufs_mem[k][5] == apf_image_word(seed, c->page * 512 + 5));
		/* The pages of a run leave together, in a row. */
		if (i % PER)
			CHECK_EQ_U((uintptr_t)got[i - 1].c.cookie / PER, k / PER);
	}
	/* A run that does not fit beside the fetches held is refused whole. */
	struct page_source *full;
	REQUIRE(open_delayed(SOURCE_QUEUE_MAX + 64, 10000 * MS, 10000 * MS, 1, &full) == 0);
	for (unsigned i = 0; i < SOURCE_QUEUE_MAX - 8; i++)
		REQUIRE(source_submit(full, i, bufs_mem[0], NULL) == 0);
	CHECK_EQ_U(source_submit_run(full, 0, 16, bufs, cookies, SOURCE_BULK, &started), -EAGAIN);
	CHECK_EQ_U(started, 0);
	CHECK_EQ_U(source_submit_run(full, 0, 8, bufs, cookies, SOURCE_BULK, &started), 0);
	source_close(full);
	source_close(s);
	unlink(path);
}

/* ------------------------------------------------------------------ */
/* the checked window (a snapshot's memory from a remote source)        */

TEST(window_shifts_pages_and_fails_those_whose_digest_differs_even_with_a_forged_crc)
{
	char path[64] = "/tmp/apfvm-window.XXXXXX";
	static uint64_t page[512];
	static struct sha256 digests[32];
	struct snap_image snap = { .mem_fd = -1, .mem_pages = 32, .page_digests = digests };
	struct page_source *inner, *w;
	struct source_completion c;
	struct apf_err e;

	REQUIRE(make_image(path, 32 * APF_PAGE_SIZE, 5) == 0);
	for (unsigned i = 0; i < 32; i++) {
		image_fill(5, i * 512ull, page, 512);
		sha256(page, sizeof(page), &digests[i]);
	}
	/* Page 16 of the image (6 of the window) changed on the way, its
	 * crc32c forged to the original's: the page server protocol's own
	 * check (crc32c) passes it; the snapshot's SHA-256 does not. */
	image_fill(5, 16 * 512ull, page, 512);
	uint32_t crc = crc32c(0, page, sizeof(page));
	page[7] ^= 0xdeadbeefull;
	forge_crc32c((unsigned char *)page, sizeof(page), crc);
	CHECK(pgs_page_ok(page, crc));
	int fd = open(path, O_WRONLY);
	REQUIRE(fd >= 0 && pwrite(fd, page, sizeof(page), IMAGE_HEADER_SIZE + 16 * 4096) == 4096);
	close(fd);
	char spec[80];
	snprintf(spec, sizeof(spec), "file:%s", path);
	REQUIRE(open_source(spec, 32 * APF_PAGE_SIZE, &inner, &e) == 0);
	CHECK_EQ_U(source_window_wrap(inner, &snap, 30, 8, &w, &e), -EINVAL); /* beyond it */
	CHECK(strstr(e.msg, "pages 30..37") != NULL);
	snap.mem_pages = 16; /* a snapshot smaller than its source */
	CHECK_EQ_U(source_window_wrap(inner, &snap, 10, 8, &w, &e), -EINVAL);
	CHECK(strstr(e.msg, "the snapshot has 16 pages") != NULL);
	snap.mem_pages = 32;
	REQUIRE(source_window_wrap(inner, &snap, 10, 8, &w, &e) == 0);
	CHECK_EQ_U(w->npages, 8);
	CHECK_EQ_U(source_submit(w, 8, page, NULL), -ERANGE);
	for (unsigned i = 0; i < 8; i++) {
		REQUIRE(source_submit(w, i, page, NULL) == 0);
		REQUIRE(source_reap(w, &c));
		CHECK_EQ_U(c.page, i);
		if (i == 6) {
			CHECK_EQ_U(c.err, -EBADMSG);
			CHECK(c.why && strstr(c.why, "does not match the snapshot's SHA-256"));
		} else {
			CHECK_EQ_U(c.err, 0);
		}
	}
	source_close(w);
	unlink(path);
}

/* A counting inner source: page p holds the word p + 1 everywhere (no
 * page is zero), completes inside submit, and records every page it is
 * asked for, one submit or run at a time; its run op can be left out (the
 * fallback) or fail its k-th call with -EAGAIN. */
#define COUNT_PAGES 96
static struct counting {
	struct page_source base;
	unsigned submits, runs, fail_run; /* fail_run: that call (1-based) fails, 0: none */
	unsigned asked[COUNT_PAGES];
	uint64_t run_page[64];
	unsigned run_n[64];
	enum source_prio run_prio[64];
} counting;

static void counting_fill(uint64_t page, void *buf)
{
	uint64_t *w = buf;
	for (unsigned i = 0; i < 512; i++)
		w[i] = page + 1;
}

static int counting_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	struct source_completion c = { .page = page, .buf = buf, .cookie = cookie,
				       .submit_ns = source_now_ns() };
	if (page >= s->npages)
		return -ERANGE;
	counting.submits++;
	counting.asked[page]++;
	counting_fill(page, buf);
	source_complete(s, &c);
	return 0;
}

static int counting_submit_run(struct page_source *s, uint64_t page, unsigned n, void *const *bufs,
			       void *const *cookies, enum source_prio prio)
{
	unsigned k = counting.runs++;
	if (counting.fail_run == k + 1)
		return -EAGAIN;
	if (k < 64) {
		counting.run_page[k] = page;
		counting.run_n[k] = n;
		counting.run_prio[k] = prio;
	}
	for (unsigned i = 0; i < n; i++) {
		struct source_completion c = { .page = page + i, .buf = bufs[i], .cookie = cookies[i],
					       .submit_ns = source_now_ns() };
		counting.asked[page + i]++;
		counting_fill(page + i, bufs[i]);
		source_complete(s, &c);
	}
	return 0;
}

static uint64_t counting_expected_ns(struct page_source *s, uint64_t page)
{
	(void)s;
	(void)page;
	return 7 * MS;
}

static void counting_destroy(struct page_source *s)
{
	(void)s; /* static */
}

static const struct page_source_ops counting_ops = {
	.name = "counting", .submit = counting_submit, .submit_run = counting_submit_run,
	.expected_ns = counting_expected_ns, .destroy = counting_destroy,
};
static const struct page_source_ops counting_ops_no_run = {
	.name = "counting", .submit = counting_submit, .expected_ns = counting_expected_ns,
	.destroy = counting_destroy,
};

/* A snapshot of COUNT_PAGES pages as the counting source serves them,
 * except that `zero` lists the pages that are zero (their digest a zero
 * page's): the counting source's copy of them is wrong, so one fetched
 * from it would fail its check. */
static struct sha256 count_digests[COUNT_PAGES];
static uint8_t count_zero[COUNT_PAGES / 8];

static void counting_snapshot(struct snap_image *snap, bool (*is_zero)(unsigned page),
			      const struct page_source_ops *ops)
{
	static uint64_t page[512];

	memset(&counting, 0, sizeof(counting));
	source_init(&counting.base, ops, COUNT_PAGES);
	snprintf(counting.base.desc, sizeof(counting.base.desc), "counting");
	memset(count_zero, 0, sizeof(count_zero));
	for (unsigned p = 0; p < COUNT_PAGES; p++) {
		counting_fill(p, page);
		sha256(page, sizeof(page), &count_digests[p]);
		if (is_zero(p)) {
			count_zero[p / 8] |= (uint8_t)(1u << (p % 8));
			count_digests[p] = *snap_zero_page_digest();
		}
	}
	*snap = (struct snap_image){ .mem_fd = -1, .mem_pages = COUNT_PAGES,
				     .page_digests = count_digests, .zero_bits = count_zero };
}

/* Pages 32.. of the snapshot: window page i is page 32 + i. */
#define WFIRST 32
static bool zero_every_third(unsigned p) { return p >= WFIRST && (p - WFIRST) % 3 == 1; }
static bool zero_none(unsigned p) { (void)p; return false; }

TEST(window_completes_the_snapshots_zero_pages_without_asking_its_source)
{
	static unsigned char buf[APF_PAGE_SIZE];
	struct snap_image snap;
	struct page_source *w;
	struct source_completion c;
	struct apf_err e;
	int cookie;

	counting_snapshot(&snap, zero_every_third, &counting_ops);
	REQUIRE(source_window_wrap(&counting.base, &snap, WFIRST, 64, &w, &e) == 0);
	for (unsigned i = 0; i < 64; i++) {
		memset(buf, 0xa5, sizeof(buf));
		REQUIRE(source_submit(w, i, buf, &cookie) == 0);
		REQUIRE(source_reap(w, &c));
		CHECK(!source_reap(w, &c)); /* one completion per page */
		CHECK_EQ_U(c.page, i);
		CHECK(c.cookie == &cookie && c.buf == buf);
		CHECK_EQ_U(c.err, 0);
		bool zero = zero_every_third(WFIRST + i);
		CHECK_EQ_U(c.zero, zero);
		if (zero) {
			CHECK_EQ_U(buf[0], 0xa5); /* not written */
			CHECK_EQ_U(buf[4095], 0xa5);
			CHECK_EQ_U(w->ops->expected_ns(w, i), 0); /* at hand */
		} else {
			CHECK_EQ_U(w->ops->expected_ns(w, i), 7 * MS);
		}
		CHECK_EQ_U(counting.asked[WFIRST + i], !zero);
	}
	CHECK_EQ_U(counting.submits, 43); /* 64 pages, 21 of them zero */
	source_close(w);
}

/* Submits window pages [page, page + n) as one run, bufs[i] filled with
 * 0xa5 first, cookie i; reaps what completed into got[] (by cookie). */
static unsigned char run_bufs[SOURCE_RUN_MAX][APF_PAGE_SIZE];
static struct source_completion got[SOURCE_RUN_MAX];
static unsigned ngot;

static int submit_run_of(struct page_source *w, uint64_t page, unsigned n, unsigned *started)
{
	void *bufs[SOURCE_RUN_MAX], *cookies[SOURCE_RUN_MAX];
	struct source_completion c;

	for (unsigned i = 0; i < n; i++) {
		memset(run_bufs[i], 0xa5, APF_PAGE_SIZE);
		bufs[i] = run_bufs[i];
		cookies[i] = (void *)(uintptr_t)(i + 1);
	}
	memset(got, 0, sizeof(got));
	ngot = 0;
	int rc = source_submit_run(w, page, n, bufs, cookies, SOURCE_BULK, started);
	while (source_reap(w, &c)) {
		unsigned i = (unsigned)(uintptr_t)c.cookie - 1;
		if (i < n && !got[i].cookie)
			got[i] = c, ngot++;
		else
			ngot = 1000; /* a stray or second completion */
	}
	return rc;
}

TEST(window_submit_run_splits_runs_around_zero_pages_and_checks_every_page)
{
	struct snap_image snap;
	struct page_source *w;
	struct apf_err e;
	unsigned started;

	counting_snapshot(&snap, zero_every_third, &counting_ops);
	REQUIRE(source_window_wrap(&counting.base, &snap, WFIRST, 64, &w, &e) == 0);
	/* Window pages 0..9: zero are 1, 4, 7; inner runs 32, 34-35, 38-39, 41. */
	REQUIRE(submit_run_of(w, 0, 10, &started) == 0);
	CHECK_EQ_U(started, 10);
	CHECK_EQ_U(ngot, 10);
	CHECK_EQ_U(counting.runs, 4);
	CHECK_EQ_U(counting.submits, 0);
	static const uint64_t want_page[4] = { 32, 34, 37, 40 };
	static const unsigned want_n[4] = { 1, 2, 2, 2 };
	for (unsigned k = 0; k < 4; k++) {
		CHECK_EQ_U(counting.run_page[k], want_page[k]);
		CHECK_EQ_U(counting.run_n[k], want_n[k]);
		CHECK_EQ_U(counting.run_prio[k], SOURCE_BULK);
	}
	for (unsigned i = 0; i < 10; i++) {
		bool zero = zero_every_third(WFIRST + i);
		CHECK_EQ_U(got[i].page, i);
		CHECK_EQ_U(got[i].err, 0);
		CHECK_EQ_U(got[i].zero, zero);
		CHECK(got[i].buf == run_bufs[i]);
		CHECK_EQ_U(run_bufs[i][0], zero ? 0xa5 : WFIRST + i + 1); /* zero: not written */
		CHECK_EQ_U(counting.asked[WFIRST + i], !zero);
	}
	/* A run of nothing but zero pages: no call at all. */
	REQUIRE(submit_run_of(w, 1, 1, &started) == 0);
	CHECK_EQ_U(ngot, 1);
	CHECK(got[0].zero);
	CHECK_EQ_U(counting.runs, 4);
	/* Each page checked as by submit(): a page the source serves wrong
	 * (its digest changed here, as if the source were) fails. */
	count_digests[WFIRST + 12].b[0] ^= 1;
	REQUIRE(submit_run_of(w, 10, 6, &started) == 0);
	CHECK_EQ_U(ngot, 6);
	for (unsigned i = 0; i < 6; i++)
		CHECK_EQ_U(got[i].err, i == 2 ? -EBADMSG : 0);
	CHECK(got[2].why && strstr(got[2].why, "does not match the snapshot's SHA-256"));
	/* Out of range: refused, nothing started. */
	CHECK_EQ_U(submit_run_of(w, 60, 5, &started), -EINVAL);
	CHECK_EQ_U(ngot, 0);
	/* Every page the source was asked for is one the snapshot lists as
	 * data. */
	for (unsigned p = 0; p < COUNT_PAGES; p++)
		if (zero_every_third(p))
			CHECK_EQ_U(counting.asked[p], 0);
	source_close(w);
}

TEST(window_submit_run_over_a_source_without_runs_and_when_its_source_refuses)
{
	struct snap_image snap;
	struct page_source *w;
	struct apf_err e;
	unsigned started;

	/* No run op below: page by page, the zero pages still skipped. */
	counting_snapshot(&snap, zero_every_third, &counting_ops_no_run);
	REQUIRE(source_window_wrap(&counting.base, &snap, WFIRST, 64, &w, &e) == 0);
	REQUIRE(submit_run_of(w, 0, 64, &started) == 0);
	CHECK_EQ_U(ngot, 64);
	CHECK_EQ_U(counting.submits, 43);
	for (unsigned i = 0; i < 64; i++)
		CHECK(got[i].err == 0 && got[i].zero == zero_every_third(WFIRST + i));
	source_close(w);

	/* The source refuses the first part: the run fails, nothing of it
	 * started (no zero page completed either). */
	counting_snapshot(&snap, zero_every_third, &counting_ops);
	REQUIRE(source_window_wrap(&counting.base, &snap, WFIRST, 64, &w, &e) == 0);
	counting.fail_run = 1;
	CHECK_EQ_U(submit_run_of(w, 0, 10, &started), -EAGAIN);
	CHECK_EQ_U(started, 0);
	CHECK_EQ_U(ngot, 0);
	/* It refuses a later part: the parts before are started, so the run
	 * is too; the pages it refused complete failed, with the cause. */
	counting.runs = 0;
	counting.fail_run = 3; /* window pages 0, 2-3 started; 5-6 refused; 8-9 never tried */
	REQUIRE(submit_run_of(w, 0, 10, &started) == 0);
	CHECK_EQ_U(ngot, 10);
	for (unsigned i = 0; i < 10; i++) {
		bool zero = zero_every_third(WFIRST + i), refused = !zero && i >= 5;
		CHECK_EQ_U(got[i].err, refused ? -EAGAIN : 0);
		CHECK_EQ_U(got[i].zero, zero);
		if (refused)
			CHECK(got[i].why && strstr(got[i].why, "counting: cannot start fetching"));
	}
	source_close(w);

	/* A snapshot with no zero pages: one run, as it came. */
	counting_snapshot(&snap, zero_none, &counting_ops);
	REQUIRE(source_window_wrap(&counting.base, &snap, WFIRST, 64, &w, &e) == 0);
	REQUIRE(submit_run_of(w, 3, 61, &started) == 0);
	CHECK_EQ_U(ngot, 61);
	CHECK_EQ_U(counting.runs, 1);
	CHECK_EQ_U(counting.run_page[0], WFIRST + 3);
	source_close(w);
}

/* Under the pager (real userfaultfd, this thread standing in for a vCPU):
 * the pages the snapshot lists as zero read as zeros, installed from zero
 * completions; the file below holds data there, which would fail their
 * digest if it were ever fetched; only the other pages are fetched. */
static bool zero_odd(unsigned p) { return p % 2; }

TEST(window_under_a_pager_maps_the_zero_pages_without_fetching_them)
{
	enum { N = 64 };
	char path[64], spec[80];
	static uint64_t page[512];
	static struct sha256 digests[N];
	static uint8_t bits[N / 8];
	struct snap_image snap = { .mem_fd = -1, .mem_pages = N, .page_digests = digests,
				   .zero_bits = bits };
	struct page_source *inner, *w;
	struct apf_err e;
	struct pager p;

	REQUIRE(make_image(path, N * APF_PAGE_SIZE, 11) == 0);
	for (unsigned i = 0; i < N; i++) {
		image_fill(11, i * 512ull, page, 512);
		sha256(page, sizeof(page), &digests[i]);
		if (zero_odd(i)) {
			bits[i / 8] |= (uint8_t)(1u << (i % 8));
			digests[i] = *snap_zero_page_digest();
		}
	}
	snprintf(spec, sizeof(spec), "file:%s", path);
	REQUIRE(open_source(spec, N * APF_PAGE_SIZE, &inner, &e) == 0);
	REQUIRE(source_window_wrap(inner, &snap, 0, N, &w, &e) == 0);
	volatile uint64_t *mem = mmap(NULL, N * APF_PAGE_SIZE, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(mem != MAP_FAILED);
	madvise((void *)mem, N * APF_PAGE_SIZE, MADV_NOHUGEPAGE);
	struct pager_config cfg = { .host_base = (void *)mem, .size = N * APF_PAGE_SIZE,
				    .source = w, .max_inflight = 16, .cpu = -1 };
	REQUIRE(pager_init(&p, &cfg, &e) == 0);
	REQUIRE(pager_start(&p, &e) == 0);
	unsigned bad = 0;
	for (unsigned i = 0; i < N; i++) {
		image_fill(11, i * 512ull, page, 512);
		for (unsigned k = 0; k < 512; k += 37)
			bad += mem[i * 512 + k] != (zero_odd(i) ? 0 : page[k]);
	}
	pager_stop(&p);
	CHECK_EQ_U(bad, 0);
	CHECK_EQ_U(p.stats.pages_fetched, N);
	CHECK_EQ_U(pager_count_state(&p, PAGE_PRESENT), N);
	CHECK_EQ_U(inner->fetched, N / 2); /* the file: only the pages with data */
	pager_destroy(&p);
	munmap((void *)mem, N * APF_PAGE_SIZE);
	source_close(w);
	unlink(path);
}

TEST_MAIN(T(zero_source_completes_through_reap), T(zero_source_reaps_in_submit_order),
	  T(file_source_serves_image_words), T(file_source_reports_a_file_that_shrank),
	  T(file_source_image_smaller_than_lazy_region), T(source_open_rejects_bad_specs),
	  T(file_source_rejects_fifo_and_devices_without_blocking),
	  T(delay_wrapper_keeps_inner_identity), T(delay_wrapper_rejects_inverted_range),
	  T(delay_wrapper_rejects_latency_beyond_its_bound),
	  T(completion_queue_overflow_marks_the_source_failed),
	  T(fixed_delay_overlaps_fetches), T(random_delay_reorders_and_respects_minimum),
	  T(delay_refuses_past_queue_bound_and_bad_pages), T(zero_delay_range_completes_at_once),
	  T(window_shifts_pages_and_fails_those_whose_digest_differs_even_with_a_forged_crc),
	  T(file_runs_read_every_page_and_complete_each_on_its_own),
	  T(raw_runs_read_every_page_and_report_zero_pages),
	  T(delay_wrapper_delays_a_run_as_one_request),
	  T(window_completes_the_snapshots_zero_pages_without_asking_its_source),
	  T(window_submit_run_splits_runs_around_zero_pages_and_checks_every_page),
	  T(window_submit_run_over_a_source_without_runs_and_when_its_source_refuses),
	  T(window_under_a_pager_maps_the_zero_pages_without_fetching_them))
