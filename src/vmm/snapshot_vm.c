#include "snapshot_vm.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apf_user.h"
#include "guest_linux.h"
#include "arch/arch.h"
#include "snapshot/snapshot.h"
#include "source/delay.h"
#include "source/open.h"
#include "source/raw.h"
#include "source/window.h"
#include "util/thread.h"


#define LAZY_WINDOW 64 /* lazy pages fetched ahead while the snapshot is written */

/* One page of the window: fetched into buf, or at hand in the mapping. */
struct lazy_slot {
	enum { SLOT_FREE, SLOT_FETCHING, SLOT_READY, SLOT_MAPPED } state;
	bool zero;
};

/* The lazy region into the memory file, in order, each page as the guest
 * would read it: from the host mapping if the pager installed it, else
 * from the (raw) source, up to LAZY_WINDOW fetches in flight (a remote
 * source's round trips overlap; a file completes inside submit).  The
 * pager has stopped, so the source is ours; completions of fetches it had
 * in flight are passed over (their buffers are the pager's, alive until it
 * is destroyed; their cookies are not our slots).  A fetch that fails
 * fails the snapshot, within the source's own bounds. */
static int write_lazy(struct machine *m, struct snap_writer *w, struct sha256 *digests,
		      uint64_t *next, struct apf_err *e)
{
	struct page_source *s = m->raw_source;
	uint64_t npages = m->gm.lazy_size / APF_PAGE_SIZE, queued = 0, written = 0;
	struct lazy_slot slot[LAZY_WINDOW] = { { 0 } };
	unsigned char *bufs = aligned_alloc(APF_PAGE_SIZE, (size_t)LAZY_WINDOW * APF_PAGE_SIZE);
	struct source_completion c;
	int rc = 0;

	if (!bufs)
		return apf_fail(e, -ENOMEM, "out of memory");
	while (!rc && written < npages) {
		bool moved = false;
		/* Ahead: the pages of the window not yet asked for. */
		while (queued < npages && queued < written + LAZY_WINDOW) {
			struct lazy_slot *sl = &slot[queued % LAZY_WINDOW];
			if (m->pager_ready && pager_page_present(&m->pager, queued)) {
				sl->state = SLOT_MAPPED;
			} else {
				unsigned char *buf = bufs + (queued % LAZY_WINDOW) * APF_PAGE_SIZE;
				int sr = source_submit(s, queued, buf, sl);
				if (sr == -EAGAIN)
					break; /* the pager's fetches fill it: after some complete */
				if (sr) {
					rc = apf_fail(e, sr, "snapshot: cannot fetch lazy page %llu: %s",
						      (unsigned long long)queued, strerror(-sr));
					break;
				}
				sl->state = SLOT_FETCHING;
			}
			queued++;
			moved = true;
		}
		while (!rc && source_reap(s, &c)) {
			struct lazy_slot *sl = c.cookie;
			if (sl < slot || sl >= slot + LAZY_WINDOW)
				continue; /* the pager's */
			if (c.err)
				rc = apf_fail(e, c.err, "snapshot: cannot fetch lazy page %llu: %s",
					      (unsigned long long)c.page, c.why ? c.why : strerror(-c.err));
			sl->state = SLOT_READY;
			sl->zero = c.zero;
			moved = true;
		}
		/* In order: the oldest pages whose bytes are at hand. */
		while (!rc && written < queued) {
			struct lazy_slot *sl = &slot[written % LAZY_WINDOW];
			unsigned char *buf = bufs + (written % LAZY_WINDOW) * APF_PAGE_SIZE;
			if (sl->state == SLOT_FETCHING)
				break;
			if (sl->state == SLOT_MAPPED)
				memcpy(buf, (char *)m->gm.lazy + written * APF_PAGE_SIZE, APF_PAGE_SIZE);
			else if (sl->zero)
				memset(buf, 0, APF_PAGE_SIZE);
			rc = snap_write_memory(w, buf, APF_PAGE_SIZE, digests, next, e);
			sl->state = SLOT_FREE;
			written++;
			moved = true;
		}
		if (rc || moved)
			continue;
		if (s->error) {
			rc = apf_fail(e, s->error, "snapshot: the page source failed: %s",
				      s->error_what ? s->error_what : "?");
		} else if ((rc = source_wait(s, -1))) { /* its own timeouts bound the wait */
			rc = apf_fail(e, -EIO, "snapshot: the page source did not return lazy page "
				      "%llu (%s)", (unsigned long long)written,
				      rc == -EINVAL ? "it lost the fetch" : strerror(-rc));
		}
	}
	/* On failure, fetches still in flight may yet write into bufs: they
	 * live until the machine's sources are closed (machine_free). */
	bool in_flight = false;
	for (uint64_t p = written; p < queued; p++)
		in_flight |= slot[p % LAZY_WINDOW].state == SLOT_FETCHING;
	if (in_flight)
		m->snapshot_bufs = bufs;
	else
		free(bufs);
	return rc;
}

/* Every page of guest memory into the snapshot's memory file, its
 * SHA-256 into digests: the resident memory as it is, the lazy pages
 * through the source (those never installed are fetched). */
static int write_memory(struct machine *m, struct snap_writer *w, struct sha256 *digests,
			struct apf_err *e)
{
	uint64_t next = 0;
	int rc = snap_write_memory(w, m->gm.resident, m->gm.resident_size, digests, &next, e);
	return rc ? rc : write_lazy(m, w, digests, &next, e);
}

/* The guest's async-PF registration, whichever host side held it: the
 * core (--apf user, per vCPU) or KVM (--apf kernel, from its MSRs in the
 * vCPU's records), so that a restore in either mode can give it to its
 * own.  What was in flight is dropped: the restore's wake-all frees every
 * parked task. */
static int write_apf(struct machine *m, const struct snap_blob *vcpu, struct snap_writer *w,
		     struct apf_err *e)
{
	struct snap_apf a;
	if (!m->core)
		return arch_snapshot_kvm_apf(vcpu->data, vcpu->len, &a)
			       ? snap_write_section(w, SNAP_SEC_APF, 0, &a, sizeof(a), e) : 0;
	for (unsigned v = 0; v < m->vm.nvcpus; v++) {
		const struct apf_core_vcpu *cv = &m->core->vcpus[v];
		a = (struct snap_apf){ .msr_en = cv->msr_en, .area_gpa = cv->area_gpa,
				       .vector = cv->vector, .enabled = cv->enabled,
				       .send_always = cv->send_always };
		int rc = snap_write_section(w, SNAP_SEC_APF, v, &a, sizeof(a), e);
		if (rc)
			return rc;
	}
	return 0;
}

int machine_take_snapshot(struct machine *m, const struct apfvm_config *c, uint64_t run_ns,
			  struct apf_err *e)
{
	uint64_t pages = (m->gm.resident_size + m->gm.lazy_size) / APF_PAGE_SIZE;
	struct sha256 *digests = calloc(pages ? pages : 1, sizeof(*digests));
	struct snap_blob vcpu = { 0 }, vmstate = { 0 };
	struct snap_writer w;
	int rc;

	if (!digests)
		return apf_fail(e, -ENOMEM, "out of memory");
	struct snap_machine sm = {
		.guest_kind = m->pc ? SNAP_GUEST_LINUX : SNAP_GUEST_REFERENCE,
		.apf_mode = c->apf,
		.mem_size = m->gm.resident_size,
		.lazy_size = m->gm.lazy_size,
		.tsc_khz = m->vm.tsc_khz,
		.expected_results = m->expected_results,
		.nresults = m->report.nresults,
		.layout = m->layout,
		.pattern = m->source ? m->source->pattern : APF_PATTERN_ZERO,
		.seed = m->source ? m->source->seed : 0,
		.taken_after_ns = run_ns,
	};
	/* How far the compute tasks had come (abi.h, struct apf_progress):
	 * what a restore's rate is measured from. */
	const struct apf_progress *pg = m->layout.progress_gpa
		? gmem_ptr(&m->gm, m->layout.progress_gpa, sizeof(*pg)) : NULL;
	if (pg && !m->pc) {
		sm.has_progress = 1;
		for (unsigned i = 0; i < APF_MAX_TASKS; i++)
			sm.compute_work += pg->work[i];
	}
	snprintf(sm.source_desc, sizeof(sm.source_desc), "%s", m->source ? m->source->desc : "none");
	struct snap_blob devices = { 0 };
	rc = m->pc ? guest_linux_save_devices(m, &devices, e) : 0;
	if (!rc)
		rc = arch_snapshot_save_vcpu(&m->vm, &m->vm.vcpus[0], &vcpu, e);
	if (!rc)
		rc = arch_snapshot_save_vm(&m->vm, &m->vm_opt, &vmstate, e);
	if (!rc)
		rc = snap_write_begin(&w, c->snapshot_path, ARCH_SNAPSHOT_ID, m->gm.resident_size,
				      m->gm.lazy_size, e);
	if (!rc) {
		if ((rc = write_memory(m, &w, digests, e)) ||
		    (rc = snap_write_section(&w, SNAP_SEC_MACHINE, 0, &sm, sizeof(sm), e)) ||
		    (rc = snap_write_section(&w, SNAP_SEC_REPORT, 0, m->report.results,
					     m->report.nresults * sizeof(m->report.results[0]), e)) ||
		    (rc = snap_write_section(&w, SNAP_SEC_VCPU, 0, vcpu.data, vcpu.len, e)) ||
		    (rc = snap_write_section(&w, SNAP_SEC_VM, 0, vmstate.data, vmstate.len, e)) ||
		    (rc = write_apf(m, &vcpu, &w, e)) ||
		    (m->pc && (rc = snap_write_section(&w, SNAP_SEC_DEVICES, 0, devices.data,
						       devices.len, e))) ||
		    (rc = snap_write_section(&w, SNAP_SEC_PAGE_DIGESTS, 0, digests,
					     pages * sizeof(*digests), e)))
			snap_write_abort(&w);
		else
			rc = snap_write_end(&w, e);
	}
	snap_blob_free(&vcpu);
	snap_blob_free(&vmstate);
	snap_blob_free(&devices);
	free(digests);
	return rc;
}

/* --- restore ------------------------------------------------------------- */

static int need(const struct snap_image *s, uint32_t type, const struct snap_section **out,
		const char *what, const char *path, struct apf_err *e)
{
	*out = snap_find(s, type, 0);
	if (!*out)
		return apf_fail(e, -EINVAL, "snapshot '%s' has no %s", path, what);
	return 0;
}

/* Pages [first, first + n) of the snapshot's memory, each checked against
 * its SHA-256: from PATH.mem, or from the remote source c->restore_memory (one
 * connection per call: a source has one user), which must serve this very
 * snapshot. */
static int memory_window(const struct apfvm_config *c, const struct snap_image *s, uint64_t first,
			 uint64_t n, struct page_source **out, struct apf_err *e)
{
	struct source_net_options net;
	struct page_source *inner;
	char desc[128];
	int rc;

	if (!c->restore_memory) {
		snprintf(desc, sizeof(desc), "snapshot:%s", c->restore_path);
		rc = source_raw_open(s->mem_fd, s->mem_pages, desc, &inner, e);
	} else {
		apfvm_net_options(c, &net);
		/* Size 0: what it serves is checked below, against the snapshot. */
		rc = source_open(c->restore_memory, 0, &net, &inner, e);
	}
	if (rc)
		return rc;
	if (c->restore_memory &&
	    (inner->pattern != APF_PATTERN_SNAPSHOT || inner->seed != snap_identity(s) ||
	     inner->npages != s->mem_pages)) {
		rc = apf_fail(e, -EINVAL, "%s does not serve the memory of snapshot '%s' (%s)",
			      c->restore_memory, c->restore_path,
			      inner->pattern != APF_PATTERN_SNAPSHOT ? "it serves an image"
								     : "another snapshot's");
		source_close(inner);
		return rc;
	}
	if ((rc = source_window_wrap(inner, first, n, s->page_digests + first, out, e)))
		source_close(inner);
	return rc;
}

static int memory_sources(struct machine *m, const struct apfvm_config *c, struct apf_err *e)
{
	struct snap_image *s = &m->snap;
	uint64_t res_pages = s->h.resident_size / APF_PAGE_SIZE;
	uint64_t lazy_pages = s->h.lazy_size / APF_PAGE_SIZE;
	struct page_source *src[2] = { NULL, NULL }, *raw[2] = { NULL, NULL };

	for (int i = 0; i < 2; i++) {
		uint64_t first = i ? res_pages : 0, n = i ? lazy_pages : res_pages;
		if (!n)
			continue;
		int rc = memory_window(c, s, first, n, &src[i], e);
		raw[i] = src[i];
		if (!rc && c->latency_max_ns) {
			struct page_source *wrapped;
			rc = source_delay_wrap(src[i], c->latency_min_ns, c->latency_max_ns,
					       c->latency_seed + (uint64_t)i, &wrapped, e);
			if (rc)
				source_close(src[i]);
			src[i] = rc ? NULL : wrapped;
		}
		if (rc) {
			source_close(src[0]);
			return rc;
		}
	}
	m->res_source = src[0];
	m->res_raw_source = raw[0];
	m->source = src[1];
	m->raw_source = raw[1];
	return 0;
}

/* The registration the guest had made, given to the core again:
 * registering sends the wake-all that frees every task parked before the
 * snapshot (as KVM does when its enable MSR is written again, kernel
 * mode).  It writes the guest's area: only once the pagers serve
 * resident memory, which is empty until then. */
int machine_restore_started(struct machine *m, const struct apfvm_config *c, struct apf_err *e)
{
	const struct snap_apf a = m->restore_apf;
	if (!m->core || !a.enabled)
		return 0;
	/* As the guest wrote it (x86: the MSRs; checked as a guest's write). */
	if (a.msr_en ? apf_core_restore_msrs(m->core, 0, a.vector, a.msr_en)
		     : apf_core_enable(m->core, 0, a.area_gpa, 64, (uint8_t)a.vector, a.send_always))
		return apf_fail(e, -EINVAL, "snapshot '%s': its async-PF registration is invalid",
				c->restore_path);
	return 0;
}

int apfvm_snapshot_mode(const char *path, enum apfvm_apf_mode *mode, struct apf_err *e)
{
	struct snap_image s;
	struct snap_machine sm;
	int rc = snap_open_state(&s, path, e);
	if (rc)
		return rc;
	const struct snap_section *msec = snap_find(&s, SNAP_SEC_MACHINE, 0);
	if (!msec || msec->len != sizeof(sm))
		rc = apf_fail(e, -EINVAL, "snapshot '%s' has no valid machine state", path);
	else
		memcpy(&sm, msec->data, sizeof(sm));
	if (!rc && sm.apf_mode > APFVM_APF_USER)
		rc = apf_fail(e, -EINVAL, "snapshot '%s' names an unknown --apf mode", path);
	if (!rc)
		*mode = (enum apfvm_apf_mode)sm.apf_mode;
	snap_close(&s);
	return rc;
}

/* A restore's two pagers, resident memory and the lazy region, each from
 * its own source: made, filled first with --populate, started. */
static int start_restore_pagers(struct machine *m, const struct apfvm_config *c,
				struct apf_err *e)
{
	/* Both regions from PATH.mem, through their own pagers.  They run
	 * before any vCPU or VM state goes back into KVM: restoring an MSR
	 * may make KVM touch guest memory (kvmclock's page is mapped when
	 * MSR_KVM_SYSTEM_TIME is written), and a page touched before its
	 * region is registered would stay a page of zeros for good. */
	struct pager_config pc = {
		.host_base = m->gm.resident,
		.size = m->gm.resident_size,
		.source = m->res_source,
		.max_inflight = c->max_inflight,
		.cpu = c->pager_cpu,
		.on_error = machine_res_pager_error,
		.ctx = m,
		.region = "resident memory",
	};
	int rc = pager_init(&m->res_pager, &pc, e);
	m->res_pager_ready = true;
	if (rc)
		return rc;
	if (m->gm.lazy_size) {
		pc.host_base = m->gm.lazy;
		pc.size = m->gm.lazy_size;
		pc.source = m->source;
		pc.hooks = m->core ? &m->pager_hooks : NULL;
		pc.on_error = machine_pager_error;
		pc.region = "lazy region";
		rc = pager_init(&m->pager, &pc, e);
		m->pager_ready = true;
		if (rc)
			return rc;
	}
	/* --populate: an eager restore, every page installed (and checked)
	 * before the guest goes on. */
	if (c->populate && ((rc = pager_populate(&m->res_pager, m->res_raw_source, e)) ||
			    (m->pager_ready && (rc = pager_populate(&m->pager, m->raw_source, e)))))
		return rc;
	if ((rc = pager_start(&m->res_pager, e)) ||
	    (m->pager_ready && (rc = pager_start(&m->pager, e))))
		return rc;
	return 0;
}

int machine_build_restore(struct machine *m, const struct apfvm_config *c, struct apf_err *e)
{
	const struct snap_section *msec, *rsec, *vsec, *vmsec;
	struct snap_machine sm;
	struct arch_entry entry = { 0 };
	int rc;

	rc = c->restore_memory ? snap_open_state(&m->snap, c->restore_path, e)
			       : snap_open(&m->snap, c->restore_path, e);
	if (rc)
		return rc;
	m->snap_open = true;
	m->restore_phase_ns[0] = monotonic_ns();
	struct snap_image *s = &m->snap;
	const char *path = c->restore_path;
	if (s->h.arch != ARCH_SNAPSHOT_ID)
		return apf_fail(e, -EINVAL, "snapshot '%s' was taken on another architecture", path);
	if ((rc = need(s, SNAP_SEC_MACHINE, &msec, "machine state", path, e)) ||
	    (rc = need(s, SNAP_SEC_REPORT, &rsec, "report", path, e)) ||
	    (rc = need(s, SNAP_SEC_VCPU, &vsec, "vCPU state", path, e)) ||
	    (rc = need(s, SNAP_SEC_VM, &vmsec, "VM state", path, e)))
		return rc;
	if (msec->len != sizeof(sm))
		return apf_fail(e, -EINVAL, "snapshot '%s': its machine state has the wrong size", path);
	memcpy(&sm, msec->data, sizeof(sm));
	/* What the rest trusts: sizes agree with the header, the layout lies
	 * in resident memory, the results fit. */
	if ((sm.guest_kind != SNAP_GUEST_REFERENCE && sm.guest_kind != SNAP_GUEST_LINUX) ||
	    sm.mem_size != s->h.resident_size ||
	    sm.lazy_size != s->h.lazy_size || sm.mem_size < (16ull << 20) ||
	    sm.apf_mode > APFVM_APF_USER ||
	    sm.mem_size > (2ull << 30) || sm.lazy_size % APF_LAZY_ALIGN ||
	    sm.expected_results > APF_MAX_TASKS || sm.nresults > sm.expected_results ||
	    rsec->len != sm.nresults * sizeof(m->report.results[0]) ||
	    sm.layout.ufree_end > sm.mem_size || sm.layout.page_table >= sm.mem_size)
		return apf_fail(e, -EINVAL, "snapshot '%s': its machine state is inconsistent", path);
	/* The guest's registration, whichever mode the snapshot was taken in. */
	const struct snap_section *asec = snap_find(s, SNAP_SEC_APF, 0);
	if (asec && asec->len != sizeof(m->restore_apf))
		return apf_fail(e, -EINVAL, "snapshot '%s': its async-PF state has the wrong size", path);
	if (asec)
		memcpy(&m->restore_apf, asec->data, sizeof(m->restore_apf));
	/* Any mode may restore any snapshot, but off one whose guest had
	 * registered: a task it parked on a fault in flight would wait for a
	 * page-ready (or the wake-all) that no host side would send. */
	if (c->apf == APFVM_APF_OFF && m->restore_apf.enabled)
		return apf_fail(e, -EINVAL, "snapshot '%s': its guest had enabled async page faults "
				"(taken with --apf %s): with --apf off, a task it parked on a fault would "
				"never be woken; restore it with --apf kernel or --apf user", path,
				apfvm_mode_name((enum apfvm_apf_mode)sm.apf_mode));
	if ((rc = arch_snapshot_options(vmsec->data, vmsec->len, &m->vm_opt, e)) ||
	    (rc = arch_snapshot_mode_options(&m->vm_opt, c->apf, e)))
		return rc;
	rc = memory_sources(m, c, e);
	if (rc)
		return rc;
	rc = gmem_init(&m->gm, sm.mem_size, sm.lazy_size, e);
	if (rc)
		return rc;
	m->layout = sm.layout;
	m->work_at_snapshot = sm.compute_work;
	m->has_progress = sm.has_progress != 0;
	m->expected_results = sm.expected_results;
	m->report.nresults = sm.nresults;
	memcpy(m->report.results, rsec->data, rsec->len);
	/* The guest kind's exits (and a Linux guest's devices). */
	if (sm.guest_kind == SNAP_GUEST_LINUX) {
		const struct snap_section *dev;
		if ((rc = need(s, SNAP_SEC_DEVICES, &dev, "device state", path, e)) ||
		    (rc = guest_linux_restore(m, dev->data, dev->len, e)))
			return rc;
	} else if ((rc = arch_restore_prepare(m, e))) {
		return rc;
	}
	if ((rc = vm_create(&m->vm, &m->gm, &m->vm_opt, e)))
		return rc;
	if (c->apf == APFVM_APF_USER && (rc = apf_user_setup_vm(&m->vm, c->apf_trap_acks, e)))
		return rc;
	if ((rc = vm_add_vcpu(&m->vm, &m->vm_opt, &entry, e)) ||
	    (rc = vm_finalize(&m->vm, &m->vm_opt, e)))
		return rc;
	m->vm.vcpus[0].cpu = c->vcpu_cpu;
	/* --apf user: the core (the guest's registration follows in
	 * machine_restore_started, once memory can be served). */
	if (c->apf == APFVM_APF_USER && (rc = apf_user_init(m, c, e)))
		return rc;
	if ((rc = start_restore_pagers(m, c, e)))
		return rc;
	m->restore_phase_ns[1] = monotonic_ns();
	/* --apf kernel: KVM gets the registration (and sends the wake-all);
	 * --apf user: the core, in machine_restore_started. */
	const struct snap_apf *kvm_apf =
		c->apf == APFVM_APF_KERNEL && m->restore_apf.enabled ? &m->restore_apf : NULL;
	if ((rc = arch_snapshot_restore_vcpu(&m->vm, &m->vm.vcpus[0], vsec->data, vsec->len, kvm_apf, e)) ||
	    (rc = arch_snapshot_restore_vm(&m->vm, &m->vm_opt, vmsec->data, vmsec->len, e)))
		return rc;
	m->restore_phase_ns[2] = monotonic_ns();
	return 0;
}
