/*
 * options: the `apfvm run` / `apfvm mkimage` command lines, parsed without
 * side effects.  Every rejection must come with a message naming the
 * option at fault.
 */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "cli/options.h"
#include "test.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Runs options_parse_run on argv; returns its rc with the message in *e. */
static int parse_run(int argc, char **argv, struct run_options *o, struct apf_err *e)
{
	memset(e, 0, sizeof(*e));
	return options_parse_run(argc, argv, o, e);
}

/* Fails the test unless argv is rejected with -EINVAL and a message
 * containing `needle`. */
#define CHECK_RUN_REJECTS(argv, needle)                                                  \
	do {                                                                             \
		struct run_options o_;                                                   \
		struct apf_err e_;                                                       \
		int rc_ = parse_run(ARGC(argv), argv, &o_, &e_);                         \
		if (rc_ != -EINVAL)                                                      \
			TEST_FAIL_("%s:%d: rc %d, expected -EINVAL", __FILE__, __LINE__, rc_); \
		else if (!e_.msg[0] || !strstr(e_.msg, needle))                          \
			TEST_FAIL_("%s:%d: message \"%s\" does not mention \"%s\"", __FILE__,  \
				   __LINE__, e_.msg, needle);                            \
	} while (0)

static void config_with_marker(struct apfvm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->ntasks = 99;
	c->tasks[0].kind = 77;
}

/* ------------------------------------------------------------------ */
/* --workload                                                          */

TEST(workload_two_kinds)
{
	struct apfvm_config c;
	struct apf_err e = { "" };

	config_with_marker(&c);
	REQUIRE(options_parse_workload("compute:1,scan:1", &c, &e) == 0);
	CHECK_EQ_U(c.ntasks, 2);
	CHECK_EQ_U(c.tasks[0].kind, APF_TASK_COMPUTE);
	CHECK_EQ_U(c.tasks[0].index, 0);
	CHECK_EQ_U(c.tasks[0].count, 1);
	CHECK_EQ_U(c.tasks[1].kind, APF_TASK_SCAN);
	CHECK_EQ_U(c.tasks[1].index, 0);
	CHECK_EQ_U(c.tasks[1].count, 1);
}

TEST(workload_count_gives_indices)
{
	struct apfvm_config c;
	struct apf_err e = { "" };

	config_with_marker(&c);
	REQUIRE(options_parse_workload("scan:3", &c, &e) == 0);
	CHECK_EQ_U(c.ntasks, 3);
	for (unsigned i = 0; i < 3; i++) {
		CHECK_EQ_U(c.tasks[i].kind, APF_TASK_SCAN);
		CHECK_EQ_U(c.tasks[i].index, i);
		CHECK_EQ_U(c.tasks[i].count, 3);
	}

	config_with_marker(&c);
	REQUIRE(options_parse_workload("scan:2,compute:2", &c, &e) == 0);
	CHECK_EQ_U(c.ntasks, 4);
	CHECK_EQ_U(c.tasks[1].kind, APF_TASK_SCAN);
	CHECK_EQ_U(c.tasks[1].index, 1);
	CHECK_EQ_U(c.tasks[2].kind, APF_TASK_COMPUTE);
	CHECK_EQ_U(c.tasks[2].index, 0);
	CHECK_EQ_U(c.tasks[3].index, 1);
	CHECK_EQ_U(c.tasks[3].count, 2);
}

TEST(workload_default_count_is_one)
{
	struct apfvm_config c;
	struct apf_err e = { "" };

	config_with_marker(&c);
	REQUIRE(options_parse_workload("compute", &c, &e) == 0);
	CHECK_EQ_U(c.ntasks, 1);
	CHECK_EQ_U(c.tasks[0].kind, APF_TASK_COMPUTE);
	CHECK_EQ_U(c.tasks[0].index, 0);
	CHECK_EQ_U(c.tasks[0].count, 1);
}

TEST(workload_sixteen_tasks_fit)
{
	struct apfvm_config c;
	struct apf_err e = { "" };

	config_with_marker(&c);
	REQUIRE(options_parse_workload("compute:8,scan:8", &c, &e) == 0);
	CHECK_EQ_U(c.ntasks, APF_MAX_TASKS);
	CHECK_EQ_U(c.tasks[15].kind, APF_TASK_SCAN);
	CHECK_EQ_U(c.tasks[15].index, 7);

	config_with_marker(&c);
	REQUIRE(options_parse_workload("scan:16", &c, &e) == 0);
	CHECK_EQ_U(c.ntasks, 16);
}

TEST(workload_rejections_leave_config_alone)
{
	static const char *const bad[] = {
		"foo:1", "scan:0", "scan:x", "", "compute:1,compute:2", "scan,scan",
		"compute:9,scan:8", "scan:17", "scan:-1", "scan:", ":1", "Compute", ",",
		"scan:99999999999999999999",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct apfvm_config c;
		struct apf_err e = { "" };
		int rc;

		config_with_marker(&c);
		rc = options_parse_workload(bad[i], &c, &e);
		if (rc != -EINVAL || !strstr(e.msg, "--workload"))
			TEST_FAIL_("workload \"%s\": rc %d, msg \"%s\"; expected -EINVAL naming --workload",
				   bad[i], rc, e.msg);
		else if (c.ntasks != 99 || c.tasks[0].kind != 77)
			TEST_FAIL_("workload \"%s\" was rejected but changed the config", bad[i]);
	}
}

TEST(workload_messages_name_the_culprit)
{
	struct apfvm_config c;
	struct apf_err e = { "" };

	config_with_marker(&c);
	CHECK(options_parse_workload("compute,foo:2", &c, &e) == -EINVAL);
	CHECK(strstr(e.msg, "foo") != NULL);
	CHECK(options_parse_workload("scan:1,scan:1", &c, &e) == -EINVAL);
	CHECK(strstr(e.msg, "twice") != NULL);
	CHECK(options_parse_workload("compute:10,scan:10", &c, &e) == -EINVAL);
	CHECK(strstr(e.msg, "16") != NULL);
}

/* ------------------------------------------------------------------ */
/* --pin                                                               */

static int pin(const char *spec, int ncpus, int *v, int *p, struct apf_err *e)
{
	*v = *p = 1234;
	memset(e, 0, sizeof(*e));
	return options_parse_pin(spec, ncpus, v, p, e);
}

TEST(pin_accepted_forms)
{
	struct apf_err e;
	int v, p;

	CHECK_EQ_U(pin("none", 2, &v, &p, &e), 0);
	CHECK(v == -1 && p == -1);
	CHECK_EQ_U(pin("same", 2, &v, &p, &e), 0);
	CHECK(v == 0 && p == 0);
	CHECK_EQ_U(pin("same:1", 2, &v, &p, &e), 0);
	CHECK(v == 1 && p == 1);
	CHECK_EQ_U(pin("split", 2, &v, &p, &e), 0);
	CHECK(v == 0 && p == 1);
	CHECK_EQ_U(pin("0,1", 2, &v, &p, &e), 0);
	CHECK(v == 0 && p == 1);
	CHECK_EQ_U(pin("1,0", 2, &v, &p, &e), 0);
	CHECK(v == 1 && p == 0);
	CHECK_EQ_U(pin("7,7", 8, &v, &p, &e), 0);
	CHECK(v == 7 && p == 7);
	CHECK_EQ_U(pin("none", 1, &v, &p, &e), 0);
	CHECK(v == -1 && p == -1);
}

TEST(pin_rejections_name_the_option)
{
	static const char *const bad[] = {
		"3", "5,0", "0,5", "0,2", "same:2", "same:", "same:x", "", "0,", ",1", "a,b",
		"splitx", "-1,0", "0,1,0", "nonesuch",
	};
	struct apf_err e;
	int v, p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = pin(bad[i], 2, &v, &p, &e);
		if (rc != -EINVAL || !strstr(e.msg, "--pin"))
			TEST_FAIL_("pin \"%s\" (2 cpus): rc %d, msg \"%s\"; expected -EINVAL naming --pin",
				   bad[i], rc, e.msg);
	}
}

TEST(pin_split_needs_two_cpus)
{
	struct apf_err e;
	int v, p;

	CHECK(pin("split", 1, &v, &p, &e) == -EINVAL);
	CHECK(strstr(e.msg, "--pin") != NULL);
	CHECK(strstr(e.msg, "two CPUs") != NULL);
	CHECK(pin("0,1", 1, &v, &p, &e) == -EINVAL);
	CHECK(pin("same:1", 1, &v, &p, &e) == -EINVAL);
}

/* ------------------------------------------------------------------ */
/* apfvm run                                                           */

TEST(run_defaults)
{
	char *argv[] = { "run" };
	struct run_options o;
	struct apf_err e;

	memset(&o, 0xa5, sizeof(o));
	REQUIRE(parse_run(ARGC(argv), argv, &o, &e) == 0);
	CHECK_EQ_U(o.cfg.mem_size, 64ull << 20);
	CHECK_EQ_U(o.cfg.lazy_size, 0);
	REQUIRE(o.cfg.source != NULL);
	CHECK(!strcmp(o.cfg.source, "zero"));
	CHECK_EQ_U(o.cfg.latency_min_ns, 0);
	CHECK_EQ_U(o.cfg.latency_max_ns, 0);
	CHECK_EQ_U(o.cfg.duration_ns, 2000000000ull);
	CHECK_EQ_U(o.cfg.timer_hz, 100);
	CHECK_EQ_U(o.cfg.max_inflight, 64);
	CHECK_EQ_U(o.cfg.apf, APFVM_APF_OFF);
	CHECK_EQ_U(o.cfg.ntasks, 1);
	CHECK_EQ_U(o.cfg.tasks[0].kind, APF_TASK_COMPUTE);
	CHECK_EQ_U(o.cfg.tasks[0].count, 1);
	CHECK_EQ_U(o.cfg.scan_order, APF_SCAN_SEQUENTIAL);
	CHECK_EQ_U(o.cfg.scan_fraction_ppm, APF_SCAN_PPM);
	CHECK_EQ_U(o.cfg.scan_drift_ppm, 0);
	CHECK_EQ_U(o.cfg.order_seed, 1);
	CHECK_EQ_U(o.cfg.latency_seed, 1);
	CHECK_EQ_U(o.cfg.timeout_ns, 0);
	CHECK(o.cfg.vcpu_cpu == 0 && o.cfg.pager_cpu == 0); /* documented default: same:0 */
	CHECK_EQ_U(o.cfg.cmdline[0], '\0');
	CHECK(o.cfg.guest_elf != NULL && o.cfg.guest_elf_len > 0);
	CHECK(o.guest_path == NULL);
	CHECK(o.stats_json == NULL);
	CHECK(!o.verbose && !o.quiet && !o.help);
}

TEST(run_full_command_line)
{
	int ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	char *pin_spec = ncpus >= 2 ? "split" : "same:0";
	char *argv[] = {
		"run", "--lazy", "64M", "--source", "file:/x", "--latency", "200us-5ms",
		"--workload", "compute:1,scan:1", "--duration", "1s", "--stats-json", "S",
		"--scan-order", "random", "--seed", "7", "--hz", "250", "--cmdline", "no-apf quiet",
		"--timeout", "30s", "--inflight", "16", "--pin", pin_spec, "-v", "-q",
		"--mem", "128M", "--apf", "off", "--guest", "/g.elf",
	};
	struct run_options o;
	struct apf_err e;

	int rc = parse_run(ARGC(argv), argv, &o, &e);
	if (rc) {
		TEST_FAIL_("rc %d: %s", rc, e.msg);
		return;
	}
	CHECK_EQ_U(o.cfg.mem_size, 128ull << 20);
	CHECK_EQ_U(o.cfg.lazy_size, 64ull << 20);
	CHECK(o.cfg.source && !strcmp(o.cfg.source, "file:/x"));
	CHECK_EQ_U(o.cfg.latency_min_ns, 200000);
	CHECK_EQ_U(o.cfg.latency_max_ns, 5000000);
	CHECK_EQ_U(o.cfg.ntasks, 2);
	CHECK_EQ_U(o.cfg.tasks[0].kind, APF_TASK_COMPUTE);
	CHECK_EQ_U(o.cfg.tasks[1].kind, APF_TASK_SCAN);
	CHECK_EQ_U(o.cfg.duration_ns, 1000000000ull);
	CHECK(o.stats_json && !strcmp(o.stats_json, "S"));
	CHECK_EQ_U(o.cfg.scan_order, APF_SCAN_RANDOM);
	CHECK_EQ_U(o.cfg.order_seed, 7);
	CHECK_EQ_U(o.cfg.latency_seed, 7);
	CHECK_EQ_U(o.cfg.timer_hz, 250);
	CHECK(!strcmp(o.cfg.cmdline, "no-apf quiet"));
	CHECK_EQ_U(o.cfg.timeout_ns, 30000000000ull);
	CHECK_EQ_U(o.cfg.max_inflight, 16);
	if (ncpus >= 2)
		CHECK(o.cfg.vcpu_cpu == 0 && o.cfg.pager_cpu == 1);
	CHECK(o.verbose);
	CHECK(o.quiet);
	CHECK(!o.help);
	CHECK_EQ_U(o.cfg.apf, APFVM_APF_OFF);
	CHECK(o.guest_path && !strcmp(o.guest_path, "/g.elf"));
}

TEST(run_equals_syntax_and_bundled_short_flags)
{
	char *argv[] = { "run", "--lazy=4M", "--hz=1000", "-vq", "--pin=none", "--latency=0" };
	struct run_options o;
	struct apf_err e;

	int rc = parse_run(ARGC(argv), argv, &o, &e);
	if (rc) {
		TEST_FAIL_("rc %d: %s", rc, e.msg);
		return;
	}
	CHECK_EQ_U(o.cfg.lazy_size, 4ull << 20);
	CHECK_EQ_U(o.cfg.timer_hz, 1000);
	CHECK(o.verbose && o.quiet);
	CHECK(o.cfg.vcpu_cpu == -1 && o.cfg.pager_cpu == -1);
	CHECK_EQ_U(o.cfg.latency_max_ns, 0);
}

TEST(run_boundaries_accepted)
{
	char cmdline[APF_CMDLINE_MAX];
	memset(cmdline, 'c', sizeof(cmdline) - 1);
	cmdline[sizeof(cmdline) - 1] = '\0';
	char *argv[] = { "run", "--hz", "10", "--inflight", "1024", "--cmdline", cmdline,
			 "--seed", "0x10", "--duration", "1ns" };
	struct run_options o;
	struct apf_err e;

	int rc = parse_run(ARGC(argv), argv, &o, &e);
	if (rc) {
		TEST_FAIL_("rc %d: %s", rc, e.msg);
		return;
	}
	CHECK_EQ_U(o.cfg.timer_hz, 10);
	CHECK_EQ_U(o.cfg.max_inflight, 1024);
	CHECK_EQ_U(strlen(o.cfg.cmdline), APF_CMDLINE_MAX - 1);
	CHECK_EQ_U(o.cfg.order_seed, 16);
	CHECK_EQ_U(o.cfg.duration_ns, 1);
}

TEST(run_help_flag)
{
	char *argv[] = { "run", "--help" };
	char *argv2[] = { "run", "-h" };
	struct run_options o;
	struct apf_err e;

	CHECK(parse_run(ARGC(argv), argv, &o, &e) == 0 && o.help);
	CHECK(parse_run(ARGC(argv2), argv2, &o, &e) == 0 && o.help);
	CHECK(strstr(options_run_usage, "--lazy") != NULL);
}

TEST(run_rejects_bad_values_naming_the_option)
{
	char *mem[] = { "run", "--mem", "12Q" };
	char *lazy_odd[] = { "run", "--lazy", "3M" };
	char *lazy_bad[] = { "run", "--lazy", "lots" };
	char *latency[] = { "run", "--latency", "5" };
	char *latency_inv[] = { "run", "--latency", "5ms-1ms" };
	char *duration[] = { "run", "--duration", "0" };
	char *duration_bad[] = { "run", "--duration", "2" };
	char *apf[] = { "run", "--apf", "bogus" };
	char *hz_low[] = { "run", "--hz", "5" };
	char *hz_high[] = { "run", "--hz", "1001" };
	char *inflight0[] = { "run", "--inflight", "0" };
	char *inflight_big[] = { "run", "--inflight", "1025" };
	char *order[] = { "run", "--scan-order", "sideways" };
	char *seed[] = { "run", "--seed", "-3" };
	char *timeout[] = { "run", "--timeout", "30" };
	char *workload[] = { "run", "--workload", "foo:1" };

	CHECK_RUN_REJECTS(mem, "--mem");
	CHECK_RUN_REJECTS(mem, "12Q");
	CHECK_RUN_REJECTS(lazy_odd, "--lazy");
	CHECK_RUN_REJECTS(lazy_odd, "2M");
	CHECK_RUN_REJECTS(lazy_bad, "--lazy");
	CHECK_RUN_REJECTS(latency, "--latency");
	CHECK_RUN_REJECTS(latency_inv, "--latency");
	CHECK_RUN_REJECTS(duration, "--duration");
	CHECK_RUN_REJECTS(duration_bad, "--duration");
	CHECK_RUN_REJECTS(apf, "--apf");
	CHECK_RUN_REJECTS(apf, "bogus");
	CHECK_RUN_REJECTS(hz_low, "--hz");
	CHECK_RUN_REJECTS(hz_high, "--hz");
	CHECK_RUN_REJECTS(inflight0, "--inflight");
	CHECK_RUN_REJECTS(inflight_big, "--inflight");
	CHECK_RUN_REJECTS(order, "--scan-order");
	CHECK_RUN_REJECTS(seed, "--seed");
	CHECK_RUN_REJECTS(timeout, "--timeout");
	CHECK_RUN_REJECTS(workload, "--workload");
}

/* ------------------------------------------------------------------ */
/* --scan-fraction, --scan-drift                                       */

TEST(fraction_forms)
{
	static const struct {
		const char *s;
		uint64_t ppm;
	} ok[] = {
		{ "0.25", 250000 }, { "25%", 250000 },	 { "12.5%", 125000 }, { "1", 1000000 },
		{ "1.0", 1000000 }, { ".5", 500000 },	 { "100%", 1000000 }, { "0.000001", 1 },
		{ "0.0001%", 1 },   { "0", 0 },		 { "0.25000000", 250000 }, { "7", 7000000 },
		{ "3.", 3000000 },  { "0.333333", 333333 },
	};
	static const char *const bad[] = { "", "%", ".", "-0.25", "+0.5", "0.25x", " 0.5", "0.5 ",
					   "1e-2", "nan", "inf", "0x1", "50%%", "1.2.3", "0.0000001",
					   "0.00001%", "%5", "99999999999999999999" };

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 12345;
		if (options_parse_fraction(ok[i].s, &v) || v != ok[i].ppm)
			TEST_FAIL_("'%s' gave %llu ppm, expected %llu", ok[i].s, (unsigned long long)v,
				   (unsigned long long)ok[i].ppm);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 12345;
		if (options_parse_fraction(bad[i], &v) != -EINVAL || v != 12345)
			TEST_FAIL_("'%s' was accepted (%llu ppm)", bad[i], (unsigned long long)v);
	}
}

TEST(scan_fraction_and_drift)
{
	char *frac[] = { "run", "--lazy", "8M", "--workload", "scan:2", "--scan-fraction", "0.25",
			 "--scan-drift", "30%", "--scan-order", "random" };
	char *pct[] = { "run", "--scan-fraction=12.5%", "--scan-drift=0" };
	char *edge[] = { "run", "--scan-fraction", "50%", "--scan-drift", "1" };
	struct run_options o;
	struct apf_err e;

	int rc = parse_run(ARGC(frac), frac, &o, &e);
	if (rc) {
		TEST_FAIL_("rc %d: %s", rc, e.msg);
		return;
	}
	CHECK_EQ_U(o.cfg.scan_fraction_ppm, 250000);
	CHECK_EQ_U(o.cfg.scan_drift_ppm, 300000);
	CHECK_EQ_U(o.cfg.scan_order, APF_SCAN_RANDOM);
	REQUIRE(parse_run(ARGC(pct), pct, &o, &e) == 0);
	CHECK_EQ_U(o.cfg.scan_fraction_ppm, 125000);
	CHECK_EQ_U(o.cfg.scan_drift_ppm, 0);
	/* F x (1 + D) = 1: the whole rest of the region replaces the set. */
	REQUIRE(parse_run(ARGC(edge), edge, &o, &e) == 0);
	CHECK_EQ_U(o.cfg.scan_fraction_ppm, 500000);
	CHECK_EQ_U(o.cfg.scan_drift_ppm, APF_SCAN_PPM);
}

TEST(scan_fraction_and_drift_rejections)
{
	char *zero[] = { "run", "--scan-fraction", "0" };
	char *zero_pct[] = { "run", "--scan-fraction", "0%" };
	char *above[] = { "run", "--scan-fraction", "1.5" };
	char *above_pct[] = { "run", "--scan-fraction", "101%" };
	char *negative[] = { "run", "--scan-fraction", "-0.25" };
	char *junk[] = { "run", "--scan-fraction", "quarter" };
	char *empty[] = { "run", "--scan-fraction", "" };
	char *fine[] = { "run", "--scan-fraction", "0.0000001" };
	char *missing[] = { "run", "--scan-fraction" };
	char *drift_above[] = { "run", "--scan-drift", "1.01" };
	char *drift_neg[] = { "run", "--scan-drift", "-0.1" };
	char *drift_junk[] = { "run", "--scan-drift", "0.3x" };
	char *too_far[] = { "run", "--scan-fraction", "0.8", "--scan-drift", "0.3" };
	char *whole[] = { "run", "--scan-drift", "0.1" }; /* F = 1: nowhere to drift to */
	char *restore[] = { "restore", "--scan-fraction", "0.5", "snap" };
	char *restore_drift[] = { "restore", "--scan-drift=0.5", "snap" };

	CHECK_RUN_REJECTS(zero, "--scan-fraction: invalid value '0' (a fraction in (0, 1]");
	CHECK_RUN_REJECTS(zero_pct, "--scan-fraction");
	CHECK_RUN_REJECTS(above, "--scan-fraction: invalid value '1.5'");
	CHECK_RUN_REJECTS(above_pct, "such as 25%");
	CHECK_RUN_REJECTS(negative, "--scan-fraction");
	CHECK_RUN_REJECTS(junk, "'quarter'");
	CHECK_RUN_REJECTS(empty, "--scan-fraction");
	CHECK_RUN_REJECTS(fine, "--scan-fraction");
	CHECK_RUN_REJECTS(missing, "needs a value");
	CHECK_RUN_REJECTS(drift_above, "--scan-drift: invalid value '1.01' (a fraction in [0, 1]");
	CHECK_RUN_REJECTS(drift_neg, "--scan-drift");
	CHECK_RUN_REJECTS(drift_junk, "--scan-drift");
	CHECK_RUN_REJECTS(too_far, "--scan-drift 0.3 with --scan-fraction 0.8");
	CHECK_RUN_REJECTS(too_far, "fraction x (1 + drift) must be at most 1 (here 1.04)");
	CHECK_RUN_REJECTS(whole, "--scan-drift 0.1 with --scan-fraction 1");
	CHECK_RUN_REJECTS(restore, "--scan-fraction does not apply to restore");
	CHECK_RUN_REJECTS(restore_drift, "--scan-drift does not apply to restore");
}

/* A snapshot's point: a time or a page count, exactly one, with a path. */
TEST(snapshot_takes_one_point)
{
	char *pages[] = { "run", "--lazy", "8M", "--snapshot", "s", "--snapshot-after-pages", "512" };
	char *at[] = { "run", "--snapshot", "s", "--snapshot-at", "1500ms" };
	char *both[] = { "run", "--snapshot", "s", "--snapshot-at", "1s", "--snapshot-after-pages", "5" };
	char *none[] = { "run", "--snapshot", "s" };
	char *no_path[] = { "run", "--snapshot-after-pages", "5" };
	char *zero[] = { "run", "--snapshot", "s", "--snapshot-after-pages", "0" };
	char *bad[] = { "run", "--snapshot", "s", "--snapshot-after-pages", "5k" };
	struct run_options o;
	struct apf_err e;

	CHECK(parse_run(ARGC(pages), pages, &o, &e) == 0);
	CHECK_EQ_U(o.cfg.snapshot_after_pages, 512);
	CHECK_EQ_U(o.cfg.snapshot_at_ns, 0);
	CHECK(parse_run(ARGC(at), at, &o, &e) == 0);
	CHECK_EQ_U(o.cfg.snapshot_at_ns, 1500000000ull);
	CHECK_EQ_U(o.cfg.snapshot_after_pages, 0);
	CHECK_RUN_REJECTS(both, "exclude each other");
	CHECK_RUN_REJECTS(none, "--snapshot-at or --snapshot-after-pages");
	CHECK_RUN_REJECTS(no_path, "where, and when");
	CHECK_RUN_REJECTS(zero, "--snapshot-after-pages");
	CHECK_RUN_REJECTS(bad, "a positive page count");
}

/* Durations are bounded when parsed, so that no later sum or range
 * (submit + delay, span + 1) can wrap: "0-18446744073709551615ns" used to
 * end in SIGFPE inside the delay source. */
TEST(run_bounds_every_duration)
{
	char *lat_full_range[] = { "run", "--latency", "0-18446744073709551615ns" };
	char *lat_long[] = { "run", "--latency", "61s" };
	char *threshold[] = { "run", "--apf-threshold", "61s" };
	char *duration[] = { "run", "--duration", "604801s" };
	char *timeout[] = { "run", "--timeout", "604801s" };
	char *at_bounds[] = { "run", "--latency", "1ms-60s", "--apf-threshold", "60s",
			      "--duration", "604800s", "--timeout", "604800s" };
	struct run_options o;
	struct apf_err e;

	CHECK_RUN_REJECTS(lat_full_range, "--latency");
	CHECK_RUN_REJECTS(lat_long, "up to 60s");
	CHECK_RUN_REJECTS(threshold, "--apf-threshold");
	CHECK_RUN_REJECTS(duration, "--duration");
	CHECK_RUN_REJECTS(timeout, "--timeout");
	CHECK(parse_run(ARGC(at_bounds), at_bounds, &o, &e) == 0);
	CHECK_EQ_U(o.cfg.latency_max_ns, APFVM_MAX_LATENCY_NS);
	CHECK_EQ_U(o.cfg.timeout_ns, APFVM_MAX_DURATION_NS);
}

/* A flag given a value is a usage error that names the flag (it used to
 * print "unknown option '-\022'" or "'-h'"). */
TEST(run_flag_given_a_value_is_named)
{
	char *populate[] = { "run", "--populate=1" };
	char *help[] = { "run", "--help=1" };
	char *abbreviated[] = { "run", "--trac=yes" };
	char *unknown[] = { "run", "--frob=2" };

	CHECK_RUN_REJECTS(populate, "option '--populate' takes no value");
	CHECK_RUN_REJECTS(help, "option '--help' takes no value");
	CHECK_RUN_REJECTS(abbreviated, "option '--trace' takes no value");
	CHECK_RUN_REJECTS(unknown, "unknown option '--frob=2'");
}

TEST(run_rejects_long_cmdline_and_impossible_pin)
{
	char cmdline[APF_CMDLINE_MAX + 1];
	memset(cmdline, 'c', sizeof(cmdline) - 1);
	cmdline[sizeof(cmdline) - 1] = '\0';
	char *too_long[] = { "run", "--cmdline", cmdline };
	char *pin_bad[] = { "run", "--pin", "4096,0" };

	CHECK_RUN_REJECTS(too_long, "--cmdline");
	CHECK_RUN_REJECTS(pin_bad, "--pin");
}

TEST(run_rejects_unknown_option_missing_value_and_stray_argument)
{
	char *unknown[] = { "run", "--frobnicate" };
	char *unknown_after[] = { "run", "--lazy", "2M", "--frobnicate", "x" };
	char *missing[] = { "run", "--lazy" };
	char *missing_after[] = { "run", "-v", "--workload" };
	char *stray[] = { "run", "--lazy", "2M", "extra" };
	char *stray_first[] = { "run", "extra", "--lazy", "2M" };
	char *short_unknown[] = { "run", "-x" };

	CHECK_RUN_REJECTS(unknown, "--frobnicate");
	CHECK_RUN_REJECTS(unknown_after, "--frobnicate");
	CHECK_RUN_REJECTS(missing, "--lazy");
	CHECK_RUN_REJECTS(missing_after, "--workload");
	CHECK_RUN_REJECTS(stray, "extra");
	CHECK_RUN_REJECTS(stray_first, "extra");
	CHECK_RUN_REJECTS(short_unknown, "-x");
}

/* The message must name the unknown flag itself, wherever it sits in a
 * bundle of short flags. */
TEST(run_unknown_short_flag_in_a_bundle_is_named)
{
	char *bundle_last[] = { "run", "-vz" };
	char *bundle_first[] = { "run", "-zv" };
	char *after_flag[] = { "run", "-v", "-zq" };
	char *after_long_flag[] = { "run", "--populate", "-zq" };
	char *after_long_value[] = { "run", "--lazy=2M", "-zq" };

	CHECK_RUN_REJECTS(bundle_last, "z");
	CHECK_RUN_REJECTS(bundle_first, "z");   /* says "unknown option 'run'" */
	CHECK_RUN_REJECTS(after_flag, "z");     /* says "unknown option '-v'" */
	CHECK_RUN_REJECTS(after_long_flag, "unknown option '-z'");
	CHECK_RUN_REJECTS(after_long_value, "unknown option '-z'");
}

TEST(run_parses_twice_in_a_row)
{
	/* getopt state must be reset between calls */
	char *a[] = { "run", "--hz", "300", "--lazy", "2M" };
	char *b[] = { "run", "--hz", "400" };
	struct run_options o;
	struct apf_err e;

	REQUIRE(parse_run(ARGC(a), a, &o, &e) == 0);
	CHECK_EQ_U(o.cfg.timer_hz, 300);
	REQUIRE(parse_run(ARGC(b), b, &o, &e) == 0);
	CHECK_EQ_U(o.cfg.timer_hz, 400);
	CHECK_EQ_U(o.cfg.lazy_size, 0); /* no leftover from the previous parse */
}

/* ------------------------------------------------------------------ */
/* apfvm mkimage                                                       */

TEST(mkimage_ok)
{
	char *argv[] = { "mkimage", "--size", "64M", "--seed", "3", "FILE" };
	char *argv_default_seed[] = { "mkimage", "--size", "4K", "out.img" };
	struct mkimage_options o;
	struct apf_err e = { "" };

	int rc = options_parse_mkimage(ARGC(argv), argv, &o, &e);
	if (rc) {
		TEST_FAIL_("rc %d: %s", rc, e.msg);
		return;
	}
	CHECK_EQ_U(o.size, 64ull << 20);
	CHECK_EQ_U(o.seed, 3);
	CHECK(o.path && !strcmp(o.path, "FILE"));
	CHECK(!o.help);

	REQUIRE(options_parse_mkimage(ARGC(argv_default_seed), argv_default_seed, &o, &e) == 0);
	CHECK_EQ_U(o.size, 4096);
	CHECK_EQ_U(o.seed, 1);
	CHECK(o.path && !strcmp(o.path, "out.img"));
}

static void check_mkimage_rejects(int argc, char **argv, const char *needle, int line)
{
	struct mkimage_options o;
	struct apf_err e;

	memset(&e, 0, sizeof(e));
	int rc = options_parse_mkimage(argc, argv, &o, &e);
	if (rc != -EINVAL)
		TEST_FAIL_("%s:%d: rc %d, expected -EINVAL", __FILE__, line, rc);
	else if (!strstr(e.msg, needle))
		TEST_FAIL_("%s:%d: message \"%s\" does not mention \"%s\"", __FILE__, line, e.msg,
			   needle);
}

TEST(mkimage_rejections)
{
	char *no_size[] = { "mkimage", "--seed", "3", "FILE" };
	char *odd_size[] = { "mkimage", "--size", "1000", "FILE" };
	char *zero_size[] = { "mkimage", "--size", "0", "FILE" };
	char *bad_size[] = { "mkimage", "--size", "big", "FILE" };
	char *bad_seed[] = { "mkimage", "--size", "4K", "--seed", "x", "FILE" };
	char *no_file[] = { "mkimage", "--size", "64M" };
	char *two_files[] = { "mkimage", "--size", "64M", "A", "B" };
	char *unknown[] = { "mkimage", "--size", "64M", "--lazy", "2M", "FILE" };
	char *missing[] = { "mkimage", "FILE", "--size" };
	char *missing2[] = { "mkimage", "--size" };

	check_mkimage_rejects(ARGC(no_size), no_size, "--size", __LINE__);
	check_mkimage_rejects(ARGC(odd_size), odd_size, "--size", __LINE__);
	check_mkimage_rejects(ARGC(zero_size), zero_size, "--size", __LINE__);
	check_mkimage_rejects(ARGC(bad_size), bad_size, "--size", __LINE__);
	check_mkimage_rejects(ARGC(bad_seed), bad_seed, "--seed", __LINE__);
	check_mkimage_rejects(ARGC(no_file), no_file, "FILE", __LINE__);
	check_mkimage_rejects(ARGC(two_files), two_files, "FILE", __LINE__);
	check_mkimage_rejects(ARGC(unknown), unknown, "--lazy", __LINE__);
	check_mkimage_rejects(ARGC(missing2), missing2, "--size", __LINE__);
	check_mkimage_rejects(ARGC(missing), missing, "--size", __LINE__);
}

/* ------------------------------------------------------------------ */
/* restore                                                             */

TEST(restore_takes_one_path_and_says_whether_apf_was_given)
{
	char *plain[] = { "restore", "snap" };
	char *given[] = { "restore", "--apf", "kernel", "snap" };
	struct run_options o;
	struct apf_err e;

	memset(&o, 0xa5, sizeof(o));
	REQUIRE(parse_run(ARGC(plain), plain, &o, &e) == 0);
	CHECK(!strcmp(o.cfg.restore_path, "snap"));
	CHECK(!o.apf_given); /* the CLI then takes the snapshot's mode */
	REQUIRE(parse_run(ARGC(given), given, &o, &e) == 0);
	CHECK(o.apf_given);
	CHECK_EQ_U(o.cfg.apf, APFVM_APF_KERNEL);
}

TEST(restore_refuses_what_the_snapshot_fixes)
{
	char *mem[] = { "restore", "--mem", "1G", "snap" };
	char *kernel[] = { "restore", "--kernel=bz", "snap" };
	char *none[] = { "restore" };
	CHECK_RUN_REJECTS(mem, "--mem does not apply to restore");
	CHECK_RUN_REJECTS(kernel, "--kernel does not apply to restore");
	CHECK_RUN_REJECTS(none, "needs one snapshot path");
}

TEST(fetch_timeout_and_tries_for_remote_sources)
{
	char *ok[] = { "run", "--lazy", "2M", "--source", "tcp:10.0.0.2:7070", "--fetch-timeout",
		       "1ms", "--fetch-tries=100" };
	char *no_lazy[] = { "run", "--source", "tcp:10.0.0.2:7070" };
	char *deflt[] = { "run" };
	char *short_to[] = { "run", "--fetch-timeout", "999us" };
	char *long_to[] = { "run", "--fetch-timeout", "601s" };
	char *no_tries[] = { "run", "--fetch-tries", "0" };
	char *many_tries[] = { "run", "--fetch-tries", "101" };
	char *restore[] = { "restore", "--fetch-tries", "2", "--source", "tcp:10.0.0.2:7070", "snap" };
	char *restore_local[] = { "restore", "snap" };
	struct run_options o;
	struct apf_err e;

	REQUIRE(parse_run(ARGC(ok), ok, &o, &e) == 0);
	CHECK_EQ_U(o.cfg.fetch_timeout_ns, 1000000);
	CHECK_EQ_U(o.cfg.fetch_tries, 100);
	CHECK(!strcmp(o.cfg.source, "tcp:10.0.0.2:7070"));
	REQUIRE(parse_run(ARGC(deflt), deflt, &o, &e) == 0);
	CHECK_EQ_U(o.cfg.fetch_timeout_ns, 0); /* the source's defaults */
	CHECK_EQ_U(o.cfg.fetch_tries, 0);
	CHECK_RUN_REJECTS(short_to, "--fetch-timeout");
	CHECK_RUN_REJECTS(long_to, "--fetch-timeout");
	CHECK_RUN_REJECTS(no_tries, "--fetch-tries");
	CHECK_RUN_REJECTS(many_tries, "--fetch-tries");
	CHECK_RUN_REJECTS(no_lazy, "give its size with --lazy"); /* not ignored */
	/* restore --source: the snapshot's memory from elsewhere. */
	REQUIRE(parse_run(ARGC(restore), restore, &o, &e) == 0);
	CHECK(o.cfg.restore_memory && !strcmp(o.cfg.restore_memory, "tcp:10.0.0.2:7070"));
	CHECK_EQ_U(o.cfg.fetch_tries, 2);
	REQUIRE(parse_run(ARGC(restore_local), restore_local, &o, &e) == 0);
	CHECK(o.cfg.restore_memory == NULL);
}

/* ------------------------------------------------------------------ */
/* apfvm serve                                                         */

TEST(serve_needs_an_image_and_where_to_listen)
{
	char *ok[] = { "serve", "--image", "img", "--listen", "127.0.0.1:0" };
	char *count[] = { "serve", "--image=img", "--listen=[::1]:7000", "--max-count", "64" };
	char *no_listen[] = { "serve", "--image", "img" };
	char *too_many[] = { "serve", "--image", "img", "--listen", "a:1", "--max-count", "65" };
	char *extra[] = { "serve", "--image", "img", "--listen", "a:1", "more" };
	struct serve_options o;
	struct apf_err e;

	REQUIRE(options_parse_serve(ARGC(ok), ok, &o, &e) == 0);
	CHECK(!strcmp(o.image, "img") && !strcmp(o.listen, "127.0.0.1:0"));
	CHECK_EQ_U(o.cfg.max_count, 16);
	REQUIRE(options_parse_serve(ARGC(count), count, &o, &e) == 0);
	CHECK_EQ_U(o.cfg.max_count, 64);
	CHECK(!strcmp(o.listen, "[::1]:7000"));
	CHECK(options_parse_serve(ARGC(no_listen), no_listen, &o, &e) == -EINVAL &&
	      strstr(e.msg, "--image or --snapshot, and --listen, are required"));
	CHECK(options_parse_serve(ARGC(too_many), too_many, &o, &e) == -EINVAL &&
	      strstr(e.msg, "1..64"));
	CHECK(options_parse_serve(ARGC(extra), extra, &o, &e) == -EINVAL &&
	      strstr(e.msg, "unexpected argument 'more'"));
}

TEST(serve_limits_are_options_checked_against_each_other)
{
	char *ok[] = { "serve", "--image", "i", "--listen", "a:1", "--max-clients", "32",
		       "--max-per-peer", "4", "--io-timeout", "2s", "--idle-timeout", "500ms" };
	char *per_peer[] = { "serve", "--image", "i", "--listen", "a:1", "--max-clients", "8",
			     "--max-per-peer", "9" };
	char *io[] = { "serve", "--image", "i", "--listen", "a:1", "--io-timeout", "0" };
	char *idle[] = { "serve", "--image", "i", "--listen", "a:1", "--idle-timeout", "2d" };
	char *clients[] = { "serve", "--image", "i", "--listen", "a:1", "--max-clients", "0" };
	struct serve_options o;
	struct apf_err e;

	REQUIRE(options_parse_serve(ARGC(ok), ok, &o, &e) == 0);
	CHECK_EQ_U(o.cfg.max_clients, 32);
	CHECK_EQ_U(o.cfg.max_per_peer, 4);
	CHECK_EQ_U(o.cfg.io_timeout_ns, 2000000000ull);
	CHECK_EQ_U(o.cfg.idle_timeout_ns, 500000000ull);
	CHECK(options_parse_serve(ARGC(per_peer), per_peer, &o, &e) == -EINVAL &&
	      strstr(e.msg, "--max-per-peer 9"));
	CHECK(options_parse_serve(ARGC(io), io, &o, &e) == -EINVAL && strstr(e.msg, "--io-timeout"));
	CHECK(options_parse_serve(ARGC(idle), idle, &o, &e) == -EINVAL &&
	      strstr(e.msg, "--idle-timeout"));
	CHECK(options_parse_serve(ARGC(clients), clients, &o, &e) == -EINVAL &&
	      strstr(e.msg, "--max-clients"));
}

TEST(pack_takes_an_image_or_snapshot_and_a_destination)
{
	char *ok[] = { "pack", "--chunk", "1M", "--level=19", "img", "s3://b/k" };
	char *snap[] = { "pack", "--snapshot", "--s3-endpoint", "http://h:1", "snap", "dest" };
	char *one[] = { "pack", "img" };
	char *chunk[] = { "pack", "--chunk", "5000", "img", "d" };
	char *level[] = { "pack", "--level", "20", "img", "d" };
	struct pack_options o;
	struct apf_err e;

	REQUIRE(options_parse_pack(ARGC(ok), ok, &o, &e) == 0);
	CHECK_EQ_U(o.chunk_pages, 256);
	CHECK_EQ_U(o.level, 19);
	CHECK(!o.snapshot && !strcmp(o.image, "img") && !strcmp(o.dest, "s3://b/k"));
	REQUIRE(options_parse_pack(ARGC(snap), snap, &o, &e) == 0);
	CHECK(o.snapshot && !strcmp(o.store.s3_endpoint, "http://h:1"));
	CHECK_EQ_U(o.chunk_pages, 64); /* 256K by default */
	CHECK(options_parse_pack(ARGC(one), one, &o, &e) == -EINVAL &&
	      strstr(e.msg, "expected IMAGE and DEST"));
	CHECK(options_parse_pack(ARGC(chunk), chunk, &o, &e) == -EINVAL && strstr(e.msg, "--chunk"));
	CHECK(options_parse_pack(ARGC(level), level, &o, &e) == -EINVAL && strstr(e.msg, "--level"));
}

/* ------------------------------------------------------------------ */
/* options_parse: the tables the parsers above are made of              */

struct table_test {
	uint64_t size, ns;
	unsigned count;
	int mode;
	const char *name;
	bool flag, count_given, help;
};

#define TT(field) OPTIONS_FIELD(struct table_test, field)

static const struct options_name tt_modes[] = { { "a", 1 }, { "b", 2 }, { 0 } };
static const struct options_spec tt_spec[] = {
	{ "size", .kind = OPTK_SIZE, TT(size), .min = 4096, .max = 1ull << 30, .align = 4096,
	  .want = "4K..1G" },
	{ "ns", .kind = OPTK_DURATION, TT(ns), .max = 1000000, .want = "up to 1ms" },
	{ "count", .kind = OPTK_UINT, TT(count), .min = 1, .max = 9, .want = "1..9",
	  OPTIONS_GIVEN(struct table_test, count_given) },
	{ "mode", .kind = OPTK_ENUM, TT(mode), .names = tt_modes, .want = "a or b" },
	{ "name", 'n', OPTK_STRING, TT(name) },
	{ "flag", 'f', OPTK_FLAG, TT(flag) },
	{ "help", 'h', OPTK_HELP, TT(help) },
	{ 0 },
};

static int parse_table(int argc, char **argv, const struct options_spec *spec,
		       struct table_test *t, struct apf_err *e)
{
	const struct options_table table = { spec, t };

	memset(t, 0, sizeof(*t));
	memset(e, 0, sizeof(*e));
	return options_parse(argc, argv, "test", &table, 1, e);
}

TEST(options_table_kinds_fields_and_messages)
{
	char *ok[] = { "test", "--size", "8K", "--ns=1ms", "--count", "9", "--mode", "b",
		       "--name", "x", "-f", "rest" };
	char *shorts[] = { "test", "-fny" };
	char *no_value[] = { "test", "-n" };
	char *bad_size[] = { "test", "--size", "6K" };
	char *bad_ns[] = { "test", "--ns", "2ms" };
	char *bad_mode[] = { "test", "--mode", "c" };
	char *help[] = { "test", "-h", "--count", "0" };
	struct table_test t;
	struct apf_err e;

	REQUIRE(parse_table(ARGC(ok), ok, tt_spec, &t, &e) == 0);
	CHECK_EQ_U(t.size, 8192);
	CHECK_EQ_U(t.ns, 1000000);
	CHECK_EQ_U(t.count, 9);
	CHECK(t.count_given);
	CHECK_EQ_U(t.mode, 2);
	CHECK(t.name && !strcmp(t.name, "x"));
	CHECK(t.flag && !t.help);
	CHECK(optind == ARGC(ok) - 1 && !strcmp(ok[optind], "rest"));
	REQUIRE(parse_table(ARGC(shorts), shorts, tt_spec, &t, &e) == 0);
	CHECK(t.flag && t.name && !strcmp(t.name, "y"));
	CHECK(parse_table(ARGC(no_value), no_value, tt_spec, &t, &e) == -EINVAL &&
	      !strcmp(e.msg, "option '-n' needs a value"));
	CHECK(parse_table(ARGC(bad_size), bad_size, tt_spec, &t, &e) == -EINVAL &&
	      !strcmp(e.msg, "--size: invalid value '6K' (4K..1G)"));
	CHECK(parse_table(ARGC(bad_ns), bad_ns, tt_spec, &t, &e) == -EINVAL &&
	      !strcmp(e.msg, "--ns: invalid value '2ms' (up to 1ms)"));
	CHECK(parse_table(ARGC(bad_mode), bad_mode, tt_spec, &t, &e) == -EINVAL &&
	      !strcmp(e.msg, "--mode: invalid value 'c' (a or b)"));
	/* Help stops the parse: what follows is not read. */
	CHECK(parse_table(ARGC(help), help, tt_spec, &t, &e) == 0 && t.help && !t.count_given);
}

TEST(options_table_refuses_a_field_its_values_do_not_fit)
{
	static const struct options_spec narrow[] = {
		{ "count", .kind = OPTK_UINT, TT(count), .max = UINT64_MAX, .want = "any" },
		{ 0 },
	};
	char *argv[] = { "test", "--count", "1" };
	struct table_test t;
	struct apf_err e;

	CHECK(parse_table(ARGC(argv), argv, narrow, &t, &e) == -EINVAL &&
	      strstr(e.msg, "--count: its values do not fit its field"));
}

TEST_MAIN(T(workload_two_kinds), T(workload_count_gives_indices), T(workload_default_count_is_one),
	  T(workload_sixteen_tasks_fit), T(workload_rejections_leave_config_alone),
	  T(workload_messages_name_the_culprit), T(pin_accepted_forms),
	  T(pin_rejections_name_the_option), T(pin_split_needs_two_cpus), T(run_defaults),
	  T(run_full_command_line), T(run_equals_syntax_and_bundled_short_flags),
	  T(run_boundaries_accepted), T(run_help_flag), T(run_rejects_bad_values_naming_the_option),
	  T(run_rejects_long_cmdline_and_impossible_pin), T(run_bounds_every_duration),
	  T(run_flag_given_a_value_is_named),
	  T(run_rejects_unknown_option_missing_value_and_stray_argument),
	  T(run_unknown_short_flag_in_a_bundle_is_named), T(run_parses_twice_in_a_row),
	  T(fraction_forms), T(scan_fraction_and_drift), T(scan_fraction_and_drift_rejections),
	  T(mkimage_ok), T(mkimage_rejections),
	  T(restore_takes_one_path_and_says_whether_apf_was_given),
	  T(restore_refuses_what_the_snapshot_fixes), T(snapshot_takes_one_point), T(fetch_timeout_and_tries_for_remote_sources),
	  T(serve_needs_an_image_and_where_to_listen),
	  T(serve_limits_are_options_checked_against_each_other),
	  T(pack_takes_an_image_or_snapshot_and_a_destination),
	  T(options_table_kinds_fields_and_messages),
	  T(options_table_refuses_a_field_its_values_do_not_fit))

