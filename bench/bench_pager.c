/*
 * Pager service-rate benchmark: pages per second the pager sustains from a
 * file: image with no added latency, for each thread placement.
 *
 *   host   a host thread touches every page of the region (no KVM): the
 *          pager's own cost, as in KVM's demand_paging_test;
 *   vm     the guest's scan task touches every page through KVM: the cost a
 *          guest sees per synchronous fault.
 *
 * Placement: same = faulting thread and pager on CPU 0; split = CPU 0 and
 * CPU 1; none = the host scheduler decides.  Every run maps fresh memory,
 * so each UFFDIO_COPY lands on a page the host touches for the first time.
 * Each cell is the median of --reps runs (min and max shown).
 *
 * Then what vouching for every page costs: SHA-256 per page alone (and
 * crc32c), and the host rate with each page checked against its digest on
 * the pager (a restore's checked window) beside the rate without.
 *
 * Then the overlap sweep: 64 host threads fault on 4096 distinct pages of a
 * file: source with 1 ms added latency, at in-flight limits 1, 4, 16, 64.
 * Fetches overlap, so the rate grows with the limit (ideal: limit/1 ms).
 *
 * Then the bulk section (bench_bulk.c): what one install costs, and how
 * fast the pager replays a working set of the whole region.
 *
 * Usage: bench_pager [--size SIZE] [--reps N] [--csv FILE]
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "apfvm/vmm.h"
#include "bench_bulk.h"
#include "image/image.h"
#include "pager/pager.h"
#include "source/delay.h"
#include "source/open.h"
#include "source/window.h"
#include "util/crc32c.h"
#include "util/sha256.h"
#include "util/units.h"

static double now_s(void)
{
	return (double)source_now_ns() / 1e9;
}

static void pin_self(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

struct toucher {
	volatile uint64_t *base;
	uint64_t npages;
	int cpu;
	double seconds;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;
	uint64_t sum = 0;
	pin_self(t->cpu);
	double t0 = now_s();
	for (uint64_t p = 0; p < t->npages; p++)
		sum += t->base[p * (APF_PAGE_SIZE / 8)];
	t->seconds = now_s() - t0;
	__asm__ volatile("" ::"r"(sum));
	return NULL;
}

/* The page digests of the image's first npages pages (what a snapshot's
 * state holds), for the checked source. */
static struct sha256 *digests_of(const char *img, uint64_t npages)
{
	struct sha256 *d = calloc(npages, sizeof(*d));
	static uint64_t page[512];
	int fd = open(img, O_RDONLY);

	for (uint64_t p = 0; d && fd >= 0 && p < npages; p++) {
		if (pread(fd, page, sizeof(page), IMAGE_HEADER_SIZE + p * APF_PAGE_SIZE) != sizeof(page))
			exit(1);
		sha256(page, sizeof(page), &d[p]);
	}
	if (fd >= 0)
		close(fd);
	return d;
}

/* digests NULL: the file: source as it is; else each page checked
 * against its SHA-256 on the pager's thread (how a restore reads). */
static double host_rate(const char *spec, uint64_t size, int fault_cpu, int pager_cpu,
			const struct sha256 *digests)
{
	struct page_source *src, *inner;
	struct pager p;
	struct apf_err e;
	struct toucher t = { .npages = size / APF_PAGE_SIZE, .cpu = fault_cpu };
	pthread_t th;
	void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* A snapshot's state as far as the window reads it: no zero pages. */
	struct snap_image snap = { .mem_fd = -1, .mem_pages = size / APF_PAGE_SIZE,
				   .page_digests = digests };

	if (mem == MAP_FAILED || source_open(spec, size, NULL, &inner, &e) ||
	    (digests && source_window_wrap(inner, &snap, 0, size / APF_PAGE_SIZE, &src, &e))) {
		fprintf(stderr, "bench_pager: %s\n", e.msg);
		exit(1);
	}
	if (!digests)
		src = inner;
	madvise(mem, size, MADV_NOHUGEPAGE);
	struct pager_config cfg = { .host_base = mem, .size = size, .source = src,
				    .max_inflight = 64, .cpu = pager_cpu };
	if (pager_init(&p, &cfg, &e) || pager_start(&p, &e)) {
		fprintf(stderr, "bench_pager: %s\n", e.msg);
		exit(1);
	}
	t.base = mem;
	pthread_create(&th, NULL, touch, &t);
	pthread_join(th, NULL);
	pager_destroy(&p);
	source_close(src);
	munmap(mem, size);
	return (double)t.npages / t.seconds;
}

struct slice {
	volatile uint64_t *base;
	uint64_t first, count;
};

static void *touch_slice(void *arg)
{
	struct slice *s = arg;
	uint64_t sum = 0;
	for (uint64_t p = s->first; p < s->first + s->count; p++)
		sum += s->base[p * (APF_PAGE_SIZE / 8)];
	__asm__ volatile("" ::"r"(sum));
	return NULL;
}

/* Pages/s with 1 ms per fetch and `limit` fetches in flight, 64 threads. */
static double overlap_rate(const char *spec, unsigned limit)
{
	enum { THREADS = 64, PAGES = 4096 };
	uint64_t size = (uint64_t)PAGES * APF_PAGE_SIZE;
	struct page_source *src, *delayed;
	struct pager p;
	struct apf_err e;
	struct slice sl[THREADS];
	pthread_t th[THREADS];
	void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (mem == MAP_FAILED || source_open(spec, size, NULL, &src, &e) ||
	    source_delay_wrap(src, 1000000, 1000000, 1, &delayed, &e)) {
		fprintf(stderr, "bench_pager: %s\n", e.msg);
		exit(1);
	}
	madvise(mem, size, MADV_NOHUGEPAGE);
	struct pager_config cfg = { .host_base = mem, .size = size, .source = delayed,
				    .max_inflight = limit, .cpu = -1 };
	if (pager_init(&p, &cfg, &e) || pager_start(&p, &e)) {
		fprintf(stderr, "bench_pager: %s\n", e.msg);
		exit(1);
	}
	double t0 = now_s();
	for (unsigned i = 0; i < THREADS; i++) {
		sl[i] = (struct slice){ mem, (uint64_t)i * (PAGES / THREADS), PAGES / THREADS };
		pthread_create(&th[i], NULL, touch_slice, &sl[i]);
	}
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	double dt = now_s() - t0;
	pager_destroy(&p);
	source_close(delayed);
	munmap(mem, size);
	return PAGES / dt;
}

static double vm_rate(const char *spec, uint64_t size, int vcpu_cpu, int pager_cpu)
{
	struct apfvm_config c;
	struct apfvm_stats st;
	struct apf_err e;

	apfvm_config_defaults(&c);
	c.lazy_size = size;
	c.source = spec;
	c.ntasks = 1;
	c.tasks[0] = (struct apf_task_spec){ .kind = APF_TASK_SCAN, .index = 0, .count = 1 };
	c.vcpu_cpu = vcpu_cpu;
	c.pager_cpu = pager_cpu;
	c.timeout_ns = 600ull * 1000000000ull;
	strcpy(c.cmdline, "quiet");
	if (apfvm_run(&c, &st, &e)) {
		fprintf(stderr, "bench_pager: %s\n", e.msg);
		exit(1);
	}
	return (double)st.pages_fetched / st.tasks[0].runtime_s;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	uint64_t size = 64ull << 20;
	unsigned reps = 5;
	const char *csv_path = "build/bench/pager.csv";
	/* The first two CPUs this process may use: "same" puts the faulting
	 * thread and the pager on the first, "split" on one each. */
	int cpu[2] = { -1, -1 }, ncpu = 0;
	cpu_set_t allowed;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0)
		for (int c = 0; c < CPU_SETSIZE && ncpu < 2; c++)
			if (CPU_ISSET(c, &allowed))
				cpu[ncpu++] = c;
	const struct {
		const char *name;
		int a, b;
	} places[] = { { "same", cpu[0], cpu[0] }, { "split", cpu[0], cpu[1] }, { "none", -1, -1 } };
	char img[] = "/tmp/apfvm-bench-XXXXXX", spec[64];
	struct apf_err e;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--size") && i + 1 < argc && !units_parse_size(argv[i + 1], &size) &&
		    size && size % (2 << 20) == 0)
			i++;
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc && atoi(argv[i + 1]) > 0)
			reps = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--csv") && i + 1 < argc)
			csv_path = argv[++i];
		else {
			fprintf(stderr, "usage: bench_pager [--size SIZE (multiple of 2M)] [--reps N] [--csv FILE]\n");
			return 2;
		}
	}
	int fd = mkstemp(img);
	/* At least 16M: the overlap sweep touches 4096 pages. */
	if (fd < 0 || image_create(img, size > (16u << 20) ? size : (16u << 20), 1, &e)) {
		fprintf(stderr, "bench_pager: cannot create image: %s\n", e.msg);
		return 1;
	}
	close(fd);
	snprintf(spec, sizeof(spec), "file:%s", img);
	FILE *csv = fopen(csv_path, "w");
	if (!csv) {
		fprintf(stderr, "bench_pager: cannot write %s\n", csv_path);
		unlink(img);
		return 1;
	}
	fprintf(csv, "path,placement,pages,reps,pages_per_s_median,pages_per_s_min,pages_per_s_max,us_per_fault_median\n");
	printf("Pager service rate, source file: (no added latency), %llu pages, fresh memory, median of %u\n",
	       (unsigned long long)(size / APF_PAGE_SIZE), reps);
	printf("%-6s %-6s %14s %14s %14s %10s\n", "path", "place", "pages/s", "min", "max", "us/fault");
	for (int path = 0; path < 2; path++) {
		if (path == 1 && access("/dev/kvm", R_OK | W_OK)) {
			printf("vm     (skipped: /dev/kvm is not available)\n");
			break;
		}
		for (size_t pl = 0; pl < sizeof(places) / sizeof(places[0]); pl++) {
			double r[64];
			if (places[pl].a != places[pl].b && places[pl].b < 0) {
				printf("%-6s %-6s (skipped: this process may use one CPU only)\n",
				       path ? "vm" : "host", places[pl].name);
				continue;
			}
			if (places[pl].name[0] == 's' && places[pl].a < 0) {
				printf("%-6s %-6s (skipped: cannot read this process's CPU set)\n",
				       path ? "vm" : "host", places[pl].name);
				continue;
			}
			for (unsigned i = 0; i < reps && i < 64; i++)
				r[i] = path ? vm_rate(spec, size, places[pl].a, places[pl].b)
					    : host_rate(spec, size, places[pl].a, places[pl].b, NULL);
			qsort(r, reps, sizeof(r[0]), cmp_double);
			double med = r[reps / 2];
			const char *pname = path ? "vm" : "host";
			printf("%-6s %-6s %14.0f %14.0f %14.0f %10.1f\n", pname, places[pl].name, med, r[0],
			       r[reps - 1], 1e6 / med);
			fprintf(csv, "%s,%s,%llu,%u,%.0f,%.0f,%.0f,%.2f\n", pname, places[pl].name,
				(unsigned long long)(size / APF_PAGE_SIZE), reps, med, r[0], r[reps - 1],
				1e6 / med);
		}
	}
	/* What vouching for every page costs: SHA-256 (and crc32c, the cheap
	 * check it replaced as the guard) per page alone, then the pager's rate
	 * with and without the check, side by side. */
	static uint64_t page[512];
	struct sha256 d;
	uint32_t crc = 0;
	const unsigned n = 20000;
	memset(page, 0x5a, sizeof(page));
	double t0 = now_s();
	for (unsigned i = 0; i < n; i++) {
		page[0] = i;
		sha256(page, sizeof(page), &d);
	}
	double t1 = now_s();
	for (unsigned i = 0; i < n; i++) {
		page[0] = i;
		crc ^= crc32c(0, page, sizeof(page));
	}
	double t2 = now_s();
	__asm__ volatile("" ::"r"(crc), "r"(d.b[0]));
	struct sha256 *digests = digests_of(img, size / APF_PAGE_SIZE);
	double plain[64], checked[64];
	for (unsigned i = 0; i < reps && i < 64; i++) {
		plain[i] = host_rate(spec, size, places[1].a, places[1].b, NULL);
		checked[i] = host_rate(spec, size, places[1].a, places[1].b, digests);
	}
	free(digests);
	qsort(plain, reps, sizeof(plain[0]), cmp_double);
	qsort(checked, reps, sizeof(checked[0]), cmp_double);
	double pm = plain[reps / 2], cm = checked[reps / 2];
	printf("\nSHA-256 per 4 KiB page: %.2f us (crc32c: %.2f us)\n", (t1 - t0) / n * 1e6,
	       (t2 - t1) / n * 1e6);
	printf("host split, each page checked against its SHA-256 on the pager: %.0f pages/s "
	       "(unchecked %.0f): %.2f us more per fault\n", cm, pm, 1e6 / cm - 1e6 / pm);
	fprintf(csv, "sha256_per_page,alone,%u,1,%.0f,%.0f,%.0f,%.2f\n", n, n / (t1 - t0),
		n / (t1 - t0), n / (t1 - t0), (t1 - t0) / n * 1e6);
	fprintf(csv, "host_checked,split,%llu,%u,%.0f,%.0f,%.0f,%.2f\n",
		(unsigned long long)(size / APF_PAGE_SIZE), reps, cm, checked[0], checked[reps - 1],
		1e6 / cm);

	printf("\nOverlap: 64 threads, 4096 pages, 1 ms per fetch (ideal = limit / 1 ms)\n");
	printf("%-9s %12s %12s\n", "in flight", "pages/s", "ideal");
	for (unsigned limit = 1; limit <= 64; limit *= 4) {
		double r = overlap_rate(spec, limit);
		printf("%-9u %12.0f %12u\n", limit, r, limit * 1000);
		fprintf(csv, "overlap_1ms,inflight_%u,4096,1,%.0f,%.0f,%.0f,%.2f\n", limit, r, r, r,
			1e6 / r);
	}
	bench_bulk(spec, size, reps, csv);
	fclose(csv);
	unlink(img);
	printf("CSV: %s\n", csv_path);
	return 0;
}
