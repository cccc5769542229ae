#include "run_stats.h"

#include <stdio.h>

#include "arch/platform.h"

/* Mean microseconds per event of each step of the fault path. */
static void collect_trace(struct machine *m, struct apfvm_stats *st)
{
	const struct apf_trace *g = m->trace;
	struct apfvm_fault_path *p = &st->path;
	double us = st->tsc_khz ? 1e3 / (double)st->tsc_khz : 0; /* per tick */
	uint64_t n = m->host_trace.injected, pages = 0;
	double stall = 0;

#define MEAN(sum, count) ((count) ? (double)(sum) * us / (double)(count) : 0)
	st->traced = true;
	p->faults = n ? n : g->np_count;
	p->access_to_read = MEAN(m->host_trace.access_to_read, n);
	p->read_to_kick = MEAN(m->host_trace.read_to_kick, n);
	p->kick_to_exit = MEAN(m->host_trace.kick_to_exit, n);
	p->exit_to_inject = MEAN(m->host_trace.exit_to_inject, n);
	p->np_delivery = MEAN(g->np_delivery, n);
	p->np_handler = MEAN(g->np_handler, g->np_count);
	p->install_to_raise = MEAN(m->host_trace.install_to_raise, m->host_trace.raised_on_install);
	p->readies = g->rdy_count;
	p->readies_after_ack = m->host_trace.raised_on_ack;
	p->rdy_delivery = MEAN(g->rdy_delivery, m->host_trace.raised_on_install + m->host_trace.raised_on_ack);
	p->rdy_handler = MEAN(g->rdy_handler, g->rdy_count);
	p->rdy_ack = MEAN(g->rdy_ack, g->rdy_count);
	p->resume = MEAN(g->resume, g->resume_count);
	p->np_resume = MEAN(g->np_resume, g->np_resume_count);
#undef MEAN
	for (unsigned i = 0; i < st->ntasks; i++)
		if (st->tasks[i].kind == APF_TASK_SCAN) {
			stall += st->tasks[i].stall_s;
			pages += st->tasks[i].pages;
		}
	p->stall_per_page = pages ? stall * 1e6 / (double)pages : 0;
}

void run_collect_stats(struct machine *m, const struct apfvm_config *c, struct apfvm_stats *st)
{
	if (c->restore_path) {
		uint64_t first = atomic_load(&m->first_run_ns);
		st->restored = true;
		st->first_run_ms = first ? (double)(first - m->start_ns) / 1e6 : 0;
		double *phase[3] = { &st->opened_ms, &st->vm_ready_ms, &st->state_ms };
		for (int i = 0; i < 3; i++)
			*phase[i] = m->restore_phase_ns[i] ? (double)(m->restore_phase_ns[i] - m->start_ns) / 1e6 : 0;
		st->work_at_snapshot_known = m->has_progress;
		st->work_at_snapshot = m->work_at_snapshot;
		if (m->res_pager_ready && !m->res_pager.abandoned) {
			st->resident_pages_fetched = m->res_pager.stats.pages_fetched;
			st->resident_faults = m->res_pager.stats.faults_total;
		}
	}
	const struct pager_stats *ps = &m->pager.stats;

	st->mode = c->apf;
	platform_describe(st->platform, sizeof(st->platform));
	snprintf(st->source, sizeof(st->source), "%s", m->source ? m->source->desc : "none");
	st->latency_min_ns = c->latency_min_ns;
	st->latency_max_ns = c->latency_max_ns;
	st->tsc_khz = m->vm.tsc_khz;
	st->lazy_pages = m->gm.lazy_size / APF_PAGE_SIZE;
	/* The host side's counters: without a lazy region too (a guest that
	 * enables async PF with nothing to fault on still gets its wake-all).
	 * Not while an abandoned pager thread may still call into the core. */
	if (m->core && !(m->pager_ready && m->pager.abandoned)) {
		const struct apf_core_stats *cs = &m->core->stats;
		st->faults_async = cs->decisions[APF_ASYNC];
		st->sync_policy = cs->decisions[APF_SYNC_POLICY];
		st->sync_cannot_deliver = cs->decisions[APF_SYNC_CANNOT_DELIVER];
		st->sync_cap = cs->decisions[APF_SYNC_CAP];
		st->repeat_waits = cs->decisions[APF_SYNC_REPEAT];
		st->sync_disabled = cs->decisions[APF_SYNC_DISABLED];
		st->sync_raced = cs->decisions[APF_SYNC_RACED];
		st->apf_threshold_ns = m->core->threshold_ns;
		st->host_not_present = cs->not_present;
		st->host_ready = cs->ready;
		st->host_wake_all = cs->wake_all;
		st->host_ready_retries = cs->retries;
		st->host_ready_refused = cs->refused;
		st->host_area_gpa = m->core->vcpus[0].area_gpa;
		st->host_acks = cs->acks;
		st->host_acks_early = cs->acks_early;
		st->host_gp = cs->gp_injected;
		st->host_dropped = cs->dropped;
		st->host_outstanding_max = cs->outstanding_max;
	}
	if (m->pager_ready && !m->pager.abandoned) { /* else its thread may still write them */
		st->pages_fetched = ps->pages_fetched;
		st->bytes_fetched = ps->bytes_fetched;
		st->pages_failed = ps->pages_failed;
		st->source_retries = m->raw_source->retries;
		st->source_corrupt = m->raw_source->corrupt;
		st->source_reconnects = m->raw_source->reconnects;
		st->faults_failed = ps->faults_failed;
		st->faults_total = ps->faults_total;
		/* In kernel mode only the guest sees which faults went async
		 * (Linux: the waits its kprobe counted). */
		if (c->apf == APFVM_APF_KERNEL)
			st->faults_async = m->report.linux_reported
						   ? m->report.linux_stats.task_waits
						   : m->report.apf.not_present;
		st->faults_spurious = ps->faults_spurious;
		st->fault_us_p50 = ps->fault_us_p50;
		st->fault_us_p99 = ps->fault_us_p99;
		st->faults_sync = ps->faults_total > st->faults_async
					  ? ps->faults_total - st->faults_async
					  : 0;
		st->faults_joined = ps->faults_joined;
		st->inflight_max = ps->inflight_max;
		st->fault_us_mean = ps->pages_fetched
					    ? (double)ps->fault_ns_sum / (double)ps->pages_fetched / 1e3
					    : 0;
	}
	st->apf_reported = m->report.apf_reported;
	st->apf = m->report.apf;
	st->linux_reported = m->report.linux_reported;
	st->linux_apf = m->report.linux_stats;
	st->ntasks = m->report.nresults;
	for (unsigned i = 0; i < m->report.nresults; i++) {
		const struct apf_task_result *r = &m->report.results[i];
		struct apfvm_task_stats *t = &st->tasks[i];
		t->kind = r->kind;
		t->id = r->id;
		t->runtime_s = st->tsc_khz ? (double)r->runtime_tsc / ((double)st->tsc_khz * 1e3) : 0;
		t->work = r->work;
		t->pages = r->pages;
		t->mismatches = r->mismatches;
		t->first_bad = r->first_bad;
		t->stall_s = st->tsc_khz ? (double)r->stall_tsc / ((double)st->tsc_khz * 1e3) : 0;
	}
	if (m->trace)
		collect_trace(m, st);
}

