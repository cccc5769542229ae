/*
 * run: apfvm_run(), the library's entry point: one run as a short script
 * of the machine's lifecycle (lifecycle.h), with the snapshot's point or the
 * timeout deciding when it halts.
 */
#include <errno.h>
#include <string.h>

#include "apfvm/vmm.h"
#include "config.h"
#include "guest_report.h"
#include "lifecycle.h"
#include "loader.h"
#include "machine_ws.h"
#include "run_stats.h"
#include "snapshot_vm.h"
#include "util/thread.h"

static const struct machine_loader *loader_for(const struct apfvm_config *c)
{
	if (c->restore_path)
		return &snapshot_loader;
	return c->linux_kernel ? &linux_loader : &reference_loader;
}

/* What is left of --timeout (counted from the vCPU's start, a snapshot's
 * wait included), or 0 for none. */
static uint64_t timeout_left(const struct machine *m)
{
	uint64_t timeout = m->cfg->timeout_ns, waited = monotonic_ns() - m->run_ns;
	return !timeout ? 0 : timeout > waited ? timeout - waited : 1;
}

/* Lets the guest run to its end, at most until --timeout, halts the
 * machine and collects: a run that times out ends within --timeout plus
 * machine_halt's bounds. */
static int run_to_end(struct machine *m, struct apfvm_stats *st, struct apf_err *e)
{
	char why[64];

	if (machine_wait(m, timeout_left(m), false)) {
		machine_halt(m, "after the guest stopped", false);
	} else {
		machine_stop(m);
		snprintf(why, sizeof(why), "timed out after %.1f s (--timeout)",
			 (double)m->cfg->timeout_ns / 1e9);
		machine_halt(m, why, true);
	}
	run_collect_stats(m, st);
	int rc = machine_verdict(m, e);
	if (!rc && m->cfg->record_ws_path) {
		/* Only a run that ended well: a partial recording would mislead. */
		if ((rc = machine_ws_record(m, e)))
			return rc;
		st->ws_recorded = true;
		st->ws_recorded_pages = st->demand_faults;
	}
	return rc;
}

/* Waits for the snapshot's point: snapshot_at_ns from the start, or the
 * pager's --snapshot-after-pages (bounded by the run's timeout).  False if
 * the run stopped first, or the timeout passed. */
static bool wait_snapshot_point(struct machine *m)
{
	const struct apfvm_config *c = m->cfg;

	if (!c->snapshot_after_pages) {
		/* --timeout first: the caller's wait then times out at once. */
		bool timeout_first = c->timeout_ns && c->timeout_ns < c->snapshot_at_ns;
		uint64_t until = timeout_first ? c->timeout_ns : c->snapshot_at_ns;
		return !machine_wait(m, until, false) && !timeout_first;
	}
	return machine_wait(m, c->timeout_ns, true) && !atomic_load(&m->stop);
}

/* The guest ended (or timed out) before the snapshot's point: the run's
 * own result, or that there was nothing to snapshot. */
static int ended_first(struct machine *m, struct apfvm_stats *st, struct apf_err *e)
{
	const struct apfvm_config *c = m->cfg;
	int rc = run_to_end(m, st, e);

	if (rc)
		return rc;
	if (c->snapshot_after_pages)
		return apf_fail(e, -EINVAL, "--snapshot-after-pages %llu: the guest finished before, "
				"after %llu pages, at %.3f s (nothing to snapshot)",
				(unsigned long long)c->snapshot_after_pages,
				(unsigned long long)st->pages_fetched, st->wall_s);
	return apf_fail(e, -EINVAL, "--snapshot-at %.3f s: the guest finished before, at %.3f s "
			"(nothing to snapshot)", (double)c->snapshot_at_ns / 1e9, st->wall_s);
}

/* --snapshot: at the point, the guest stops (its vCPU completes its last
 * exit, every thread joined) and the snapshot is written. */
static int run_to_snapshot(struct machine *m, struct apfvm_stats *st, struct apf_err *e)
{
	if (!wait_snapshot_point(m))
		return ended_first(m, st, e);
	uint64_t at_ns = monotonic_ns() - m->run_ns;
	atomic_store(&m->snapshot_requested, true);
	machine_stop(m);
	machine_halt(m, "--snapshot", false);
	if (m->report.failed)
		return apf_fail(e, -EIO, "%s", m->report.failure);
	int rc = snapshot_save(m, m->cfg->snapshot_path, at_ns, e);
	if (rc)
		return rc;
	run_collect_stats(m, st);
	st->snapshot_taken = true;
	st->snapshot_at_s = (double)at_ns / 1e9;
	return 0;
}

int apfvm_run(const struct apfvm_config *c, struct apfvm_stats *st, struct apf_err *e)
{
	struct machine *m;
	int rc;

	memset(st, 0, sizeof(*st));
	if ((rc = config_check(c, e)) || (rc = machine_create(c, &m, e)))
		return rc;
	if (!(rc = machine_assemble(m, loader_for(c), e)) && !(rc = machine_start(m, e)))
		rc = c->snapshot_path ? run_to_snapshot(m, st, e) : run_to_end(m, st, e);
	machine_destroy(m);
	return rc;
}
