/*
 * VM tests of `--apf user`: apfvm itself is the host side of async page
 * faults, against the unchanged reference guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "apfvm/abi_x86.h"
#include "apfvm/vmm.h"
#include "../failing_source.h"
#include "test.h"

#define REQUIRE_KVM()                                                              \
	do {                                                                       \
		if (access("/dev/kvm", R_OK | W_OK) != 0)                          \
			SKIP("/dev/kvm is not available on this machine");         \
	} while (0)

static void config(struct apfvm_config *c, unsigned nscan, uint64_t lazy, uint64_t lat_min,
		   uint64_t lat_max)
{
	apfvm_config_defaults(c);
	c->apf = APFVM_APF_USER;
	c->lazy_size = lazy;
	c->source = "zero";
	c->latency_min_ns = lat_min;
	c->latency_max_ns = lat_max;
	c->timeout_ns = 120ull * 1000000000ull;
	c->ntasks = 0;
	c->tasks[c->ntasks++] = (struct apf_task_spec){ APF_TASK_COMPUTE, 0, 1, 0 };
	for (unsigned i = 0; i < nscan; i++)
		c->tasks[c->ntasks++] = (struct apf_task_spec){ APF_TASK_SCAN, i, nscan, 0 };
	strcpy(c->cmdline, "quiet");
}

static int run_ok(const struct apfvm_config *c, struct apfvm_stats *st)
{
	struct apf_err e;
	int rc = apfvm_run(c, st, &e);
	if (rc)
		TEST_FAIL_("run failed: %s", e.msg);
	return rc == 0;
}

/* Scan tasks verified every page they own, with no mismatch. */
static void check_scans(const struct apfvm_stats *st, uint64_t pages)
{
	uint64_t seen = 0;
	for (unsigned i = 0; i < st->ntasks; i++)
		if (st->tasks[i].kind == APF_TASK_SCAN) {
			CHECK_EQ_U(st->tasks[i].mismatches, 0);
			seen += st->tasks[i].pages;
		}
	CHECK_EQ_U(seen, pages);
	CHECK_EQ_U(st->pages_fetched, pages);
}

/* Every fault is accounted for exactly once. */
static void check_accounting(const struct apfvm_stats *st)
{
	CHECK_EQ_U(st->faults_total, st->faults_async + st->sync_policy + st->sync_cannot_deliver +
					     st->sync_cap + st->repeat_waits + st->sync_disabled +
					     st->sync_raced + st->faults_spurious);
}

/* An embedder chooses the kick signal; SIGUSR1 stays as the process had
 * it (this test runs first, before any run could have touched SIGUSR1).
 * A signal the process ignores cannot kick: a clear error, no run. */
TEST(embedder_chooses_the_kick_signal)
{
	struct apfvm_config c;
	struct apfvm_stats st;
	struct apf_err e = { "" };
	struct sigaction usr1;

	REQUIRE_KVM();
	config(&c, 1, 2 << 20, 5000000, 5000000);
	c.kick_signal = SIGRTMIN + 2;
	REQUIRE(run_ok(&c, &st));
	check_scans(&st, 512);
	CHECK(st.faults_async > 400); /* kicks with the chosen signal worked */
	REQUIRE(sigaction(SIGUSR1, NULL, &usr1) == 0);
	CHECK(usr1.sa_handler == SIG_DFL);

	signal(SIGRTMIN + 3, SIG_IGN);
	c.kick_signal = SIGRTMIN + 3;
	CHECK(apfvm_run(&c, &st, &e) == -EINVAL);
	if (!strstr(e.msg, "cannot serve to kick vCPUs"))
		TEST_FAIL_("message '%s'", e.msg);
}

/* Every not-present gets its page-ready, and the guest's ACKs stay with
 * KVM: the VMM never sees one (they used to exit to it, one exit out to
 * userspace per async fault). */
TEST(slow_fetches_go_async_and_every_not_present_gets_ready)
{
	struct apfvm_config c;
	struct apfvm_stats st;

	REQUIRE_KVM();
	config(&c, 1, 2 << 20, 5000000, 5000000);
	REQUIRE(run_ok(&c, &st));
	check_scans(&st, 512);
	check_accounting(&st);
	REQUIRE(st.apf_reported);
	CHECK(st.faults_async > 400); /* a few may race or find the guest busy */
	CHECK_EQ_U(st.host_not_present, st.faults_async);
	CHECK_EQ_U(st.apf.not_present, st.host_not_present); /* the guest saw each one */
	CHECK_EQ_U(st.apf.ready, st.apf.not_present);
	CHECK_EQ_U(st.host_ready, st.host_not_present);
	CHECK_EQ_U(st.apf.wake_all, 1); /* on enable */
	CHECK_EQ_U(st.host_gp, 0);
	CHECK_EQ_U(st.host_acks, 0);
}

/* --apf-trap-acks: every page-ready (the wake-all too) is ACKed to apfvm,
 * each after the guest cleared its token, and ACK-paced delivery loses
 * nothing. */
TEST(trapped_acks_follow_every_page_ready_in_order)
{
	struct apfvm_config c;
	struct apfvm_stats st;

	REQUIRE_KVM();
	config(&c, 2, 2 << 20, 5000000, 5000000);
	c.apf_trap_acks = true;
	REQUIRE(run_ok(&c, &st));
	check_scans(&st, 512);
	check_accounting(&st);
	CHECK(st.faults_async > 400);
	CHECK_EQ_U(st.host_ready, st.host_not_present);
	CHECK_EQ_U(st.host_acks, st.host_ready + st.host_wake_all);
	CHECK_EQ_U(st.host_acks_early, 0);
	CHECK_EQ_U(st.apf.ready + st.apf.wake_all, st.host_acks);
}

/* Random latencies: completions come back out of order; three scanners
 * park at once next to compute; nothing hangs, nothing is lost. */
TEST(out_of_order_completions_with_three_scanners)
{
	struct apfvm_config c;
	struct apfvm_stats st;

	REQUIRE_KVM();
	config(&c, 3, 8 << 20, 200000, 5000000);
	c.scan_order = APF_SCAN_RANDOM;
	REQUIRE(run_ok(&c, &st));
	check_scans(&st, 2048);
	check_accounting(&st);
	CHECK(st.faults_async > 1000);
	CHECK_EQ_U(st.apf.ready, st.apf.not_present);
	CHECK_EQ_U(st.apf.not_present, st.faults_async);
	CHECK(st.apf.parked_max >= 2);
	CHECK(st.host_outstanding_max >= 2);
}

/* Pages available at once: the policy keeps every fault synchronous. */
TEST(fast_source_stays_synchronous)
{
	struct apfvm_config c;
	struct apfvm_stats st;

	REQUIRE_KVM();
	config(&c, 1, 4 << 20, 0, 0);
	REQUIRE(run_ok(&c, &st));
	check_scans(&st, 1024);
	check_accounting(&st);
	CHECK_EQ_U(st.faults_async, 0);
	CHECK_EQ_U(st.sync_policy + st.faults_spurious, st.faults_total);
	CHECK_EQ_U(st.apf.not_present, 0);
}

TEST(threshold_above_the_latency_keeps_faults_synchronous)
{
	struct apfvm_config c;
	struct apfvm_stats st;

	REQUIRE_KVM();
	config(&c, 1, 2 << 20, 1000000, 1000000);
	c.apf_threshold_ns = 10000000;
	REQUIRE(run_ok(&c, &st));
	check_scans(&st, 512);
	CHECK_EQ_U(st.faults_async, 0);
	CHECK_EQ_U(st.apf_threshold_ns, 10000000);
	CHECK(st.sync_policy >= 512);
}

TEST(guest_without_async_pf_is_served_synchronously)
{
	struct apfvm_config c;
	struct apfvm_stats st;

	REQUIRE_KVM();
	config(&c, 1, 2 << 20, 1000000, 1000000);
	strcpy(c.cmdline, "quiet no-apf");
	REQUIRE(run_ok(&c, &st));
	check_scans(&st, 512);
	check_accounting(&st);
	CHECK_EQ_U(st.faults_async, 0);
	CHECK_EQ_U(st.sync_disabled + st.faults_spurious, st.faults_total);
	CHECK(!st.apf.enabled);
}

/* A guest writing reserved bits to MSR_KVM_ASYNC_PF_EN gets #GP, as from
 * KVM; the reference guest treats it as fatal and the run reports it. */
TEST(reserved_bits_in_the_enable_msr_raise_gp)
{
	struct apfvm_config c;
	struct apfvm_stats st;
	struct apf_err e = { "" };

	REQUIRE_KVM();
	config(&c, 0, 0, 0, 0);
	c.duration_ns = 100000000;
	strcpy(c.cmdline, "quiet crash=apf-msr");
	CHECK(apfvm_run(&c, &st, &e) < 0);
	if (!strstr(e.msg, "#GP general protection (vector 13) in ring 0"))
		TEST_FAIL_("message '%s' does not report a #GP", e.msg);
}

/* --trace stamps every step of the path; each must have been observed. */
TEST(trace_times_every_step_of_the_fault_path)
{
	struct apfvm_config c;
	struct apfvm_stats st;

	REQUIRE_KVM();
	config(&c, 1, 2 << 20, 2000000, 2000000);
	c.trace = true;
	REQUIRE(run_ok(&c, &st));
	check_scans(&st, 512);
	REQUIRE(st.traced);
	const struct apfvm_fault_path *p = &st.path;
	CHECK_EQ_U(p->faults, st.faults_async);
	CHECK(p->access_to_read > 0 && p->kick_to_exit > 0 && p->exit_to_inject > 0);
	CHECK(p->np_delivery > 0 && p->np_handler > 0);
	CHECK(p->rdy_delivery > 0 && p->rdy_handler > p->rdy_ack && p->rdy_ack > 0);
	CHECK(p->resume > 0);
	/* The scan waits at least the fetch for each page it faulted on. */
	CHECK(p->stall_per_page >= 2000.0 * (double)st.faults_async / 512);
	CHECK(st.apf.np_tsc > 0 && st.apf.ready_tsc > 0);
	/* Every step lies within the fault's whole round trip (the scan's wait
	 * per async fault): host and guest stamps are on one clock, also on
	 * nested hosts whose guest TSC is offset from the host's. */
	double total = p->stall_per_page * 512 / (double)st.faults_async;
	const double steps[] = { p->access_to_read, p->read_to_kick, p->kick_to_exit,
				 p->exit_to_inject, p->np_delivery, p->np_handler,
				 p->install_to_raise, p->rdy_delivery, p->rdy_handler,
				 p->rdy_ack, p->np_resume, p->resume };
	for (unsigned i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if (!(steps[i] >= 0 && steps[i] <= total))
			TEST_FAIL_("fault path step %u is %.1f us, outside [0, %.1f us]", i, steps[i],
				   total);
}

/* A page whose fetch fails after its fault went async: the parked task
 * gets its page-ready, retries, and the access fails.  The run ends at
 * once naming the page; no zero page reaches the guest, nothing waits for
 * the timeout. */
TEST(async_fault_on_a_page_that_cannot_be_fetched_ends_the_run)
{
	struct apfvm_config c;
	struct apfvm_stats st;

	REQUIRE_KVM();
	config(&c, 1, 2 << 20, 0, 0);
	run_with_failing_page(&c, 5000000, &st);
	CHECK(st.faults_async > 200); /* the scan's faults went async */
}

/* The host side's counters are reported without a lazy region too: the
 * guest enables async PF and gets its wake-all even with nothing to fault
 * on (they used to be collected only with a pager, so a guest's enabling
 * went unseen: all zeros, the threshold too). */
TEST(host_counters_without_a_lazy_region)
{
	struct apfvm_config c;
	struct apfvm_stats st;

	REQUIRE_KVM();
	config(&c, 0, 0, 0, 0);
	c.duration_ns = 50000000;
	REQUIRE(run_ok(&c, &st));
	CHECK_EQ_U(st.host_wake_all, 1);
	CHECK_EQ_U(st.host_gp, 0);
	CHECK(st.apf_threshold_ns > 0); /* reported, not left 0 */
	CHECK_EQ_U(st.faults_total, 0);
}

TEST_MAIN(T(embedder_chooses_the_kick_signal), T(trapped_acks_follow_every_page_ready_in_order), T(host_counters_without_a_lazy_region), T(trace_times_every_step_of_the_fault_path), T(slow_fetches_go_async_and_every_not_present_gets_ready),
	  T(out_of_order_completions_with_three_scanners), T(fast_source_stays_synchronous),
	  T(threshold_above_the_latency_keeps_faults_synchronous),
	  T(guest_without_async_pf_is_served_synchronously),
	  T(reserved_bits_in_the_enable_msr_raise_gp),
	  T(async_fault_on_a_page_that_cannot_be_fetched_ends_the_run))
