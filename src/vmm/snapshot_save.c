/*
 * snapshot_save: a halted machine into a snapshot (snapshot_vm.h).  Reads
 * the machine; starts and stops nothing.
 */
#include "snapshot_vm.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "guest_linux.h"
#include "arch/arch.h"
#include "snapshot/snapshot.h"


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
	struct page_source *s = m->region[MACHINE_LAZY].raw;
	const struct pager *lazy = machine_lazy_pager(m);
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
			if (lazy && pager_page_present(lazy, queued)) {
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
	 * live until the machine's sources are closed (machine_destroy). */
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
		a = (struct snap_apf){ .msr_en = cv->reg_value, .area_gpa = cv->area_gpa,
				       .vector = cv->vector, .enabled = cv->enabled,
				       .send_always = cv->send_always };
		int rc = snap_write_section(w, SNAP_SEC_APF, v, &a, sizeof(a), e);
		if (rc)
			return rc;
	}
	return 0;
}

int snapshot_save(struct machine *m, const char *path, uint64_t run_ns, struct apf_err *e)
{
	const struct page_source *src = m->region[MACHINE_LAZY].source;
	uint64_t pages = (m->gm.resident_size + m->gm.lazy_size) / APF_PAGE_SIZE;
	struct sha256 *digests = calloc(pages ? pages : 1, sizeof(*digests));
	struct snap_blob vcpu = { 0 }, vmstate = { 0 };
	struct snap_writer w;
	int rc;

	if (!digests)
		return apf_fail(e, -ENOMEM, "out of memory");
	struct snap_machine sm = {
		.guest_kind = m->guest.pc ? SNAP_GUEST_LINUX : SNAP_GUEST_REFERENCE,
		.apf_mode = m->cfg->apf,
		.mem_size = m->gm.resident_size,
		.lazy_size = m->gm.lazy_size,
		.tsc_khz = m->vm.tsc_khz,
		.expected_results = m->guest.expected_results,
		.nresults = m->report.nresults,
		.layout = m->guest.layout,
		.pattern = src ? src->pattern : APF_PATTERN_ZERO,
		.seed = src ? src->seed : 0,
		.taken_after_ns = run_ns,
	};
	/* How far the compute tasks had come (abi.h, struct apf_progress):
	 * what a restore's rate is measured from. */
	const struct apf_progress *pg = m->guest.layout.progress_gpa
		? gmem_ptr(&m->gm, m->guest.layout.progress_gpa, sizeof(*pg)) : NULL;
	if (pg && !m->guest.pc) {
		sm.has_progress = 1;
		for (unsigned i = 0; i < APF_MAX_TASKS; i++)
			sm.compute_work += pg->work[i];
	}
	snprintf(sm.source_desc, sizeof(sm.source_desc), "%s", src ? src->desc : "none");
	struct snap_blob devices = { 0 };
	rc = m->guest.pc ? guest_linux_save_devices(m, &devices, e) : 0;
	if (!rc)
		rc = arch_snapshot_save_vcpu(&m->vm, &m->vm.vcpus[0], &vcpu, e);
	if (!rc)
		rc = arch_snapshot_save_vm(&m->vm, &m->vm_opt, &vmstate, e);
	if (!rc)
		rc = snap_write_begin(&w, path, ARCH_SNAPSHOT_ID, m->gm.resident_size,
				      m->gm.lazy_size, e);
	if (!rc) {
		if ((rc = write_memory(m, &w, digests, e)) ||
		    (rc = snap_write_section(&w, SNAP_SEC_MACHINE, 0, &sm, sizeof(sm), e)) ||
		    (rc = snap_write_section(&w, SNAP_SEC_REPORT, 0, m->report.results,
					     m->report.nresults * sizeof(m->report.results[0]), e)) ||
		    (rc = snap_write_section(&w, SNAP_SEC_VCPU, 0, vcpu.data, vcpu.len, e)) ||
		    (rc = snap_write_section(&w, SNAP_SEC_VM, 0, vmstate.data, vmstate.len, e)) ||
		    (rc = write_apf(m, &vcpu, &w, e)) ||
		    (m->guest.pc && (rc = snap_write_section(&w, SNAP_SEC_DEVICES, 0, devices.data,
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

