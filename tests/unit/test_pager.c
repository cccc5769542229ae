/*
 * The pager against real userfaultfd, without KVM: host threads stand in
 * for vCPUs and touch the lazy region.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "image/image.h"
#include "pager/pager.h"
#include "source/open.h"
#include "../failing_source.h"
#include "test.h"

#define NPAGES 256
#define REGION (NPAGES * APF_PAGE_SIZE)

struct toucher {
	const volatile uint64_t *base;
	uint64_t first, count, seed;
	int pattern;
	uint64_t bad;
};

static void *touch_pages(void *arg)
{
	struct toucher *t = arg;
	for (uint64_t p = t->first; p < t->first + t->count; p++) {
		uint64_t w = p * (APF_PAGE_SIZE / 8) + (p % 512);
		uint64_t want = t->pattern == APF_PATTERN_SEEDED ? apf_image_word(t->seed, w) : 0;
		if (t->base[w] != want)
			t->bad++;
	}
	return NULL;
}

static void *map_region(void)
{
	void *m = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	madvise(m, REGION, MADV_NOHUGEPAGE);
	return m;
}

static int make_image(char *path, uint64_t seed)
{
	strcpy(path, "/tmp/apfvm-pager-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return image_create(path, REGION, seed, NULL);
}

/* Runs nthreads touchers over the region (each the whole region when
 * `overlap`, else a slice) against a pager on `src`. */
static void run_touchers(struct page_source *src, unsigned inflight, unsigned nthreads,
			 int overlap, struct pager_stats *st, uint64_t *bad)
{
	struct pager p;
	struct pager_config cfg = { .size = REGION, .source = src, .max_inflight = inflight,
				    .cpu = -1 };
	struct toucher t[16];
	pthread_t th[16];
	struct apf_err e;

	*bad = ~0ull;
	cfg.host_base = map_region();
	REQUIRE(cfg.host_base);
	REQUIRE(pager_init(&p, &cfg, &e) == 0);
	REQUIRE(pager_start(&p, &e) == 0);
	for (unsigned i = 0; i < nthreads; i++) {
		t[i] = (struct toucher){
			.base = cfg.host_base,
			.first = overlap ? 0 : NPAGES / nthreads * i,
			.count = overlap ? NPAGES : NPAGES / nthreads,
			.seed = src->seed, .pattern = (int)src->pattern,
		};
		pthread_create(&th[i], NULL, touch_pages, &t[i]);
	}
	*bad = 0;
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		*bad += t[i].bad;
	}
	pager_stop(&p);
	*st = p.stats;
	CHECK_EQ_U(pager_count_state(&p, PAGE_PRESENT), NPAGES);
	pager_destroy(&p);
	munmap(cfg.host_base, REGION);
}

TEST(zero_source_serves_zero_pages_once)
{
	struct page_source *s;
	struct pager_stats st;
	uint64_t bad;

	REQUIRE(source_open("zero", REGION, NULL, &s, NULL) == 0);
	run_touchers(s, 64, 1, 0, &st, &bad);
	CHECK_EQ_U(bad, 0);
	CHECK_EQ_U(st.pages_fetched, NPAGES);
	CHECK_EQ_U(st.faults_total, NPAGES);
	source_close(s);
}

TEST(file_source_content_is_verified)
{
	char path[64];
	struct page_source *s;
	struct pager_stats st;
	uint64_t bad;

	char spec[80];

	REQUIRE(make_image(path, 77) == 0);
	snprintf(spec, sizeof(spec), "file:%s", path);
	REQUIRE(source_open(spec, REGION, NULL, &s, NULL) == 0);
	run_touchers(s, 64, 4, 0, &st, &bad);
	CHECK_EQ_U(bad, 0);
	CHECK_EQ_U(st.pages_fetched, NPAGES);
	CHECK_EQ_U(st.bytes_fetched, REGION);
	source_close(s);
	unlink(path);
}

/* Several threads fault on the same pages while fetches are slow: each page
 * is still fetched exactly once, and everyone sees the right data. */
TEST(each_page_fetched_exactly_once_under_contention)
{
	char path[64], spec[80];
	struct page_source *s, *d;
	struct pager_stats st;
	uint64_t bad;

	REQUIRE(make_image(path, 5) == 0);
	snprintf(spec, sizeof(spec), "file:%s", path);
	REQUIRE(source_open(spec, REGION, NULL, &s, NULL) == 0);
	REQUIRE(source_delay_wrap(s, 200000, 200000, 1, &d, NULL) == 0);
	run_touchers(d, 64, 4, 1, &st, &bad);
	CHECK_EQ_U(bad, 0);
	CHECK_EQ_U(st.pages_fetched, NPAGES);
	CHECK(st.faults_total >= NPAGES);
	CHECK_EQ_U(st.faults_total, NPAGES + st.faults_joined + st.faults_spurious);
	source_close(d);
	unlink(path);
}

/* With slow fetches and many faulting threads, at most max_inflight
 * fetches overlap, and more than one does. */
TEST(inflight_limit_is_respected_and_fetches_overlap)
{
	struct page_source *s, *d;
	struct pager_stats st;
	uint64_t bad;

	REQUIRE(source_open("zero", REGION, NULL, &s, NULL) == 0);
	REQUIRE(source_delay_wrap(s, 1000000, 1000000, 1, &d, NULL) == 0);
	run_touchers(d, 4, 16, 0, &st, &bad);
	CHECK_EQ_U(bad, 0);
	CHECK(st.inflight_max <= 4);
	CHECK(st.inflight_max >= 2);
	CHECK_EQ_U(st.pages_fetched, NPAGES);
	source_close(d);
}

/* Bounded polling for a state the pager thread reaches on its own (a
 * fetch under way, a fatal error): up to `ms` milliseconds. */
/* notify_pages: the callback runs once, from the pager thread, when the
 * N-th fetched page is installed, and never again. */
struct milestone {
	struct pager *p;
	atomic_int calls;
	uint64_t fetched_then;
};

static void on_milestone(void *ctx)
{
	struct milestone *ms = ctx;
	ms->fetched_then = ms->p->stats.pages_fetched; /* the pager thread's own counter */
	atomic_fetch_add(&ms->calls, 1);
}

TEST(notify_pages_called_once_at_that_count)
{
	struct page_source *s;
	struct pager p;
	struct milestone ms = { .p = &p };
	struct pager_config cfg = { .size = REGION, .max_inflight = 8, .cpu = -1,
				    .ctx = &ms, .notify_pages = 100, .on_pages_fetched = on_milestone };
	struct toucher t;
	struct apf_err e;

	REQUIRE(source_open("zero", REGION, NULL, &s, NULL) == 0);
	cfg.source = s;
	cfg.host_base = map_region();
	REQUIRE(cfg.host_base);
	REQUIRE(pager_init(&p, &cfg, &e) == 0);
	REQUIRE(pager_start(&p, &e) == 0);
	t = (struct toucher){ .base = cfg.host_base, .count = 99, .pattern = APF_PATTERN_ZERO };
	touch_pages(&t);
	CHECK_EQ_U(atomic_load(&ms.calls), 0); /* 99 pages: not yet */
	t.first = 99;
	t.count = NPAGES - 99;
	touch_pages(&t);
	pager_stop(&p);
	CHECK_EQ_U(t.bad, 0);
	CHECK_EQ_U(atomic_load(&ms.calls), 1);
	CHECK_EQ_U(ms.fetched_then, 100);
	CHECK_EQ_U(p.stats.pages_fetched, NPAGES);
	pager_destroy(&p);
	munmap(cfg.host_base, REGION);
	source_close(s);
}

static bool page_fetching(struct pager *p, uint64_t page)
{
	return __atomic_load_n(&p->state[page], __ATOMIC_ACQUIRE) == PAGE_FETCHING;
}
#define WAIT_UNTIL(cond, ms)                                                                \
	for (int wait_i_ = 0; wait_i_ < (ms) * 10 && !(cond); wait_i_++)                   \
		nanosleep(&(struct timespec){ 0, 100000 }, NULL)

static atomic_int error_calls;

/* A source that breaks (its timer is gone, say): it completes nothing and
 * marks itself failed. */
static int broken_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	(void)page;
	(void)buf;
	(void)cookie;
	source_set_error(s, -EBADF, "cannot arm the delay timer");
	return 0;
}
static const struct page_source_ops broken_ops = {
	.name = "broken", .submit = broken_submit, .expected_ns = failing_expected_ns,
	.destroy = failing_destroy,
};

/* Guarded accesses: a thread reads one word of a lazy page and records
 * how the access ended: with a value, or with SIGBUS (the page is
 * poisoned); PENDING while it waits. */
enum access_end { ACCESS_PENDING, ACCESS_VALUE, ACCESS_SIGBUS };

struct access {
	const volatile uint64_t *word;
	atomic_int end;
	uint64_t value;
	void *bus_addr;
	pthread_t thread;
};

static __thread sigjmp_buf *volatile tl_guard;
static __thread void *volatile tl_bus_addr;

static void guard_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!tl_guard)
		abort(); /* a fault outside a guarded access */
	tl_bus_addr = si->si_addr;
	siglongjmp(*tl_guard, sig);
}

static void *access_thread(void *arg)
{
	struct access *a = arg;
	sigjmp_buf jb;
	int sig = sigsetjmp(jb, 1);

	if (sig == 0) {
		tl_guard = &jb;
		uint64_t v = *a->word;
		tl_guard = NULL;
		a->value = v;
		atomic_store(&a->end, ACCESS_VALUE);
	} else {
		tl_guard = NULL;
		a->bus_addr = tl_bus_addr;
		atomic_store(&a->end, ACCESS_SIGBUS);
	}
	return NULL;
}

static void start_access(struct access *a, void *base, uint64_t page)
{
	static bool handlers;
	if (!handlers) {
		struct sigaction sa = { .sa_sigaction = guard_handler, .sa_flags = SA_SIGINFO };
		sigemptyset(&sa.sa_mask);
		sigaction(SIGBUS, &sa, NULL);
		handlers = true;
	}
	a->word = (const volatile uint64_t *)((char *)base + page * APF_PAGE_SIZE);
	atomic_store(&a->end, ACCESS_PENDING);
	pthread_create(&a->thread, NULL, access_thread, a);
}

/* One guarded access to `page`, to its end. */
static enum access_end access_page(void *base, uint64_t page, struct access *a)
{
	start_access(a, base, page);
	pthread_join(a->thread, NULL);
	return atomic_load(&a->end);
}

static bool page_in_memory(void *base, uint64_t page)
{
	unsigned char vec = 0;
	return mincore((char *)base + page * APF_PAGE_SIZE, APF_PAGE_SIZE, &vec) == 0 && (vec & 1);
}

static atomic_int blocking_calls;
static void on_error_count(void *ctx, bool blocking)
{
	(void)ctx;
	atomic_fetch_add(&error_calls, 1);
	if (blocking)
		atomic_fetch_add(&blocking_calls, 1);
}

/* poison = false: as on a kernel before 6.6, whatever this one can. */
static bool start_pager_on(struct page_source *s, struct pager *p, bool poison)
{
	struct pager_config cfg = { .size = REGION, .source = s, .max_inflight = 8, .cpu = -1,
				    .on_error = on_error_count };

	atomic_store(&error_calls, 0);
	atomic_store(&blocking_calls, 0);
	cfg.host_base = map_region();
	if (!cfg.host_base || pager_init(p, &cfg, NULL)) {
		TEST_FAIL_("%s:%d: cannot set up the pager", __FILE__, __LINE__);
		return false;
	}
	p->can_poison &= poison;
	if (pager_start(p, NULL)) {
		TEST_FAIL_("%s:%d: cannot start the pager", __FILE__, __LINE__);
		return false;
	}
	return true;
}

static void destroy_pager(struct pager *p)
{
	void *base = p->cfg.host_base;
	pager_destroy(p);
	munmap(base, REGION);
}

#define REQUIRE_POISON()                                                            \
	do {                                                                        \
		if (!kernel_can_poison())                                           \
			SKIP("this kernel cannot poison userfaultfd pages (Linux 6.6+)"); \
	} while (0)

/* A page that cannot be fetched is poisoned: the blocked access and every
 * later one fail (SIGBUS), it is never mapped, the error is reported once
 * and the pager goes on serving the other pages.  It used to unregister
 * the region, so the access read a zero page. */
TEST(failed_fetch_poisons_the_page_and_the_rest_is_served)
{
	static struct page_source s;
	struct pager p;
	struct access a;
	char *page3;

	REQUIRE_POISON();
	failing_page = 3;
	source_init(&s, &failing_source_ops, NPAGES);
	REQUIRE(start_pager_on(&s, &p, true));
	page3 = (char *)p.cfg.host_base + 3 * APF_PAGE_SIZE;
	CHECK(access_page(p.cfg.host_base, 3, &a) == ACCESS_SIGBUS);
	CHECK((char *)a.bus_addr >= page3 && (char *)a.bus_addr < page3 + APF_PAGE_SIZE);
	CHECK(access_page(p.cfg.host_base, 3, &a) == ACCESS_SIGBUS); /* and later ones */
	CHECK(!page_in_memory(p.cfg.host_base, 3));
	CHECK(access_page(p.cfg.host_base, 4, &a) == ACCESS_VALUE);
	CHECK_EQ_U(a.value, 0);
	CHECK(pager_stop(&p) == 0);
	CHECK_EQ_U(atomic_load(&error_calls), 1);
	CHECK_EQ_U(atomic_load(&blocking_calls), 0);
	CHECK(p.error == -EIO);
	if (!strstr(p.error_msg, "cannot fetch page 3 of the lazy region: Input/output error"))
		TEST_FAIL_("message '%s'", p.error_msg);
	CHECK_EQ_U(p.stats.fetch_errors, 1);
	CHECK_EQ_U(p.stats.pages_failed, 1);
	CHECK_EQ_U(p.stats.pages_fetched, 1);
	destroy_pager(&p);
}

/* Where the kernel cannot poison, the page stays missing: the access stays
 * blocked (until its thread is signalled, or real content arrives), and
 * the error is reported as blocking: the caller must stop its threads.
 * Never a zero page. */
TEST(failed_fetch_without_poisoning_keeps_the_access_blocked)
{
	static struct page_source s;
	struct pager p;
	struct access a;

	failing_page = 3;
	source_init(&s, &failing_source_ops, NPAGES);
	REQUIRE(start_pager_on(&s, &p, false));
	start_access(&a, p.cfg.host_base, 3);
	WAIT_UNTIL(pager_page_settled(&p, 3), 2000);
	REQUIRE(pager_page_settled(&p, 3) && !pager_page_present(&p, 3));
	WAIT_UNTIL(atomic_load(&error_calls), 2000);
	CHECK_EQ_U(atomic_load(&blocking_calls), 1);
	/* Still blocked a while later: nothing was mapped to release it. */
	WAIT_UNTIL(atomic_load(&a.end) != ACCESS_PENDING, 200);
	CHECK(atomic_load(&a.end) == ACCESS_PENDING);
	CHECK(!page_in_memory(p.cfg.host_base, 3));
	/* Content from elsewhere (a second source, say) releases it. */
	static uint64_t content[APF_PAGE_SIZE / 8];
	for (size_t i = 0; i < APF_PAGE_SIZE / 8; i++)
		content[i] = 0x5a5a5a5a5a5a5a5aull;
	struct uffdio_copy cp = { .dst = (uintptr_t)p.cfg.host_base + 3 * APF_PAGE_SIZE,
				  .src = (uintptr_t)content, .len = APF_PAGE_SIZE };
	REQUIRE(ioctl(p.uffd, UFFDIO_COPY, &cp) == 0);
	pthread_join(a.thread, NULL);
	CHECK(atomic_load(&a.end) == ACCESS_VALUE);
	CHECK(a.value == 0x5a5a5a5a5a5a5a5aull);
	CHECK(pager_stop(&p) == 0);
	CHECK_EQ_U(p.stats.pages_failed, 1);
	destroy_pager(&p);
}

/* A failed source: the page being fetched and every later fault fail (the
 * source may never complete them); reported once, nothing aborts the
 * process (library code never does). */
TEST(failed_source_fails_pending_and_later_faults)
{
	static struct page_source s;
	struct pager p;
	struct access a;

	REQUIRE_POISON();
	source_init(&s, &broken_ops, NPAGES);
	REQUIRE(start_pager_on(&s, &p, true));
	CHECK(access_page(p.cfg.host_base, 5, &a) == ACCESS_SIGBUS);
	CHECK(access_page(p.cfg.host_base, 6, &a) == ACCESS_SIGBUS);
	CHECK(pager_stop(&p) == 0);
	CHECK_EQ_U(atomic_load(&error_calls), 1);
	CHECK(p.error == -EBADF);
	if (!strstr(p.error_msg, "the page source failed: cannot arm the delay timer"))
		TEST_FAIL_("message '%s'", p.error_msg);
	CHECK_EQ_U(p.stats.pages_failed, 2);
	CHECK_EQ_U(p.stats.faults_failed, 1); /* page 6: failed at once */
	destroy_pager(&p);
}

/* Pinning to a CPU outside this process's set fails the start with a
 * clear error; it used to leave the thread silently unpinned. */
TEST(pinning_outside_the_cpu_set_fails)
{
	struct page_source *s;
	struct pager p;
	struct apf_err e = { "" };
	struct pager_config cfg = { .size = REGION, .max_inflight = 8, .cpu = CPU_SETSIZE - 1 };

	REQUIRE(source_open("zero", REGION, NULL, &s, NULL) == 0);
	cfg.source = s;
	cfg.host_base = map_region();
	REQUIRE(cfg.host_base);
	REQUIRE(pager_init(&p, &cfg, &e) == 0);
	CHECK(pager_start(&p, &e) == -EINVAL);
	CHECK(strstr(e.msg, "cannot pin the pager thread to CPU 1023") != NULL);
	CHECK(!p.running);
	pager_destroy(&p);
	source_close(s);
	munmap(cfg.host_base, REGION);
}

/* A page that something other than the pager mapped while its fetch was in
 * flight: the install finds it mapped (EEXIST).  Its content is unknown, so
 * it is a reported error, never counted as present (it used to be). */
TEST(page_mapped_behind_the_pagers_back_is_an_error)
{
	struct page_source *zero, *slow;
	struct pager p;
	struct toucher t;
	pthread_t th;
	static uint8_t other[APF_PAGE_SIZE];

	REQUIRE(source_open("zero", REGION, NULL, &zero, NULL) == 0);
	REQUIRE(source_delay_wrap(zero, 300000000ull, 300000000ull, 1, &slow, NULL) == 0);
	REQUIRE(start_pager_on(slow, &p, true));
	t = (struct toucher){ .base = p.cfg.host_base, .first = 3, .count = 1 };
	pthread_create(&th, NULL, touch_pages, &t);
	WAIT_UNTIL(page_fetching(&p, 3), 200); /* the fetch itself takes 300 ms */
	REQUIRE(page_fetching(&p, 3));
	memset(other, 0xab, sizeof(other));
	struct uffdio_copy cp = { .dst = (uintptr_t)p.cfg.host_base + 3 * APF_PAGE_SIZE,
				  .src = (uintptr_t)other, .len = APF_PAGE_SIZE };
	REQUIRE(ioctl(p.uffd, UFFDIO_COPY, &cp) == 0); /* wakes the toucher too */
	pthread_join(th, NULL);
	WAIT_UNTIL(atomic_load(&error_calls), 2000);
	pager_stop(&p);
	CHECK_EQ_U(atomic_load(&error_calls), 1);
	CHECK(p.error == -EEXIST);
	CHECK(strstr(p.error_msg, "page 3 of the lazy region: it is already mapped by someone else") != NULL);
	CHECK(p.state[3] != PAGE_PRESENT);
	CHECK_EQ_U(p.stats.pages_fetched, 0);
	destroy_pager(&p);
	source_close(slow);
}

/* A source whose fetch blocks in the pager thread (as a pread on a stalled
 * network file system does) until the test writes to a pipe. */
static int stall_pipe[2];
static int stalling_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	char byte;
	struct source_completion c = { .page = page, .buf = buf, .cookie = cookie, .zero = true,
				       .submit_ns = source_now_ns() };
	if (read(stall_pipe[0], &byte, 1) != 1)
		c.err = -EIO;
	source_complete(s, &c);
	return 0;
}
static const struct page_source_ops stalling_ops = {
	.name = "stalling", .submit = stalling_submit, .expected_ns = failing_expected_ns,
	.destroy = failing_destroy,
};

/* Stopping a pager whose source is stuck in a fetch returns within the
 * bound and leaves the thread behind; it used to wait forever (and with
 * it apfvm_run, past --timeout). */
TEST(stop_with_a_stuck_source_is_bounded)
{
	static struct page_source s;
	static struct pager p; /* the abandoned thread keeps using it */
	struct toucher t;
	pthread_t th;
	struct timespec t0, t1;

	REQUIRE(pipe(stall_pipe) == 0);
	source_init(&s, &stalling_ops, NPAGES);
	REQUIRE(start_pager_on(&s, &p, true));
	t = (struct toucher){ .base = p.cfg.host_base, .first = 2, .count = 1 };
	pthread_create(&th, NULL, touch_pages, &t);
	WAIT_UNTIL(page_fetching(&p, 2), 2000); /* the source is stuck in it */
	REQUIRE(page_fetching(&p, 2));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(pager_stop_within(&p, 200000000ull) == -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(p.abandoned && !p.running);
	CHECK(t1.tv_sec - t0.tv_sec < 5); /* returned, did not wait for the source */
	pager_destroy(&p); /* leaks: must not free under the thread */
	/* Unstick the source: the page is installed, the toucher released. */
	REQUIRE(write(stall_pipe[1], "x", 1) == 1);
	pthread_join(th, NULL);
	CHECK_EQ_U(t.bad, 0);
}

TEST(init_rejects_bad_geometry)
{
	struct page_source *s;
	struct pager p;
	struct apf_err e;
	struct pager_config cfg = { .size = REGION, .max_inflight = 64, .cpu = -1 };

	REQUIRE(source_open("zero", REGION / 2, NULL, &s, NULL) == 0);
	cfg.source = s;
	cfg.host_base = map_region();
	REQUIRE(cfg.host_base);
	CHECK(pager_init(&p, &cfg, &e) == -EINVAL); /* source smaller than region */
	pager_destroy(&p);
	cfg.size = REGION / 2;
	cfg.max_inflight = 0;
	CHECK(pager_init(&p, &cfg, &e) == -EINVAL);
	pager_destroy(&p);
	source_close(s);
	munmap(cfg.host_base, REGION);
}

TEST_MAIN(T(zero_source_serves_zero_pages_once), T(notify_pages_called_once_at_that_count), T(pinning_outside_the_cpu_set_fails), T(failed_source_fails_pending_and_later_faults),
	  T(stop_with_a_stuck_source_is_bounded),
	  T(page_mapped_behind_the_pagers_back_is_an_error), T(file_source_content_is_verified),
	  T(each_page_fetched_exactly_once_under_contention),
	  T(inflight_limit_is_respected_and_fetches_overlap),
	  T(failed_fetch_poisons_the_page_and_the_rest_is_served),
	  T(failed_fetch_without_poisoning_keeps_the_access_blocked), T(init_rejects_bad_geometry))
