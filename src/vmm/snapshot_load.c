/*
 * snapshot_load: the snapshot loader (loader.h): a machine from a snapshot
 * instead of a boot.  open checks the snapshot and opens both regions'
 * sources (PATH.mem or a remote copy, each page checked against its
 * SHA-256); load gives the VM the options it had and the guest kind back;
 * before_run, once the pagers serve memory, puts the CPU and VM state back
 * in KVM and the guest's async-PF registration in its host side.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "guest_linux.h"
#include "loader.h"
#include "snapshot_vm.h"
#include "arch/arch.h"
#include "snapshot/snapshot.h"
#include "source/delay.h"
#include "source/open.h"
#include "source/raw.h"
#include "source/window.h"
#include "util/thread.h"

static int need(const struct snap_image *s, uint32_t type, const struct snap_section **out,
		const char *what, const char *path, struct apf_err *e)
{
	*out = snap_find(s, type, 0);
	if (!*out)
		return apf_fail(e, -EINVAL, "snapshot '%s' has no %s", path, what);
	return 0;
}

/* Pages [first, first + n) of the snapshot's memory, each checked against
 * its SHA-256, those it lists as zero never fetched: from PATH.mem, or
 * from the remote source c->restore_memory (one connection per call: a
 * source has one user), which must serve this very snapshot. */
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
	if ((rc = source_window_wrap(inner, s, first, n, out, e)))
		source_close(inner);
	return rc;
}

/* Region r's sources: a window of the snapshot's memory (pages [first,
 * first + n)); with --latency (PATH.mem only), the latency goes inside
 * the window, so the pages it knows are zero come at once, and raw is a
 * window of its own without it (for --populate). */
static int open_region(const struct apfvm_config *c, const struct snap_image *s,
		       struct machine_region *r, uint64_t first, uint64_t n, uint64_t seed,
		       struct apf_err *e)
{
	struct page_source *inner, *delayed;
	char desc[128];
	int rc = memory_window(c, s, first, n, &r->source, e);

	r->raw = r->source;
	if (rc || !c->latency_max_ns)
		return rc;
	/* The delay wrapper needs a source that completes inside submit:
	 * PATH.mem (--latency does not go with a remote --source). */
	snprintf(desc, sizeof(desc), "snapshot:%s", c->restore_path);
	if ((rc = source_raw_open(s->mem_fd, s->mem_pages, desc, &inner, e)))
		return rc;
	if ((rc = source_delay_wrap(inner, c->latency_min_ns, c->latency_max_ns, seed, &delayed, e))) {
		source_close(inner);
		return rc;
	}
	if ((rc = source_window_wrap(delayed, s, first, n, &r->source, e))) {
		source_close(delayed);
		r->source = r->raw;
		return rc;
	}
	r->raw_owned = true;
	return 0;
}

/* Each region's sources (open_region). */
static int open_regions(struct machine *m, struct apf_err *e)
{
	const struct apfvm_config *c = m->cfg;
	const struct snap_image *s = m->restore.snap;
	uint64_t res_pages = s->h.resident_size / APF_PAGE_SIZE;
	uint64_t lazy_pages = s->h.lazy_size / APF_PAGE_SIZE;
	static const int order[2] = { MACHINE_RESIDENT, MACHINE_LAZY };

	m->region[MACHINE_RESIDENT].name = "resident memory";
	m->region[MACHINE_LAZY].name = "lazy region";
	for (int i = 0; i < 2; i++) {
		uint64_t first = i ? res_pages : 0, n = i ? lazy_pages : res_pages;
		int rc = n ? open_region(c, s, &m->region[order[i]], first, n,
					 c->latency_seed + (uint64_t)i, e) : 0;
		if (rc)
			return rc; /* what was opened is closed by machine_destroy */
	}
	return 0;
}

/* What the rest trusts: sizes agree with the header, the layout lies in
 * resident memory, the results fit. */
static bool machine_state_ok(const struct snap_image *s, const struct snap_machine *sm,
			     const struct snap_section *rsec)
{
	return (sm->guest_kind == SNAP_GUEST_REFERENCE || sm->guest_kind == SNAP_GUEST_LINUX) &&
	       sm->mem_size == s->h.resident_size && sm->lazy_size == s->h.lazy_size &&
	       sm->mem_size >= (16ull << 20) && sm->apf_mode <= APFVM_APF_USER &&
	       sm->mem_size <= (2ull << 30) && sm->lazy_size % APF_LAZY_ALIGN == 0 &&
	       sm->expected_results <= APF_MAX_TASKS && sm->nresults <= sm->expected_results &&
	       rsec->len == sm->nresults * sizeof(struct apf_task_result) &&
	       sm->layout.ufree_end <= sm->mem_size && sm->layout.page_table < sm->mem_size;
}

/* The guest's async-PF registration, whichever mode the snapshot was
 * taken in.  Any mode may restore any snapshot, but off one whose guest
 * had registered: a task it parked on a fault in flight would wait for a
 * page-ready (or the wake-all) that no host side would send. */
static int read_apf(struct machine *m, const struct snap_machine *sm, struct apf_err *e)
{
	const char *path = m->cfg->restore_path;
	const struct snap_section *asec = snap_find(m->restore.snap, SNAP_SEC_APF, 0);

	if (asec && asec->len != sizeof(m->restore.apf))
		return apf_fail(e, -EINVAL, "snapshot '%s': its async-PF state has the wrong size", path);
	if (asec)
		memcpy(&m->restore.apf, asec->data, sizeof(m->restore.apf));
	if (m->cfg->apf == APFVM_APF_OFF && m->restore.apf.enabled)
		return apf_fail(e, -EINVAL, "snapshot '%s': its guest had enabled async page faults "
				"(taken with --apf %s): with --apf off, a task it parked on a fault would "
				"never be woken; restore it with --apf kernel or --apf user", path,
				apfvm_mode_name((enum apfvm_apf_mode)sm->apf_mode));
	return 0;
}

/* The snapshot opened and checked (its machine state in *sm), the VM's
 * options read from it. */
static int check_snapshot(struct machine *m, struct snap_machine *sm, struct apf_err *e)
{
	const struct snap_section *msec, *rsec;
	const char *path = m->cfg->restore_path;
	struct snap_image *s = m->restore.snap;
	int rc;

	if (s->h.arch != ARCH_SNAPSHOT_ID)
		return apf_fail(e, -EINVAL, "snapshot '%s' was taken on another architecture", path);
	if ((rc = need(s, SNAP_SEC_MACHINE, &msec, "machine state", path, e)) ||
	    (rc = need(s, SNAP_SEC_REPORT, &rsec, "report", path, e)) ||
	    (rc = need(s, SNAP_SEC_VCPU, &m->restore.vcpu_state, "vCPU state", path, e)) ||
	    (rc = need(s, SNAP_SEC_VM, &m->restore.vm_state, "VM state", path, e)))
		return rc;
	if (msec->len != sizeof(*sm))
		return apf_fail(e, -EINVAL, "snapshot '%s': its machine state has the wrong size", path);
	memcpy(sm, msec->data, sizeof(*sm));
	if (!machine_state_ok(s, sm, rsec))
		return apf_fail(e, -EINVAL, "snapshot '%s': its machine state is inconsistent", path);
	if ((rc = read_apf(m, sm, e)))
		return rc;
	const struct snap_section *vm = m->restore.vm_state;
	if ((rc = arch_snapshot_options(vm->data, vm->len, &m->vm_opt, e)) ||
	    (rc = arch_snapshot_mode_options(&m->vm_opt, m->cfg->apf, e)))
		return rc;
	/* The report and progress so far. */
	m->guest.layout = sm->layout;
	m->guest.expected_results = sm->expected_results;
	m->restore.work_at_snapshot = sm->compute_work;
	m->restore.has_progress = sm->has_progress != 0;
	m->report.nresults = sm->nresults;
	memcpy(m->report.results, rsec->data, rsec->len);
	return 0;
}

static int open_snapshot(struct machine *m, uint64_t *mem_size, uint64_t *lazy_size,
			 struct apf_err *e)
{
	const struct apfvm_config *c = m->cfg;
	struct snap_machine sm;
	int rc;

	m->restore.snap = calloc(1, sizeof(*m->restore.snap));
	if (!m->restore.snap)
		return apf_fail(e, -ENOMEM, "out of memory");
	rc = c->restore_memory ? snap_open_state(m->restore.snap, c->restore_path, e)
			       : snap_open(m->restore.snap, c->restore_path, e);
	if (rc) {
		free(m->restore.snap);
		m->restore.snap = NULL;
		return rc;
	}
	m->restore.phase_ns[0] = monotonic_ns();
	if ((rc = check_snapshot(m, &sm, e)) || (rc = open_regions(m, e)))
		return rc;
	*mem_size = sm.mem_size;
	*lazy_size = sm.lazy_size;
	m->restore.guest_kind = sm.guest_kind;
	return 0;
}

/* The options the VM had, and the guest kind's devices (Linux). */
static int load_snapshot(struct machine *m, struct vm_options *opt, struct arch_entry *entry,
			 struct apf_err *e)
{
	const struct snap_section *dev;
	(void)entry; /* the vCPU's state comes back in before_run */

	*opt = m->vm_opt;
	if (m->restore.guest_kind != SNAP_GUEST_LINUX)
		return 0;
	int rc = need(m->restore.snap, SNAP_SEC_DEVICES, &dev, "device state", m->cfg->restore_path, e);
	return rc ? rc : guest_linux_restore(m, dev->data, dev->len, e);
}

/* The pagers serve memory now: the state goes back into KVM, which may
 * touch guest memory doing it (kvmclock's page is mapped when
 * MSR_KVM_SYSTEM_TIME is written; a page touched before its region is
 * registered would stay a page of zeros for good), then the guest's
 * registration goes to the host side of its mode: KVM (--apf kernel, in
 * the vCPU's MSRs, its enable last, which sends the wake-all) or the core
 * (--apf user: registering sends the wake-all that frees every task
 * parked before the snapshot). */
static int restore_state(struct machine *m, struct apf_err *e)
{
	const struct apfvm_config *c = m->cfg;
	const struct snap_section *vs = m->restore.vcpu_state, *vms = m->restore.vm_state;
	const struct snap_apf *a = &m->restore.apf;
	int rc;

	m->restore.phase_ns[1] = monotonic_ns();
	const struct snap_apf *kvm_apf = c->apf == APFVM_APF_KERNEL && a->enabled ? a : NULL;
	if ((rc = arch_snapshot_restore_vcpu(&m->vm, &m->vm.vcpus[0], vs->data, vs->len, kvm_apf, e)) ||
	    (rc = arch_snapshot_restore_vm(&m->vm, &m->vm_opt, vms->data, vms->len, e)))
		return rc;
	m->restore.phase_ns[2] = monotonic_ns();
	if (m->core && a->enabled && arch_apf_restore(m->core, 0, a))
		return apf_fail(e, -EINVAL, "snapshot '%s': its async-PF registration is invalid",
				c->restore_path);
	return 0;
}

const struct machine_loader snapshot_loader = {
	.name = "snapshot",
	.open = open_snapshot,
	.load = load_snapshot,
	.before_run = restore_state,
};

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
