/*
 * run: assembles a machine from a configuration (page source, guest
 * memory, guest ELF, page tables, boot info, KVM VM, pager), runs it to
 * completion and gathers the statistics.  The apfvm library entry point.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apf_user.h"
#include "apfvm/vmm.h"
#include "elf_loader.h"
#include "guest_linux.h"
#include "kvm_stats.h"
#include "run_stats.h"
#include "snapshot_vm.h"
#include "machine.h"
#include "vcpu_loop.h"
#include "source/delay.h"
#include "source/open.h"
#include "util/thread.h"

void apfvm_config_defaults(struct apfvm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->guest_elf = apfvm_builtin_guest;
	c->guest_elf_len = apfvm_builtin_guest_len;
	c->guest_name = "built-in guest";
	c->mem_size = 64ull << 20;
	c->source = "zero";
	c->apf = APFVM_APF_OFF;
	c->ntasks = 1;
	c->tasks[0] = (struct apf_task_spec){ .kind = APF_TASK_COMPUTE, .index = 0, .count = 1 };
	c->duration_ns = 2000000000ull;
	c->timer_hz = 100;
	c->max_inflight = 64;
	c->vcpu_cpu = c->pager_cpu = -1;
}

const char *apfvm_mode_name(enum apfvm_apf_mode m)
{
	switch (m) {
	case APFVM_APF_OFF: return "off";
	case APFVM_APF_KERNEL: return "kernel";
	case APFVM_APF_USER: return "user";
	}
	return "?";
}

bool apfvm_mode_exists(enum apfvm_apf_mode m)
{
	struct vm_options opt;
	struct apf_err e;

	memset(&opt, 0, sizeof(opt));
	return arch_mode_options(&opt, m, &e) == 0;
}

void machine_fail(struct machine *m, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&m->report_lock);
	if (!m->report.failed) {
		m->report.failed = true;
		va_start(ap, fmt);
		vsnprintf(m->report.failure, sizeof(m->report.failure), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&m->report_lock);
	machine_stop(m);
}

void machine_stop(struct machine *m)
{
	atomic_store(&m->stop, true);
	for (unsigned i = 0; i < m->vm.nvcpus; i++)
		vcpu_kick(&m->vm.vcpus[i]);
	pthread_mutex_lock(&m->report_lock);
	pthread_cond_broadcast(&m->stopped);
	pthread_cond_broadcast(&m->page_arrived);
	pthread_mutex_unlock(&m->report_lock);
}

/* --snapshot-after-pages: the pager installed that many (pager thread). */
static void snapshot_point_reached(void *ctx)
{
	struct machine *m = ctx;

	pthread_mutex_lock(&m->report_lock);
	m->snapshot_point = true;
	pthread_cond_broadcast(&m->stopped);
	pthread_mutex_unlock(&m->report_lock);
}

static void release_memory(struct machine *m);

/* A page that could not be served.  Poisoned, it fails the guest's access
 * (vcpu_loop reports it, and verdict() adds the pager's error); blocking
 * (no UFFDIO_POISON), the run must stop here, and the memory is released:
 * a wait on that page would otherwise never end, also one the kick cannot
 * reach (the VMM's own access to guest memory while a restore starts). */
static void pager_failed(struct machine *m, const struct pager *p, bool blocking)
{
	if (!blocking)
		return;
	machine_fail(m, "the pager cannot serve the %s: %s", p->cfg.region, p->error_msg);
	release_memory(m);
}

void machine_pager_error(void *ctx, bool blocking)
{
	struct machine *m = ctx;
	pager_failed(m, &m->pager, blocking);
}

void machine_res_pager_error(void *ctx, bool blocking)
{
	struct machine *m = ctx;
	pager_failed(m, &m->res_pager, blocking);
}

/* The command line's bound is the delay source's: one number, checked
 * here before anything is built. */
_Static_assert(APFVM_MAX_LATENCY_NS == SOURCE_DELAY_MAX_NS, "latency bounds differ");

/* How long teardown waits for the pager thread after a timeout, and for a
 * stopped vCPU before it frees it by force. */
#define PAGER_STOP_WAIT_NS (2ull * 1000000000ull)
#define VCPU_STOP_WAIT_NS  (2ull * 1000000000ull)

static int check_snapshot_config(const struct apfvm_config *c, struct apf_err *e)
{
	if (!c->snapshot_path) {
		if (c->snapshot_at_ns || c->snapshot_after_pages)
			return apf_fail(e, -EINVAL, "a snapshot's time or page count needs its path (--snapshot)");
		return 0;
	}
	if (c->restore_path)
		return apf_fail(e, -EINVAL, "--snapshot with restore: not yet (a restored run cannot "
				"be snapshotted again)");
	if (!c->snapshot_at_ns == !c->snapshot_after_pages)
		return apf_fail(e, -EINVAL, "--snapshot needs one of --snapshot-at and --snapshot-after-pages");
	if (c->snapshot_at_ns > APFVM_MAX_DURATION_NS)
		return apf_fail(e, -EINVAL, "--snapshot-at must be at most 7 days");
	if (!c->snapshot_after_pages)
		return 0;
	if (!c->lazy_size)
		return apf_fail(e, -EINVAL, "--snapshot-after-pages counts pages of the lazy region: "
				"it needs --lazy");
	if (c->snapshot_after_pages > c->lazy_size / APF_PAGE_SIZE)
		return apf_fail(e, -EINVAL, "--snapshot-after-pages %llu: the lazy region has %llu pages "
				"(--lazy)", (unsigned long long)c->snapshot_after_pages,
				(unsigned long long)(c->lazy_size / APF_PAGE_SIZE));
	if (c->populate)
		return apf_fail(e, -EINVAL, "--snapshot-after-pages counts pages fetched on fault: "
				"--populate fetches none");
	return 0;
}

static int check_config(const struct apfvm_config *c, struct apf_err *e)
{
	if (c->mem_size < (16ull << 20) || c->mem_size > (2ull << 30) || c->mem_size % APF_PAGE_SIZE)
		return apf_fail(e, -EINVAL, "--mem must be a multiple of 4K between 16M and 2G");
	if (c->lazy_size % APF_LAZY_ALIGN || c->lazy_size > (64ull << 30))
		return apf_fail(e, -EINVAL, "--lazy must be a multiple of 2M, at most 64G");
	if (c->ntasks == 0 || c->ntasks > APF_MAX_TASKS)
		return apf_fail(e, -EINVAL, "between 1 and %d tasks", APF_MAX_TASKS);
	if (c->timer_hz < 10 || c->timer_hz > 1000)
		return apf_fail(e, -EINVAL, "timer frequency must be 10..1000 Hz");
	if (c->max_inflight < 1 || c->max_inflight > SOURCE_QUEUE_MAX)
		return apf_fail(e, -EINVAL, "in-flight limit must be 1..%d", SOURCE_QUEUE_MAX);
	if (c->latency_min_ns > c->latency_max_ns)
		return apf_fail(e, -EINVAL, "latency range is inverted");
	if (c->latency_max_ns > APFVM_MAX_LATENCY_NS)
		return apf_fail(e, -EINVAL, "latency must be at most 60s");
	if (c->apf_threshold_ns > APFVM_MAX_THRESHOLD_NS)
		return apf_fail(e, -EINVAL, "async threshold must be at most 60s");
	if (c->duration_ns > APFVM_MAX_DURATION_NS || c->timeout_ns > APFVM_MAX_DURATION_NS)
		return apf_fail(e, -EINVAL, "duration and timeout must be at most 7 days");
	for (unsigned i = 0; i < c->ntasks; i++)
		if (c->tasks[i].kind == APF_TASK_SCAN && !c->lazy_size)
			return apf_fail(e, -EINVAL, "a scan task needs a lazy region (--lazy)");
	return check_snapshot_config(c, e);
}

void apfvm_net_options(const struct apfvm_config *c, struct source_net_options *net)
{
	*net = (struct source_net_options){
		.timeout_ns = c->fetch_timeout_ns ? c->fetch_timeout_ns : SOURCE_NET_TIMEOUT_DEFAULT_NS,
		.tries = c->fetch_tries ? c->fetch_tries : SOURCE_NET_TRIES_DEFAULT,
		.store = { .s3_endpoint = c->s3_endpoint, .s3_region = c->s3_region,
			   .cache_bytes = c->object_cache_bytes, .cache_dir = c->object_cache_dir,
			   .cache_dir_bytes = c->object_cache_dir_bytes },
	};
}

static int open_source(struct machine *m, const struct apfvm_config *c, struct apf_err *e)
{
	if (c->page_source) {
		if (c->latency_max_ns)
			return apf_fail(e, -EINVAL, "latency is added to the built-in sources only");
		if (c->page_source->npages < c->lazy_size / APF_PAGE_SIZE)
			return apf_fail(e, -EINVAL, "page source is smaller than the lazy region");
		m->source = m->raw_source = c->page_source;
		m->source_borrowed = true;
		return 0;
	}
	struct source_net_options net;
	apfvm_net_options(c, &net);
	int rc = source_open(c->source, c->lazy_size, &net, &m->source, e);
	m->raw_source = m->source;
	if (!rc && m->source->pattern == APF_PATTERN_SNAPSHOT)
		return apf_fail(e, -EINVAL, "%s serves a snapshot's memory: restore that snapshot "
				"(apfvm restore PATH --source %s)", m->source->desc, c->source);
	if (rc || !c->latency_max_ns)
		return rc;
	struct page_source *wrapped;
	rc = source_delay_wrap(m->source, c->latency_min_ns, c->latency_max_ns,
			       c->latency_seed, &wrapped, e);
	if (rc)
		return rc;
	m->source = wrapped;
	return 0;
}

/* Writes the boot info at m->boot_info_gpa.  Needs the vCPU's TSC rate. */
static void write_boot_info(struct machine *m, const struct apfvm_config *c)
{
	const struct guest_layout *l = &m->layout; /* zero but for the reference guest */
	struct apf_boot_info *bi = gmem_ptr(&m->gm, m->boot_info_gpa, sizeof(*bi));

	if (c->trace) {
		bi->trace_gpa = l->trace_gpa;
		m->trace = gmem_ptr(&m->gm, l->trace_gpa, sizeof(*m->trace));
	}

	bi->progress_gpa = l->progress_gpa;
	bi->magic = APF_BOOT_MAGIC;
	bi->mem_size = m->gm.resident_size;
	bi->kfree_start = l->kfree_start;
	bi->kfree_end = l->kfree_end;
	bi->ufree_start = l->ufree_start;
	bi->ufree_end = l->ufree_end;
	bi->lazy_base = APF_LAZY_GPA;
	bi->lazy_size = c->lazy_size;
	bi->tsc_khz = m->vm.tsc_khz;
	bi->pattern = m->source ? m->source->pattern : APF_PATTERN_ZERO;
	bi->seed = m->source ? m->source->seed : 0;
	bi->order_seed = c->order_seed;
	bi->duration_us = c->duration_ns / 1000;
	bi->scan_order = c->scan_order;
	bi->timer_hz = c->timer_hz;
	bi->ntasks = c->ntasks;
	memcpy(bi->tasks, c->tasks, sizeof(bi->tasks));
	memcpy(bi->cmdline, c->cmdline, sizeof(bi->cmdline));
	bi->cmdline[APF_CMDLINE_MAX - 1] = '\0';
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits until the run is stopped (the guest finished or failed, or
 * machine_stop), `*point` is set (under report_lock; NULL: no point), or
 * timeout_ns (0 = none) passed.  True if stopped or at the point. */
static bool wait_stopped_or(struct machine *m, uint64_t timeout_ns, const bool *point)
{
	struct timespec deadline = deadline_after(CLOCK_MONOTONIC, timeout_ns);
	bool ended;
	int rc = 0;

	pthread_mutex_lock(&m->report_lock);
	while (!atomic_load(&m->stop) && !(point && *point) && rc != ETIMEDOUT)
		rc = timeout_ns ? pthread_cond_timedwait(&m->stopped, &m->report_lock, &deadline)
				: pthread_cond_wait(&m->stopped, &m->report_lock);
	ended = atomic_load(&m->stop) || (point && *point);
	pthread_mutex_unlock(&m->report_lock);
	return ended;
}

static bool wait_stopped(struct machine *m, uint64_t timeout_ns)
{
	return wait_stopped_or(m, timeout_ns, NULL);
}

/* Releases the guest's registered memory (both regions): a fault blocked
 * there completes on a zero page.  Only for a stopped machine, whose
 * vCPU's pending kick makes KVM_RUN return before the guest runs on it. */
static void release_memory(struct machine *m)
{
	if (m->pager_ready)
		pager_release(&m->pager);
	if (m->res_pager_ready)
		pager_release(&m->res_pager);
}

/* Ends the vCPU thread of a stopped machine, within 2 * VCPU_STOP_WAIT_NS.
 * Every vCPU exit follows a stop, so the thread then ends, unless a kick
 * cannot free it from a fault (host kernels before 6.2, or a user-mode
 * access of the VMM's on a page no pager will install): after
 * VCPU_STOP_WAIT_NS the memory is released under it.  A thread that still
 * does not end (blocked outside KVM, say writing to a console nobody
 * reads) is left behind (m->abandoned): false. */
static bool end_vcpu(struct machine *m, struct vcpu *v)
{
	if (join_within(v->thread, VCPU_STOP_WAIT_NS) == 0)
		return true;
	release_memory(m);
	if (join_within(v->thread, VCPU_STOP_WAIT_NS) == 0)
		return true;
	pthread_detach(v->thread);
	m->abandoned = true;
	return false;
}

/* Stops both pager threads, each within PAGER_STOP_WAIT_NS: a page source
 * stuck in a call holds its thread, which is then left behind
 * (m->abandoned, the memory released).  False if one was. */
static bool end_pagers(struct machine *m)
{
	if (m->pager_ready)
		pager_stop_within(&m->pager, PAGER_STOP_WAIT_NS);
	if (m->res_pager_ready)
		pager_stop_within(&m->res_pager, PAGER_STOP_WAIT_NS);
	if (!m->pager.abandoned && !m->res_pager.abandoned)
		return true;
	release_memory(m);
	m->abandoned = true;
	return false;
}

/* Ends a stopped run's threads, the vCPU's then the pagers', each wait
 * bounded: nothing here takes longer than 2 * VCPU_STOP_WAIT_NS + 2 *
 * PAGER_STOP_WAIT_NS.  The failure names `why` the run stopped
 * ("--snapshot", "timed out after ...") and what was left behind; a
 * timed-out vCPU that did stop is reported with where it was. */
static void end_threads(struct machine *m, struct vcpu *v, const char *why, bool timed_out)
{
	bool vcpu_ended = end_vcpu(m, v);
	end_pagers(m);
	char what[160];

	if (m->pager.abandoned || m->res_pager.abandoned)
		machine_fail(m, "%s: the page source%s does not respond (a fetch has not returned; "
			     "its thread is left behind)", why,
			     m->pager.abandoned ? "" : " of the resident memory");
	else if (!vcpu_ended)
		machine_fail(m, "%s: the vCPU thread does not stop (it is blocked outside the "
			     "guest; left behind)", why);
	else if (timed_out) { /* where the guest was: a loop, a wait with interrupts off */
		snprintf(what, sizeof(what), "%s: the guest did not finish", why);
		arch_fail_with_regs(m, v, what);
	}
}

/* Waits for the guest to end, at most until --timeout (counted from the
 * vCPU's start, t0_ns, a snapshot's wait included; 0: none), then ends the
 * run's threads within their bounds (end_threads): a run that times out
 * ends within --timeout plus those bounds. */
static void wait_vcpu(struct machine *m, struct vcpu *v, uint64_t timeout_ns, uint64_t t0_ns)
{
	uint64_t waited = monotonic_ns() - t0_ns;
	uint64_t left = !timeout_ns ? 0 : timeout_ns > waited ? timeout_ns - waited : 1;
	char why[64];

	if (wait_stopped(m, left)) {
		end_threads(m, v, "after the guest stopped", false);
		return;
	}
	machine_stop(m);
	snprintf(why, sizeof(why), "timed out after %.1f s (--timeout)", (double)timeout_ns / 1e9);
	end_threads(m, v, why, true);
}

/* The reference guest kind: its ELF, then the architecture's page
 * tables, entry state and exits (arch_load_reference). */
static int load_reference_guest(struct machine *m, const struct apfvm_config *c,
				struct arch_entry *entry, struct apf_err *e)
{
	struct elf_image img;
	int rc = elf_load(&m->gm, c->guest_elf, c->guest_elf_len, c->guest_name, c->mem_size / 2,
			  &img, e);
	if (rc)
		return rc;
	rc = arch_load_reference(m, &img, entry, e);
	if (rc)
		return rc;
	m->boot_info_gpa = APF_BOOT_INFO_GPA;
	m->expected_results = c->ntasks;
	return 0;
}

static int build(struct machine *m, const struct apfvm_config *c, struct apf_err *e)
{
	struct vm_options opt;
	struct arch_entry entry = { 0 };
	int rc;

	memset(&opt, 0, sizeof(opt));
	rc = arch_mode_options(&opt, c->apf, e);
	if (rc)
		return rc;
	if (c->lazy_size) {
		rc = open_source(m, c, e);
		if (rc)
			return rc;
	}
	rc = gmem_init(&m->gm, c->mem_size, c->lazy_size, e);
	if (rc)
		return rc;
	/* The guest kind: its memory, its exits and what its VM needs. */
	rc = c->linux_kernel ? guest_linux_load(m, c, &opt, &entry, e)
			     : load_reference_guest(m, c, &entry, e);
	if (rc)
		return rc;
	m->vm_opt = opt;
	rc = vm_create(&m->vm, &m->gm, &opt, e);
	if (rc)
		return rc;
	if (c->apf == APFVM_APF_USER) {
		rc = apf_user_setup_vm(&m->vm, c->apf_trap_acks, e);
		if (rc)
			return rc;
	}
	rc = vm_add_vcpu(&m->vm, &opt, &entry, e);
	if (!rc)
		rc = vm_finalize(&m->vm, &opt, e);
	if (rc)
		return rc;
	if (c->apf == APFVM_APF_USER && (rc = apf_user_init(m, c, e)))
		return rc;
	m->vm.vcpus[0].cpu = c->vcpu_cpu;
	if (m->boot_info_gpa)
		write_boot_info(m, c);
	if (c->lazy_size) {
		struct pager_config pc = {
			.host_base = m->gm.lazy,
			.size = c->lazy_size,
			.source = m->source,
			.max_inflight = c->max_inflight,
			.cpu = c->pager_cpu,
			.on_error = machine_pager_error,
			.ctx = m,
			.hooks = m->core ? &m->pager_hooks : NULL,
			.notify_pages = c->snapshot_path ? c->snapshot_after_pages : 0,
			.on_pages_fetched = snapshot_point_reached,
		};
		rc = pager_init(&m->pager, &pc, e);
		m->pager_ready = true; /* destroy even a half-initialized pager */
		if (rc)
			return rc;
		if (c->populate) {
			rc = pager_populate(&m->pager, m->raw_source, e);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* A pager's error message, once its thread is joined; else NULL. */
static const char *pager_error_of(const struct pager *p, bool ready)
{
	return ready && !p->running && !p->abandoned && p->error ? p->error_msg : NULL;
}

static int verdict(struct machine *m, struct apf_err *e)
{
	struct guest_report *r = &m->report;
	const struct pager *failed = pager_error_of(&m->pager, m->pager_ready) ? &m->pager
				     : pager_error_of(&m->res_pager, m->res_pager_ready) ? &m->res_pager
				     : NULL;
	const char *pager_error = failed ? failed->error_msg : NULL;

	if (r->failed && pager_error && !strstr(r->failure, pager_error))
		return apf_fail(e, -EIO, "%s (%s)", r->failure, pager_error);
	if (r->failed)
		return apf_fail(e, -EIO, "%s", r->failure);
	if (pager_error)
		return apf_fail(e, -EIO, "the pager cannot serve the %s: %s", failed->cfg.region,
				pager_error);
	if (!r->done)
		return apf_fail(e, -EIO, "the guest stopped without reporting completion");
	if (r->status)
		return apf_fail(e, -EIO, "the guest finished with status %llu",
				(unsigned long long)r->status);
	if (r->nresults != m->expected_results)
		return apf_fail(e, -EIO, "the guest reported %u task results, expected %u",
				r->nresults, m->expected_results);
	return 0;
}

/* Waits for the snapshot's point: snapshot_at_ns from the start, or the
 * pager's snapshot_point (bounded by the run's timeout).  False if the run
 * stopped first, or the timeout passed. */
static bool wait_snapshot_point(struct machine *m, const struct apfvm_config *c)
{
	if (!c->snapshot_after_pages) {
		/* --timeout first: the caller's wait then times out at once. */
		bool timeout_first = c->timeout_ns && c->timeout_ns < c->snapshot_at_ns;
		uint64_t until = timeout_first ? c->timeout_ns : c->snapshot_at_ns;
		return !wait_stopped(m, until) && !timeout_first;
	}
	return wait_stopped_or(m, c->timeout_ns, &m->snapshot_point) && !atomic_load(&m->stop);
}

/* --snapshot: lets the guest run to the snapshot's point, then stops it
 * (its vCPU thread joined, the pager stopped) and writes the snapshot.
 * Returns 1 if the guest ended first or the timeout passed (its thread
 * not joined: the caller goes on as for any run), 0 when the snapshot is
 * written, or -errno (the thread joined). */
static int take_snapshot(struct machine *m, const struct apfvm_config *c, uint64_t t0_ns,
			 struct apf_err *e)
{
	struct vcpu *v = &m->vm.vcpus[0];

	if (!wait_snapshot_point(m, c))
		return 1;
	uint64_t at_ns = monotonic_ns() - t0_ns;
	atomic_store(&m->snapshot_requested, true);
	machine_stop(m);
	end_threads(m, v, "--snapshot", false);
	if (m->report.failed)
		return apf_fail(e, -EIO, "%s", m->report.failure);
	int rc = machine_take_snapshot(m, c, at_ns, e);
	if (!rc) {
		m->snapshot_taken = true;
		m->snapshot_taken_ns = at_ns;
	}
	return rc;
}

/* Ends what is left of a run (its pagers, where it failed before its
 * vCPU started) and frees the machine, unless a thread of it was left
 * behind and may still touch it: then all of it is leaked. */
static void machine_free(struct machine *m)
{
	end_pagers(m);
	if (m->abandoned)
		return;
	if (m->pager_ready)
		pager_destroy(&m->pager);
	if (m->res_pager_ready)
		pager_destroy(&m->res_pager);
	if (m->core) {
		apf_core_destroy(m->core);
		free(m->core);
	}
	vm_destroy(&m->vm);
	gmem_destroy(&m->gm);
	free(m->pc);
	if (!m->source_borrowed)
		source_close(m->source);
	source_close(m->res_source);
	free(m->snapshot_bufs);
	if (m->snap_open)
		snap_close(&m->snap);
	pthread_cond_destroy(&m->stopped);
	pthread_cond_destroy(&m->page_arrived);
	pthread_mutex_destroy(&m->report_lock);
	free(m);
}

int apfvm_run(const struct apfvm_config *c, struct apfvm_stats *st, struct apf_err *e)
{
	struct machine *m;
	double t0;
	int rc;

	memset(st, 0, sizeof(*st));
	rc = check_config(c, e);
	if (rc)
		return rc;
	m = calloc(1, sizeof(*m));
	if (!m)
		return apf_fail(e, -ENOMEM, "out of memory");
	m->vm.vm_fd = m->vm.kvm_fd = -1;
	m->start_ns = monotonic_ns();
	pthread_mutex_init(&m->report_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->stopped, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&m->page_arrived, NULL);
	m->console = c->console;

	rc = c->restore_path ? machine_build_restore(m, c, e) : build(m, c, e);
	if (!rc) {
		m->vm.kick_signal = c->kick_signal ? c->kick_signal : VCPU_KICK_SIGNAL_DEFAULT;
		rc = vcpu_loop_setup_signal(m->vm.kick_signal);
		if (rc)
			apf_fail(e, rc, "signal %d cannot serve to kick vCPUs: it is ignored or cannot be caught",
				 m->vm.kick_signal);
	}
	if (!rc && (rc = vcpu_loop_setup_sigbus()))
		apf_fail(e, rc, "cannot install the SIGBUS handler: %s", strerror(-rc));
	/* (A restore has started its pagers already.) */
	if (!rc && m->pager_ready && !m->pager.running)
		rc = pager_start(&m->pager, e);
	if (!rc && m->res_pager_ready && !m->res_pager.running)
		rc = pager_start(&m->res_pager, e);
	if (!rc && c->restore_path)
		rc = machine_restore_started(m, c, e);
	t0 = now_s();
	uint64_t t0_ns = monotonic_ns();
	if (!rc) {
		rc = vcpu_start(&m->vm.vcpus[0]);
		if (rc == -EINVAL && m->vm.vcpus[0].cpu >= 0)
			apf_fail(e, rc, "cannot pin the vCPU thread to CPU %d: not in this process's CPU set",
				 m->vm.vcpus[0].cpu);
		else if (rc)
			apf_fail(e, rc, "cannot start the vCPU thread: %s", strerror(-rc));
	}
	bool ended_first = false;
	if (!rc && c->snapshot_path) {
		int r = take_snapshot(m, c, t0_ns, e);
		if (r < 0)
			rc = r;
		ended_first = r == 1;
	}
	if (!rc && !m->snapshot_taken) {
		wait_vcpu(m, &m->vm.vcpus[0], c->timeout_ns, t0_ns);
		st->wall_s = now_s() - t0;
		struct kvm_vcpu_counters kc;
		/* (Not from a thread left in KVM_RUN: that would wait for it.) */
		if (!m->abandoned && kvm_stats_read(m->vm.vcpus[0].fd, &kc) == 0) {
			st->kvm_exits = kc.exits;
			st->kvm_pf_taken = kc.pf_taken;
			st->kvm_insn_emulation = kc.insn_emulation;
			st->kvm_has_pf_and_emulation = kc.has_pf_and_emulation;
			st->kvm_signal_exits = kc.signal_exits;
			st->kvm_halt_exits = kc.halt_exits;
		}
		run_collect_stats(m, c, st);
		rc = verdict(m, e);
	}
	if (!rc && ended_first && c->snapshot_after_pages)
		rc = apf_fail(e, -EINVAL, "--snapshot-after-pages %llu: the guest finished before, "
			      "after %llu pages, at %.3f s (nothing to snapshot)",
			      (unsigned long long)c->snapshot_after_pages,
			      (unsigned long long)st->pages_fetched, st->wall_s);
	else if (!rc && ended_first)
		rc = apf_fail(e, -EINVAL, "--snapshot-at %.3f s: the guest finished before, at %.3f s "
			      "(nothing to snapshot)", (double)c->snapshot_at_ns / 1e9, st->wall_s);
	if (!rc && m->snapshot_taken) {
		st->wall_s = now_s() - t0;
		run_collect_stats(m, c, st);
		st->snapshot_taken = true;
		st->snapshot_at_s = (double)m->snapshot_taken_ns / 1e9;
	}
	machine_free(m);
	return rc;
}
