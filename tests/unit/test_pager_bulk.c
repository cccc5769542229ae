/*
 * The pager's bulk fetches (pager.h, "Bulk fetches") against real
 * userfaultfd, without KVM: host threads stand in for vCPUs.  A prefetch
 * list is installed ahead of the touches, a fault overtakes it, a fault on
 * a page being prefetched joins that fetch, background population fills
 * the rest and lets the source go.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "image/image.h"
#include "pager/pager.h"
#include "source/delay.h"
#include "source/open.h"
#include "util/thread.h"
#include "test.h"

#define NPAGES 256
#define REGION (NPAGES * APF_PAGE_SIZE)
#define SEED 4242

static char image_path[64];

static void remove_image(void)
{
	unlink(image_path);
}

/* A file source over an image of the region (made once); aborts the
 * program if it cannot (nothing else could run). */
static struct page_source *open_image(void)
{
	char spec[96];
	struct page_source *s = NULL;

	if (!image_path[0]) {
		strcpy(image_path, "/tmp/apfvm-bulk-XXXXXX");
		int fd = mkstemp(image_path);
		if (fd < 0)
			abort();
		close(fd);
		atexit(remove_image);
		if (image_create(image_path, REGION, SEED, NULL))
			abort();
	}
	snprintf(spec, sizeof(spec), "file:%s", image_path);
	if (source_open(spec, REGION, NULL, &s, NULL))
		abort();
	return s;
}

/* The image source behind `ms` of latency per fetch. */
static struct page_source *open_slow_image(uint64_t ms)
{
	struct page_source *d = NULL;
	if (source_delay_wrap(open_image(), ms * 1000000, ms * 1000000, 1, &d, NULL))
		abort();
	return d;
}

static void *map_region(void)
{
	void *m = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		abort();
	madvise(m, REGION, MADV_NOHUGEPAGE);
	return m;
}

/* Reads one word of `page` and checks it against the image. */
static bool page_right(const void *base, uint64_t page)
{
	uint64_t w = page * (APF_PAGE_SIZE / 8) + (page % 512);
	return ((const volatile uint64_t *)base)[w] == apf_image_word(SEED, w);
}

/* Waits (bounded) until every page of list[0..n) is present. */
static bool wait_present(const struct pager *p, const uint32_t *list, uint64_t n)
{
	uint64_t end = monotonic_ns() + 20ull * 1000000000ull;
	for (uint64_t i = 0; i < n; i++)
		while (!pager_page_present(p, list[i])) {
			if (monotonic_ns() > end)
				return false;
			sched_yield();
		}
	return true;
}

/* A shuffled list of `n` distinct pages, with contiguous stretches of 8. */
static void make_list(uint32_t *list, uint64_t n, unsigned seed)
{
	uint64_t groups = n / 8;
	uint32_t starts[NPAGES / 8];
	for (uint64_t g = 0; g < NPAGES / 8; g++)
		starts[g] = (uint32_t)(g * 8);
	srand(seed);
	for (uint64_t g = NPAGES / 8 - 1; g > 0; g--) {
		uint64_t j = (uint64_t)rand() % (g + 1);
		uint32_t t = starts[g];
		starts[g] = starts[j];
		starts[j] = t;
	}
	for (uint64_t g = 0; g < groups; g++)
		for (unsigned k = 0; k < 8; k++)
			list[g * 8 + k] = starts[g] + k;
}

static void start_pager(struct pager *p, struct pager_config *cfg)
{
	struct apf_err e;
	cfg->host_base = map_region();
	cfg->size = REGION;
	cfg->cpu = -1;
	if (!cfg->max_inflight)
		cfg->max_inflight = 16;
	REQUIRE(pager_init(p, cfg, &e) == 0);
	REQUIRE(pager_start(p, &e) == 0);
}

static void end_pager(struct pager *p, struct pager_config *cfg)
{
	pager_stop(p);
	pager_destroy(p);
	munmap(cfg->host_base, REGION);
}

/* The listed pages arrive without a fault; touching them afterwards costs
 * no fetch; contiguous stretches went out as runs. */
TEST(prefetch_installs_the_list_before_any_touch)
{
	uint32_t list[128];
	struct pager p;
	struct pager_config cfg = { .prefetch = list, .nprefetch = 128 };
	struct page_source *s = open_image();

	make_list(list, 128, 1);
	cfg.source = s;
	start_pager(&p, &cfg);
	REQUIRE(wait_present(&p, list, 128));
	for (unsigned i = 0; i < 128; i++)
		CHECK(page_right(cfg.host_base, list[i]));
	pager_stop(&p);
	CHECK_EQ_U(p.stats.demand_faults, 0);
	CHECK_EQ_U(p.stats.faults_total, 0);
	CHECK_EQ_U(p.stats.pages_prefetched, 128);
	CHECK_EQ_U(p.stats.prefetch_loaded, 128);
	CHECK(p.stats.ws_loaded_ns != 0);
	CHECK(p.stats.bulk_requests <= 128 / 8); /* stretches of 8 as runs */
	CHECK_EQ_U(p.stats.pages_background, 0);
	end_pager(&p, &cfg);
	source_close(s);
}

/* A list that names other pages than the ones touched: the touched ones
 * are demand faults, every byte is right, the waste shows. */
TEST(stale_list_still_serves_the_right_data)
{
	uint32_t list[64];
	struct pager p;
	struct pager_config cfg = { .prefetch = list, .nprefetch = 64 };
	struct page_source *s = open_image();

	for (unsigned i = 0; i < 64; i++)
		list[i] = i; /* pages 0..63 listed, 128..191 touched */
	cfg.source = s;
	start_pager(&p, &cfg);
	for (unsigned pg = 128; pg < 192; pg++)
		CHECK(page_right(cfg.host_base, pg));
	REQUIRE(wait_present(&p, list, 64));
	pager_stop(&p);
	CHECK_EQ_U(p.stats.demand_faults, 64);
	CHECK_EQ_U(p.stats.pages_prefetched, 64);
	CHECK_EQ_U(p.stats.pages_fetched, 128);
	uint64_t total = 0;
	for (unsigned b = 0; b < LOG_HISTO_BUCKETS; b++)
		total += p.stats.demand_us.count[b];
	CHECK_EQ_U(total, 64); /* one latency per demand fault */
	end_pager(&p, &cfg);
	source_close(s);
}

/* With every bulk buffer taken by a slow prefetch, a fault on an unlisted
 * page is fetched at once on the faults' own buffers: it completes while
 * most of the list is still to come. */
TEST(fault_overtakes_a_saturating_prefetch)
{
	uint32_t list[NPAGES - 1];
	struct pager p;
	struct pager_config cfg = { .prefetch = list, .nprefetch = NPAGES - 1,
				    .max_inflight = 8, .bulk_inflight = 4 };
	struct page_source *s = open_slow_image(20);

	for (unsigned i = 0; i < NPAGES - 1; i++)
		list[i] = i; /* the last page is not listed */
	cfg.source = s;
	start_pager(&p, &cfg);
	CHECK(page_right(cfg.host_base, NPAGES - 1));
	/* 255 listed pages at 4 per 20 ms take over a second; the fault one
	 * fetch.  Most of the list must still be absent. */
	uint64_t absent = 0;
	for (unsigned i = 0; i < NPAGES - 1; i++)
		absent += !pager_page_settled(&p, i);
	CHECK(absent > NPAGES / 2);
	pager_stop(&p);
	CHECK_EQ_U(p.stats.demand_faults, 1);
	CHECK_EQ_U(p.stats.prefetch_joined, 0);
	CHECK(p.stats.inflight_max <= 8 + 4); /* the faults' 8, bulk's 4 */
	end_pager(&p, &cfg);
	source_close(s);
}

struct fault_seen {
	uint64_t expected_ns;
	bool in_flight;
	unsigned calls;
};

static bool note_fault(void *ctx, uint32_t tid, uint64_t page, uint64_t expected_ns, bool in_flight)
{
	struct fault_seen *f = ctx;
	(void)tid;
	(void)page;
	f->expected_ns = expected_ns;
	f->in_flight = in_flight;
	f->calls++;
	return false;
}

static void note_installed(void *ctx, uint64_t page)
{
	(void)ctx;
	(void)page;
}

static void note_failed(void *ctx, uint64_t page)
{
	(void)ctx;
	(void)page;
}

/* A fault on a page being prefetched joins that fetch (one fetch), and the
 * host side hears it as a first fault with at most the fetch's remaining
 * time to wait. */
TEST(fault_on_a_prefetched_page_joins_its_fetch)
{
	uint32_t list[1] = { 7 };
	struct fault_seen seen = { 0 };
	struct pager_hooks hooks = { .on_fault = note_fault, .on_installed = note_installed,
				     .on_failed = note_failed, .ctx = &seen };
	struct pager p;
	struct pager_config cfg = { .prefetch = list, .nprefetch = 1, .hooks = &hooks };
	struct page_source *s = open_slow_image(200);

	cfg.source = s;
	start_pager(&p, &cfg);
	CHECK(page_right(cfg.host_base, 7)); /* the fetch started at once */
	pager_stop(&p);
	CHECK_EQ_U(p.stats.pages_fetched, 1);
	CHECK_EQ_U(p.stats.prefetch_joined, 1);
	CHECK_EQ_U(p.stats.demand_faults, 1);
	CHECK_EQ_U(seen.calls, 1);
	CHECK(!seen.in_flight);
	CHECK(seen.expected_ns <= 200ull * 1000000);
	end_pager(&p, &cfg);
	source_close(s);
}

static int populated_fd = -1;
static struct page_source *populated_source;

/* on_populated: the owner closes the source there (pager.h's contract). */
static void close_when_populated(void *ctx)
{
	uint64_t one = 1;
	(void)ctx;
	source_close(populated_source);
	populated_source = NULL;
	if (write(populated_fd, &one, sizeof(one)) != sizeof(one))
		abort();
}

/* After the list, every other page; then the source is let go, and the
 * whole region reads right with no fetch (a fetch now would use the
 * closed source: ASan's builds catch it). */
TEST(background_population_fills_everything_then_releases_the_source)
{
	uint32_t list[16];
	uint64_t one;
	struct pager p;
	struct pager_config cfg = { .prefetch = list, .nprefetch = 16, .populate_background = true,
				    .on_populated = close_when_populated };

	for (unsigned i = 0; i < 16; i++)
		list[i] = 200 + i;
	populated_fd = eventfd(0, EFD_CLOEXEC);
	REQUIRE(populated_fd >= 0);
	populated_source = open_image();
	cfg.source = populated_source;
	start_pager(&p, &cfg);
	REQUIRE(read(populated_fd, &one, sizeof(one)) == sizeof(one));
	CHECK(populated_source == NULL);
	for (unsigned pg = 0; pg < NPAGES; pg++)
		CHECK(page_right(cfg.host_base, pg));
	pager_stop(&p);
	CHECK_EQ_U(p.stats.pages_prefetched, NPAGES);
	CHECK_EQ_U(p.stats.pages_background, NPAGES - 16);
	CHECK_EQ_U(p.stats.demand_faults, 0);
	CHECK(p.stats.populated_ns >= p.stats.ws_loaded_ns && p.stats.ws_loaded_ns);
	end_pager(&p, &cfg);
	close(populated_fd);
}

/* Lists that do not fit the region are refused before anything starts. */
TEST(bad_lists_are_refused)
{
	uint32_t outside[2] = { 3, NPAGES };
	uint32_t twice[3] = { 3, 4, 3 };
	struct pager p;
	struct apf_err e;
	struct page_source *s = open_image();
	struct pager_config cfg = { .size = REGION, .source = s, .max_inflight = 8, .cpu = -1 };

	cfg.host_base = map_region();
	cfg.prefetch = outside;
	cfg.nprefetch = 2;
	CHECK(pager_init(&p, &cfg, &e) == -EINVAL);
	CHECK(strstr(e.msg, "outside") != NULL);
	pager_destroy(&p);
	cfg.prefetch = twice;
	cfg.nprefetch = 3;
	CHECK(pager_init(&p, &cfg, &e) == -EINVAL);
	CHECK(strstr(e.msg, "twice") != NULL);
	pager_destroy(&p);
	cfg.prefetch = NULL;
	cfg.nprefetch = 0;
	cfg.bulk_inflight = SOURCE_QUEUE_MAX - 7; /* with the faults' 8: one too many */
	CHECK(pager_init(&p, &cfg, &e) == -EINVAL);
	pager_destroy(&p);
	munmap(cfg.host_base, REGION);
	source_close(s);
}

TEST_MAIN(T(prefetch_installs_the_list_before_any_touch), T(stale_list_still_serves_the_right_data),
	  T(fault_overtakes_a_saturating_prefetch), T(fault_on_a_prefetched_page_joins_its_fetch),
	  T(background_population_fills_everything_then_releases_the_source), T(bad_lists_are_refused))
