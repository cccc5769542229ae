#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apfvm/vmm.h"
#include "image/image.h"
#include "arch/platform.h"
#include "options.h"
#include "util/file.h"
#include "util/units.h"

const char bench_usage[] =
	"Usage: apfvm bench [OPTIONS]\n"
	"Run the same workload for each fetch latency and async page fault mode, side by\n"
	"side, and report medians (min-max) of several runs.\n"
	"\n"
	"  --latencies LIST   comma-separated: resident (everything pre-populated) or\n"
	"                     durations (default resident,100us,1ms,10ms)\n"
	"  --modes LIST       comma-separated: off,kernel,user (default: every mode this\n"
	"                     architecture has; arm64 has no kernel)\n"
	"  --runs N           runs per cell (default 3)\n"
	"  --lazy SIZE        lazy region, served from a generated image (default 8M)\n"
	"  --workload SPEC    as for 'apfvm run' (default compute:1,scan:1)\n"
	"  --scan-fraction F  as for 'apfvm run': each scan reads about F of its pages\n"
	"                     (default 1)\n"
	"  --scan-drift D     as for 'apfvm run': D of them replaced (default 0)\n"
	"  --pin MODE         as for 'apfvm run' (default same:0)\n"
	"  --kernel BZIMAGE   run the workload in an unmodified Linux guest (apfvm's\n"
	"                     initramfs; every run boots it) instead of the reference guest\n"
	"  --mem SIZE         resident guest memory (default 64M, 512M with --kernel)\n"
	"  --csv FILE         also write the results as CSV, with the fault-path breakdown\n"
	"                     of one extra --trace run per cell that went async\n"
	"  -h, --help         this help\n";

#define MAX_LAT  8
#define MAX_MODE 3
#define MAX_RUNS 15

struct cell_run {
	double compute_rate, scan_s, wall_s, pages_per_s;
	double faults, async, sync;
	double insn_per_fault; /* guest instructions KVM emulated, per fault */
	/* Compute time lost per page scanned, in us: what the scan costs the
	 * compute task per page (its own work on the page, plus the fault's
	 * cost to the vCPU: the wait if synchronous, the round trip if async). */
	double lost_us;
	double boot_s; /* Linux guest: kernel start to /init, 0 otherwise */
};

struct bench {
	unsigned nlat, nmode, runs;
	char lat_label[MAX_LAT][16];
	uint64_t lat_ns[MAX_LAT]; /* UINT64_MAX: resident */
	enum apfvm_apf_mode modes[MAX_MODE];
	struct apfvm_config base;
	char image[64], spec[96];
	const char *kernel_path; /* --kernel, or NULL */
	bool mem_given;
	void *kernel;            /* its contents */
	double boots[MAX_LAT * MAX_RUNS * (MAX_MODE + 1)]; /* Linux boot times */
	unsigned nboots;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median, min and max of n values (sorted in place). */
static void stats3(double *v, unsigned n, double out[3])
{
	qsort(v, n, sizeof(*v), cmp_double);
	out[0] = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	out[1] = v[0];
	out[2] = v[n - 1];
}

static double task_rate(const struct apfvm_stats *st, uint32_t kind, double *runtime)
{
	double work = 0, rt = 0;
	for (unsigned i = 0; i < st->ntasks; i++) {
		if (st->tasks[i].kind != kind)
			continue;
		work += (double)st->tasks[i].work;
		if (st->tasks[i].runtime_s > rt)
			rt = st->tasks[i].runtime_s;
	}
	if (runtime)
		*runtime = rt;
	return rt > 0 ? work / rt : 0;
}

/* One run; a progress line on stderr first (a Linux guest's run takes a
 * minute in the emulated host). */
static int run_once(const struct apfvm_config *c, struct apfvm_stats *st)
{
	struct apf_err e;
	static unsigned n;

	if (!c->lazy_size) /* alone_once() */
		fprintf(stderr, "apfvm bench: run %u: compute alone\n", ++n);
	else
		fprintf(stderr, "apfvm bench: run %u: %s, %.0f us per fetch%s\n", ++n,
			apfvm_mode_name(c->apf), (double)c->latency_min_ns / 1e3,
			c->populate ? " (resident)" : c->trace ? ", traced" : "");
	int rc = apfvm_run(c, st, &e);
	if (rc)
		fprintf(stderr, "apfvm bench: run failed: %s\n", e.msg);
	return rc;
}

static int parse_list(char *list, int (*item)(struct bench *, const char *), struct bench *b,
		      struct apf_err *e, const char *opt)
{
	char *save = NULL;
	for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (item(b, t))
			return apf_fail(e, -EINVAL, "%s: invalid item '%s'", opt, t);
	return 0;
}

static int add_latency(struct bench *b, const char *t)
{
	uint64_t ns;
	if (b->nlat == MAX_LAT || strlen(t) >= sizeof(b->lat_label[0]))
		return -1;
	if (!strcmp(t, "resident"))
		ns = UINT64_MAX;
	else if (units_parse_duration(t, &ns) || ns > APFVM_MAX_LATENCY_NS)
		return -1;
	strcpy(b->lat_label[b->nlat], t);
	b->lat_ns[b->nlat++] = ns;
	return 0;
}

static int add_mode(struct bench *b, const char *t)
{
	static const enum apfvm_apf_mode all[] = { APFVM_APF_OFF, APFVM_APF_KERNEL, APFVM_APF_USER };
	for (unsigned i = 0; i < 3; i++)
		if (!strcmp(t, apfvm_mode_name(all[i])) && b->nmode < MAX_MODE) {
			b->modes[b->nmode++] = all[i];
			return 0;
		}
	return -1;
}

static const struct option bench_longopts[] = {
	{ "latencies", required_argument, NULL, 'l' }, { "modes", required_argument, NULL, 'm' },
	{ "runs", required_argument, NULL, 'r' },      { "lazy", required_argument, NULL, 'z' },
	{ "workload", required_argument, NULL, 'w' },  { "pin", required_argument, NULL, 'p' },
	{ "csv", required_argument, NULL, 'c' },       { "help", no_argument, NULL, 'h' },
	{ "kernel", required_argument, NULL, 'k' },    { "mem", required_argument, NULL, 'M' },
	{ "scan-fraction", required_argument, NULL, 'f' },
	{ "scan-drift", required_argument, NULL, 'd' },
	{ 0, 0, 0, 0 },
};

/* What parse() fills besides the bench: the lists as typed, the CSV path. */
struct bench_args {
	char lat[128], modes[64];
	const char **csv;
};

static void bench_defaults(struct bench *b, struct bench_args *a, struct apf_err *e)
{
	strcpy(a->lat, "resident,100us,1ms,10ms");
	snprintf(a->modes, sizeof(a->modes), "off%s,user",
		 apfvm_mode_exists(APFVM_APF_KERNEL) ? ",kernel" : "");
	apfvm_config_defaults(&b->base);
	b->base.lazy_size = 8ull << 20;
	b->base.vcpu_cpu = b->base.pager_cpu = options_default_cpu();
	b->base.timeout_ns = 600ull * 1000000000ull;
	strcpy(b->base.cmdline, "quiet");
	options_parse_workload("compute:1,scan:1", &b->base, e);
	b->runs = 3;
}

/* The sizes and fractions among the options. */
static int take_number(int opt, struct bench *b, struct apf_err *e)
{
	uint64_t v;

	switch (opt) {
	case 'r':
		if (units_parse_u64(optarg, &v) || v < 1 || v > MAX_RUNS)
			return apf_fail(e, -EINVAL, "--runs: 1..%d", MAX_RUNS);
		b->runs = (unsigned)v;
		return 0;
	case 'z':
		if (units_parse_size(optarg, &v) || !v || v % APF_LAZY_ALIGN || v > (4ull << 30))
			return apf_fail(e, -EINVAL, "--lazy: a multiple of 2M up to 4G");
		b->base.lazy_size = v;
		return 0;
	case 'f':
		if (options_parse_fraction(optarg, &v) || !v || v > APF_SCAN_PPM)
			return apf_fail(e, -EINVAL, "--scan-fraction: invalid value '%s' (%s)",
					optarg, OPTIONS_SCAN_FRACTION_WANT);
		b->base.scan_fraction_ppm = (uint32_t)v;
		return 0;
	case 'd':
		if (options_parse_fraction(optarg, &v) || v > APF_SCAN_PPM)
			return apf_fail(e, -EINVAL, "--scan-drift: invalid value '%s' (%s)",
					optarg, OPTIONS_SCAN_DRIFT_WANT);
		b->base.scan_drift_ppm = (uint32_t)v;
		return 0;
	default: /* 'M' */
		if (units_parse_size(optarg, &v) || v < (16ull << 20) || v > (2ull << 30) ||
		    v % APF_PAGE_SIZE)
			return apf_fail(e, -EINVAL, "--mem: 16M..2G, a multiple of 4K");
		b->base.mem_size = v;
		b->mem_given = true;
		return 0;
	}
}

/* One option getopt_long returned (not ':', '?' or 'h'). */
static int take_option(int opt, struct bench *b, struct bench_args *a, struct apf_err *e)
{
	switch (opt) {
	case 'l':
	case 'm': {
		char *dst = opt == 'l' ? a->lat : a->modes;
		size_t cap = opt == 'l' ? sizeof(a->lat) : sizeof(a->modes);
		if (strlen(optarg) >= cap)
			return apf_fail(e, -EINVAL, "--%s: too long", opt == 'l' ? "latencies" : "modes");
		strcpy(dst, optarg);
		return 0;
	}
	case 'w':
		return options_parse_workload(optarg, &b->base, e);
	case 'p':
		return options_parse_pin(optarg, (int)sysconf(_SC_NPROCESSORS_ONLN), &b->base.vcpu_cpu,
					 &b->base.pager_cpu, e);
	case 'c':
		*a->csv = optarg;
		return 0;
	case 'k':
		b->kernel_path = optarg;
		return 0;
	default:
		return take_number(opt, b, e);
	}
}

/* After the options: the lists, and the Linux kernel to boot. */
static int finish_parse(struct bench *b, struct bench_args *a, struct apf_err *e)
{
	int rc = options_check_scan(&b->base, e);

	if (!rc)
		rc = parse_list(a->lat, add_latency, b, e, "--latencies");
	if (!rc)
		rc = parse_list(a->modes, add_mode, b, e, "--modes");
	if (!rc && (!b->nlat || !b->nmode))
		rc = apf_fail(e, -EINVAL, "nothing to run");
	if (rc || !b->kernel_path)
		return rc;
	rc = file_read_all(b->kernel_path, &b->kernel, &b->base.linux_kernel_len);
	if (rc)
		return apf_fail(e, rc, "cannot read '%s': %s", b->kernel_path,
				rc == -EFBIG ? "not a regular file of at most 256 MiB" : strerror(-rc));
	b->base.linux_kernel = b->kernel;
	if (!b->mem_given)
		b->base.mem_size = 512ull << 20; /* Debian's kernel needs room */
	return 0;
}

static int parse(int argc, char **argv, struct bench *b, const char **csv, struct apf_err *e)
{
	struct bench_args a = { .csv = csv };
	int opt, rc;

	bench_defaults(b, &a, e);
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", bench_longopts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(bench_usage, stdout);
			exit(0);
		}
		if (opt == ':')
			return apf_fail(e, -EINVAL, "option '%s' needs a value", argv[optind - 1]);
		if (opt == '?')
			return options_unknown(e, argc, argv, "bench", bench_longopts);
		if ((rc = take_option(opt, b, &a, e)))
			return rc;
	}
	if (optind < argc)
		return apf_fail(e, -EINVAL, "unexpected argument '%s'", argv[optind]);
	return finish_parse(b, &a, e);
}

/* The compute task's rate with nothing else running: one run. */
static int alone_once(struct bench *b, double *rate, double *boot_s)
{
	struct apfvm_config c = b->base;
	struct apfvm_stats st;

	c.lazy_size = 0;
	c.ntasks = 1;
	c.tasks[0] = (struct apf_task_spec){ APF_TASK_COMPUTE, 0, 1, 0 };
	if (run_once(&c, &st))
		return -1;
	*rate = task_rate(&st, APF_TASK_COMPUTE, NULL);
	*boot_s = st.linux_reported ? (double)st.linux_apf.boot_ns / 1e9 : 0;
	return 0;
}

/* One run of mode mi at latency li; the compute rate is taken relative to
 * `alone`, a compute-alone run made just before (pairing the two keeps
 * slow drifts of the shared host out of the ratio). */
static int run_cell(struct bench *b, unsigned li, unsigned mi, double alone, struct cell_run *r)
{
	struct apfvm_config c = b->base;
	struct apfvm_stats st;

	c.apf = b->modes[mi];
	c.source = b->spec;
	c.populate = b->lat_ns[li] == UINT64_MAX;
	c.latency_min_ns = c.latency_max_ns = c.populate ? 0 : b->lat_ns[li];
	if (run_once(&c, &st))
		return -1;
	double compute_s, pages = 0;
	task_rate(&st, APF_TASK_SCAN, &r->scan_s);
	for (unsigned i = 0; i < st.ntasks; i++)
		if (st.tasks[i].kind == APF_TASK_SCAN)
			pages += (double)st.tasks[i].pages;
	r->compute_rate = task_rate(&st, APF_TASK_COMPUTE, &compute_s) / alone;
	r->lost_us = pages > 0 ? (1 - r->compute_rate) * compute_s / pages * 1e6 : 0;
	r->wall_s = st.wall_s;
	r->boot_s = st.linux_reported ? (double)st.linux_apf.boot_ns / 1e9 : 0;
	r->faults = (double)st.faults_total;
	r->async = (double)st.faults_async;
	r->sync = (double)st.faults_sync;
	r->pages_per_s = st.wall_s > 0 ? (double)st.pages_fetched / st.wall_s : 0;
	r->insn_per_fault = st.faults_total ? (double)st.kvm_insn_emulation / (double)st.faults_total
					    : 0;
	return 0;
}

/* One more run with --trace for a cell whose faults went async: where the
 * time of one async fault goes (kept apart: the stamps cost time). */
static int trace_cell(struct bench *b, unsigned li, unsigned mi, struct apfvm_fault_path *p)
{
	struct apfvm_config c = b->base;
	struct apfvm_stats st;

	c.apf = b->modes[mi];
	c.source = b->spec;
	c.latency_min_ns = c.latency_max_ns = b->lat_ns[li];
	c.trace = true;
	if (run_once(&c, &st))
		return -1;
	*p = st.path;
	return 0;
}

static double pick(const struct cell_run *r, unsigned n, size_t off, double out[3])
{
	double v[MAX_RUNS];
	for (unsigned i = 0; i < n; i++)
		v[i] = *(const double *)((const char *)&r[i] + off);
	stats3(v, n, out);
	return out[0];
}

/* The image the lazy region is served from (b->image, b->spec). */
static int make_image(struct bench *b, struct apf_err *e)
{
	strcpy(b->image, "/tmp/apfvm-bench-XXXXXX");
	int fd = mkstemp(b->image);
	if (fd < 0 || image_create(b->image, b->base.lazy_size, 42, e)) {
		fprintf(stderr, "apfvm bench: cannot create the image: %s\n",
			fd < 0 ? strerror(errno) : e->msg);
		return -1;
	}
	close(fd);
	snprintf(b->spec, sizeof(b->spec), "file:%s", b->image);
	return 0;
}

/* What the runs are, then the heads of the table and of the CSV. */
static void print_header(const struct bench *b, const char *platform, FILE *csv)
{
	char lazy[32], subset[96] = "";
	units_format_size(b->base.lazy_size, lazy, sizeof(lazy));
	if (b->base.scan_fraction_ppm != APF_SCAN_PPM)
		snprintf(subset, sizeof(subset), " (scans read %g of their pages, drift %g)",
			 b->base.scan_fraction_ppm / 1e6, b->base.scan_drift_ppm / 1e6);
	printf("apfvm bench: %s lazy region from a file: image, %u task(s)%s, %u run(s) per cell;\n"
	       "compute/alone pairs each run with a compute-alone run made just before it\n"
	       "Guest: %s\n"
	       "Platform: %s\n\n",
	       lazy, b->base.ntasks, subset, b->runs,
	       b->kernel_path ? "Linux (--kernel), the tasks are its processes" : "the reference guest",
	       platform);
	const char *caveat = platform_apf_user_caveat();
	for (unsigned mi = 0; mi < b->nmode; mi++)
		if (b->modes[mi] == APFVM_APF_USER && caveat)
			printf("warning: %s\n\n", caveat);
	if (csv)
		fprintf(csv, "latency,latency_us,mode,runs,compute_frac_median,compute_frac_min,"
			     "compute_frac_max,scan_s_median,scan_s_min,scan_s_max,faults,async,sync,"
			     "guest_round_trip_us,pager_pages_per_s,wall_s_median,compute_alone_rate,"
			     "insn_per_fault,access_to_read_us,read_to_kick_us,kick_to_exit_us,"
			     "exit_to_inject_us,np_delivery_us,np_handler_us,np_resume_us,"
			     "install_to_raise_us,rdy_delivery_us,rdy_handler_us,rdy_ack_us,resume_us,"
			     "stall_per_page_us,lost_per_page_us_median,lost_per_page_us_min,"
			     "lost_per_page_us_max,platform\n");
	printf("%-9s %-7s %-22s %-24s %-16s %6s %6s %8s %8s %9s\n", "latency", "mode",
	       "compute/alone", "scan s", "lost us/page", "async", "sync", "guestRT", "insn/",
	       "pages/s");
	printf("%-9s %-7s %-22s %-24s %-16s %6s %6s %8s %8s %9s\n", "", "", "median (min-max)",
	       "median (min-max)", "median (min-max)", "", "", "us", "fault", "(pager)");
}

/* A cell's runs summed up: median, min, max of each figure (medians
 * alone for the fault counts), and one traced fault path. */
struct cell_summary {
	double cf[3], sc[3], pps[3], wall[3], ipf[3], lost[3];
	double async, sync, faults;
	double rt; /* the guest's round trip: its two handlers, us */
	struct apfvm_fault_path p;
};

static int summarize_cell(struct bench *b, unsigned li, unsigned mi, const struct cell_run *r,
			  struct cell_summary *s)
{
	double tmp[3];

	pick(r, b->runs, offsetof(struct cell_run, compute_rate), s->cf);
	pick(r, b->runs, offsetof(struct cell_run, scan_s), s->sc);
	pick(r, b->runs, offsetof(struct cell_run, pages_per_s), s->pps);
	pick(r, b->runs, offsetof(struct cell_run, wall_s), s->wall);
	pick(r, b->runs, offsetof(struct cell_run, insn_per_fault), s->ipf);
	pick(r, b->runs, offsetof(struct cell_run, lost_us), s->lost);
	s->async = pick(r, b->runs, offsetof(struct cell_run, async), tmp);
	s->sync = pick(r, b->runs, offsetof(struct cell_run, sync), tmp);
	s->faults = pick(r, b->runs, offsetof(struct cell_run, faults), tmp);
	memset(&s->p, 0, sizeof(s->p));
	/* --trace needs the reference guest's stamps. */
	if (s->async > 0 && !b->kernel_path && trace_cell(b, li, mi, &s->p))
		return -1;
	s->rt = s->p.np_handler + s->p.rdy_handler;
	return 0;
}

static void print_cell(const struct bench *b, unsigned li, unsigned mi,
		       const struct cell_summary *s)
{
	char c1[32], c2[32], c3[32];

	snprintf(c1, sizeof(c1), "%.3f (%.3f-%.3f)", s->cf[0], s->cf[1], s->cf[2]);
	snprintf(c2, sizeof(c2), "%.3f (%.3f-%.3f)", s->sc[0], s->sc[1], s->sc[2]);
	snprintf(c3, sizeof(c3), "%.0f (%.0f-%.0f)", s->lost[0], s->lost[1], s->lost[2]);
	printf("%-9s %-7s %-22s %-24s %-16s %6.0f %6.0f %8.0f %8.0f %9.0f\n",
	       b->lat_label[li], apfvm_mode_name(b->modes[mi]), c1, c2, c3, s->async, s->sync, s->rt,
	       s->ipf[0], s->pps[0]);
	fflush(stdout);
}

static void csv_cell(FILE *csv, const struct bench *b, unsigned li, unsigned mi,
		     const struct cell_summary *s, double alone, const char *platform)
{
	const struct apfvm_fault_path *p = &s->p;

	fprintf(csv, "%s,%.3f,%s,%u,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.0f,%.0f,%.0f,%.1f,%.0f,%.4f,%.0f,"
		     "%.0f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,"
		     "%.1f,%.1f,%.1f,\"%s\"\n",
		b->lat_label[li], b->lat_ns[li] == UINT64_MAX ? 0 : (double)b->lat_ns[li] / 1e3,
		apfvm_mode_name(b->modes[mi]), b->runs, s->cf[0], s->cf[1], s->cf[2], s->sc[0],
		s->sc[1], s->sc[2], s->faults, s->async, s->sync, s->rt, s->pps[0], s->wall[0], alone,
		s->ipf[0], p->access_to_read, p->read_to_kick, p->kick_to_exit, p->exit_to_inject,
		p->np_delivery, p->np_handler, p->np_resume, p->install_to_raise, p->rdy_delivery,
		p->rdy_handler, p->rdy_ack, p->resume, p->stall_per_page, s->lost[0], s->lost[1],
		s->lost[2], platform);
}

/* Every mode at latency li, b->runs times: a table row (and a CSV line)
 * per mode. */
static int bench_latency(struct bench *b, unsigned li, FILE *csv, const char *platform)
{
	static struct cell_run runs[MAX_MODE][MAX_RUNS];
	double alone[MAX_RUNS], al[3];

	/* Run i of every mode follows compute-alone run i. */
	for (unsigned i = 0; i < b->runs; i++) {
		if (alone_once(b, &alone[i], &b->boots[b->nboots++]))
			return -1;
		for (unsigned mi = 0; mi < b->nmode; mi++) {
			if (run_cell(b, li, mi, alone[i], &runs[mi][i]))
				return -1;
			b->boots[b->nboots++] = runs[mi][i].boot_s;
		}
	}
	stats3(alone, b->runs, al);
	for (unsigned mi = 0; mi < b->nmode; mi++) {
		struct cell_summary s;
		if (summarize_cell(b, li, mi, runs[mi], &s))
			return -1;
		print_cell(b, li, mi, &s);
		if (csv)
			csv_cell(csv, b, li, mi, &s, al[0], platform);
	}
	return 0;
}

int bench_main(int argc, char **argv)
{
	static struct bench b;
	struct apf_err e = { "" };
	const char *csv_path = NULL;
	FILE *csv = NULL;
	char platform[96];
	int status = 1;

	if (parse(argc, argv, &b, &csv_path, &e)) {
		fprintf(stderr, "apfvm bench: %s\n", e.msg);
		return 2;
	}
	if (make_image(&b, &e))
		return 1;
	if (csv_path && !(csv = fopen(csv_path, "w"))) {
		fprintf(stderr, "apfvm bench: cannot write '%s': %s\n", csv_path, strerror(errno));
		goto out;
	}
	platform_describe(platform, sizeof(platform));
	print_header(&b, platform, csv);
	for (unsigned li = 0; li < b.nlat; li++)
		if (bench_latency(&b, li, csv, platform))
			goto out;
	status = 0;
	if (b.kernel_path) {
		double bt[3];
		stats3(b.boots, b.nboots, bt);
		printf("\nLinux boot (kernel start to /init, guest clock): median %.2f s (%.2f-%.2f), "
		       "%u boots\n", bt[0], bt[1], bt[2], b.nboots);
	}
	if (csv_path)
		printf("\nCSV: %s\n", csv_path);
out:
	if (csv && fclose(csv))
		status = 1;
	unlink(b.image);
	free(b.kernel);
	return status;
}
