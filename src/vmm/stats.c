/* stats: the human summary and the JSON document of one run. */
#include <inttypes.h>
#include <stdio.h>

#include "apfvm/vmm.h"

static const char *kind_name(uint32_t kind)
{
	return kind == APF_TASK_COMPUTE ? "compute" : kind == APF_TASK_SCAN ? "scan" : "unknown";
}

static double latency_us(const struct apfvm_stats *st)
{
	return (double)(st->latency_min_ns + st->latency_max_ns) / 2e3;
}

/* Mean microseconds per event of a guest TSC sum. */
static double apf_path_us(const struct apfvm_stats *st, uint64_t tsc, uint64_t n)
{
	return n && st->tsc_khz ? (double)tsc / (double)n / ((double)st->tsc_khz / 1e3) : 0;
}

/* "12.3" or "-" for a step this mode does not show (value 0). */
static const char *us_or_dash(double v, int slot)
{
	static char buf[13][16];
	if (v <= 0)
		return "-";
	snprintf(buf[slot], sizeof(buf[slot]), "%.1f", v);
	return buf[slot];
}

/* The first lines: what ran, and for how long. */
static void print_setup(FILE *f, const struct apfvm_stats *st)
{
	fprintf(f, "apfvm: mode %s, source %s, latency ", apfvm_mode_name(st->mode), st->source);
	if (st->latency_min_ns == st->latency_max_ns)
		fprintf(f, "%.0f us\n", latency_us(st));
	else
		fprintf(f, "%.0f-%.0f us (uniform)\n", st->latency_min_ns / 1e3,
			st->latency_max_ns / 1e3);
	if (st->platform[0])
		fprintf(f, "  platform: %s\n", st->platform);
	fprintf(f, "  wall time     %.3f s\n", st->wall_s);
}

/* Faults by how they were served, and (APFVM_APF_USER) the host's side
 * of async PF. */
static void print_faults(FILE *f, const struct apfvm_stats *st)
{
	fprintf(f, "  faults        %" PRIu64 " (sync %" PRIu64 ", async %" PRIu64 ", joined %" PRIu64
		   ")\n",
		st->faults_total, st->faults_sync, st->faults_async, st->faults_joined);
	if (st->mode == APFVM_APF_USER)
		fprintf(f,
			"  sync because  policy %" PRIu64 ", cannot deliver %" PRIu64 ", cap %" PRIu64
			", repeat %" PRIu64 ", disabled %" PRIu64 ", raced %" PRIu64
			" (threshold %.0f us)\n",
			st->sync_policy, st->sync_cannot_deliver, st->sync_cap, st->repeat_waits,
			st->sync_disabled, st->sync_raced, st->apf_threshold_ns / 1e3);
	if (st->mode == APFVM_APF_USER) {
		fprintf(f, "  host apf      not-present %" PRIu64 ", ready %" PRIu64 ", wake-all %" PRIu64,
			st->host_not_present, st->host_ready, st->host_wake_all);
		if (st->host_acks)
			fprintf(f, ", ACKs %" PRIu64 " (before the token was cleared: %" PRIu64 ")",
				st->host_acks, st->host_acks_early);
		fprintf(f, "\n");
	}
}

/* The pages: fetched, tried again, fetched for a restore, failed. */
static void print_pages(FILE *f, const struct apfvm_stats *st)
{
	fprintf(f, "  pages fetched %" PRIu64 " of %" PRIu64 " (%.1f MiB); fault service mean %.1f us, "
		   "p50 %" PRIu64 " us, p99 %" PRIu64 " us\n",
		st->pages_fetched, st->lazy_pages, (double)st->bytes_fetched / (1 << 20),
		st->fault_us_mean, st->fault_us_p50, st->fault_us_p99);
	if (st->source_retries || st->source_reconnects)
		fprintf(f, "  source        %" PRIu64 " fetches tried again (%" PRIu64 " pages arrived "
			   "corrupt, never mapped); %" PRIu64 " reconnects\n",
			st->source_retries, st->source_corrupt, st->source_reconnects);
	if (st->restored) {
		fprintf(f, "  restore       first instruction %.2f ms after the start (snapshot read %.2f, "
			   "VM and pagers ready %.2f, state restored %.2f)\n"
			   "                resident memory: %" PRIu64 " pages fetched on %" PRIu64 " faults\n",
			st->first_run_ms, st->opened_ms, st->vm_ready_ms, st->state_ms,
			st->resident_pages_fetched, st->resident_faults);
		if (st->work_at_snapshot_known)
			fprintf(f, "                compute work at the snapshot %" PRIu64 "\n",
				st->work_at_snapshot);
	}
	if (st->pages_failed)
		fprintf(f, "  pages failed  %" PRIu64 " (could not be fetched; %" PRIu64
			   " faults on them failed)\n",
			st->pages_failed, st->faults_failed);
}

/* Demand faults that blocked their vCPU (async ones are the lazy region's:
 * the host side goes async there only). */
static uint64_t demand_sync(const struct apfvm_stats *st)
{
	return st->demand_faults > st->faults_async ? st->demand_faults - st->faults_async : 0;
}

/* The demand-fault waits' histogram, in one line: "bucket:count" for the
 * non-empty buckets, each named by its lower bound in us. */
static void print_histo(FILE *f, const struct log_histo *h)
{
	for (unsigned b = 0; b < log_histo_used(h); b++)
		if (h->count[b])
			fprintf(f, " %llu:%" PRIu64, 1ull << b, h->count[b]);
}

/* Fewer faults: the faults the guest waited for, what came ahead of it,
 * and when. */
static void print_fewer_faults(FILE *f, const struct apfvm_stats *st)
{
	fprintf(f, "  demand        %" PRIu64 " pages waited for (sync %" PRIu64 ", async %" PRIu64 ")",
		st->demand_faults, demand_sync(st), st->faults_async);
	if (st->demand_faults)
		fprintf(f, "; wait in us (from:count)");
	print_histo(f, &st->demand_us);
	fprintf(f, "\n");
	if (st->prefetch_listed || st->pages_prefetched)
		fprintf(f, "  ahead         %" PRIu64 " pages fetched before a fault (%" PRIu64
			   " by background population) in %" PRIu64 " requests, %" PRIu64
			   " of them waited on in flight, %" PRIu64 " failed; working set %" PRIu64
			   " of %" PRIu64 " pages loaded\n",
			st->pages_prefetched, st->pages_background, st->bulk_requests, st->prefetch_joined,
			st->bulk_errors, st->prefetch_loaded, st->prefetch_listed);
	fprintf(f, "  times         first instruction %.2f ms", st->first_instruction_ms);
	if (st->prefetch_listed)
		fprintf(f, ", working set loaded %s", st->ws_loaded_ms ? "" : "never");
	if (st->ws_loaded_ms)
		fprintf(f, "%.2f ms", st->ws_loaded_ms);
	if (st->populated_ms)
		fprintf(f, ", all memory local %.2f ms (source closed)", st->populated_ms);
	fprintf(f, " (from the start)\n");
	if (st->ws_recorded)
		fprintf(f, "  working set   %" PRIu64 " pages recorded\n", st->ws_recorded_pages);
}

/* What the guest reported (our kernel's async PF, or Linux's), then KVM's
 * own counters. */
static void print_guest(FILE *f, const struct apfvm_stats *st)
{
	if (st->apf_reported && st->apf.enabled) {
		const struct apf_guest_stats *a = &st->apf;
		fprintf(f, "  guest apf     not-present %" PRIu64 ", ready %" PRIu64 ", wake-all %" PRIu64
			   ", dummy %" PRIu64 ", halts %" PRIu64 ", parked max %" PRIu64 "\n",
			a->not_present, a->ready, a->wake_all, a->dummy, a->halts, a->parked_max);
		if (a->np_tsc) /* the guest times its paths only with --trace */
			fprintf(f, "  guest cost    not-present path %.1f us, page-ready path %.1f us (mean)\n",
				apf_path_us(st, a->np_tsc, a->not_present),
				apf_path_us(st, a->ready_tsc, a->ready + a->wake_all));
	}
	if (st->linux_reported) {
		const struct apf_linux_stats *l = &st->linux_apf;
		fprintf(f, "  linux         /init at %.2f s; HYP interrupts %" PRIu64, l->boot_ns / 1e9,
			l->hyp_interrupts);
		if (l->probed)
			fprintf(f, "; task waits %" PRIu64 ", wakes %" PRIu64, l->task_waits,
				l->task_wakes);
		fprintf(f, "; scan switches %" PRIu64, l->task_switches);
		if (l->kernel_reads)
			fprintf(f, "; kernel read %" PRIu64 " pages, mismatches %" PRIu64,
				l->kernel_reads, l->kernel_read_mismatches);
		fprintf(f, "\n");
	}
	if (st->kvm_exits && st->kvm_has_pf_and_emulation)
		fprintf(f, "  kvm           %" PRIu64 " exits, %" PRIu64 " page faults, %" PRIu64
			   " instructions emulated\n",
			st->kvm_exits, st->kvm_pf_taken, st->kvm_insn_emulation);
	else if (st->kvm_exits)
		fprintf(f, "  kvm           %" PRIu64 " exits, %" PRIu64 " for signals\n", st->kvm_exits,
			st->kvm_signal_exits);
}

/* With --trace: one async fault's path, step by step (two columns). */
static void print_fault_path(FILE *f, const struct apfvm_fault_path *p)
{
	fprintf(f, "  fault path (mean us per async fault, %" PRIu64 " faults; -: not observable in this mode)\n",
		p->faults);
	fprintf(f, "    access -> pager reads fault   %7s   kick -> vCPU exits      %7s\n",
		us_or_dash(p->access_to_read, 0), us_or_dash(p->kick_to_exit, 1));
	fprintf(f, "    read -> kick                  %7s   exit -> #PF injected    %7s\n",
		us_or_dash(p->read_to_kick, 2), us_or_dash(p->exit_to_inject, 3));
	fprintf(f, "    injection -> guest handler    %7s   guest not-present path  %7s\n",
		us_or_dash(p->np_delivery, 4), us_or_dash(p->np_handler, 5));
	fprintf(f, "    switch -> other task runs     %7s\n", us_or_dash(p->np_resume, 12));
	fprintf(f, "    installed -> ready raised     %7s   raise -> guest handler  %7s\n",
		us_or_dash(p->install_to_raise, 6), us_or_dash(p->rdy_delivery, 7));
	fprintf(f, "    guest page-ready path         %7s   (of which ACK write     %7s)\n",
		us_or_dash(p->rdy_handler, 8), us_or_dash(p->rdy_ack, 9));
	fprintf(f, "    woken task's switch -> access %7s   scan's wait per page    %7s\n",
		us_or_dash(p->resume, 10), us_or_dash(p->stall_per_page, 11));
}

/* One line per guest task. */
static void print_tasks(FILE *f, const struct apfvm_stats *st)
{
	for (unsigned i = 0; i < st->ntasks; i++) {
		const struct apfvm_task_stats *t = &st->tasks[i];
		fprintf(f, "  task %-2u %-7s runtime %.3f s", t->id, kind_name(t->kind), t->runtime_s);
		if (t->kind == APF_TASK_COMPUTE)
			fprintf(f, ", work %" PRIu64 " (%.0f units/s)\n", t->work,
				t->runtime_s > 0 ? (double)t->work / t->runtime_s : 0);
		else
			fprintf(f, ", pages %" PRIu64 ", mismatches %" PRIu64 "\n", t->pages,
				t->mismatches);
	}
}

void apfvm_stats_print(FILE *f, const struct apfvm_stats *st)
{
	print_setup(f, st);
	print_faults(f, st);
	print_pages(f, st);
	print_fewer_faults(f, st);
	print_guest(f, st);
	if (st->traced)
		print_fault_path(f, &st->path);
	print_tasks(f, st);
}

/* The JSON document's members, in order; each ends its member with ",\n"
 * (only the last, "tasks", closes the document). */

static void json_setup(FILE *f, const struct apfvm_stats *st)
{
	fprintf(f, "  \"mode\": \"%s\",\n", apfvm_mode_name(st->mode));
	fprintf(f, "  \"platform\": \"%s\",\n", st->platform);
	fprintf(f, "  \"latency_us\": %.3f,\n", latency_us(st));
	fprintf(f, "  \"latency_min_us\": %.3f,\n", st->latency_min_ns / 1e3);
	fprintf(f, "  \"latency_max_us\": %.3f,\n", st->latency_max_ns / 1e3);
	fprintf(f, "  \"wall_s\": %.6f,\n", st->wall_s);
	if (st->restored) {
		fprintf(f, "  \"restore\": {\"first_run_ms\": %.3f, \"opened_ms\": %.3f, \"vm_ready_ms\": %.3f, "
			   "\"state_ms\": %.3f, \"resident_pages_fetched\": %" PRIu64 ", \"resident_faults\": %" PRIu64,
			st->first_run_ms, st->opened_ms, st->vm_ready_ms, st->state_ms,
			st->resident_pages_fetched, st->resident_faults);
		if (st->work_at_snapshot_known)
			fprintf(f, ", \"compute_work_at_snapshot\": %" PRIu64, st->work_at_snapshot);
		fprintf(f, "},\n");
	}
	if (st->snapshot_taken)
		fprintf(f, "  \"snapshot_at_s\": %.6f,\n", st->snapshot_at_s);
}

static void json_pages(FILE *f, const struct apfvm_stats *st)
{
	fprintf(f, "  \"lazy_pages\": %" PRIu64 ",\n", st->lazy_pages);
	fprintf(f, "  \"pages_fetched\": %" PRIu64 ",\n", st->pages_fetched);
	fprintf(f, "  \"bytes_fetched\": %" PRIu64 ",\n", st->bytes_fetched);
	fprintf(f, "  \"pages_failed\": %" PRIu64 ",\n", st->pages_failed);
	fprintf(f, "  \"source_retries\": %" PRIu64 ",\n", st->source_retries);
	fprintf(f, "  \"source_corrupt\": %" PRIu64 ",\n", st->source_corrupt);
	fprintf(f, "  \"source_reconnects\": %" PRIu64 ",\n", st->source_reconnects);
	fprintf(f, "  \"faults_failed\": %" PRIu64 ",\n", st->faults_failed);
	fprintf(f, "  \"inflight_max\": %" PRIu64 ",\n", st->inflight_max);
	fprintf(f, "  \"fault_us_mean\": %.3f,\n", st->fault_us_mean);
	fprintf(f, "  \"fault_us_p50\": %" PRIu64 ",\n", st->fault_us_p50);
	fprintf(f, "  \"fault_us_p99\": %" PRIu64 ",\n", st->fault_us_p99);
	fprintf(f, "  \"tsc_khz\": %" PRIu64 ",\n", st->tsc_khz);
}

/* "demand", "ahead", "times_ms": fewer faults. */
static void json_fewer_faults(FILE *f, const struct apfvm_stats *st)
{
	fprintf(f, "  \"demand\": {\"faults\": %" PRIu64 ", \"sync\": %" PRIu64 ", \"async\": %" PRIu64
		   ", \"latency_us_log2\": [",
		st->demand_faults, demand_sync(st), st->faults_async);
	for (unsigned b = 0; b < log_histo_used(&st->demand_us); b++)
		fprintf(f, "%s%" PRIu64, b ? ", " : "", st->demand_us.count[b]);
	fprintf(f, "]},\n");
	fprintf(f, "  \"ahead\": {\"listed\": %" PRIu64 ", \"loaded\": %" PRIu64 ", \"fetched\": %" PRIu64
		   ", \"background\": %" PRIu64 ", \"waited_on\": %" PRIu64 ", \"requests\": %" PRIu64
		   ", \"failed\": %" PRIu64 "},\n",
		st->prefetch_listed, st->prefetch_loaded, st->pages_prefetched, st->pages_background,
		st->prefetch_joined, st->bulk_requests, st->bulk_errors);
	fprintf(f, "  \"times_ms\": {\"first_instruction\": %.3f, \"ws_loaded\": %.3f, "
		   "\"populated\": %.3f},\n",
		st->first_instruction_ms, st->ws_loaded_ms, st->populated_ms);
	if (st->ws_recorded)
		fprintf(f, "  \"ws_recorded_pages\": %" PRIu64 ",\n", st->ws_recorded_pages);
}

/* "kvm", "faults" and (APFVM_APF_USER) "host_apf". */
static void json_faults(FILE *f, const struct apfvm_stats *st)
{
	fprintf(f,
		"  \"kvm\": {\"exits\": %" PRIu64 ", \"pf_taken\": %" PRIu64
		", \"insn_emulation\": %" PRIu64 ", \"signal_exits\": %" PRIu64
		", \"halt_exits\": %" PRIu64 "},\n",
		st->kvm_exits, st->kvm_pf_taken, st->kvm_insn_emulation, st->kvm_signal_exits,
		st->kvm_halt_exits);
	fprintf(f,
		"  \"faults\": {\"total\": %" PRIu64 ", \"sync\": %" PRIu64 ", \"async\": %" PRIu64
		", \"joined\": %" PRIu64 ", \"spurious\": %" PRIu64,
		st->faults_total, st->faults_sync, st->faults_async, st->faults_joined,
		st->faults_spurious);
	if (st->mode == APFVM_APF_USER)
		fprintf(f,
			", \"sync_policy\": %" PRIu64 ", \"sync_cannot_deliver\": %" PRIu64
			", \"sync_cap\": %" PRIu64 ", \"repeat_waits\": %" PRIu64
			", \"sync_disabled\": %" PRIu64 ", \"sync_raced\": %" PRIu64,
			st->sync_policy, st->sync_cannot_deliver, st->sync_cap, st->repeat_waits,
			st->sync_disabled, st->sync_raced);
	fprintf(f, "},\n");
	if (st->mode == APFVM_APF_USER)
		fprintf(f,
			"  \"host_apf\": {\"threshold_us\": %.3f, \"not_present\": %" PRIu64
			", \"ready\": %" PRIu64 ", \"wake_all\": %" PRIu64
			", \"gp_injected\": %" PRIu64 ", \"dropped\": %" PRIu64
			", \"outstanding_max\": %" PRIu64 ", \"ready_retries\": %" PRIu64
			", \"ready_refused\": %" PRIu64 ", \"acks\": %" PRIu64
			", \"acks_early\": %" PRIu64 ", \"area_gpa\": %" PRIu64 "},\n",
			st->apf_threshold_ns / 1e3, st->host_not_present, st->host_ready,
			st->host_wake_all, st->host_gp, st->host_dropped, st->host_outstanding_max,
			st->host_ready_retries, st->host_ready_refused, st->host_acks,
			st->host_acks_early, st->host_area_gpa);
}

/* "apf" and "linux", when the guest reported them. */
static void json_guest(FILE *f, const struct apfvm_stats *st)
{
	if (st->apf_reported) {
		const struct apf_guest_stats *a = &st->apf;
		fprintf(f,
			"  \"apf\": {\"enabled\": %s, \"not_present\": %" PRIu64 ", \"ready\": %" PRIu64
			", \"wake_all\": %" PRIu64 ", \"dummy\": %" PRIu64 ", \"halts\": %" PRIu64
			", \"parked_max\": %" PRIu64 ", \"np_path_us\": %.3f, \"ready_path_us\": %.3f},\n",
			a->enabled ? "true" : "false", a->not_present, a->ready, a->wake_all, a->dummy,
			a->halts, a->parked_max, apf_path_us(st, a->np_tsc, a->not_present),
			apf_path_us(st, a->ready_tsc, a->ready + a->wake_all));
	}
	if (st->linux_reported) {
		const struct apf_linux_stats *l = &st->linux_apf;
		fprintf(f,
			"  \"linux\": {\"boot_s\": %.3f, \"hyp_interrupts\": %" PRIu64
			", \"probed\": %s, \"task_waits\": %" PRIu64 ", \"task_wakes\": %" PRIu64
			", \"scan_voluntary_switches\": %" PRIu64 ", \"kernel_reads\": %" PRIu64
			", \"kernel_read_mismatches\": %" PRIu64 "},\n",
			l->boot_ns / 1e9, l->hyp_interrupts, l->probed ? "true" : "false",
			l->task_waits, l->task_wakes, l->task_switches, l->kernel_reads,
			l->kernel_read_mismatches);
	}
}

/* With --trace: "fault_path_us". */
static void json_fault_path(FILE *f, const struct apfvm_fault_path *p)
{
	fprintf(f,
		"  \"fault_path_us\": {\"faults\": %" PRIu64 ", \"access_to_read\": %.2f, "
		"\"read_to_kick\": %.2f, \"kick_to_exit\": %.2f, \"exit_to_inject\": %.2f, "
		"\"np_delivery\": %.2f, \"np_handler\": %.2f, \"install_to_raise\": %.2f, "
		"\"rdy_delivery\": %.2f, \"rdy_handler\": %.2f, \"rdy_ack\": %.2f, "
		"\"np_resume\": %.2f, \"resume\": %.2f, \"stall_per_page\": %.2f, \"readies_after_ack\": %" PRIu64 "},\n",
		p->faults, p->access_to_read, p->read_to_kick, p->kick_to_exit, p->exit_to_inject,
		p->np_delivery, p->np_handler, p->install_to_raise, p->rdy_delivery,
		p->rdy_handler, p->rdy_ack, p->np_resume, p->resume, p->stall_per_page, p->readies_after_ack);
}

/* "tasks", the last member: it closes the document. */
static void json_tasks(FILE *f, const struct apfvm_stats *st)
{
	fprintf(f, "  \"tasks\": [");
	for (unsigned i = 0; i < st->ntasks; i++) {
		const struct apfvm_task_stats *t = &st->tasks[i];
		fprintf(f, "%s\n    {\"name\": \"%s\", \"id\": %u, \"runtime_s\": %.6f", i ? "," : "",
			kind_name(t->kind), t->id, t->runtime_s);
		if (t->kind == APF_TASK_COMPUTE)
			fprintf(f, ", \"work\": %" PRIu64 "}", t->work);
		else
			fprintf(f, ", \"pages\": %" PRIu64 ", \"mismatches\": %" PRIu64
				   ", \"stall_s\": %.6f}",
				t->pages, t->mismatches, t->stall_s);
	}
	fprintf(f, "%s]\n}\n", st->ntasks ? "\n  " : "");
}

int apfvm_stats_write_json(FILE *f, const struct apfvm_stats *st)
{
	fprintf(f, "{\n");
	json_setup(f, st);
	json_pages(f, st);
	json_faults(f, st);
	/* After "faults": scripts take the first "faults" and "async". */
	json_fewer_faults(f, st);
	json_guest(f, st);
	if (st->traced)
		json_fault_path(f, &st->path);
	json_tasks(f, st);
	return ferror(f) ? -1 : 0;
}
