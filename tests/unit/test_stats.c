/*
 * The --stats-json document: the keys and values scripts rely on, and (when
 * python3 is around) that it is valid JSON holding those values.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "apfvm/vmm.h"
#include "test.h"

static void sample_stats(struct apfvm_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->mode = APFVM_APF_OFF;
	strcpy(st->source, "zero");
	st->latency_min_ns = 200000;
	st->latency_max_ns = 5000000;
	st->wall_s = 1.25;
	st->pages_fetched = 512;
	st->bytes_fetched = 512 * 4096;
	st->faults_total = 601;
	st->faults_sync = 598;
	st->faults_async = 3;
	st->faults_joined = 7;
	st->inflight_max = 9;
	st->fault_us_mean = 2612.5;
	st->tsc_khz = 2400000;
	st->lazy_pages = 16384;
	st->ntasks = 2;
	st->tasks[0] = (struct apfvm_task_stats){ .kind = APF_TASK_COMPUTE, .id = 1,
						  .runtime_s = 1.0, .work = 123456789,
						  .first_bad = UINT64_MAX };
	st->tasks[1] = (struct apfvm_task_stats){ .kind = APF_TASK_SCAN, .id = 2,
						  .runtime_s = 0.75, .pages = 16384,
						  .mismatches = 17, .first_bad = 40 };
}

/* Renders st as JSON into a malloc'ed string; returns NULL on failure. */
static char *render(const struct apfvm_stats *st, int *rc)
{
	char *doc = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&doc, &len);

	if (!f)
		return NULL;
	*rc = apfvm_stats_write_json(f, st);
	if (fclose(f)) {
		free(doc);
		return NULL;
	}
	return doc;
}

/* CHECKs that doc contains needle, reporting which one is missing. */
#define CHECK_HAS(doc, needle)                                                           \
	do {                                                                             \
		if (!strstr((doc), (needle)))                                            \
			TEST_FAIL_("%s:%d: JSON lacks %s", __FILE__, __LINE__, needle);  \
	} while (0)

TEST(json_has_required_keys_and_values)
{
	struct apfvm_stats st;
	int rc = -99;

	sample_stats(&st);
	char *doc = render(&st, &rc);
	REQUIRE(doc != NULL);
	CHECK_EQ_U(rc, 0);
	CHECK_HAS(doc, "\"mode\": \"off\"");
	CHECK_HAS(doc, "\"latency_us\": 2600.000"); /* mean of 200 us and 5 ms */
	CHECK_HAS(doc, "\"latency_min_us\": 200.000");
	CHECK_HAS(doc, "\"latency_max_us\": 5000.000");
	CHECK_HAS(doc, "\"wall_s\": 1.250000");
	CHECK_HAS(doc, "\"lazy_pages\": 16384");
	CHECK_HAS(doc, "\"pages_fetched\": 512");
	CHECK_HAS(doc, "\"bytes_fetched\": 2097152");
	CHECK_HAS(doc, "\"inflight_max\": 9");
	CHECK_HAS(doc, "\"fault_us_mean\": 2612.500");
	CHECK_HAS(doc, "\"tsc_khz\": 2400000");
	CHECK_HAS(doc, "\"faults\": {\"total\": 601, \"sync\": 598, \"async\": 3, \"joined\": 7, ");
	CHECK_HAS(doc, "\"tasks\": [");
	free(doc);
}

TEST(json_tasks_carry_their_kind_specific_fields)
{
	struct apfvm_stats st;
	int rc = -99;

	sample_stats(&st);
	char *doc = render(&st, &rc);
	REQUIRE(doc != NULL);
	char *compute = strstr(doc, "\"name\": \"compute\"");
	char *scan = strstr(doc, "\"name\": \"scan\"");
	REQUIRE(compute != NULL);
	REQUIRE(scan != NULL);
	REQUIRE(compute < scan); /* in task order */

	/* the compute object ends before the scan object starts */
	char *compute_end = strchr(compute, '}');
	REQUIRE(compute_end && compute_end < scan);
	*compute_end = '\0';
	CHECK_HAS(compute, "\"id\": 1");
	CHECK_HAS(compute, "\"runtime_s\": 1.000000");
	CHECK_HAS(compute, "\"work\": 123456789");
	CHECK(!strstr(compute, "\"pages\""));
	CHECK(!strstr(compute, "\"mismatches\""));

	char *scan_end = strchr(scan, '}');
	REQUIRE(scan_end != NULL);
	*scan_end = '\0';
	CHECK_HAS(scan, "\"id\": 2");
	CHECK_HAS(scan, "\"runtime_s\": 0.750000");
	CHECK_HAS(scan, "\"pages\": 16384");
	CHECK_HAS(scan, "\"mismatches\": 17");
	CHECK(!strstr(scan, "\"work\""));
	free(doc);
}

TEST(json_without_tasks_has_an_empty_list)
{
	struct apfvm_stats st;
	int rc = -99;

	sample_stats(&st);
	st.ntasks = 0;
	char *doc = render(&st, &rc);
	REQUIRE(doc != NULL);
	CHECK_EQ_U(rc, 0);
	CHECK_HAS(doc, "\"tasks\": []");
	CHECK(!strstr(doc, "\"name\""));
	free(doc);
}

TEST(json_fixed_latency)
{
	struct apfvm_stats st;
	int rc = -99;

	sample_stats(&st);
	st.latency_min_ns = st.latency_max_ns = 1000000;
	char *doc = render(&st, &rc);
	REQUIRE(doc != NULL);
	CHECK_HAS(doc, "\"latency_us\": 1000.000");
	free(doc);
}

/* A stream whose every write fails. */
static ssize_t failing_write(void *cookie, const char *buf, size_t len)
{
	(void)cookie;
	(void)buf;
	(void)len;
	return -1;
}

TEST(json_reports_write_errors)
{
	struct apfvm_stats st;
	cookie_io_functions_t io = { .write = failing_write };
	FILE *f = fopencookie(NULL, "w", io);

	REQUIRE(f != NULL);
	setvbuf(f, NULL, _IONBF, 0);
	sample_stats(&st);
	CHECK(apfvm_stats_write_json(f, &st) != 0);
	fclose(f);
}

static bool have_python3(void)
{
	return system("command -v python3 >/dev/null 2>&1") == 0;
}

/* Feeds doc to a python3 program on stdin; returns its exit status. */
static int run_python(const char *program, const char *doc)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "python3 -c '%s'", program);
	FILE *p = popen(cmd, "w");
	if (!p)
		return -1;
	fputs(doc, p);
	int status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(json_parses_and_holds_the_values)
{
	static const char check_values[] =
		"import json,sys\n"
		"d = json.load(sys.stdin)\n"
		"assert d[\"mode\"] == \"off\"\n"
		"assert abs(d[\"latency_us\"] - 2600) < 1e-9\n"
		"assert abs(d[\"wall_s\"] - 1.25) < 1e-9\n"
		"assert d[\"pages_fetched\"] == 512 and d[\"bytes_fetched\"] == 2097152\n"
		"f = d[\"faults\"]\n"
		"assert (f[\"total\"], f[\"sync\"], f[\"async\"], f[\"joined\"]) == (601, 598, 3, 7)\n"
		"t = d[\"tasks\"]\n"
		"assert [x[\"name\"] for x in t] == [\"compute\", \"scan\"]\n"
		"assert t[0][\"work\"] == 123456789 and t[0][\"id\"] == 1\n"
		"assert t[1][\"pages\"] == 16384 and t[1][\"mismatches\"] == 17\n";
	struct apfvm_stats st;
	int rc = -99;

	sample_stats(&st);
	char *doc = render(&st, &rc);
	REQUIRE(doc != NULL);
	/* Without python the string checks above stand alone. */
	if (have_python3()) {
		CHECK_EQ_U(run_python(check_values, doc), 0);
		st.ntasks = 0;
		free(doc);
		doc = render(&st, &rc);
		REQUIRE(doc != NULL);
		CHECK_EQ_U(run_python("import json,sys; assert json.load(sys.stdin)[\"tasks\"] == []",
				      doc),
			   0);
	} else {
		/* balanced braces and brackets, at least */
		int depth = 0;
		for (const char *c = doc; *c; c++) {
			depth += (*c == '{' || *c == '[') - (*c == '}' || *c == ']');
			CHECK(depth >= 0);
		}
		CHECK_EQ_U(depth, 0);
	}
	free(doc);
}

TEST(mode_name)
{
	CHECK(!strcmp(apfvm_mode_name(APFVM_APF_OFF), "off"));
}

/* What a Linux guest's /init reported: in the JSON as "linux", and in the
 * summary as a line of words (not JSON). */
TEST(linux_counts_reach_json_and_summary)
{
	struct apfvm_stats st;
	int rc = -99;
	char *text = NULL;
	size_t len = 0;

	sample_stats(&st);
	st.linux_reported = true;
	st.linux_apf = (struct apf_linux_stats){ .boot_ns = 2500000000ull, .hyp_interrupts = 9,
						 .probed = 1, .task_waits = 8, .task_wakes = 8,
						 .task_switches = 7, .kernel_reads = 16 };
	char *doc = render(&st, &rc);
	REQUIRE(doc != NULL);
	CHECK_HAS(doc, "\"linux\": {\"boot_s\": 2.500, \"hyp_interrupts\": 9, \"probed\": true, "
		       "\"task_waits\": 8, \"task_wakes\": 8, \"scan_voluntary_switches\": 7, "
		       "\"kernel_reads\": 16, \"kernel_read_mismatches\": 0}");
	free(doc);
	FILE *f = open_memstream(&text, &len);
	REQUIRE(f != NULL);
	apfvm_stats_print(f, &st);
	REQUIRE(fclose(f) == 0);
	CHECK_HAS(text, "linux         /init at 2.50 s; HYP interrupts 9; task waits 8, wakes 8");
	CHECK(!strstr(text, "\"linux\""));
	free(text);
}

/* The summary's KVM line names only counters this KVM has: x86 KVM
 * counts page faults and emulated instructions, arm64 KVM neither. */
static char *summary(const struct apfvm_stats *st)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	apfvm_stats_print(f, st);
	fclose(f);
	return text;
}

TEST(kvm_line_names_only_the_counters_kvm_has)
{
	struct apfvm_stats st;

	sample_stats(&st);
	st.kvm_exits = 300;
	st.kvm_pf_taken = 20;
	st.kvm_insn_emulation = 10;
	st.kvm_signal_exits = 7;
	st.kvm_has_pf_and_emulation = true;
	char *x86 = summary(&st);
	REQUIRE(x86 != NULL);
	CHECK_HAS(x86, "kvm           300 exits, 20 page faults, 10 instructions emulated\n");
	free(x86);
	st.kvm_has_pf_and_emulation = false;
	char *arm64 = summary(&st);
	REQUIRE(arm64 != NULL);
	CHECK_HAS(arm64, "kvm           300 exits, 7 for signals\n");
	CHECK(!strstr(arm64, "page faults"));
	free(arm64);
}

TEST(json_user_mode_has_the_fault_breakdown_and_apf_counters)
{
	struct apfvm_stats st;
	int rc = -99;

	sample_stats(&st);
	st.mode = APFVM_APF_USER;
	st.sync_policy = 11;
	st.sync_cannot_deliver = 12;
	st.sync_cap = 13;
	st.repeat_waits = 14;
	st.fault_us_p50 = 1000;
	st.fault_us_p99 = 2000;
	st.apf_reported = true;
	st.apf.enabled = 1;
	st.apf.not_present = 3;
	st.apf.ready = 3;
	char *doc = render(&st, &rc);
	REQUIRE(doc != NULL);
	CHECK_HAS(doc, "\"sync_policy\": 11, \"sync_cannot_deliver\": 12, \"sync_cap\": 13, \"repeat_waits\": 14");
	CHECK_HAS(doc, "\"fault_us_p50\": 1000");
	CHECK_HAS(doc, "\"fault_us_p99\": 2000");
	CHECK_HAS(doc, "\"mode\": \"user\"");
	CHECK_HAS(doc, "\"host_apf\": {");
	CHECK_HAS(doc, "\"apf\": {\"enabled\": true, \"not_present\": 3, \"ready\": 3");
	free(doc);
}

TEST_MAIN(T(linux_counts_reach_json_and_summary), T(kvm_line_names_only_the_counters_kvm_has), T(json_user_mode_has_the_fault_breakdown_and_apf_counters), T(json_has_required_keys_and_values), T(json_tasks_carry_their_kind_specific_fields),
	  T(json_without_tasks_has_an_empty_list), T(json_fixed_latency),
	  T(json_reports_write_errors), T(json_parses_and_holds_the_values), T(mode_name))
