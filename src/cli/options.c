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
	"  --populate            install the whole lazy region before the guest starts\n"
	"                        (the resident baseline: no fault is ever taken)\n"
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
	"  --seed N              seed of the random scan order and latencies (default 1)\n"
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
	"  --populate            install all of the memory before the guest goes on (an eager\n"
	"                        restore: the baseline the lazy one is measured against)\n"
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
	"  --max-per-peer N    of them from one address (default 16, at most --max-clients)\n"
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

enum {
	OPT_GUEST = 256, OPT_KERNEL, OPT_INITRD, OPT_MEM, OPT_LAZY, OPT_SOURCE, OPT_LATENCY, OPT_INFLIGHT, OPT_APF,
	OPT_WORKLOAD, OPT_DURATION, OPT_SCAN_ORDER, OPT_SEED, OPT_HZ, OPT_CMDLINE, OPT_PIN,
	OPT_TIMEOUT, OPT_STATS_JSON, OPT_SIZE, OPT_APF_THRESHOLD, OPT_POPULATE, OPT_TRACE,
	OPT_CONSOLE, OPT_APF_TRAP_ACKS, OPT_SNAPSHOT, OPT_SNAPSHOT_AT, OPT_SNAPSHOT_AFTER_PAGES, OPT_IMAGE, OPT_LISTEN,
	OPT_MAX_COUNT, OPT_CHUNK, OPT_LEVEL, OPT_MAX_CLIENTS, OPT_MAX_PER_PEER, OPT_IO_TIMEOUT,
	OPT_IDLE_TIMEOUT,
};
_Static_assert((int)OPT_IDLE_TIMEOUT < (int)OPT_FETCH_TIMEOUT, "option codes overlap");

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

static int bad_value(struct apf_err *e, const char *opt, const char *val, const char *want)
{
	return apf_fail(e, -EINVAL, "%s: invalid value '%s' (%s)", opt, val, want);
}

int options_parse_run(int argc, char **argv, struct run_options *o, struct apf_err *e)
{
	static const struct option longopts[] = {
		{ "guest", required_argument, NULL, OPT_GUEST },
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "console", required_argument, NULL, OPT_CONSOLE },
		{ "mem", required_argument, NULL, OPT_MEM },
		{ "lazy", required_argument, NULL, OPT_LAZY },
		{ "source", required_argument, NULL, OPT_SOURCE },
		{ "latency", required_argument, NULL, OPT_LATENCY },
		{ "inflight", required_argument, NULL, OPT_INFLIGHT },
		OPTIONS_REMOTE_LONGOPTS,
		{ "populate", no_argument, NULL, OPT_POPULATE },
		{ "trace", no_argument, NULL, OPT_TRACE },
		{ "apf", required_argument, NULL, OPT_APF },
		{ "apf-threshold", required_argument, NULL, OPT_APF_THRESHOLD },
		{ "apf-trap-acks", no_argument, NULL, OPT_APF_TRAP_ACKS },
		{ "workload", required_argument, NULL, OPT_WORKLOAD },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "scan-order", required_argument, NULL, OPT_SCAN_ORDER },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "hz", required_argument, NULL, OPT_HZ },
		{ "cmdline", required_argument, NULL, OPT_CMDLINE },
		{ "pin", required_argument, NULL, OPT_PIN },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "stats-json", required_argument, NULL, OPT_STATS_JSON },
		{ "snapshot", required_argument, NULL, OPT_SNAPSHOT },
		{ "snapshot-at", required_argument, NULL, OPT_SNAPSHOT_AT },
		{ "snapshot-after-pages", required_argument, NULL, OPT_SNAPSHOT_AFTER_PAGES },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct apfvm_config *c = &o->cfg;
	int ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t v;
	int opt, rc;

	memset(o, 0, sizeof(*o));
	apfvm_config_defaults(c);
	c->order_seed = c->latency_seed = 1;
	/* Same CPU (docs/architecture.md): the first this process may use. */
	c->vcpu_cpu = c->pager_cpu = options_default_cpu();
	optind = 0; /* full getopt reset (GNU) */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":vqh", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_KERNEL:
			o->kernel_path = optarg;
			break;
		case OPT_CONSOLE:
			o->console_path = optarg;
			break;
		case OPT_INITRD:
			o->initrd_path = optarg;
			break;
		case OPT_GUEST:
			o->guest_path = optarg;
			break;
		case OPT_MEM:
			if (units_parse_size(optarg, &c->mem_size) || c->mem_size < (16ull << 20) ||
			    c->mem_size > (2ull << 30) || c->mem_size % APF_PAGE_SIZE)
				return bad_value(e, "--mem", optarg, "a size from 16M to 2G");
			break;
		case OPT_LAZY:
			if (units_parse_size(optarg, &c->lazy_size) || c->lazy_size % APF_LAZY_ALIGN ||
			    c->lazy_size > (64ull << 30))
				return bad_value(e, "--lazy", optarg, "a multiple of 2M up to 64G, such as 64M");
			break;
		case OPT_SOURCE:
			c->source = optarg;
			o->source_given = true;
			break;
		case OPT_LATENCY:
			if (units_parse_duration_range(optarg, &c->latency_min_ns, &c->latency_max_ns) ||
			    c->latency_max_ns > APFVM_MAX_LATENCY_NS)
				return bad_value(e, "--latency", optarg,
						 "a duration up to 60s such as 1ms, or a range such as 200us-5ms");
			break;
		case OPT_TRACE:
			c->trace = true;
			break;
		case OPT_POPULATE:
			c->populate = true;
			break;
		case OPT_FETCH_TIMEOUT:
		case OPT_FETCH_TRIES:
		case OPT_S3_ENDPOINT:
		case OPT_S3_REGION:
		case OPT_CACHE_SIZE:
		case OPT_CACHE_DIR:
		case OPT_CACHE_DIR_SIZE:
			if ((rc = options_parse_remote(opt, optarg, c, e)))
				return rc;
			break;
		case OPT_INFLIGHT:
			if (units_parse_u64(optarg, &v) || v < 1 || v > SOURCE_QUEUE_MAX)
				return bad_value(e, "--inflight", optarg, "1..1024");
			c->max_inflight = (unsigned)v;
			break;
		case OPT_APF:
			o->apf_given = true;
			if (!strcmp(optarg, "off"))
				c->apf = APFVM_APF_OFF;
			else if (!strcmp(optarg, "kernel"))
				c->apf = APFVM_APF_KERNEL;
			else if (!strcmp(optarg, "user"))
				c->apf = APFVM_APF_USER;
			else
				return bad_value(e, "--apf", optarg, "off, kernel or user");
			break;
		case OPT_APF_TRAP_ACKS:
			c->apf_trap_acks = true;
			break;
		case OPT_APF_THRESHOLD:
			if (units_parse_duration(optarg, &c->apf_threshold_ns) || !c->apf_threshold_ns ||
			    c->apf_threshold_ns > APFVM_MAX_THRESHOLD_NS)
				return bad_value(e, "--apf-threshold", optarg,
						 "a positive duration up to 60s such as 300us");
			break;
		case OPT_WORKLOAD:
			o->workload_given = true;
			rc = options_parse_workload(optarg, c, e);
			if (rc)
				return rc;
			break;
		case OPT_DURATION:
			if (units_parse_duration(optarg, &c->duration_ns) || !c->duration_ns ||
			    c->duration_ns > APFVM_MAX_DURATION_NS)
				return bad_value(e, "--duration", optarg,
						 "a positive duration up to 7 days such as 2s");
			break;
		case OPT_SCAN_ORDER:
			if (!strcmp(optarg, "sequential"))
				c->scan_order = APF_SCAN_SEQUENTIAL;
			else if (!strcmp(optarg, "random"))
				c->scan_order = APF_SCAN_RANDOM;
			else
				return bad_value(e, "--scan-order", optarg, "sequential or random");
			break;
		case OPT_SEED:
			if (units_parse_u64(optarg, &v))
				return bad_value(e, "--seed", optarg, "an unsigned integer");
			c->order_seed = c->latency_seed = v;
			break;
		case OPT_HZ:
			if (units_parse_u64(optarg, &v) || v < 10 || v > 1000)
				return bad_value(e, "--hz", optarg, "10..1000");
			c->timer_hz = (unsigned)v;
			break;
		case OPT_CMDLINE:
			if (strlen(optarg) >= APF_CMDLINE_MAX)
				return bad_value(e, "--cmdline", optarg, "at most 255 bytes");
			strcpy(c->cmdline, optarg);
			break;
		case OPT_PIN:
			rc = options_parse_pin(optarg, ncpus, &c->vcpu_cpu, &c->pager_cpu, e);
			if (rc)
				return rc;
			break;
		case OPT_TIMEOUT:
			if (units_parse_duration(optarg, &c->timeout_ns) ||
			    c->timeout_ns > APFVM_MAX_DURATION_NS)
				return bad_value(e, "--timeout", optarg, "a duration up to 7 days such as 60s");
			break;
		case OPT_STATS_JSON:
			o->stats_json = optarg;
			break;
		case OPT_SNAPSHOT:
			c->snapshot_path = optarg;
			break;
		case OPT_SNAPSHOT_AT:
			if (units_parse_duration(optarg, &c->snapshot_at_ns) || !c->snapshot_at_ns ||
			    c->snapshot_at_ns > APFVM_MAX_DURATION_NS)
				return bad_value(e, "--snapshot-at", optarg,
						 "a positive duration up to 7 days such as 1500ms");
			break;
		case OPT_SNAPSHOT_AFTER_PAGES:
			if (units_parse_u64(optarg, &c->snapshot_after_pages) || !c->snapshot_after_pages)
				return bad_value(e, "--snapshot-after-pages", optarg,
						 "a positive page count such as 1024");
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			o->help = true;
			return 0;
		case ':':
			return apf_fail(e, -EINVAL, "option '%s' needs a value", argv[optind - 1]);
		default:
			return options_unknown(e, argc, argv, "run", longopts);
		}
	}
	if (!strcmp(argv[0], "restore")) {
		/* apfvm restore PATH: the snapshot fixes the guest, its memory
		 * and its workload; the rest of run's options apply. */
		if (optind != argc - 1)
			return apf_fail(e, -EINVAL, "restore needs one snapshot path (see 'apfvm restore --help')");
		c->restore_path = argv[optind];
		static const char *const fixed[] = { "--guest", "--kernel", "--initrd", "--mem", "--lazy",
						     "--workload", "--duration",
						     "--scan-order", "--hz", "--cmdline", "--trace",
						     "--seed" };
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
	return 0;
}

int options_parse_mkimage(int argc, char **argv, struct mkimage_options *o, struct apf_err *e)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	int opt;

	memset(o, 0, sizeof(*o));
	o->seed = 1;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_SIZE:
			if (units_parse_size(optarg, &o->size) || !o->size || o->size % APF_PAGE_SIZE)
				return bad_value(e, "--size", optarg, "a positive multiple of 4K such as 64M");
			break;
		case OPT_SEED:
			if (units_parse_u64(optarg, &o->seed))
				return bad_value(e, "--seed", optarg, "an unsigned integer");
			break;
		case 'h':
			o->help = true;
			return 0;
		case ':':
			return apf_fail(e, -EINVAL, "option '%s' needs a value", argv[optind - 1]);
		default:
			return options_unknown(e, argc, argv, "mkimage", longopts);
		}
	}
	if (!o->size)
		return apf_fail(e, -EINVAL, "--size is required");
	if (optind != argc - 1)
		return apf_fail(e, -EINVAL, "expected exactly one FILE argument");
	o->path = argv[optind];
	return 0;
}

int options_parse_serve(int argc, char **argv, struct serve_options *o, struct apf_err *e)
{
	static const struct option longopts[] = {
		{ "image", required_argument, NULL, OPT_IMAGE },
		{ "snapshot", required_argument, NULL, OPT_SNAPSHOT },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "max-count", required_argument, NULL, OPT_MAX_COUNT },
		{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
		{ "max-per-peer", required_argument, NULL, OPT_MAX_PER_PEER },
		{ "io-timeout", required_argument, NULL, OPT_IO_TIMEOUT },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	uint64_t v;
	int opt;
	bool per_peer_given = false;

	memset(o, 0, sizeof(*o));
	page_server_config_default(&o->cfg);
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_IMAGE:
			o->image = optarg;
			break;
		case OPT_SNAPSHOT:
			o->snapshot = optarg;
			break;
		case OPT_LISTEN:
			o->listen = optarg;
			break;
		case OPT_MAX_COUNT:
			if (units_parse_u64(optarg, &v) || v < 1 || v > PGS_MAX_COUNT)
				return bad_value(e, "--max-count", optarg, "an integer in 1..64");
			o->cfg.max_count = (uint32_t)v;
			break;
		case OPT_MAX_CLIENTS:
			if (units_parse_u64(optarg, &v) || v < 1 || v > 4096)
				return bad_value(e, "--max-clients", optarg, "an integer in 1..4096");
			o->cfg.max_clients = (unsigned)v;
			break;
		case OPT_MAX_PER_PEER:
			if (units_parse_u64(optarg, &v) || v < 1 || v > 4096)
				return bad_value(e, "--max-per-peer", optarg, "an integer in 1..4096");
			o->cfg.max_per_peer = (unsigned)v;
			per_peer_given = true;
			break;
		case OPT_IO_TIMEOUT:
			if (units_parse_duration(optarg, &o->cfg.io_timeout_ns) ||
			    o->cfg.io_timeout_ns < 1000000ull || o->cfg.io_timeout_ns > 3600000000000ull)
				return bad_value(e, "--io-timeout", optarg, "a duration in 1ms..1h");
			break;
		case OPT_IDLE_TIMEOUT:
			if (units_parse_duration(optarg, &o->cfg.idle_timeout_ns) ||
			    o->cfg.idle_timeout_ns < 1000000ull ||
			    o->cfg.idle_timeout_ns > 86400000000000ull)
				return bad_value(e, "--idle-timeout", optarg, "a duration in 1ms..24h");
			break;
		case 'h':
			o->help = true;
			return 0;
		case ':':
			return apf_fail(e, -EINVAL, "option '%s' needs a value", argv[optind - 1]);
		default:
			return options_unknown(e, argc, argv, "serve", longopts);
		}
	}
	if (!!o->image == !!o->snapshot || !o->listen)
		return apf_fail(e, -EINVAL, "--image or --snapshot, and --listen, are required (see "
				"'apfvm serve --help')");
	if (optind != argc)
		return apf_fail(e, -EINVAL, "unexpected argument '%s' (see 'apfvm serve --help')",
				argv[optind]);
	if (!per_peer_given && o->cfg.max_per_peer > o->cfg.max_clients)
		o->cfg.max_per_peer = o->cfg.max_clients;
	return page_server_config_check(&o->cfg, e);
}

int options_parse_pack(int argc, char **argv, struct pack_options *o, struct apf_err *e)
{
	static const struct option longopts[] = {
		{ "chunk", required_argument, NULL, OPT_CHUNK },
		{ "snapshot", no_argument, NULL, OPT_SNAPSHOT },
		{ "level", required_argument, NULL, OPT_LEVEL },
		{ "s3-endpoint", required_argument, NULL, OPT_S3_ENDPOINT },
		{ "s3-region", required_argument, NULL, OPT_S3_REGION },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	uint64_t v;
	int opt;

	memset(o, 0, sizeof(*o));
	o->chunk_pages = 64;
	o->level = 3;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_CHUNK:
			if (units_parse_size(optarg, &v) || !v || v % APF_PAGE_SIZE || v > (4ull << 20))
				return bad_value(e, "--chunk", optarg, "a multiple of 4K up to 4M");
			o->chunk_pages = (uint32_t)(v / APF_PAGE_SIZE);
			break;
		case OPT_LEVEL:
			if (units_parse_u64(optarg, &v) || v < 1 || v > 19)
				return bad_value(e, "--level", optarg, "1..19");
			o->level = (int)v;
			break;
		case OPT_S3_ENDPOINT:
			o->store.s3_endpoint = optarg;
			break;
		case OPT_S3_REGION:
			o->store.s3_region = optarg;
			break;
		case OPT_SNAPSHOT:
			o->snapshot = true;
			break;
		case 'h':
			o->help = true;
			return 0;
		case ':':
			return apf_fail(e, -EINVAL, "option '%s' needs a value", argv[optind - 1]);
		default:
			return options_unknown(e, argc, argv, "pack", longopts);
		}
	}
	if (argc - optind != 2)
		return apf_fail(e, -EINVAL, "expected IMAGE and DEST (see 'apfvm pack --help')");
	o->image = argv[optind];
	o->dest = argv[optind + 1];
	return 0;
}

int options_parse_remote(int opt, const char *arg, struct apfvm_config *c, struct apf_err *e)
{
	uint64_t v;

	switch (opt) {
	case OPT_FETCH_TIMEOUT:
		if (units_parse_duration(arg, &c->fetch_timeout_ns) || c->fetch_timeout_ns < 1000000 ||
		    c->fetch_timeout_ns > SOURCE_NET_TIMEOUT_MAX_NS)
			return bad_value(e, "--fetch-timeout", arg, "a duration from 1ms to 600s such as 5s");
		return 0;
	case OPT_FETCH_TRIES:
		if (units_parse_u64(arg, &v) || v < 1 || v > SOURCE_NET_TRIES_MAX)
			return bad_value(e, "--fetch-tries", arg, "1..100");
		c->fetch_tries = (unsigned)v;
		return 0;
	case OPT_S3_ENDPOINT:
		c->s3_endpoint = arg;
		return 0;
	case OPT_S3_REGION:
		c->s3_region = arg;
		return 0;
	case OPT_CACHE_SIZE:
		if (units_parse_size(arg, &c->object_cache_bytes) ||
		    c->object_cache_bytes < (1ull << 20) || c->object_cache_bytes > (64ull << 30))
			return bad_value(e, "--cache-size", arg, "a size from 1M to 64G");
		return 0;
	case OPT_CACHE_DIR:
		c->object_cache_dir = arg;
		return 0;
	case OPT_CACHE_DIR_SIZE:
		if (units_parse_size(arg, &c->object_cache_dir_bytes) ||
		    c->object_cache_dir_bytes < (1ull << 20) || c->object_cache_dir_bytes > (1ull << 50))
			return bad_value(e, "--cache-dir-size", arg, "a size from 1M, such as 4G");
		return 0;
	}
	return 1;
}
