#include "lifecycle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apf_user.h"
#include "guest_report.h"
#include "loader.h"
#include "machine_ws.h"
#include "vcpu_loop.h"
#include "source/source.h"
#include "util/thread.h"

/* How long halting waits for a pager thread, and for a stopped vCPU
 * before it frees it by force. */
#define PAGER_STOP_WAIT_NS (2ull * 1000000000ull)
#define VCPU_STOP_WAIT_NS  (2ull * 1000000000ull)

int machine_create(const struct apfvm_config *c, struct machine **out, struct apf_err *e)
{
	struct machine *m = calloc(1, sizeof(*m));
	pthread_condattr_t ca;

	if (!m)
		return apf_fail(e, -ENOMEM, "out of memory");
	m->cfg = c;
	m->vm.vm_fd = m->vm.kvm_fd = -1;
	m->start_ns = monotonic_ns();
	m->console = c->console;
	pthread_mutex_init(&m->report_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->stopped, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&m->page_arrived, NULL);
	*out = m;
	return 0;
}

int machine_assemble(struct machine *m, const struct machine_loader *l, struct apf_err *e)
{
	const struct apfvm_config *c = m->cfg;
	struct vm_options opt;
	struct arch_entry entry = { 0 };
	uint64_t mem_size = 0, lazy_size = 0;
	int rc;

	m->loader = l;
	memset(&opt, 0, sizeof(opt));
	if ((rc = l->open(m, &mem_size, &lazy_size, e)) ||
	    (rc = gmem_init(&m->gm, mem_size, lazy_size, e)) ||
	    (rc = l->load(m, &opt, &entry, e)))
		return rc;
	/* Named now: once the pagers run, the source is the pager thread's. */
	for (int i = 0; i < MACHINE_REGIONS; i++)
		if (m->region[i].source)
			snprintf(m->region[i].source_desc, sizeof(m->region[i].source_desc), "%s",
				 m->region[i].source->desc);
	m->region[MACHINE_RESIDENT].host_base = m->gm.resident;
	m->region[MACHINE_RESIDENT].size = m->gm.resident_size;
	m->region[MACHINE_LAZY].host_base = m->gm.lazy;
	m->region[MACHINE_LAZY].size = m->gm.lazy_size;
	m->vm_opt = opt;
	if ((rc = vm_create(&m->vm, &m->gm, &opt, e)))
		return rc;
	/* --apf user: KVM leaves the registration to the VMM (before vCPUs). */
	if (c->apf == APFVM_APF_USER && (rc = arch_apf_setup_vm(&m->vm, c->apf_trap_acks, e)))
		return rc;
	if ((rc = vm_add_vcpu(&m->vm, &opt, &entry, e)) || (rc = vm_finalize(&m->vm, &opt, e)))
		return rc;
	m->vm.vcpus[0].cpu = c->vcpu_cpu;
	if (c->apf == APFVM_APF_USER && (rc = apf_user_init(m, e)))
		return rc;
	return 0;
}

/* --- pagers -------------------------------------------------------------- */

static void release_memory(struct machine *m);

/* A page that could not be served.  Poisoned, it fails the guest's access
 * (vcpu_loop reports it, and machine_verdict adds the pager's error);
 * blocking (no UFFDIO_POISON), the run must stop here, and the memory is
 * released: a wait on that page would otherwise never end, also one the
 * kick cannot reach (the VMM's own access to guest memory while a restore
 * starts). */
static void pager_failed(struct machine *m, const struct pager *p, bool blocking)
{
	if (!blocking)
		return;
	machine_fail(m, "the pager cannot serve the %s: %s", p->cfg.region, p->error_msg);
	release_memory(m);
}

static void lazy_pager_error(void *ctx, bool blocking)
{
	struct machine *m = ctx;
	pager_failed(m, m->region[MACHINE_LAZY].pager, blocking);
}

static void resident_pager_error(void *ctx, bool blocking)
{
	struct machine *m = ctx;
	pager_failed(m, m->region[MACHINE_RESIDENT].pager, blocking);
}

/* Every page of region r is present (pager thread): its source is let
 * go at once, a remote one's connections with it, unless a snapshot may
 * still read through it.  Its counters are kept for the statistics. */
static void region_populated(struct machine *m, int which)
{
	struct machine_region *r = &m->region[which];

	if (m->cfg->snapshot_path || r->borrowed)
		return;
	r->retries = r->raw->retries;
	r->corrupt = r->raw->corrupt;
	r->reconnects = r->raw->reconnects;
	source_close(r->source);
	if (r->raw_owned)
		source_close(r->raw);
	r->source = r->raw = NULL;
}

static void lazy_populated(void *ctx)
{
	region_populated(ctx, MACHINE_LAZY);
}

static void resident_populated(void *ctx)
{
	region_populated(ctx, MACHINE_RESIDENT);
}

/* Region r's pager, made (and kept even half made: machine_destroy frees
 * it) and, with --populate, filled. */
static int make_pager(struct machine *m, int which, struct apf_err *e)
{
	const struct apfvm_config *c = m->cfg;
	struct machine_region *r = &m->region[which];
	bool lazy = which == MACHINE_LAZY;
	struct pager_config pc = {
		.host_base = r->host_base,
		.size = r->size,
		.source = r->source,
		.max_inflight = c->max_inflight,
		.cpu = c->pager_cpu,
		.on_error = lazy ? lazy_pager_error : resident_pager_error,
		.ctx = m,
		.hooks = lazy && m->core ? &m->pager_hooks : NULL,
		.kick_by_poison = ARCH_APF_KICK_POISONS,
		.notify_pages = lazy && c->snapshot_path ? c->snapshot_after_pages : 0,
		.on_pages_fetched = report_pages_point,
		.region = r->name,
		.prefetch = m->ws.list[which],
		.nprefetch = m->ws.n[which],
		.populate_background = c->populate_background,
		.bulk_inflight = c->bulk_inflight,
		.on_populated = lazy ? lazy_populated : resident_populated,
		.record_touches = c->record_ws_path != NULL,
	};

	r->pager = calloc(1, sizeof(*r->pager));
	if (!r->pager)
		return apf_fail(e, -ENOMEM, "out of memory");
	int rc = pager_init(r->pager, &pc, e);
	if (!rc && c->populate)
		rc = pager_populate(r->pager, r->raw, e);
	return rc;
}

/* Every region that has a source gets its pager: made, filled, started.
 * They run before any vCPU or VM state goes back into KVM (loader.h). */
static int start_pagers(struct machine *m, struct apf_err *e)
{
	static const int order[] = { MACHINE_RESIDENT, MACHINE_LAZY };
	int rc;

	if ((rc = machine_ws_load(m, e)))
		return rc;
	m->ws.base_ns = monotonic_ns();
	for (unsigned i = 0; i < 2; i++)
		if (m->region[order[i]].source && m->region[order[i]].size &&
		    (rc = make_pager(m, order[i], e)))
			return rc;
	for (unsigned i = 0; i < 2; i++)
		if (m->region[order[i]].pager && (rc = pager_start(m->region[order[i]].pager, e)))
			return rc;
	return 0;
}

/* --- start ---------------------------------------------------------------- */

static int setup_signals(struct machine *m, struct apf_err *e)
{
	int rc;

	m->vm.kick_signal = m->cfg->kick_signal ? m->cfg->kick_signal : VCPU_KICK_SIGNAL_DEFAULT;
	if ((rc = vcpu_loop_setup_signal(m->vm.kick_signal)))
		return apf_fail(e, rc, "signal %d cannot serve to kick vCPUs: it is ignored or cannot "
				"be caught", m->vm.kick_signal);
	if ((rc = vcpu_loop_setup_sigbus()))
		return apf_fail(e, rc, "cannot install the SIGBUS handler: %s", strerror(-rc));
	return 0;
}

int machine_start(struct machine *m, struct apf_err *e)
{
	struct vcpu *v = &m->vm.vcpus[0];
	int rc;

	if ((rc = setup_signals(m, e)) || (rc = start_pagers(m, e)) ||
	    (m->loader->before_run && (rc = m->loader->before_run(m, e))))
		return rc;
	m->run_ns = monotonic_ns();
	rc = vcpu_start(v);
	if (rc == -EINVAL && v->cpu >= 0)
		return apf_fail(e, rc, "cannot pin the vCPU thread to CPU %d: not in this process's "
				"CPU set", v->cpu);
	if (rc)
		return apf_fail(e, rc, "cannot start the vCPU thread: %s", strerror(-rc));
	return 0;
}

/* --- wait and halt -------------------------------------------------------- */

bool machine_wait(struct machine *m, uint64_t timeout_ns, bool pages)
{
	struct timespec deadline = deadline_after(CLOCK_MONOTONIC, timeout_ns);
	bool ended;
	int rc = 0;

	pthread_mutex_lock(&m->report_lock);
	while (!atomic_load(&m->stop) && !(pages && m->pages_point) && rc != ETIMEDOUT)
		rc = timeout_ns ? pthread_cond_timedwait(&m->stopped, &m->report_lock, &deadline)
				: pthread_cond_wait(&m->stopped, &m->report_lock);
	ended = atomic_load(&m->stop) || (pages && m->pages_point);
	pthread_mutex_unlock(&m->report_lock);
	return ended;
}

/* Releases the guest's registered memory (both regions): a fault blocked
 * there completes on a zero page.  Only for a stopped machine, whose
 * vCPU's pending kick makes KVM_RUN return before the guest runs on it. */
static void release_memory(struct machine *m)
{
	for (int i = 0; i < MACHINE_REGIONS; i++)
		if (m->region[i].pager)
			pager_release(m->region[i].pager);
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

/* Stops every pager thread, each within PAGER_STOP_WAIT_NS: a page source
 * stuck in a call holds its thread, which is then left behind
 * (m->abandoned, the memory released).  The region left behind, or -1. */
static int end_pagers(struct machine *m)
{
	int left = -1;

	for (int i = 0; i < MACHINE_REGIONS; i++)
		if (m->region[i].pager)
			pager_stop_within(m->region[i].pager, PAGER_STOP_WAIT_NS);
	for (int i = MACHINE_REGIONS - 1; i >= 0; i--)
		if (m->region[i].pager && m->region[i].pager->abandoned)
			left = i;
	if (left < 0)
		return -1;
	release_memory(m);
	m->abandoned = true;
	return left;
}

void machine_halt(struct machine *m, const char *why, bool timed_out)
{
	struct vcpu *v = &m->vm.vcpus[0];
	bool vcpu_ended = end_vcpu(m, v);
	int left = end_pagers(m);
	char what[160];

	if (left >= 0)
		machine_fail(m, "%s: the page source%s does not respond (a fetch has not returned; "
			     "its thread is left behind)", why,
			     left == MACHINE_LAZY ? "" : " of the resident memory");
	else if (!vcpu_ended)
		machine_fail(m, "%s: the vCPU thread does not stop (it is blocked outside the "
			     "guest; left behind)", why);
	else if (timed_out) { /* where the guest was: a loop, a wait with interrupts off */
		snprintf(what, sizeof(what), "%s: the guest did not finish", why);
		machine_fail_vcpu(m, v, what);
	}
}

/* --- collect and destroy --------------------------------------------------- */

/* A pager's error message, once its thread is joined; else NULL. */
static const char *pager_error_of(const struct pager *p)
{
	return p && !p->running && !p->abandoned && p->error ? p->error_msg : NULL;
}

int machine_verdict(struct machine *m, struct apf_err *e)
{
	struct guest_report *r = &m->report;
	const struct pager *lazy = m->region[MACHINE_LAZY].pager;
	const struct pager *res = m->region[MACHINE_RESIDENT].pager;
	const struct pager *failed = pager_error_of(lazy) ? lazy : pager_error_of(res) ? res : NULL;
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
	if (r->nresults != m->guest.expected_results)
		return apf_fail(e, -EIO, "the guest reported %u task results, expected %u",
				r->nresults, m->guest.expected_results);
	return 0;
}

void machine_destroy(struct machine *m)
{
	end_pagers(m); /* where it failed before its vCPU started */
	if (m->abandoned)
		return; /* a thread left behind may still touch all of it */
	for (int i = 0; i < MACHINE_REGIONS; i++) {
		struct machine_region *r = &m->region[i];
		if (r->pager) {
			pager_destroy(r->pager);
			free(r->pager);
		}
	}
	if (m->core) {
		apf_core_destroy(m->core);
		free(m->core);
	}
	vm_destroy(&m->vm);
	gmem_destroy(&m->gm);
	free(m->guest.pc);
	for (int i = 0; i < MACHINE_REGIONS; i++)
		if (!m->region[i].borrowed) {
			source_close(m->region[i].source);
			if (m->region[i].raw_owned)
				source_close(m->region[i].raw);
		}
	free(m->snapshot_bufs);
	machine_ws_free(m);
	if (m->restore.snap) {
		snap_close(m->restore.snap);
		free(m->restore.snap);
	}
	pthread_cond_destroy(&m->stopped);
	pthread_cond_destroy(&m->page_arrived);
	pthread_mutex_destroy(&m->report_lock);
	free(m);
}
