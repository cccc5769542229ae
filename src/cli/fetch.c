#include "fetch.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apfvm/abi.h"
#include "apfvm/vmm.h"
#include "options.h"
#include "snapshot/snapshot.h"
#include "source/open.h"
#include "source/raw.h"
#include "source/source.h"
#include "source/window.h"
#include "util/units.h"

const char fetch_usage[] =
	"Usage: apfvm fetch --source SPEC [OPTIONS]\n"
	"       apfvm fetch [--source SPEC] --snapshot PATH [OPTIONS]\n"
	"Read pages from a page source the way a VM's pager does, without a VM (no KVM\n"
	"needed): many in flight, each page checked against the content the source\n"
	"announces.  Reports pages per second and the fetch latency: how a server and\n"
	"the network in between will serve a lazy region.\n"
	"\n"
	"  --source SPEC         as for 'apfvm run': zero, file:PATH, tcp:ADDR:PORT,\n"
	"                        s3://BUCKET/KEY, http(s)://HOST/PATH\n"
	"  --snapshot PATH       the memory of the snapshot PATH: PATH.mem, or the source\n"
	"                        serving it (apfvm serve --snapshot, apfvm pack --snapshot);\n"
	"                        each page is checked against its SHA-256 in PATH (required\n"
	"                        for such a source: nothing else says what its pages hold)\n"
	"  --size SIZE           bytes to read from the start (default 8M; a multiple of 4K)\n"
	"  --inflight N          fetches in flight at once, 1..1024 (default 64)\n"
	"  --fetch-timeout DUR   as for 'apfvm run' (default 5s)\n"
	"  --fetch-tries N       as for 'apfvm run' (default 3)\n"
	"  --s3-endpoint URL, --s3-region REGION, --cache-size SIZE, --cache-dir DIR,\n"
	"  --cache-dir-size SIZE\n"
	"                        as for 'apfvm run'\n"
	"  --csv                 one CSV line instead of the report: source,inflight,pages,\n"
	"                        seconds,pages_per_s,mib_per_s,lat_mean_us,lat_p50_us,lat_p99_us,\n"
	"                        retries,reconnects\n"
	"  -h, --help            this help\n"
	"\n"
	"Exit status: 0 every page arrived and matched; 1 a page failed or mismatched;\n"
	"2 bad usage or a source that cannot be opened.\n";

struct fetch_opts {
	const char *source;
	const char *snapshot;
	uint64_t size;
	unsigned inflight;
	struct apfvm_config remote; /* the remote options' fields only */
	struct source_net_options net;
	bool csv;
	bool help;
};

#define FETCH(field) OPTIONS_FIELD(struct fetch_opts, field)

static const struct options_spec fetch_spec[] = {
	{ "source", .kind = OPTK_STRING, FETCH(source) },
	{ "snapshot", .kind = OPTK_STRING, FETCH(snapshot) },
	{ "size", .kind = OPTK_SIZE, FETCH(size), .min = 1, .max = 64ull << 30, .align = APF_PAGE_SIZE,
	  .want = "a multiple of 4K up to 64G, such as 8M" },
	{ "inflight", .kind = OPTK_UINT, FETCH(inflight), .min = 1, .max = SOURCE_QUEUE_MAX,
	  .want = "1..1024" },
	{ "csv", .kind = OPTK_FLAG, FETCH(csv) },
	{ "help", 'h', OPTK_HELP, FETCH(help) },
	{ 0 },
};

static int parse(int argc, char **argv, struct fetch_opts *o, struct apf_err *e)
{
	const struct options_table tables[] = { { fetch_spec, o }, { options_remote, &o->remote } };
	int rc;

	o->size = 8ull << 20;
	o->inflight = 64;
	rc = options_parse(argc, argv, "fetch", tables, 2, e);
	if (rc)
		return rc;
	if (o->help) {
		fputs(fetch_usage, stdout);
		exit(0);
	}
	if (!o->source && !o->snapshot)
		return apf_fail(e, -EINVAL, "--source or --snapshot is required (see 'apfvm fetch "
				"--help')");
	apfvm_net_options(&o->remote, &o->net);
	if (optind != argc)
		return apf_fail(e, -EINVAL, "unexpected argument '%s' (see 'apfvm fetch --help')",
				argv[optind]);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Whether a delivered page holds what the source announced. */
static bool page_matches(const struct page_source *s, const struct source_completion *c)
{
	const uint64_t *w = c->buf;

	for (uint64_t i = 0; i < APF_PAGE_SIZE / 8; i++) {
		uint64_t want = apf_expected_word(s->pattern, s->seed, c->page * (APF_PAGE_SIZE / 8) + i);
		if ((c->zero ? 0 : w[i]) != want)
			return false;
	}
	return true;
}

/* The source, for a snapshot's memory wrapped so that each page is
 * checked against its SHA-256 in the snapshot's state (as a restore
 * reads it); without --snapshot, such a source is refused: nothing would
 * say what its pages should hold. */
static int open_checked(const struct fetch_opts *o, struct snap_image *snap,
			struct page_source **out, struct apf_err *e)
{
	struct page_source *s;
	int rc;

	if (o->snapshot && (rc = o->source ? snap_open_state(snap, o->snapshot, e)
					   : snap_open(snap, o->snapshot, e)))
		return rc;
	if (o->source)
		rc = source_open(o->source, o->snapshot ? 0 : o->size, &o->net, &s, e);
	else if (!(rc = source_raw_open(snap->mem_fd, snap->mem_pages, o->snapshot, &s, e)))
		s->pattern = APF_PATTERN_SNAPSHOT, s->seed = snap_identity(snap);
	if (rc)
		return rc;
	if (!o->snapshot && s->pattern == APF_PATTERN_SNAPSHOT) {
		source_close(s);
		return apf_fail(e, -EINVAL, "%s serves a snapshot's memory: pass --snapshot PATH to "
				"check its pages against that snapshot", o->source);
	}
	if (!o->snapshot) {
		*out = s;
		return 0;
	}
	if (s->pattern != APF_PATTERN_SNAPSHOT || s->seed != snap_identity(snap) ||
	    s->npages != snap->mem_pages) {
		source_close(s);
		return apf_fail(e, -EINVAL, "%s does not serve the memory of snapshot '%s'",
				s->desc, o->snapshot);
	}
	if (o->size / APF_PAGE_SIZE > snap->mem_pages) {
		source_close(s);
		return apf_fail(e, -EINVAL, "--size: the snapshot's memory is %llu bytes",
				(unsigned long long)(snap->mem_pages * APF_PAGE_SIZE));
	}
	if ((rc = source_window_wrap(s, snap, 0, snap->mem_pages, out, e)))
		source_close(s);
	return rc;
}

/* What a fetch measured: a CSV line, or the report; lat sorted here. */
static void report(const struct fetch_opts *o, const struct page_source *s, uint64_t *lat,
		   uint64_t done, double secs, uint64_t failed, uint64_t bad)
{
	qsort(lat, done, sizeof(*lat), cmp_u64);
	double mean = 0;
	for (uint64_t i = 0; i < done; i++)
		mean += (double)lat[i] / (double)done;
	double p50 = (double)lat[(done - 1) / 2] / 1e3, p99 = (double)lat[(done - 1) * 99 / 100] / 1e3;
	double pps = (double)done / secs, mibps = pps * APF_PAGE_SIZE / (1 << 20);
	if (o->csv) {
		printf("%s,%u,%llu,%.6f,%.1f,%.2f,%.1f,%.1f,%.1f,%llu,%llu\n", o->source ? o->source : s->desc, o->inflight,
		       (unsigned long long)done, secs, pps, mibps, mean / 1e3, p50, p99,
		       (unsigned long long)s->retries, (unsigned long long)s->reconnects);
	} else {
		printf("apfvm fetch: %s, %u in flight\n"
		       "  pages         %llu in %.3f s: %.0f pages/s (%.1f MiB/s); %llu failed, "
		       "%llu did not match\n"
		       "  latency       mean %.1f us, p50 %.1f us, p99 %.1f us\n"
		       "  source        %llu fetches tried again (%llu pages arrived corrupt), "
		       "%llu reconnects\n",
		       s->desc, o->inflight, (unsigned long long)done, secs, pps, mibps,
		       (unsigned long long)failed, (unsigned long long)bad, mean / 1e3, p50, p99,
		       (unsigned long long)s->retries, (unsigned long long)s->corrupt,
		       (unsigned long long)s->reconnects);
	}
}

int fetch_main(int argc, char **argv)
{
	struct fetch_opts o = { 0 };
	struct apf_err e = { "" };
	struct page_source *s;
	struct source_completion c;
	struct snap_image snap = { .mem_fd = -1 };

	if (parse(argc, argv, &o, &e) || open_checked(&o, &snap, &s, &e)) {
		fprintf(stderr, "apfvm fetch: %s\n", e.msg);
		if (o.snapshot)
			snap_close(&snap);
		return 2;
	}
	uint64_t npages = o.size / APF_PAGE_SIZE, next = 0, done = 0, bad = 0, failed = 0;
	uint64_t *lat = calloc(npages, sizeof(*lat));
	char *bufs = aligned_alloc(APF_PAGE_SIZE, (size_t)o.inflight * APF_PAGE_SIZE);
	unsigned *free_bufs = calloc(o.inflight, sizeof(*free_bufs)), nfree = 0;
	if (!lat || !bufs || !free_bufs) {
		fprintf(stderr, "apfvm fetch: out of memory\n");
		return 2;
	}
	for (unsigned i = 0; i < o.inflight; i++)
		free_bufs[nfree++] = i;

	uint64_t start = source_now_ns();
	while (done < npages && !s->error) {
		while (next < npages && nfree) {
			unsigned b = free_bufs[--nfree];
			int rc = source_submit(s, next, bufs + (size_t)b * APF_PAGE_SIZE,
					       (void *)(uintptr_t)b);
			if (rc) {
				fprintf(stderr, "apfvm fetch: cannot fetch page %llu: %s\n",
					(unsigned long long)next, strerror(-rc));
				return 1;
			}
			next++;
		}
		bool reaped = false;
		while (source_reap(s, &c)) {
			uint64_t now = source_now_ns();
			reaped = true;
			free_bufs[nfree++] = (unsigned)(uintptr_t)c.cookie;
			lat[done++] = now - c.submit_ns;
			if (c.err) {
				if (!failed++)
					fprintf(stderr, "apfvm fetch: cannot fetch page %llu: %s\n",
						(unsigned long long)c.page,
						c.why ? c.why : strerror(-c.err));
			} else if (!o.snapshot && !page_matches(s, &c)) {
				/* (A snapshot's pages were checked by the window.) */
				if (!bad++)
					fprintf(stderr, "apfvm fetch: page %llu does not hold the content "
						"%s announced\n", (unsigned long long)c.page, s->desc);
			}
		}
		if (reaped || done == npages || s->error)
			continue;
		/* Nothing finished: wait for the source (its own timeouts
		 * bound the wait). */
		int rc = source_wait(s, -1);
		if (rc) {
			fprintf(stderr, "apfvm fetch: %s\n",
				rc == -EINVAL ? "the source lost fetches" : strerror(-rc));
			return 1;
		}
	}
	double secs = (double)(source_now_ns() - start) / 1e9;
	if (s->error) {
		fprintf(stderr, "apfvm fetch: the page source failed: %s\n",
			s->error_what ? s->error_what : "?");
		return 1;
	}
	report(&o, s, lat, done, secs, failed, bad);
	source_close(s);
	if (o.snapshot)
		snap_close(&snap);
	free(lat);
	free(bufs);
	free(free_bufs);
	return failed || bad ? 1 : 0;
}
