/*
 * VM tests: boot the built-in guest through the library and check the
 * structured results it reports (never console text).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "apfvm/vmm.h"
#include "image/image.h"
#include "../failing_source.h"
#include "test.h"

static char image_path[64];
static char image_spec[80];

#define REQUIRE_KVM()                                                              \
	do {                                                                       \
		if (access("/dev/kvm", R_OK | W_OK) != 0)                          \
			SKIP("/dev/kvm is not available on this machine");         \
	} while (0)

static void config(struct apfvm_config *c, uint64_t lazy, const char *source,
		   const char *workload)
{
	apfvm_config_defaults(c);
	c->lazy_size = lazy;
	c->source = source;
	c->timeout_ns = 120ull * 1000000000ull;
	c->duration_ns = 200000000ull;
	c->vcpu_cpu = c->pager_cpu = 0;
	strcpy(c->cmdline, "quiet");
	if (workload) {
		if (!strcmp(workload, "compute:1,scan:1")) {
			c->ntasks = 2;
			c->tasks[0] = (struct apf_task_spec){ APF_TASK_COMPUTE, 0, 1, 0 };
			c->tasks[1] = (struct apf_task_spec){ APF_TASK_SCAN, 0, 1, 0 };
		} else if (!strcmp(workload, "compute:1,scan:3")) {
			c->ntasks = 4;
			c->tasks[0] = (struct apf_task_spec){ APF_TASK_COMPUTE, 0, 1, 0 };
			for (uint32_t i = 0; i < 3; i++)
				c->tasks[1 + i] = (struct apf_task_spec){ APF_TASK_SCAN, i, 3, 0 };
		}
	}
}

static const struct apfvm_task_stats *find_task(const struct apfvm_stats *st, uint32_t kind,
						 unsigned nth)
{
	for (unsigned i = 0; i < st->ntasks; i++)
		if (st->tasks[i].kind == kind && nth-- == 0)
			return &st->tasks[i];
	return NULL;
}

TEST(compute_alone_runs_for_duration)
{
	struct apfvm_config c;
	struct apfvm_stats st;
	struct apf_err e;

	REQUIRE_KVM();
	config(&c, 0, "zero", NULL);
	c.duration_ns = 300000000ull;
	int rc = apfvm_run(&c, &st, &e);
	if (rc)
		TEST_FAIL_("run failed: %s", e.msg);
	REQUIRE(rc == 0);
	const struct apfvm_task_stats *t = find_task(&st, APF_TASK_COMPUTE, 0);
	REQUIRE(t);
	CHECK(t->work > 0);
	CHECK(t->runtime_s >= 0.3);
	CHECK(t->runtime_s < 5.0); /* stops on its own, long before the timeout */
	CHECK_EQ_U(st.faults_total, 0);
}

TEST(zero_source_scan_sees_zeros)
{
	struct apfvm_config c;
	struct apfvm_stats st;
	struct apf_err e;

	REQUIRE_KVM();
	config(&c, 8 << 20, "zero", "compute:1,scan:1");
	int rc = apfvm_run(&c, &st, &e);
	if (rc)
		TEST_FAIL_("run failed: %s", e.msg);
	REQUIRE(rc == 0);
	const struct apfvm_task_stats *s = find_task(&st, APF_TASK_SCAN, 0);
	REQUIRE(s);
	CHECK_EQ_U(s->pages, 2048);
	CHECK_EQ_U(s->mismatches, 0);
	CHECK_EQ_U(st.pages_fetched, 2048);
	CHECK(st.faults_total >= 2048);
	CHECK_EQ_U(st.faults_sync, st.faults_total);
	CHECK(find_task(&st, APF_TASK_COMPUTE, 0) && find_task(&st, APF_TASK_COMPUTE, 0)->work > 0);
}

static void run_file_scan(uint32_t order, int nscan, uint64_t lat_ns)
{
	struct apfvm_config c;
	struct apfvm_stats st;
	struct apf_err e;
	uint64_t pages = 0;

	REQUIRE_KVM();
	config(&c, 4 << 20, image_spec, nscan == 1 ? "compute:1,scan:1" : "compute:1,scan:3");
	c.scan_order = order;
	c.latency_min_ns = c.latency_max_ns = lat_ns;
	int rc = apfvm_run(&c, &st, &e);
	if (rc)
		TEST_FAIL_("run failed: %s", e.msg);
	REQUIRE(rc == 0);
	for (int i = 0; i < nscan; i++) {
		const struct apfvm_task_stats *s = find_task(&st, APF_TASK_SCAN, (unsigned)i);
		REQUIRE(s);
		CHECK_EQ_U(s->mismatches, 0);
		pages += s->pages;
	}
	CHECK_EQ_U(pages, 1024);
	CHECK_EQ_U(st.pages_fetched, 1024); /* each page fetched exactly once */
	CHECK(st.faults_total >= 1024);
	if (lat_ns) /* synchronous: the vCPU waits out every fetch in turn */
		CHECK(st.wall_s >= 1024 * (double)lat_ns / 1e9);
}

TEST(file_source_sequential_scan_verifies_every_word)
{
	run_file_scan(APF_SCAN_SEQUENTIAL, 1, 0);
}

TEST(file_source_random_scan_verifies_every_word)
{
	run_file_scan(APF_SCAN_RANDOM, 1, 0);
}

TEST(three_scanners_share_the_region)
{
	run_file_scan(APF_SCAN_RANDOM, 3, 0);
}

TEST(sync_faults_wait_out_the_latency)
{
	run_file_scan(APF_SCAN_SEQUENTIAL, 1, 500000);
}

/* One word changed in the image: the guest finds exactly that word. */
TEST(corrupted_image_word_is_detected)
{
	struct apfvm_config c;
	struct apfvm_stats st;
	struct apf_err e;
	char path[64], spec[80];
	uint64_t word = 1000 * 512 + 77, junk = 0x5555;

	REQUIRE_KVM();
	strcpy(path, "/tmp/apfvm-vmtest-XXXXXX");
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	close(fd);
	REQUIRE(image_create(path, 4 << 20, 9, NULL) == 0);
	fd = open(path, O_WRONLY);
	REQUIRE(fd >= 0);
	REQUIRE(pwrite(fd, &junk, 8, (off_t)(IMAGE_HEADER_SIZE + word * 8)) == 8);
	close(fd);
	snprintf(spec, sizeof(spec), "file:%s", path);
	config(&c, 4 << 20, spec, "compute:1,scan:1");
	int rc = apfvm_run(&c, &st, &e);
	unlink(path);
	REQUIRE(rc == 0);
	const struct apfvm_task_stats *s = find_task(&st, APF_TASK_SCAN, 0);
	REQUIRE(s);
	CHECK_EQ_U(s->mismatches, 1);
	CHECK_EQ_U(s->first_bad, word);
}

/* Every way the guest can die ends the run with a report, never a hang. */
static void expect_crash(const char *kind, const char *needle)
{
	struct apfvm_config c;
	struct apfvm_stats st;
	struct apf_err e = { "" };

	REQUIRE_KVM();
	config(&c, 0, "zero", NULL);
	snprintf(c.cmdline, sizeof(c.cmdline), "quiet crash=%s", kind);
	c.timeout_ns = 3000000000ull;
	int rc = apfvm_run(&c, &st, &e);
	CHECK(rc < 0);
	if (!strstr(e.msg, needle))
		TEST_FAIL_("crash=%s: message '%s' lacks '%s'", kind, e.msg, needle);
}

TEST(ring0_exception_is_reported)
{
	expect_crash("ud2", "#UD invalid opcode (vector 6) in ring 0");
}

TEST(ring0_page_fault_reports_cr2)
{
	expect_crash("pf", "CR2=0x8");
}

TEST(guest_assertion_reports_file_and_line)
{
	expect_crash("assert", "guest assertion failed at guest/core/main.c:");
}

TEST(triple_fault_is_reported)
{
	expect_crash("triple", "triple fault");
}

TEST(ring3_crash_names_the_task)
{
	expect_crash("user", "in ring 3");
}

TEST(hung_guest_times_out)
{
	expect_crash("hang", "timed out");
}

TEST(non_elf_guest_is_rejected)
{
	struct apfvm_config c;
	struct apfvm_stats st;
	struct apf_err e = { "" };
	static const char text[] = "#!/bin/sh\necho not a kernel\n";

	config(&c, 0, "zero", NULL);
	c.guest_elf = text;
	c.guest_elf_len = sizeof(text);
	c.guest_name = "script.sh";
	CHECK(apfvm_run(&c, &st, &e) == -ENOEXEC);
	CHECK(strstr(e.msg, "not an ELF") != NULL);
}

/* apfvm_run() checks the bounds itself: a library user who skips the
 * command line cannot reach the delay source's arithmetic with them. */
TEST(config_beyond_bounds_is_rejected_before_boot)
{
	struct apfvm_config c;
	struct apfvm_stats st;
	struct apf_err e = { "" };

	config(&c, 2 << 20, "zero", "scan:1");
	c.latency_max_ns = UINT64_MAX;
	CHECK(apfvm_run(&c, &st, &e) == -EINVAL);
	CHECK(strstr(e.msg, "latency") != NULL);
	config(&c, 2 << 20, "zero", "scan:1");
	c.timeout_ns = APFVM_MAX_DURATION_NS + 1;
	CHECK(apfvm_run(&c, &st, &e) == -EINVAL);
	CHECK(strstr(e.msg, "timeout") != NULL);
}

/* A vCPU pinned outside this process's CPU set: the run fails and says so
 * (it used to run unpinned without a word). */
TEST(vcpu_pinned_outside_the_cpu_set_fails)
{
	struct apfvm_config c;
	struct apfvm_stats st;
	struct apf_err e = { "" };

	REQUIRE_KVM();
	config(&c, 2 << 20, "zero", NULL);
	c.vcpu_cpu = CPU_SETSIZE - 1;
	c.pager_cpu = -1;
	CHECK(apfvm_run(&c, &st, &e) == -EINVAL);
	if (!strstr(e.msg, "cannot pin the vCPU thread to CPU 1023"))
		TEST_FAIL_("message '%s'", e.msg);
}

/* The built-in guest with its first segment moved outside guest memory. */
TEST(elf_segment_outside_memory_is_rejected)
{
	struct apfvm_config c;
	struct apfvm_stats st;
	struct apf_err e = { "" };
	unsigned char *copy = malloc(apfvm_builtin_guest_len);
	uint64_t phoff, bad = 0x7fff0000;

	REQUIRE(copy);
	memcpy(copy, apfvm_builtin_guest, apfvm_builtin_guest_len);
	memcpy(&phoff, copy + 32, 8);
	memcpy(copy + phoff + 24, &bad, 8); /* p_paddr of the first header */
	config(&c, 0, "zero", NULL);
	c.guest_elf = copy;
	c.guest_elf_len = apfvm_builtin_guest_len;
	CHECK(apfvm_run(&c, &st, &e) == -ENOEXEC);
	CHECK(strstr(e.msg, "outside") != NULL);
	free(copy);
}

/* A page the source cannot fetch ends the run with an error naming it; the
 * guest never runs on with substituted data, and nothing kills the process
 * (the poisoned page makes KVM fail the access, or a kick frees the vCPU). */
TEST(fetch_error_ends_the_run_with_the_page_named)
{
	struct apfvm_config c;
	struct apfvm_stats st;

	REQUIRE_KVM();
	config(&c, 2 << 20, "zero", "compute:1,scan:1");
	run_with_failing_page(&c, 0, &st);
}

static void setup(void)
{
	strcpy(image_path, "/tmp/apfvm-vmtest-XXXXXX");
	int fd = mkstemp(image_path);
	if (fd < 0 || image_create(image_path, 4 << 20, 1234, NULL) != 0) {
		fprintf(stderr, "cannot create a test image in /tmp\n");
		exit(1);
	}
	close(fd);
	snprintf(image_spec, sizeof(image_spec), "file:%s", image_path);
}

static void teardown(void)
{
	unlink(image_path);
}

TEST(setup_image)
{
	setup();
	atexit(teardown);
}

TEST_MAIN(T(setup_image), T(compute_alone_runs_for_duration), T(zero_source_scan_sees_zeros),
	  T(file_source_sequential_scan_verifies_every_word),
	  T(file_source_random_scan_verifies_every_word), T(three_scanners_share_the_region),
	  T(sync_faults_wait_out_the_latency), T(corrupted_image_word_is_detected),
	  T(ring0_exception_is_reported), T(ring0_page_fault_reports_cr2),
	  T(guest_assertion_reports_file_and_line), T(triple_fault_is_reported),
	  T(ring3_crash_names_the_task), T(hung_guest_times_out), T(non_elf_guest_is_rejected), T(config_beyond_bounds_is_rejected_before_boot),
	  T(vcpu_pinned_outside_the_cpu_set_fails), T(fetch_error_ends_the_run_with_the_page_named),
	  T(elf_segment_outside_memory_is_rejected))
