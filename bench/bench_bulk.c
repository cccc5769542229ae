/*
 * The bulk section of bench_pager (no KVM: host memory registered with
 * userfaultfd, nobody faulting):
 *   1. what one install costs: UFFDIO_COPY of one page waking (the
 *      default), with UFFDIO_COPY_MODE_DONTWAKE (what the pager does for a
 *      bulk page no fault waits on), and 64 pages in one UFFDIO_COPY
 *      (what a contiguous run could be, from one buffer), per page;
 *   2. the pager replaying a working set of the whole region from a file:
 *      source: the list in page order (runs of 64 in one preadv) and
 *      shuffled (one page per request): pages/s until all are present.
 */
#include "bench_bulk.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "pager/pager.h"
#include "source/open.h"

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nanoseconds per page installing npages into fresh registered memory,
 * `per` pages per UFFDIO_COPY, with `mode`; -1 if userfaultfd fails. */
static double install_ns(uint64_t npages, unsigned per, uint64_t mode)
{
	uint64_t len = npages * APF_PAGE_SIZE;
	static unsigned char src[64 * APF_PAGE_SIZE] __attribute__((aligned(APF_PAGE_SIZE)));
	struct uffdio_api api = { .api = UFFD_API };
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	double ns = -1;

	memset(src, 0x5a, sizeof(src));
	if (uffd < 0 || m == MAP_FAILED || ioctl(uffd, UFFDIO_API, &api))
		goto out;
	madvise(m, len, MADV_NOHUGEPAGE);
	struct uffdio_register reg = { .range = { (uintptr_t)m, len }, .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		goto out;
	uint64_t t0 = source_now_ns();
	for (uint64_t p = 0; p < npages; p += per) {
		struct uffdio_copy cp = { .dst = (uintptr_t)m + p * APF_PAGE_SIZE, .src = (uintptr_t)src,
					  .len = (uint64_t)per * APF_PAGE_SIZE, .mode = mode };
		if (ioctl(uffd, UFFDIO_COPY, &cp))
			goto out;
	}
	ns = (double)(source_now_ns() - t0) / (double)npages;
out:
	if (m != MAP_FAILED)
		munmap(m, len);
	if (uffd >= 0)
		close(uffd);
	return ns;
}

static void done(void *ctx)
{
	__atomic_store_n((int *)ctx, 1, __ATOMIC_RELEASE);
}

/* Pages/s for the pager to bring the region in from `spec` by replaying
 * list (every page once); -1 on failure. */
static double replay_rate(const char *spec, uint64_t size, const uint32_t *list)
{
	struct page_source *s = NULL;
	struct pager p;
	int populated = 0;
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct pager_config cfg = { .host_base = m, .size = size, .max_inflight = 64, .cpu = -1,
				    .prefetch = list, .nprefetch = size / APF_PAGE_SIZE,
				    .on_populated = done, .ctx = &populated };
	double rate = -1;

	if (m == MAP_FAILED || source_open(spec, size, NULL, &s, NULL))
		goto out;
	madvise(m, size, MADV_NOHUGEPAGE);
	cfg.source = s;
	if (pager_init(&p, &cfg, NULL) == 0) {
		uint64_t t0 = source_now_ns();
		if (pager_start(&p, NULL) == 0) {
			while (!__atomic_load_n(&populated, __ATOMIC_ACQUIRE))
				sched_yield();
			rate = (double)(size / APF_PAGE_SIZE) / ((double)(source_now_ns() - t0) / 1e9);
		}
		pager_stop(&p);
	}
	pager_destroy(&p);
out:
	source_close(s);
	if (m != MAP_FAILED)
		munmap(m, size);
	return rate;
}

void bench_bulk(const char *spec, uint64_t size, unsigned reps, FILE *csv)
{
	uint64_t npages = size / APF_PAGE_SIZE;
	uint32_t *list = malloc(npages * sizeof(*list));
	double r[2][64];

	printf("\nInstalling a page (%llu fresh pages, median of %u): ns per page\n",
	       (unsigned long long)npages, reps);
	const struct { const char *name; unsigned per; uint64_t mode; } kinds[] = {
		{ "copy, waking", 1, 0 },
		{ "copy, DONTWAKE", 1, UFFDIO_COPY_MODE_DONTWAKE },
		{ "copy of 64 pages", 64, UFFDIO_COPY_MODE_DONTWAKE },
	};
	for (unsigned k = 0; k < 3; k++) {
		for (unsigned i = 0; i < reps; i++)
			r[0][i] = install_ns(npages, kinds[k].per, kinds[k].mode);
		qsort(r[0], reps, sizeof(double), cmp_d);
		printf("  %-18s %8.0f\n", kinds[k].name, r[0][reps / 2]);
		fprintf(csv, "install,%s,%llu,%u,%.0f,%.0f,%.0f,%.3f\n", kinds[k].name,
			(unsigned long long)npages, reps, 1e9 / r[0][reps / 2], 1e9 / r[0][reps - 1],
			1e9 / r[0][0], r[0][reps / 2] / 1e3);
	}
	printf("\nReplaying a working set of the whole region (file:, 64 in flight, 32 bulk):\n");
	srand(1);
	for (int shuffled = 0; shuffled < 2; shuffled++) {
		for (uint64_t i = 0; i < npages; i++)
			list[i] = (uint32_t)i;
		for (uint64_t i = npages - 1; shuffled && i > 0; i--) {
			uint64_t j = (uint64_t)rand() % (i + 1);
			uint32_t t = list[i];
			list[i] = list[j];
			list[j] = t;
		}
		for (unsigned i = 0; i < reps; i++)
			r[shuffled][i] = replay_rate(spec, size, list);
		qsort(r[shuffled], reps, sizeof(double), cmp_d);
		const char *name = shuffled ? "shuffled (1 page a request)" : "in page order (runs of 32)";
		printf("  %-28s %10.0f pages/s\n", name, r[shuffled][reps / 2]);
		fprintf(csv, "replay,%s,%llu,%u,%.0f,%.0f,%.0f,%.2f\n", shuffled ? "shuffled" : "ordered",
			(unsigned long long)npages, reps, r[shuffled][reps / 2], r[shuffled][0],
			r[shuffled][reps - 1], 1e6 / r[shuffled][reps / 2]);
	}
	free(list);
}
