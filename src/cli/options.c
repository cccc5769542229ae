#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/page_proto.h"
#include "source/source.h"
#include "util/units.h"

/* The usage and messages below say 1..64. */
_Static_assert(PGS_MAX_COUNT == 64, "--max-count range");
_Static_assert(SOURCE_NET_TRIES_MAX == 100 && SOURCE_NET_TIMEOUT_MAX_NS == 600000000000ull,
	       "--fetch-tries and --fetch-timeout ranges in the usage text");

const char options_run_usage[] =
	"Usage: apfvm run [OPTIONS]\n"
	"Boot the guest kernel with a lazily served memory region and run workloads.\n"
	"\n"
	"Memory and paging:\n"
	"  --guest ELF           guest kernel (default: the built-in reference guest)\n"
	"  --kernel BZIMAGE      boot an unmodified Linux bzImage instead (console: COM1 on\n"
	"                        stdout); apfvm's initramfs runs the workloads as processes\n"
	"  --initrd FILE         your initramfs instead (no workloads; the run ends when\n"
	"                        Linux reboots)\n"
	"  --mem SIZE            resident guest memory, 16M..2G (default 64M)\n"
	"  --lazy SIZE           lazy region served on demand, multiple of 2M (default 0)\n"
	"  --source SPEC         page source (default zero): zero | file:PATH (an image,\n"
	"                        apfvm mkimage) | tcp:ADDR:PORT (a page server, apfvm serve;\n"
	"                        numeric IPv4 or [IPv6] address) | s3://BUCKET/KEY or\n"
	"                        http(s)://HOST/PATH (an image in object storage, apfvm pack)\n"
	"  --latency DUR[-DUR]   added fetch latency, fixed or uniform range (e.g. 1ms, 200us-5ms;\n"
	"                        zero and file: only)\n"
	"  --fetch-timeout DUR   tcp: a fetch unanswered this long is tried again over a new\n"
	"                        connection (default 5s, 1ms..600s)\n"
	"  --fetch-tries N       tcp: attempts per page (timeouts, corrupt pages) before it\n"
	"                        fails and the run with it (default 3, 1..100)\n"
	"  --s3-endpoint URL     s3:// sources: the store (default: AWS_ENDPOINT_URL_S3 or\n"
	"                        AWS_ENDPOINT_URL, else AWS); credentials from AWS_ACCESS_KEY_ID,\n"
	"                        AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN\n"
	"  --s3-region REGION    s3:// sources (default: AWS_REGION, else us-east-1)\n"
	"  --cache-size SIZE     s3:// and http(s)://: decompressed chunks kept in memory\n"
	"                        (default 64M)\n"
	"  --cache-dir DIR       s3:// and http(s)://: also keep fetched chunks on disk, for\n"
	"                        later runs (checked like fetched ones when read back);\n"
	"                        DIR is made 0700 and must be yours alone\n"
	"  --cache-dir-size SIZE the bound of DIR, all images together: past it the least\n"
	"                        recently used chunks go (default 1G)\n"
	"  --inflight N          fetches in flight at once, 1..1024 (default 64)\n"
	"  --populate [background]\n"
	"                        install the whole lazy region before the guest starts\n"
	"                        (the resident baseline: no fault is ever taken); with\n"
	"                        background: while it runs, after --prefetch's pages, at the\n"
	"                        lowest priority, then close the source\n"
	"  --record-ws FILE      write the lazy pages the guest faulted on, in first-touch\n"
	"                        order with their times, to FILE when the run ends well\n"
	"  --prefetch FILE       fetch FILE's pages (a --record-ws file) in its order from the\n"
	"                        start, ahead of the guest; faults still come first\n"
	"  --bulk-inflight N     fetches --prefetch and --populate background may hold at\n"
	"                        once (default: half of --inflight; the rest wait for faults)\n"
	"  --apf MODE            async page faults: off (default; the vCPU blocks per fault),\n"
	"                        kernel (the host kernel's KVM sends not-present/page-ready),\n"
	"                        user (apfvm itself is the host side, deciding per fault)\n"
	"  --apf-threshold DUR   user mode: go async only when a fetch is expected to take\n"
	"                        longer (default 500us, what an async round trip costs the guest here)\n"
	"  --apf-trap-acks       user mode: the guest's page-ready ACKs exit to apfvm (one exit\n"
	"                        each) to be counted and their order checked\n"
	"\n"
	"Workload:\n"
	"  --workload SPEC       tasks, KIND[:COUNT],...; kinds: compute, scan (default compute:1)\n"
	"  --duration DUR        how long compute runs when it is alone (default 2s)\n"
	"  --scan-order ORDER    sequential (default) | random\n"
	"  --scan-fraction F     each scan reads about F of its pages: those a hash of\n"
	"                        (--seed, page) selects, in the scan order; 0 < F <= 1 or a\n"
	"                        percentage such as 25% (default 1: every page)\n"
	"  --scan-drift D        replace D of those pages by as many outside them: the same\n"
	"                        size, sharing 1 - D with the D = 0 set (0..1 or a\n"
	"                        percentage, default 0; F x (1 + D) at most 1)\n"
	"  --seed N              seed of the random scan order, its pages and latencies\n"
	"                        (default 1)\n"
	"  --hz N                reference guest's scheduler tick, 10..1000 (default 100)\n"
	"  --cmdline STRING      guest kernel command line (Linux: after apfvm's; its\n"
	"                        initramfs reads apfvm.sh=\"CMD\" and apfvm.kernel-reads=N)\n"
	"\n"
	"Placement and control:\n"
	"  --pin MODE            none | same[:CPU] | split | VCPU,PAGER (default: same, on the\n"
	"                        first CPU this process may use; a CPU outside its set fails)\n"
	"  --timeout DUR         fail the run if the guest has not finished by then (default 0 = none)\n"
	"  --stats-json FILE     write statistics as JSON ('-' for stdout)\n"
	"  --trace               time each step of the async fault path (TSC stamps)\n"
	"  --console FILE        write the guest console to FILE\n"
	"  -v, --verbose         echo the guest console on stderr\n"
	"  -q, --quiet           no summary on stdout\n"
	"  -h, --help            this help\n"
	"\n"
	"Snapshot (docs/snapshot.md; x86-64):\n"
	"  --snapshot PATH       write the running guest to PATH and PATH.mem, then end\n"
	"                        the run ('apfvm restore PATH' goes on); when, one of:\n"
	"  --snapshot-at DUR     at DUR from the guest's start\n"
	"  --snapshot-after-pages N\n"
	"                        once N pages of the lazy region have been fetched (a point\n"
	"                        in the guest's progress, whatever the host's speed)\n"
	"\n"
	"Sizes take K, M, G suffixes; durations take ns, us, ms, s.\n";

const char options_restore_usage[] =
	"Usage: apfvm restore [OPTIONS] PATH\n"
	"Go on with the guest a snapshot holds (apfvm run --snapshot PATH), serving all of its\n"
	"memory lazily from PATH.mem, each page checked against its checksum.\n"
	"\n"
	"  --source SPEC         the memory from elsewhere: tcp:ADDR:PORT (apfvm serve\n"
	"                        --snapshot PATH), s3://BUCKET/KEY or http(s)://HOST/PATH\n"
	"                        (apfvm pack --snapshot PATH); still checked page by page\n"
	"  --fetch-timeout, --fetch-tries, --s3-endpoint, --s3-region, --cache-size,\n"
	"  --cache-dir, --cache-dir-size:\n"
	"                        for --source, as for 'apfvm run'\n"
	"  --latency DUR[-DUR]   added fetch latency per page, fixed or a range (default 0;\n"
	"                        not with --source)\n"
	"  --inflight N          fetches in flight at once, 1..1024 (default 64)\n"
	"  --apf MODE            off | kernel | user: the host side of async page faults, as\n"
	"                        for 'apfvm run' (default: the snapshot's); a snapshot taken in\n"
	"                        one mode restores in another, but not in off if its guest had\n"
	"                        enabled async page faults (a parked task would never wake)\n"
	"  --apf-threshold DUR   user mode: go async only above this expected fetch time\n"
	"  --populate [background]\n"
	"                        install all of the memory before the guest goes on (an eager\n"
	"                        restore: the baseline the lazy one is measured against); with\n"
	"                        background: while it runs, after --prefetch's pages, at the\n"
	"                        lowest priority, then close the sources\n"
	"  --record-ws FILE      write the pages the restored guest faulted on (resident and\n"
	"                        lazy), in first-touch order with their times, to FILE\n"
	"  --prefetch FILE       fetch FILE's pages (a --record-ws file of this snapshot) in\n"
	"                        its order from the start, ahead of the guest\n"
	"  --bulk-inflight N     as for 'apfvm run'\n"
	"  --pin, --timeout, --stats-json, --console, -v, -q: as for 'apfvm run'\n"
	"  -h, --help            this help\n"
	"\n"
	"The guest, its memory sizes and its workload come from the snapshot.\n";

const char options_mkimage_usage[] =
	"Usage: apfvm mkimage --size SIZE [--seed N] FILE\n"
	"Write a deterministic memory image: every 8-byte word of its data is a pure\n"
	"function of (seed, word index), so the guest verifies every byte it reads.\n"
	"\n"
	"  --size SIZE   bytes of page data, multiple of 4K (e.g. 64M)\n"
	"  --seed N      seed (default 1)\n"
	"  -h, --help    this help\n";

const char options_serve_usage[] =
	"Usage: apfvm serve (--image IMG | --snapshot PATH) --listen ADDR:PORT [OPTIONS]\n"
	"Serve an apfvm image's pages, or a snapshot's memory, over TCP with apfvm's page\n"
	"server protocol (docs/page-server.md), to many clients at once, until SIGINT or\n"
	"SIGTERM.  A client beyond the limits is answered BUSY and tries again later.\n"
	"\n"
	"  --image IMG         the image to serve (apfvm mkimage): apfvm run --source tcp:...\n"
	"  --snapshot PATH     the memory of the snapshot PATH (PATH.mem; apfvm run\n"
	"                      --snapshot): apfvm restore PATH --source tcp:...\n"
	"  --listen ADDR:PORT  where to listen: 127.0.0.1:7000, [::1]:7000, 0.0.0.0:7000;\n"
	"                      port 0 picks a free one (printed)\n"
	"  --max-count N       pages a client may ask for in one request, 1..64 (default 16)\n"
	"  --max-clients N     connections served at once, 1..4096 (default 256)\n"
	"  --max-per-peer N    of them from one address (default 32, at most --max-clients;\n"
	"                      a restoring VM holds up to four: two per region)\n"
	"  --io-timeout DUR    the hello, each request once begun and each reply must pass\n"
	"                      whole within DUR, or the connection is closed (default 10s)\n"
	"  --idle-timeout DUR  a connection with no request for DUR is closed (default 60s)\n"
	"  -h, --help          this help\n";

const char options_pack_usage[] =
	"Usage: apfvm pack [OPTIONS] IMAGE DEST\n"
	"       apfvm pack [OPTIONS] --snapshot PATH DEST\n"
	"Lay an apfvm image out for object storage (docs/object-storage.md): its pages cut\n"
	"into chunks, each compressed with zstd (kept raw where that does not shrink it;\n"
	"all-zero chunks not stored), as the data object DEST.data and the manifest DEST.\n"
	"DEST is a file path (serve the two files over HTTP: --source http://HOST/PATH) or\n"
	"s3://BUCKET/KEY (uploaded; then --source s3://BUCKET/KEY).  With --snapshot, the\n"
	"memory of the snapshot PATH (PATH.mem) is packed, for 'apfvm restore PATH --source'.\n"
	"\n"
	"  --snapshot            the input is a snapshot (apfvm run --snapshot), not an image\n"
	"  --chunk SIZE          bytes per chunk, a multiple of 4K up to 4M (default 256K)\n"
	"  --level N             zstd level, 1..19 (default 3)\n"
	"  --s3-endpoint URL     as for 'apfvm run'; credentials from AWS_ACCESS_KEY_ID,\n"
	"  --s3-region REGION    AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN)\n"
	"  -h, --help            this help\n";

static const struct {
	const char *name;
	uint32_t kind;
} kinds[] = {
	{ "compute", APF_TASK_COMPUTE },
	{ "scan", APF_TASK_SCAN },
};

int options_parse_workload(const char *spec, struct apfvm_config *cfg, struct apf_err *e)
{
	char buf[256], *save = NULL, *item;
	struct apf_task_spec tasks[APF_MAX_TASKS];
	unsigned n = 0;

	if (!spec || !*spec || strlen(spec) >= sizeof(buf))
		return apf_fail(e, -EINVAL, "--workload: empty or too long");
	strcpy(buf, spec);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(item, ':');
		uint64_t count = 1;
		uint32_t kind = 0;

		if (colon) {
			*colon = '\0';
			if (units_parse_u64(colon + 1, &count) || count == 0)
				return apf_fail(e, -EINVAL, "--workload: bad count '%s' for '%s'",
						colon + 1, item);
		}
		for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
			if (!strcmp(item, kinds[k].name))
				kind = kinds[k].kind;
		if (!kind)
			return apf_fail(e, -EINVAL, "--workload: unknown task kind '%s' (compute, scan)",
					item);
		for (unsigned i = 0; i < n; i++)
			if (tasks[i].kind == kind)
				return apf_fail(e, -EINVAL, "--workload: '%s' given twice", item);
		if (count > APF_MAX_TASKS - n)
			return apf_fail(e, -EINVAL, "--workload: at most %d tasks", APF_MAX_TASKS);
		for (uint64_t i = 0; i < count; i++)
			tasks[n++] = (struct apf_task_spec){ .kind = kind, .index = (uint32_t)i,
							     .count = (uint32_t)count };
	}
	if (!n)
		return apf_fail(e, -EINVAL, "--workload: no task given");
	memcpy(cfg->tasks, tasks, n * sizeof(tasks[0]));
	cfg->ntasks = n;
	return 0;
}

static int parse_cpu(const char *s, int ncpus, int *out)
{
	uint64_t v;
	if (units_parse_u64(s, &v) || v >= (uint64_t)ncpus)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

int options_default_cpu(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int i = 0; i < CPU_SETSIZE; i++)
			if (CPU_ISSET(i, &set))
				return i;
	return 0;
}

int options_parse_pin(const char *spec, int ncpus, int *vcpu_cpu, int *pager_cpu,
		      struct apf_err *e)
{
	char buf[32];
	char *comma;

	if (!strcmp(spec, "none")) {
		*vcpu_cpu = *pager_cpu = -1;
		return 0;
	}
	if (!strcmp(spec, "same")) {
		*vcpu_cpu = *pager_cpu = options_default_cpu();
		return 0;
	}
	if (!strncmp(spec, "same:", 5)) {
		if (parse_cpu(spec + 5, ncpus, vcpu_cpu))
			goto bad;
		*pager_cpu = *vcpu_cpu;
		return 0;
	}
	if (!strcmp(spec, "split")) {
		if (ncpus < 2)
			return apf_fail(e, -EINVAL, "--pin split needs two CPUs; this machine has %d",
					ncpus);
		*vcpu_cpu = 0;
		*pager_cpu = 1;
		return 0;
	}
	if (strlen(spec) < sizeof(buf) && (comma = strchr(strcpy(buf, spec), ','))) {
		*comma = '\0';
		if (!parse_cpu(buf, ncpus, vcpu_cpu) && !parse_cpu(comma + 1, ncpus, pager_cpu))
			return 0;
	}
bad:
	return apf_fail(e, -EINVAL,
			"--pin: '%s' is not none, same[:CPU], split or VCPU,PAGER with CPUs below %d",
			spec, ncpus);
}

/* getopt returned '?': name the offending option.  For a short option
 * getopt sets optopt (and optind may still point inside a bundle). */
int options_unknown(struct apf_err *e, int argc, char **argv, const char *cmd,
		    const struct option *longopts)
{
	const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
	const char *eq = strchr(arg, '=');

	/* getopt_long reports "--flag=value" for a flag as '?' with optopt =
	 * the flag's code (for --help=1 that is 'h'): name the flag.  Such an
	 * error has just consumed the argument; any other '?' may have been
	 * raised inside a later bundle of short flags, with arg still the one
	 * before it. */
	if (!strncmp(arg, "--", 2) && eq) {
		size_t len = (size_t)(eq - arg - 2);
		for (const struct option *o = longopts; o->name; o++)
			if (o->has_arg == no_argument && len && !strncmp(o->name, arg + 2, len))
				return apf_fail(e, -EINVAL, "option '--%s' takes no value (see 'apfvm %s --help')",
						o->name, cmd);
	}
	if (optopt > ' ' && optopt < 127)
		return apf_fail(e, -EINVAL, "unknown option '-%c' (see 'apfvm %s --help')", optopt,
				cmd);
	return apf_fail(e, -EINVAL, "unknown option '%s' (see 'apfvm %s --help')", arg, cmd);
}

int options_parse_fraction(const char *s, uint64_t *ppm)
{
	uint64_t v = 0, scale = APF_SCAN_PPM; /* millionths per unit of the next digit */
	size_t len = strlen(s), digits = 0;
	bool percent = len > 0 && s[len - 1] == '%', point = false;

	if (percent) {
		len--;
		scale /= 100;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.' && !point) {
			point = true;
			continue;
		}
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		unsigned d = (unsigned)(s[i] - '0');
		digits++;
		if (!point) {
			if (v > 1000ull * APF_SCAN_PPM) /* far beyond any fraction */
				return -EINVAL;
			v = v * 10 + d * scale;
		} else if (scale >= 10) {
			scale /= 10;
			v += d * scale;
		} else if (d) {
			return -EINVAL; /* finer than a millionth */
		}
	}
	if (!digits)
		return -EINVAL;
	*ppm = v;
	return 0;
}

int options_check_scan(const struct apfvm_config *c, struct apf_err *e)
{
	if (apf_scan_params_ok(c->scan_fraction_ppm, c->scan_drift_ppm))
		return 0;
	return apf_fail(e, -EINVAL, "--scan-drift %g with --scan-fraction %g: the replaced pages "
			"come from outside the undrifted set, so fraction x (1 + drift) must be at "
			"most 1 (here %g)", c->scan_drift_ppm / 1e6, c->scan_fraction_ppm / 1e6,
			c->scan_fraction_ppm / 1e6 * (1 + c->scan_drift_ppm / 1e6));
}

static int bad_value(const struct options_spec *s, const char *val, struct apf_err *e)
{
	return apf_fail(e, -EINVAL, "--%s: invalid value '%s' (%s)", s->name, val, s->want);
}

/* A number into its field (4 or 8 bytes; the spec's max makes it fit). */
static void store_uint(void *field, size_t size, uint64_t v)
{
	if (size == sizeof(uint64_t)) {
		memcpy(field, &v, sizeof(v));
	} else {
		uint32_t w = (uint32_t)v;
		memcpy(field, &w, sizeof(w));
	}
}

static int take_enum(const struct options_spec *s, const char *arg, void *field, struct apf_err *e)
{
	for (const struct options_name *n = s->names; n->name; n++)
		if (!strcmp(arg, n->name)) {
			store_uint(field, s->size, (uint64_t)n->value);
			return 0;
		}
	return bad_value(s, arg, e);
}

/* One option of spec s with value arg (NULL for a flag). */
static int take(const struct options_spec *s, const char *arg, void *base, struct apf_err *e)
{
	void *field = (char *)base + s->off;
	uint64_t v;
	int bad;

	if (s->given)
		*(bool *)((char *)base + s->given - 1) = true;
	switch (s->kind) {
	case OPTK_FLAG:
	case OPTK_HELP:
		*(bool *)field = true;
		return 0;
	case OPTK_STRING:
		*(const char **)field = arg;
		return 0;
	case OPTK_ENUM:
		return take_enum(s, arg, field, e);
	case OPTK_CUSTOM:
	case OPTK_FLAG_WORD:
		return s->parse(s, arg, base, e);
	case OPTK_SIZE:
		bad = units_parse_size(arg, &v) || (s->align && v % s->align);
		break;
	case OPTK_DURATION:
		bad = units_parse_duration(arg, &v);
		break;
	case OPTK_FRACTION:
		bad = options_parse_fraction(arg, &v);
		break;
	default:
		bad = units_parse_u64(arg, &v);
		break;
	}
	if (bad || v < s->min || v > s->max)
		return bad_value(s, arg, e);
	store_uint(field, s->size, v);
	return 0;
}

/* getopt_long's codes: an option's short name if it has one, else
 * CODE_BASE + its position across the tables. */
enum { CODE_BASE = 256, MAX_OPTIONS = 64 };

struct option_set {
	struct option longopts[MAX_OPTIONS + 1];
	char shorts[2 * MAX_OPTIONS + 2]; /* ':' first: a missing value is ':' */
	const struct options_spec *spec[MAX_OPTIONS];
	void *base[MAX_OPTIONS];
	size_t n;
};

/* Whether a number spec s accepts fits its field (store_uint). */
static bool spec_fits(const struct options_spec *s)
{
	switch (s->kind) {
	case OPTK_SIZE:
	case OPTK_DURATION:
	case OPTK_UINT:
	case OPTK_FRACTION:
		return s->size == 8 || (s->size == 4 && s->max <= UINT32_MAX);
	case OPTK_ENUM:
		return s->size == 4 || s->size == 8;
	default:
		return true;
	}
}

/* The getopt_long tables of the option tables; -EINVAL with the table's
 * fault in e (more than MAX_OPTIONS, a field a value does not fit). */
static int option_set_build(struct option_set *set, const struct options_table *tables,
			    size_t ntables, struct apf_err *e)
{
	size_t ns = 0;

	memset(set, 0, sizeof(*set));
	set->shorts[ns++] = ':';
	for (size_t t = 0; t < ntables; t++)
		for (const struct options_spec *s = tables[t].spec; s->name; s++) {
			size_t i = set->n++;
			if (i == MAX_OPTIONS)
				return apf_fail(e, -EINVAL, "more than %d options", MAX_OPTIONS);
			if (!spec_fits(s))
				return apf_fail(e, -EINVAL, "--%s: its values do not fit its field", s->name);
			int code = s->short_name ? s->short_name : CODE_BASE + (int)i;
			bool flag = s->kind == OPTK_FLAG || s->kind == OPTK_HELP || s->kind == OPTK_FLAG_WORD;
			set->longopts[i] = (struct option){ s->name, flag ? no_argument : required_argument,
							    NULL, code };
			if (s->short_name) {
				set->shorts[ns++] = s->short_name;
				if (!flag)
					set->shorts[ns++] = ':';
			}
			set->spec[i] = s;
			set->base[i] = tables[t].base;
		}
	return 0;
}

/* The option getopt_long returned as code, or -1. */
static int option_set_find(const struct option_set *set, int code)
{
	if (code >= CODE_BASE)
		return code - CODE_BASE < (int)set->n ? code - CODE_BASE : -1;
	for (size_t i = 0; i < set->n; i++)
		if (set->spec[i]->short_name && set->spec[i]->short_name == code)
			return (int)i;
	return -1;
}

/* The value getopt_long found for s (optarg); for FLAG_WORD, the next
 * argument if it is one of s's words (then consumed, as getopt consumes
 * an option's separate value), else NULL. */
static const char *flag_word(const struct options_spec *s, int argc, char **argv)
{
	if (s->kind != OPTK_FLAG_WORD)
		return optarg;
	if (optind < argc)
		for (const struct options_name *n = s->names; n->name; n++)
			if (!strcmp(argv[optind], n->name))
				return argv[optind++];
	return NULL;
}

int options_parse(int argc, char **argv, const char *cmd, const struct options_table *tables,
		  size_t ntables, struct apf_err *e)
{
	struct option_set set;
	int opt, rc;

	rc = option_set_build(&set, tables, ntables, e);
	if (rc)
		return rc;
	optind = 0; /* full getopt reset (GNU) */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, set.shorts, set.longopts, NULL)) != -1) {
		if (opt == ':')
			return apf_fail(e, -EINVAL, "option '%s' needs a value", argv[optind - 1]);
		int i = option_set_find(&set, opt);
		if (i < 0)
			return options_unknown(e, argc, argv, cmd, set.longopts);
		rc = take(set.spec[i], flag_word(set.spec[i], argc, argv), set.base[i], e);
		if (rc || set.spec[i]->kind == OPTK_HELP)
			return rc;
	}
	return 0;
}

const struct options_spec options_remote[] = {
	{ "fetch-timeout", .kind = OPTK_DURATION, OPTIONS_FIELD(struct apfvm_config, fetch_timeout_ns),
	  .min = 1000000, .max = SOURCE_NET_TIMEOUT_MAX_NS,
	  .want = "a duration from 1ms to 600s such as 5s" },
	{ "fetch-tries", .kind = OPTK_UINT, OPTIONS_FIELD(struct apfvm_config, fetch_tries),
	  .min = 1, .max = SOURCE_NET_TRIES_MAX, .want = "1..100" },
	{ "s3-endpoint", .kind = OPTK_STRING, OPTIONS_FIELD(struct apfvm_config, s3_endpoint) },
	{ "s3-region", .kind = OPTK_STRING, OPTIONS_FIELD(struct apfvm_config, s3_region) },
	{ "cache-size", .kind = OPTK_SIZE, OPTIONS_FIELD(struct apfvm_config, object_cache_bytes),
	  .min = 1ull << 20, .max = 64ull << 30, .want = "a size from 1M to 64G" },
	{ "cache-dir", .kind = OPTK_STRING, OPTIONS_FIELD(struct apfvm_config, object_cache_dir) },
	{ "cache-dir-size", .kind = OPTK_SIZE,
	  OPTIONS_FIELD(struct apfvm_config, object_cache_dir_bytes), .min = 1ull << 20,
	  .max = 1ull << 50, .want = "a size from 1M, such as 4G" },
	{ 0 },
};

/* run and restore: the values that are not a plain kind. */

static int run_latency(const struct options_spec *s, const char *arg, void *base, struct apf_err *e)
{
	struct apfvm_config *c = &((struct run_options *)base)->cfg;

	if (units_parse_duration_range(arg, &c->latency_min_ns, &c->latency_max_ns) ||
	    c->latency_max_ns > APFVM_MAX_LATENCY_NS)
		return bad_value(s, arg, e);
	return 0;
}

static int run_workload(const struct options_spec *s, const char *arg, void *base,
			struct apf_err *e)
{
	(void)s;
	return options_parse_workload(arg, &((struct run_options *)base)->cfg, e);
}

/* One seed, of the scan order and of the latencies both. */
static int run_seed(const struct options_spec *s, const char *arg, void *base, struct apf_err *e)
{
	struct apfvm_config *c = &((struct run_options *)base)->cfg;
	uint64_t v;

	if (units_parse_u64(arg, &v))
		return bad_value(s, arg, e);
	c->order_seed = c->latency_seed = v;
	return 0;
}

static int run_cmdline(const struct options_spec *s, const char *arg, void *base, struct apf_err *e)
{
	struct apfvm_config *c = &((struct run_options *)base)->cfg;

	if (strlen(arg) >= sizeof(c->cmdline))
		return bad_value(s, arg, e);
	strcpy(c->cmdline, arg);
	return 0;
}

static int run_pin(const struct options_spec *s, const char *arg, void *base, struct apf_err *e)
{
	struct apfvm_config *c = &((struct run_options *)base)->cfg;

	(void)s;
	return options_parse_pin(arg, (int)sysconf(_SC_NPROCESSORS_ONLN), &c->vcpu_cpu,
				 &c->pager_cpu, e);
}

/* --populate [eager|background]. */
static const struct options_name populate_modes[] = {
	{ "eager", 0 }, { "background", 1 }, { 0 },
};

static int run_populate(const struct options_spec *s, const char *arg, void *base,
			struct apf_err *e)
{
	struct apfvm_config *c = &((struct run_options *)base)->cfg;

	(void)s;
	(void)e;
	c->populate = !arg || !strcmp(arg, "eager");
	c->populate_background = !c->populate;
	return 0;
}

static const struct options_name apf_modes[] = {
	{ "off", APFVM_APF_OFF }, { "kernel", APFVM_APF_KERNEL }, { "user", APFVM_APF_USER }, { 0 },
};
static const struct options_name scan_orders[] = {
	{ "sequential", APF_SCAN_SEQUENTIAL }, { "random", APF_SCAN_RANDOM }, { 0 },
};

#define RUN(field) OPTIONS_FIELD(struct run_options, field)
#define CFG(field) OPTIONS_FIELD(struct run_options, cfg.field)

/* In --help's order but for the remote options (options_remote, listed
 * after these). */
static const struct options_spec run_spec[] = {
	{ "guest", .kind = OPTK_STRING, RUN(guest_path) },
	{ "kernel", .kind = OPTK_STRING, RUN(kernel_path) },
	{ "initrd", .kind = OPTK_STRING, RUN(initrd_path) },
	{ "console", .kind = OPTK_STRING, RUN(console_path) },
	{ "mem", .kind = OPTK_SIZE, CFG(mem_size), .min = 16ull << 20, .max = 2ull << 30,
	  .align = APF_PAGE_SIZE, .want = "a size from 16M to 2G" },
	{ "lazy", .kind = OPTK_SIZE, CFG(lazy_size), .max = 64ull << 30, .align = APF_LAZY_ALIGN,
	  .want = "a multiple of 2M up to 64G, such as 64M" },
	{ "source", .kind = OPTK_STRING, CFG(source), OPTIONS_GIVEN(struct run_options, source_given) },
	{ "latency", .kind = OPTK_CUSTOM, .parse = run_latency,
	  .want = "a duration up to 60s such as 1ms, or a range such as 200us-5ms" },
	{ "inflight", .kind = OPTK_UINT, CFG(max_inflight), .min = 1, .max = SOURCE_QUEUE_MAX,
	  .want = "1..1024" },
	{ "populate", .kind = OPTK_FLAG_WORD, .parse = run_populate, .names = populate_modes },
	{ "bulk-inflight", .kind = OPTK_UINT, CFG(bulk_inflight), .min = 1, .max = SOURCE_QUEUE_MAX - 1,
	  .want = "1..1023, below --inflight" },
	{ "record-ws", .kind = OPTK_STRING, CFG(record_ws_path) },
	{ "prefetch", .kind = OPTK_STRING, CFG(prefetch_ws_path) },
	{ "trace", .kind = OPTK_FLAG, CFG(trace) },
	{ "apf", .kind = OPTK_ENUM, CFG(apf), OPTIONS_GIVEN(struct run_options, apf_given),
	  .names = apf_modes, .want = "off, kernel or user" },
	{ "apf-threshold", .kind = OPTK_DURATION, CFG(apf_threshold_ns), .min = 1,
	  .max = APFVM_MAX_THRESHOLD_NS, .want = "a positive duration up to 60s such as 300us" },
	{ "apf-trap-acks", .kind = OPTK_FLAG, CFG(apf_trap_acks) },
	{ "workload", .kind = OPTK_CUSTOM, .parse = run_workload,
	  OPTIONS_GIVEN(struct run_options, workload_given) },
	{ "duration", .kind = OPTK_DURATION, CFG(duration_ns), .min = 1, .max = APFVM_MAX_DURATION_NS,
	  .want = "a positive duration up to 7 days such as 2s" },
	{ "scan-order", .kind = OPTK_ENUM, CFG(scan_order), .names = scan_orders,
	  .want = "sequential or random" },
	{ "scan-fraction", .kind = OPTK_FRACTION, CFG(scan_fraction_ppm), .min = 1,
	  .max = APF_SCAN_PPM, .want = OPTIONS_SCAN_FRACTION_WANT },
	{ "scan-drift", .kind = OPTK_FRACTION, CFG(scan_drift_ppm), .max = APF_SCAN_PPM,
	  .want = OPTIONS_SCAN_DRIFT_WANT },
	{ "seed", .kind = OPTK_CUSTOM, .parse = run_seed, .want = "an unsigned integer" },
	{ "hz", .kind = OPTK_UINT, CFG(timer_hz), .min = 10, .max = 1000, .want = "10..1000" },
	{ "cmdline", .kind = OPTK_CUSTOM, .parse = run_cmdline, .want = "at most 255 bytes" },
	{ "pin", .kind = OPTK_CUSTOM, .parse = run_pin },
	{ "timeout", .kind = OPTK_DURATION, CFG(timeout_ns), .max = APFVM_MAX_DURATION_NS,
	  .want = "a duration up to 7 days such as 60s" },
	{ "stats-json", .kind = OPTK_STRING, RUN(stats_json) },
	{ "snapshot", .kind = OPTK_STRING, CFG(snapshot_path) },
	{ "snapshot-at", .kind = OPTK_DURATION, CFG(snapshot_at_ns), .min = 1,
	  .max = APFVM_MAX_DURATION_NS, .want = "a positive duration up to 7 days such as 1500ms" },
	{ "snapshot-after-pages", .kind = OPTK_UINT, CFG(snapshot_after_pages), .min = 1,
	  .max = UINT64_MAX, .want = "a positive page count such as 1024" },
	{ "verbose", 'v', OPTK_FLAG, RUN(verbose) },
	{ "quiet", 'q', OPTK_FLAG, RUN(quiet) },
	{ "help", 'h', OPTK_HELP, RUN(help) },
	{ 0 },
};
_Static_assert(APF_CMDLINE_MAX == 256, "--cmdline's message says at most 255 bytes");

/* apfvm restore PATH: the snapshot fixes the guest, its memory and its
 * workload; the rest of run's options apply. */
static int restore_operands(int argc, char **argv, struct run_options *o, struct apf_err *e)
{
	static const char *const fixed[] = { "--guest", "--kernel", "--initrd", "--mem", "--lazy",
					     "--workload", "--duration", "--scan-order",
					     "--scan-fraction", "--scan-drift", "--hz",
					     "--cmdline", "--trace", "--seed" };
	struct apfvm_config *c = &o->cfg;

	if (optind != argc - 1)
		return apf_fail(e, -EINVAL, "restore needs one snapshot path (see 'apfvm restore --help')");
	c->restore_path = argv[optind];
	/* --source: the snapshot's memory from a page server or object
	 * storage instead of PATH.mem. */
	if (o->source_given)
		c->restore_memory = c->source;
	for (int i = 1; i < argc - 1; i++)
		for (size_t k = 0; k < sizeof(fixed) / sizeof(fixed[0]); k++)
			if (!strncmp(argv[i], fixed[k], strlen(fixed[k])) &&
			    (argv[i][strlen(fixed[k])] == '\0' || argv[i][strlen(fixed[k])] == '='))
				return apf_fail(e, -EINVAL, "%s does not apply to restore: the snapshot "
						"fixes it", fixed[k]);
	if (c->snapshot_path || c->snapshot_at_ns || c->snapshot_after_pages)
		return apf_fail(e, -EINVAL, "--snapshot with restore: not yet (a restored run "
				"cannot be snapshotted again)");
	return 0;
}

/* apfvm run: no operand, and options that go together. */
static int run_combination(int argc, char **argv, const struct run_options *o, struct apf_err *e)
{
	const struct apfvm_config *c = &o->cfg;

	if (optind < argc)
		return apf_fail(e, -EINVAL, "unexpected argument '%s' (see 'apfvm run --help')",
				argv[optind]);
	if (o->source_given && !c->lazy_size)
		return apf_fail(e, -EINVAL, "--source serves the lazy region, and there is none: "
				"give its size with --lazy");
	if (c->snapshot_at_ns && c->snapshot_after_pages)
		return apf_fail(e, -EINVAL, "--snapshot-at and --snapshot-after-pages exclude each other "
				"(one point to snapshot at)");
	if (!c->snapshot_path != !(c->snapshot_at_ns || c->snapshot_after_pages))
		return apf_fail(e, -EINVAL, "--snapshot goes with --snapshot-at or --snapshot-after-pages "
				"(where, and when)");
	if (o->kernel_path && o->guest_path)
		return apf_fail(e, -EINVAL, "--kernel and --guest exclude each other (one guest per run)");
	if (o->initrd_path && !o->kernel_path)
		return apf_fail(e, -EINVAL, "--initrd needs --kernel");
	/* Said, rather than silently ignored. */
	if (o->kernel_path && c->trace)
		return apf_fail(e, -EINVAL, "--trace with --kernel: the fault-path stamps need the "
				"reference guest's kernel");
	if (o->initrd_path && o->workload_given)
		return apf_fail(e, -EINVAL, "--workload with --initrd: the workloads run from "
				"apfvm's own initramfs (leave out --initrd)");
	return options_check_scan(c, e);
}

int options_parse_run(int argc, char **argv, struct run_options *o, struct apf_err *e)
{
	const struct options_table tables[] = { { run_spec, o }, { options_remote, &o->cfg } };
	struct apfvm_config *c = &o->cfg;
	int rc;

	memset(o, 0, sizeof(*o));
	apfvm_config_defaults(c);
	c->order_seed = c->latency_seed = 1;
	/* Same CPU (docs/architecture.md): the first this process may use. */
	c->vcpu_cpu = c->pager_cpu = options_default_cpu();
	rc = options_parse(argc, argv, "run", tables, 2, e);
	if (rc || o->help)
		return rc;
	if (!strcmp(argv[0], "restore"))
		return restore_operands(argc, argv, o, e);
	return run_combination(argc, argv, o, e);
}

static const struct options_spec mkimage_spec[] = {
	{ "size", .kind = OPTK_SIZE, OPTIONS_FIELD(struct mkimage_options, size), .min = 1,
	  .max = UINT64_MAX, .align = APF_PAGE_SIZE, .want = "a positive multiple of 4K such as 64M" },
	{ "seed", .kind = OPTK_UINT, OPTIONS_FIELD(struct mkimage_options, seed), .max = UINT64_MAX,
	  .want = "an unsigned integer" },
	{ "help", 'h', OPTK_HELP, OPTIONS_FIELD(struct mkimage_options, help) },
	{ 0 },
};

int options_parse_mkimage(int argc, char **argv, struct mkimage_options *o, struct apf_err *e)
{
	const struct options_table table = { mkimage_spec, o };
	int rc;

	memset(o, 0, sizeof(*o));
	o->seed = 1;
	rc = options_parse(argc, argv, "mkimage", &table, 1, e);
	if (rc || o->help)
		return rc;
	if (!o->size)
		return apf_fail(e, -EINVAL, "--size is required");
	if (optind != argc - 1)
		return apf_fail(e, -EINVAL, "expected exactly one FILE argument");
	o->path = argv[optind];
	return 0;
}

#define SERVE(field) OPTIONS_FIELD(struct serve_options, field)

static const struct options_spec serve_spec[] = {
	{ "image", .kind = OPTK_STRING, SERVE(image) },
	{ "snapshot", .kind = OPTK_STRING, SERVE(snapshot) },
	{ "listen", .kind = OPTK_STRING, SERVE(listen) },
	{ "max-count", .kind = OPTK_UINT, SERVE(cfg.max_count), .min = 1, .max = PGS_MAX_COUNT,
	  .want = "an integer in 1..64" },
	{ "max-clients", .kind = OPTK_UINT, SERVE(cfg.max_clients), .min = 1, .max = 4096,
	  .want = "an integer in 1..4096" },
	{ "max-per-peer", .kind = OPTK_UINT, SERVE(cfg.max_per_peer), .min = 1, .max = 4096,
	  OPTIONS_GIVEN(struct serve_options, per_peer_given), .want = "an integer in 1..4096" },
	{ "io-timeout", .kind = OPTK_DURATION, SERVE(cfg.io_timeout_ns), .min = 1000000ull,
	  .max = 3600000000000ull, .want = "a duration in 1ms..1h" },
	{ "idle-timeout", .kind = OPTK_DURATION, SERVE(cfg.idle_timeout_ns), .min = 1000000ull,
	  .max = 86400000000000ull, .want = "a duration in 1ms..24h" },
	{ "help", 'h', OPTK_HELP, SERVE(help) },
	{ 0 },
};

int options_parse_serve(int argc, char **argv, struct serve_options *o, struct apf_err *e)
{
	const struct options_table table = { serve_spec, o };
	int rc;

	memset(o, 0, sizeof(*o));
	page_server_config_default(&o->cfg);
	rc = options_parse(argc, argv, "serve", &table, 1, e);
	if (rc || o->help)
		return rc;
	if (!!o->image == !!o->snapshot || !o->listen)
		return apf_fail(e, -EINVAL, "--image or --snapshot, and --listen, are required (see "
				"'apfvm serve --help')");
	if (optind != argc)
		return apf_fail(e, -EINVAL, "unexpected argument '%s' (see 'apfvm serve --help')",
				argv[optind]);
	if (!o->per_peer_given && o->cfg.max_per_peer > o->cfg.max_clients)
		o->cfg.max_per_peer = o->cfg.max_clients;
	return page_server_config_check(&o->cfg, e);
}

/* --chunk: bytes on the command line, pages in pack_options. */
static int pack_chunk(const struct options_spec *s, const char *arg, void *base, struct apf_err *e)
{
	uint64_t v;

	if (units_parse_size(arg, &v) || !v || v % APF_PAGE_SIZE || v > (4ull << 20))
		return bad_value(s, arg, e);
	((struct pack_options *)base)->chunk_pages = (uint32_t)(v / APF_PAGE_SIZE);
	return 0;
}

#define PACK(field) OPTIONS_FIELD(struct pack_options, field)

static const struct options_spec pack_spec[] = {
	{ "chunk", .kind = OPTK_CUSTOM, .parse = pack_chunk, .want = "a multiple of 4K up to 4M" },
	{ "snapshot", .kind = OPTK_FLAG, PACK(snapshot) },
	{ "level", .kind = OPTK_UINT, PACK(level), .min = 1, .max = 19, .want = "1..19" },
	{ "s3-endpoint", .kind = OPTK_STRING, PACK(store.s3_endpoint) },
	{ "s3-region", .kind = OPTK_STRING, PACK(store.s3_region) },
	{ "help", 'h', OPTK_HELP, PACK(help) },
	{ 0 },
};

int options_parse_pack(int argc, char **argv, struct pack_options *o, struct apf_err *e)
{
	const struct options_table table = { pack_spec, o };
	int rc;

	memset(o, 0, sizeof(*o));
	o->chunk_pages = 64;
	o->level = 3;
	rc = options_parse(argc, argv, "pack", &table, 1, e);
	if (rc || o->help)
		return rc;
	if (argc - optind != 2)
		return apf_fail(e, -EINVAL, "expected IMAGE and DEST (see 'apfvm pack --help')");
	o->image = argv[optind];
	o->dest = argv[optind + 1];
	return 0;
}
