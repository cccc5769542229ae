#include "run_stats.h"

#include <stdio.h>

#include "arch/platform.h"
#include "util/thread.h"

/* Mean microseconds per event of each step of the fault path. */
static void collect_trace(struct machine *m, struct apfvm_stats *st)
{
	const struct apf_trace *g = m->trace.page;
	const struct machine_trace *h = &m->trace;
	struct apfvm_fault_path *p = &st->path;
	double us = st->tsc_khz ? 1e3 / (double)st->tsc_khz : 0; /* per tick */
	uint64_t n = h->injected, pages = 0;
	double stall = 0;

#define MEAN(sum, count) ((count) ? (double)(sum) * us / (double)(count) : 0)
	st->traced = true;
	p->faults = n ? n : g->np_count;
	p->access_to_read = MEAN(h->access_to_read, n);
	p->read_to_kick = MEAN(h->read_to_kick, n);
	p->kick_to_exit = MEAN(h->kick_to_exit, n);
	p->exit_to_inject = MEAN(h->exit_to_inject, n);
	p->np_delivery = MEAN(g->np_delivery, n);
	p->np_handler = MEAN(g->np_handler, g->np_count);
	p->install_to_raise = MEAN(h->install_to_raise, h->raised_on_install);
	p->readies = g->rdy_count;
	p->readies_after_ack = h->raised_on_ack;
	p->rdy_delivery = MEAN(g->rdy_delivery, h->raised_on_install + h->raised_on_ack);
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

/* A restore's own figures: its phases and resident memory's pager. */
static void collect_restore(const struct machine *m, struct apfvm_stats *st)
{
	const struct pager *res = m->region[MACHINE_RESIDENT].pager;
	uint64_t first = atomic_load(&m->first_run_ns);
	double *phase[3] = { &st->opened_ms, &st->vm_ready_ms, &st->state_ms };

	st->restored = true;
	st->first_run_ms = first ? (double)(first - m->start_ns) / 1e6 : 0;
	for (int i = 0; i < 3; i++)
		*phase[i] = m->restore.phase_ns[i] ? (double)(m->restore.phase_ns[i] - m->start_ns) / 1e6 : 0;
	st->work_at_snapshot_known = m->restore.has_progress;
	st->work_at_snapshot = m->restore.work_at_snapshot;
	if (res && !res->abandoned) {
		st->resident_pages_fetched = res->stats.pages_fetched;
		st->resident_faults = res->stats.faults_total;
	}
}

/* The host side's counters (--apf user). */
static void collect_core(const struct apf_core *core, struct apfvm_stats *st)
{
	const struct apf_core_stats *cs = &core->stats;

	st->faults_async = cs->decisions[APF_ASYNC];
	st->sync_policy = cs->decisions[APF_SYNC_POLICY];
	st->sync_cannot_deliver = cs->decisions[APF_SYNC_CANNOT_DELIVER];
	st->sync_cap = cs->decisions[APF_SYNC_CAP];
	st->repeat_waits = cs->decisions[APF_SYNC_REPEAT];
	st->sync_disabled = cs->decisions[APF_SYNC_DISABLED];
	st->sync_raced = cs->decisions[APF_SYNC_RACED];
	st->apf_threshold_ns = core->threshold_ns;
	st->host_not_present = cs->not_present;
	st->host_ready = cs->ready;
	st->host_wake_all = cs->wake_all;
	st->host_ready_retries = cs->retries;
	st->host_ready_refused = cs->refused;
	st->host_area_gpa = core->vcpus[0].area_gpa;
	st->host_acks = cs->acks;
	st->host_acks_early = cs->acks_early;
	st->host_gp = cs->gp_injected;
	st->host_dropped = cs->dropped;
	st->host_outstanding_max = cs->outstanding_max;
}

/* The lazy region's pager and source. */
static void collect_lazy(const struct machine *m, const struct pager *p, struct apfvm_stats *st)
{
	const struct pager_stats *ps = &p->stats;
	const struct machine_region *r = &m->region[MACHINE_LAZY];

	st->pages_fetched = ps->pages_fetched;
	st->bytes_fetched = ps->bytes_fetched;
	st->pages_failed = ps->pages_failed;
	/* A source let go once all memory was present kept its counters. */
	st->source_retries = r->raw ? r->raw->retries : r->retries;
	st->source_corrupt = r->raw ? r->raw->corrupt : r->corrupt;
	st->source_reconnects = r->raw ? r->raw->reconnects : r->reconnects;
	st->faults_failed = ps->faults_failed;
	st->faults_total = ps->faults_total;
	/* In kernel mode only the guest sees which faults went async (Linux:
	 * the waits its kprobe counted). */
	if (m->cfg->apf == APFVM_APF_KERNEL)
		st->faults_async = m->report.linux_reported ? m->report.linux_stats.task_waits
							    : m->report.apf.not_present;
	st->faults_spurious = ps->faults_spurious;
	st->fault_us_p50 = ps->fault_us_p50;
	st->fault_us_p99 = ps->fault_us_p99;
	st->faults_sync = ps->faults_total > st->faults_async ? ps->faults_total - st->faults_async : 0;
	st->faults_joined = ps->faults_joined;
	st->inflight_max = ps->inflight_max;
	uint64_t waited = 0;
	for (unsigned b = 0; b < LOG_HISTO_BUCKETS; b++)
		waited += ps->demand_us.count[b];
	st->fault_us_mean = waited ? (double)ps->fault_ns_sum / (double)waited / 1e3 : 0;
}

static double ms_since_start(const struct machine *m, uint64_t ns)
{
	return ns > m->start_ns ? (double)(ns - m->start_ns) / 1e6 : 0;
}

/* Fewer faults: both regions' pagers summed; the later region's times. */
static void collect_fewer_faults(const struct machine *m, struct apfvm_stats *st)
{
	uint64_t loaded = 0, populated = 0;
	unsigned listed = 0, regions = 0, full = 0;

	for (int i = 0; i < MACHINE_REGIONS; i++) {
		const struct pager *p = m->region[i].pager;
		if (!p || p->abandoned)
			continue;
		const struct pager_stats *ps = &p->stats;
		regions++;
		st->demand_faults += ps->demand_faults;
		for (unsigned b = 0; b < LOG_HISTO_BUCKETS; b++)
			st->demand_us.count[b] += ps->demand_us.count[b];
		st->pages_prefetched += ps->pages_prefetched;
		st->pages_background += ps->pages_background;
		st->prefetch_joined += ps->prefetch_joined;
		st->prefetch_listed += ps->prefetch_listed;
		st->prefetch_loaded += ps->prefetch_loaded;
		st->bulk_requests += ps->bulk_requests;
		st->bulk_errors += ps->bulk_errors;
		if (ps->prefetch_listed) {
			listed++;
			if (ps->ws_loaded_ns > loaded)
				loaded = ps->ws_loaded_ns;
		}
		if (ps->populated_ns) {
			full++;
			populated = ps->populated_ns > populated ? ps->populated_ns : populated;
		}
	}
	st->first_instruction_ms = ms_since_start(m, atomic_load(&m->first_run_ns));
	/* Reached only once every region with a list (with memory) got there. */
	st->ws_loaded_ms = listed && st->prefetch_loaded == st->prefetch_listed ? ms_since_start(m, loaded) : 0;
	st->populated_ms = regions && full == regions ? ms_since_start(m, populated) : 0;
}

/* What the guest reported: its counters and each task's result. */
static void collect_report(const struct machine *m, struct apfvm_stats *st)
{
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
}

/* KVM's own counters for vCPU 0 (not from a thread left in KVM_RUN: the
 * read would wait for it). */
static void collect_kvm(struct machine *m, struct apfvm_stats *st)
{
	struct kvm_vcpu_counters kc;

	if (m->abandoned || vcpu_read_counters(&m->vm.vcpus[0], &kc))
		return;
	st->kvm_exits = kc.exits;
	st->kvm_pf_taken = kc.pf_taken;
	st->kvm_insn_emulation = kc.insn_emulation;
	st->kvm_has_pf_and_emulation = kc.has_pf_and_emulation;
	st->kvm_signal_exits = kc.signal_exits;
	st->kvm_halt_exits = kc.halt_exits;
}

void run_collect_stats(struct machine *m, struct apfvm_stats *st)
{
	const struct apfvm_config *c = m->cfg;
	const struct pager *lazy = machine_lazy_pager(m);
	const struct machine_region *lr = &m->region[MACHINE_LAZY];

	st->wall_s = (double)(monotonic_ns() - m->run_ns) / 1e9;
	collect_kvm(m, st);
	if (c->restore_path)
		collect_restore(m, st);
	st->mode = c->apf;
	platform_describe(st->platform, sizeof(st->platform));
	snprintf(st->source, sizeof(st->source), "%s", lr->source_desc[0] ? lr->source_desc : "none");
	st->latency_min_ns = c->latency_min_ns;
	st->latency_max_ns = c->latency_max_ns;
	st->tsc_khz = m->vm.tsc_khz;
	st->lazy_pages = m->gm.lazy_size / APF_PAGE_SIZE;
	/* The host side's counters: without a lazy region too (a guest that
	 * enables async PF with nothing to fault on still gets its wake-all).
	 * Not while an abandoned pager thread may still call into the core. */
	if (m->core && !(lazy && lazy->abandoned))
		collect_core(m->core, st);
	if (lazy && !lazy->abandoned) /* else its thread may still write them */
		collect_lazy(m, lazy, st);
	collect_fewer_faults(m, st);
	collect_report(m, st);
	if (m->trace.page)
		collect_trace(m, st);
}
