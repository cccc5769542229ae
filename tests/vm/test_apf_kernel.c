/*
 * VM tests of the guest's async page fault side against the host kernel's
 * own KVM implementation (--apf kernel).
 */
#include <unistd.h>

#include "apfvm/vmm.h"
#include "../failing_source.h"
#include "test.h"

#define REQUIRE_KVM()                                                              \
	do {                                                                       \
		if (access("/dev/kvm", R_OK | W_OK) != 0)                          \
			SKIP("/dev/kvm is not available on this machine");         \
	} while (0)

/* compute:ncompute, scan:nscan over `lazy` bytes of zero pages with a fixed
 * fetch latency, in kernel mode. */
static void config(struct apfvm_config *c, unsigned ncompute, unsigned nscan, uint64_t lazy,
		   uint64_t lat_ns, const char *cmdline)
{
	apfvm_config_defaults(c);
	c->apf = APFVM_APF_KERNEL;
	c->lazy_size = lazy;
	c->source = "zero";
	c->latency_min_ns = c->latency_max_ns = lat_ns;
	c->timeout_ns = 120ull * 1000000000ull;
	c->ntasks = 0;
	for (unsigned i = 0; i < ncompute; i++)
		c->tasks[c->ntasks++] = (struct apf_task_spec){ APF_TASK_COMPUTE, i, ncompute, 0 };
	for (unsigned i = 0; i < nscan; i++)
		c->tasks[c->ntasks++] = (struct apf_task_spec){ APF_TASK_SCAN, i, nscan, 0 };
	snprintf(c->cmdline, sizeof(c->cmdline), "quiet %s", cmdline);
}

static int run(unsigned ncompute, unsigned nscan, uint64_t lazy, uint64_t lat_ns,
	       const char *cmdline, struct apfvm_stats *st, struct apf_err *e)
{
	struct apfvm_config c;

	config(&c, ncompute, nscan, lazy, lat_ns, cmdline);
	return apfvm_run(&c, st, e);
}

/* run() that fails the test with the run's own message. */
static int run_ok(unsigned ncompute, unsigned nscan, uint64_t lat_ns, const char *cmdline,
		  struct apfvm_stats *st)
{
	struct apf_err e;
	int rc = run(ncompute, nscan, 2 << 20, lat_ns, cmdline, st, &e);
	if (rc)
		TEST_FAIL_("run failed: %s", e.msg);
	return rc == 0;
}

static uint64_t scan_mismatches(const struct apfvm_stats *st, uint64_t *pages)
{
	uint64_t m = 0;
	*pages = 0;
	for (unsigned i = 0; i < st->ntasks; i++)
		if (st->tasks[i].kind == APF_TASK_SCAN) {
			m += st->tasks[i].mismatches;
			*pages += st->tasks[i].pages;
		}
	return m;
}

TEST(not_present_events_are_matched_by_ready)
{
	struct apfvm_stats st;
	uint64_t pages;

	REQUIRE_KVM();
	REQUIRE(run_ok(1, 1, 5000000, "", &st));
	REQUIRE(st.apf_reported);
	CHECK(st.apf.enabled);
	CHECK(st.apf.not_present > 0);
	CHECK_EQ_U(st.apf.ready, st.apf.not_present);
	CHECK(st.apf.wake_all >= 1); /* KVM sends one right after enabling */
	CHECK_EQ_U(scan_mismatches(&st, &pages), 0);
	CHECK_EQ_U(pages, 512);
	CHECK_EQ_U(st.pages_fetched, 512);
	CHECK_EQ_U(st.faults_async, st.apf.not_present);
}

TEST(no_apf_on_the_command_line_keeps_it_off)
{
	struct apfvm_stats st;
	uint64_t pages;

	REQUIRE_KVM();
	REQUIRE(run_ok(1, 1, 1000000, "no-apf", &st));
	REQUIRE(st.apf_reported);
	CHECK(!st.apf.enabled);
	CHECK_EQ_U(st.apf.not_present, 0);
	CHECK_EQ_U(st.apf.ready, 0);
	CHECK_EQ_U(scan_mismatches(&st, &pages), 0);
	CHECK_EQ_U(pages, 512);
}

/* Two scan tasks waiting for pages at the same time, next to compute:
 * both are parked at once, and both are woken (all pages verified). */
TEST(two_scanners_parked_at_once_are_both_woken)
{
	struct apfvm_stats st;
	uint64_t pages;

	REQUIRE_KVM();
	REQUIRE(run_ok(1, 2, 5000000, "", &st));
	CHECK(st.apf.parked_max >= 2);
	CHECK_EQ_U(st.apf.ready, st.apf.not_present);
	CHECK_EQ_U(scan_mismatches(&st, &pages), 0);
	CHECK_EQ_U(pages, 512);
}

/* With nothing else to run, the faulting task waits in place (halts with
 * interrupts on) instead of parking, and still completes. */
TEST(lone_scanner_waits_in_place)
{
	struct apfvm_stats st;
	uint64_t pages;

	REQUIRE_KVM();
	REQUIRE(run_ok(0, 1, 2000000, "", &st));
	CHECK(st.apf.not_present > 0);
	CHECK_EQ_U(st.apf.halts, st.apf.not_present);
	CHECK_EQ_U(st.apf.parked_max, 0);
	CHECK_EQ_U(scan_mismatches(&st, &pages), 0);
	CHECK_EQ_U(pages, 512);
}

/* KVM's own host side meets a page that cannot be fetched: its async
 * worker fails to map it, the guest's parked task retries on page-ready
 * and the access fails.  The run ends naming the page. */
TEST(page_that_cannot_be_fetched_ends_the_run)
{
	struct apfvm_config c;
	struct apfvm_stats st;

	REQUIRE_KVM();
	config(&c, 1, 1, 2 << 20, 0, "");
	run_with_failing_page(&c, 5000000, &st);
}

TEST_MAIN(T(not_present_events_are_matched_by_ready), T(no_apf_on_the_command_line_keeps_it_off),
	  T(two_scanners_parked_at_once_are_both_woken), T(lone_scanner_waits_in_place),
	  T(page_that_cannot_be_fetched_ends_the_run))
