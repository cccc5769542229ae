/*
 * x86-64 snapshot state: each KVM structure of a vCPU and of the VM as one
 * record (snap_blob), in the order Firecracker restores them (save: state
 * before events; restore: mp_state, regs, sregs, xsave, xcrs, debug
 * registers, LAPIC, MSRs with the TSC first, then events; the VM's PIT,
 * clock and irqchip after the vCPUs).  Every record is checked for its
 * exact size before it reaches KVM.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "apfvm/abi_x86.h"
#include "arch/arch.h"
#include "arch/x86/platform_x86.h"
#include "snapshot/snapshot.h"
#include "vmm/kvm_vm.h"

enum {
	REC_REGS = 1, REC_SREGS, REC_XSAVE, REC_XCRS, REC_DEBUGREGS, REC_LAPIC, REC_EVENTS,
	REC_MP_STATE, REC_MSRS, REC_TSC_KHZ,
	REC_PIC_MASTER = 32, REC_PIC_SLAVE, REC_IOAPIC, REC_PIT, REC_CLOCK, REC_OPTIONS,
};

/* The VM options as a snapshot holds them (REC_OPTIONS): fixed-size
 * integers, not struct vm_options' bools. */
struct snap_vm_options {
	uint32_t disable_hlt_exits; /* 0 or 1 */
	uint32_t kvm_features;
	uint32_t pc_legacy;         /* 0 or 1 */
	uint32_t reserved;          /* 0 */
};

/* The MSRs a guest's state lives in beyond sregs (Firecracker's list):
 * the TSC first (restored before the TSC deadline). */
static const uint32_t saved_msrs[] = {
	0x10,       /* TSC */
	0x1b,       /* APIC base */
	0x6e0,      /* TSC deadline */
	0x174, 0x175, 0x176, /* SYSENTER CS/ESP/EIP */
	0x1a0,      /* MISC_ENABLE */
	0x277,      /* PAT */
	0x2ff,      /* MTRR default type */
	0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084, /* STAR, LSTAR, CSTAR, SFMASK */
	0xc0000102, /* KERNEL_GS_BASE */
	0xc0000103, /* TSC_AUX */
	0x4b564d00, 0x4b564d01, /* kvmclock: wall clock, system time */
	0x4b564d06, /* async PF vector (restored from the APF section) */
	0x4b564d02, /* async PF enable (likewise; written again, KVM sends a wake-all) */
	0x4b564d03, 0x4b564d04, 0x4b564d05, /* steal time, PV EOI, poll control */
};

static const void *record(const void *data, uint64_t len, uint32_t tag, size_t want, int min_only,
			  const char *what, struct apf_err *e);

static int put(struct snap_blob *b, uint32_t tag, const void *data, size_t len, struct apf_err *e)
{
	return snap_blob_put(b, tag, data, (uint32_t)len) ? apf_fail(e, -ENOMEM, "out of memory") : 0;
}

static int get_ioctl(int fd, unsigned long req, void *arg, const char *what, struct apf_err *e)
{
	if (ioctl(fd, req, arg) < 0)
		return apf_fail(e, -errno, "snapshot: %s: %s", what, strerror(errno));
	return 0;
}

/* The MSRs of saved_msrs that this KVM has (KVM_GET_MSR_INDEX_LIST), read. */
static int save_msrs(struct vm *vm, struct vcpu *v, struct snap_blob *b, struct apf_err *e)
{
	enum { N = sizeof(saved_msrs) / sizeof(saved_msrs[0]), LIST_MAX = 1024 };
	struct kvm_msrs *m = calloc(1, sizeof(*m) + N * sizeof(struct kvm_msr_entry));
	struct kvm_msr_list *list = calloc(1, sizeof(*list) + LIST_MAX * sizeof(uint32_t));
	unsigned n = 0;
	int rc = 0;

	if (!m || !list) {
		rc = apf_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	list->nmsrs = LIST_MAX;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		rc = apf_fail(e, -errno, "snapshot: KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
		goto out;
	}
	for (unsigned i = 0; i < N; i++)
		for (uint32_t j = 0; j < list->nmsrs; j++)
			if (list->indices[j] == saved_msrs[i]) {
				m->entries[n++].index = saved_msrs[i];
				break;
			}
	m->nmsrs = n;
	int got = ioctl(v->fd, KVM_GET_MSRS, m);
	if (got < 0 || (unsigned)got != n)
		rc = apf_fail(e, got < 0 ? -errno : -EIO, "snapshot: KVM_GET_MSRS read %d of %u MSRs",
			      got, n);
	else
		rc = put(b, REC_MSRS, m->entries, n * sizeof(m->entries[0]), e);
out:
	free(m);
	free(list);
	return rc;
}

/* State the VMM changed through KVM_CAP_SYNC_REGS (a not-present set
 * pending after a kick, --apf user) reaches KVM only at the next KVM_RUN,
 * which a stopped vCPU will not make: handed over first. */
static int flush_sync_regs(struct vcpu *v, struct apf_err *e)
{
	struct kvm_run *run = v->run;
	int rc = 0;

	if (run->kvm_dirty_regs & KVM_SYNC_X86_REGS)
		rc = get_ioctl(v->fd, KVM_SET_REGS, &run->s.regs.regs, "KVM_SET_REGS", e);
	if (!rc && (run->kvm_dirty_regs & KVM_SYNC_X86_SREGS))
		rc = get_ioctl(v->fd, KVM_SET_SREGS, &run->s.regs.sregs, "KVM_SET_SREGS", e);
	if (!rc && (run->kvm_dirty_regs & KVM_SYNC_X86_EVENTS))
		rc = get_ioctl(v->fd, KVM_SET_VCPU_EVENTS, &run->s.regs.events, "KVM_SET_VCPU_EVENTS", e);
	if (!rc)
		run->kvm_dirty_regs = 0;
	return rc;
}

int arch_snapshot_save_vcpu(struct vm *vm, struct vcpu *v, struct snap_blob *b, struct apf_err *e)
{
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dbg;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	int rc;

	if ((rc = flush_sync_regs(v, e)) ||
	    (rc = get_ioctl(v->fd, KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE", e)) ||
	    (rc = put(b, REC_MP_STATE, &mp, sizeof(mp), e)) ||
	    (rc = get_ioctl(v->fd, KVM_GET_REGS, &regs, "KVM_GET_REGS", e)) ||
	    (rc = put(b, REC_REGS, &regs, sizeof(regs), e)) ||
	    (rc = get_ioctl(v->fd, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS", e)) ||
	    (rc = put(b, REC_SREGS, &sregs, sizeof(sregs), e)))
		return rc;
	/* The whole XSAVE area (KVM_CAP_XSAVE2 says how large it is). */
	int xsize = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	size_t xlen = xsize > (int)sizeof(struct kvm_xsave) ? (size_t)xsize : sizeof(struct kvm_xsave);
	struct kvm_xsave *xs = calloc(1, xlen);
	if (!xs)
		return apf_fail(e, -ENOMEM, "out of memory");
	rc = get_ioctl(v->fd, xsize > 0 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, xs, "KVM_GET_XSAVE", e);
	if (!rc)
		rc = put(b, REC_XSAVE, xs, xlen, e);
	free(xs);
	if (rc)
		return rc;
	uint32_t khz = (uint32_t)vm->tsc_khz;
	if ((rc = get_ioctl(v->fd, KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS", e)) ||
	    (rc = put(b, REC_XCRS, &xcrs, sizeof(xcrs), e)) ||
	    (rc = get_ioctl(v->fd, KVM_GET_DEBUGREGS, &dbg, "KVM_GET_DEBUGREGS", e)) ||
	    (rc = put(b, REC_DEBUGREGS, &dbg, sizeof(dbg), e)) ||
	    (rc = get_ioctl(v->fd, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC", e)) ||
	    (rc = put(b, REC_LAPIC, &lapic, sizeof(lapic), e)) ||
	    (rc = save_msrs(vm, v, b, e)) || (rc = put(b, REC_TSC_KHZ, &khz, sizeof(khz), e)) ||
	    (rc = get_ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev, "KVM_GET_VCPU_EVENTS", e)))
		return rc;
	return put(b, REC_EVENTS, &ev, sizeof(ev), e);
}

/* The record `tag`, which must be exactly `len` bytes (or at least `len`
 * when min_only). */
static const void *record(const void *data, uint64_t len, uint32_t tag, size_t want, int min_only,
			  const char *what, struct apf_err *e)
{
	uint32_t got = 0;
	const void *p = snap_blob_get(data, len, tag, &got);
	if (!p || (min_only ? got < want : got != want)) {
		apf_fail(e, -EINVAL, "snapshot: the vCPU state's %s is %s", what,
			 p ? "of the wrong size" : "missing");
		return NULL;
	}
	return p;
}

static int set_ioctl(int fd, unsigned long req, const void *arg, const char *what, struct apf_err *e)
{
	if (ioctl(fd, req, arg) < 0)
		return apf_fail(e, -errno, "restore: %s: %s", what, strerror(errno));
	return 0;
}

int arch_snapshot_mode_options(struct vm_options *opt, enum apfvm_apf_mode mode,
			       struct apf_err *e)
{
	struct vm_options fresh = { 0 };
	int rc = arch_mode_options(&fresh, mode, e);
	if (rc)
		return rc;
	/* Host side only: whether halts stay in KVM.  kvm_features is the
	 * guest's CPUID: kept, so an off snapshot's guest, which was never
	 * offered async PF, still is not. */
	opt->disable_hlt_exits = fresh.disable_hlt_exits;
	return 0;
}

bool arch_snapshot_kvm_apf(const void *data, uint64_t len, struct snap_apf *out)
{
	uint32_t mlen = 0;
	const struct kvm_msr_entry *msrs = snap_blob_get(data, len, REC_MSRS, &mlen);
	uint64_t en = 0, vector = 0;

	for (uint32_t i = 0; msrs && i < mlen / sizeof(*msrs); i++) {
		if (msrs[i].index == MSR_KVM_ASYNC_PF_EN)
			en = msrs[i].data;
		if (msrs[i].index == MSR_KVM_ASYNC_PF_INT)
			vector = msrs[i].data;
	}
	if (!(en & KVM_ASYNC_PF_ENABLED))
		return false;
	*out = (struct snap_apf){ .msr_en = en, .area_gpa = en & ~0x3full,
				  .vector = (uint32_t)(vector & 0xff), .enabled = 1,
				  .send_always = (en & KVM_ASYNC_PF_SEND_ALWAYS) != 0 };
	return true;
}

/* The MSRs to give KVM (*out, to free): only those a snapshot holds
 * (nothing else reaches KVM), without KVM's async-PF pair, which is
 * written last from kvm_apf (the vector before the enable, whose write
 * makes KVM send a wake-all). */
static int restore_msr_list(const struct kvm_msr_entry *msrs, uint32_t n,
			    const struct snap_apf *kvm_apf, struct kvm_msrs **out, struct apf_err *e)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + (n + 2) * sizeof(*msrs));
	if (!m)
		return apf_fail(e, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		bool known = false;
		for (size_t k = 0; k < sizeof(saved_msrs) / sizeof(saved_msrs[0]); k++)
			known |= msrs[i].index == saved_msrs[k];
		if (!known) {
			free(m);
			return apf_fail(e, -EINVAL, "snapshot: MSR 0x%x is not one a snapshot holds",
					msrs[i].index);
		}
		if (msrs[i].index != MSR_KVM_ASYNC_PF_EN && msrs[i].index != MSR_KVM_ASYNC_PF_INT)
			m->entries[m->nmsrs++] = msrs[i];
	}
	if (kvm_apf) {
		m->entries[m->nmsrs++] = (struct kvm_msr_entry){ .index = MSR_KVM_ASYNC_PF_INT,
								 .data = kvm_apf->vector };
		m->entries[m->nmsrs++] = (struct kvm_msr_entry){ .index = MSR_KVM_ASYNC_PF_EN,
								 .data = kvm_apf->msr_en };
	}
	*out = m;
	return 0;
}

/* Events saved with an exception payload (a VM that had
 * KVM_CAP_EXCEPTION_PAYLOAD: --apf user) need it in the restored VM too,
 * whichever its mode: KVM refuses them otherwise. */
static int enable_event_payload(struct vm *vm, const struct kvm_vcpu_events *ev, struct apf_err *e)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXCEPTION_PAYLOAD, .args = { 1 } };

	if (!(ev->flags & KVM_VCPUEVENT_VALID_PAYLOAD) || ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) == 0)
		return 0;
	return apf_fail(e, -errno, "restore: KVM_CAP_EXCEPTION_PAYLOAD: %s", strerror(errno));
}

int arch_snapshot_restore_vcpu(struct vm *vm, struct vcpu *v, const void *data, uint64_t len,
			       const struct snap_apf *kvm_apf, struct apf_err *e)
{
	uint32_t mlen = 0;
	const void *mp, *regs, *sregs, *xs, *xcrs, *dbg, *lapic, *ev, *khz;
	int rc;

	if (!(mp = record(data, len, REC_MP_STATE, sizeof(struct kvm_mp_state), 0, "mp_state", e)) ||
	    !(regs = record(data, len, REC_REGS, sizeof(struct kvm_regs), 0, "regs", e)) ||
	    !(sregs = record(data, len, REC_SREGS, sizeof(struct kvm_sregs), 0, "sregs", e)) ||
	    !(xs = record(data, len, REC_XSAVE, sizeof(struct kvm_xsave), 1, "XSAVE area", e)) ||
	    !(xcrs = record(data, len, REC_XCRS, sizeof(struct kvm_xcrs), 0, "xcrs", e)) ||
	    !(dbg = record(data, len, REC_DEBUGREGS, sizeof(struct kvm_debugregs), 0, "debug registers", e)) ||
	    !(lapic = record(data, len, REC_LAPIC, sizeof(struct kvm_lapic_state), 0, "LAPIC", e)) ||
	    !(ev = record(data, len, REC_EVENTS, sizeof(struct kvm_vcpu_events), 0, "events", e)) ||
	    !(khz = record(data, len, REC_TSC_KHZ, sizeof(uint32_t), 0, "TSC rate", e)))
		return -EINVAL;
	const struct kvm_msr_entry *msrs = snap_blob_get(data, len, REC_MSRS, &mlen);
	if (!msrs || mlen % sizeof(*msrs) || mlen / sizeof(*msrs) > 64)
		return apf_fail(e, -EINVAL, "snapshot: the vCPU state's MSRs are malformed");
	uint32_t rate;
	memcpy(&rate, khz, 4);
	if (rate != vm->tsc_khz && ioctl(v->fd, KVM_SET_TSC_KHZ, (unsigned long)rate) < 0)
		return apf_fail(e, -errno, "restore: the snapshot's TSC runs at %u kHz, this host's at "
				"%llu kHz, and KVM cannot scale it: %s", rate,
				(unsigned long long)vm->tsc_khz, strerror(errno));
	/* The XSAVE record as large as this KVM's area (zero beyond). */
	int xsize = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	uint32_t xlen = 0;
	snap_blob_get(data, len, REC_XSAVE, &xlen);
	size_t need = xsize > (int)sizeof(struct kvm_xsave) ? (size_t)xsize : sizeof(struct kvm_xsave);
	struct kvm_xsave *xbuf = calloc(1, need > xlen ? need : xlen);
	if (!xbuf)
		return apf_fail(e, -ENOMEM, "out of memory");
	memcpy(xbuf, xs, xlen);
	struct kvm_msrs *m = NULL;
	if ((rc = restore_msr_list(msrs, mlen / sizeof(*msrs), kvm_apf, &m, e))) {
		free(xbuf);
		return rc;
	}
	struct kvm_vcpu_events events;
	memcpy(&events, ev, sizeof(events));
	if ((rc = enable_event_payload(vm, &events, e))) {
		free(m);
		free(xbuf);
		return rc;
	}
	/* The busy TSS KVM reported on an SVM host, made "available" where
	 * the CPU is QEMU's, which checks the type (platform_x86.h). */
	struct kvm_sregs sr;
	memcpy(&sr, sregs, sizeof(sr));
	if (sr.tr.type == 11 && platform_x86_tcg_svm())
		sr.tr.type = 9;
	if (!(rc = set_ioctl(v->fd, KVM_SET_MP_STATE, mp, "KVM_SET_MP_STATE", e)) &&
	    !(rc = set_ioctl(v->fd, KVM_SET_REGS, regs, "KVM_SET_REGS", e)) &&
	    !(rc = set_ioctl(v->fd, KVM_SET_SREGS, &sr, "KVM_SET_SREGS", e)) &&
	    !(rc = set_ioctl(v->fd, KVM_SET_XSAVE, xbuf, "KVM_SET_XSAVE", e)) &&
	    !(rc = set_ioctl(v->fd, KVM_SET_XCRS, xcrs, "KVM_SET_XCRS", e)) &&
	    !(rc = set_ioctl(v->fd, KVM_SET_DEBUGREGS, dbg, "KVM_SET_DEBUGREGS", e)) &&
	    !(rc = set_ioctl(v->fd, KVM_SET_LAPIC, lapic, "KVM_SET_LAPIC", e))) {
		int set = ioctl(v->fd, KVM_SET_MSRS, m);
		if (set < 0 || (uint32_t)set != m->nmsrs)
			rc = apf_fail(e, set < 0 ? -errno : -EINVAL,
				      "restore: KVM accepted %d of the snapshot's %u MSRs (the first refused: 0x%x)",
				      set, m->nmsrs, set >= 0 && (uint32_t)set < m->nmsrs ? m->entries[set].index : 0);
		else
			rc = set_ioctl(v->fd, KVM_SET_VCPU_EVENTS, &events, "KVM_SET_VCPU_EVENTS", e);
	}
	/* Tells a guest using kvmclock that its vCPU was paused, so that its
	 * watchdogs do not take the gap for a lockup.  EINVAL: the guest had
	 * not enabled kvmclock (the reference guest), nothing to tell. */
	if (!rc && ioctl(v->fd, KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL)
		rc = apf_fail(e, -errno, "restore: KVM_KVMCLOCK_CTRL: %s", strerror(errno));
	free(m);
	free(xbuf);
	return rc;
}

int arch_snapshot_save_vm(struct vm *vm, const struct vm_options *opt, struct snap_blob *b,
			  struct apf_err *e)
{
	struct kvm_irqchip chip;
	struct kvm_clock_data clock;
	int rc;

	for (uint32_t c = 0; c < 3; c++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = c;
		if ((rc = get_ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip, "KVM_GET_IRQCHIP", e)) ||
		    (rc = put(b, REC_PIC_MASTER + c, &chip, sizeof(chip), e)))
			return rc;
	}
	if (opt->pc_legacy) {
		struct kvm_pit_state2 pit;
		if ((rc = get_ioctl(vm->vm_fd, KVM_GET_PIT2, &pit, "KVM_GET_PIT2", e)) ||
		    (rc = put(b, REC_PIT, &pit, sizeof(pit), e)))
			return rc;
	}
	memset(&clock, 0, sizeof(clock));
	if ((rc = get_ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock, "KVM_GET_CLOCK", e)) ||
	    (rc = put(b, REC_CLOCK, &clock, sizeof(clock), e)))
		return rc;
	struct snap_vm_options so = { .disable_hlt_exits = opt->disable_hlt_exits,
				      .kvm_features = opt->kvm_features,
				      .pc_legacy = opt->pc_legacy };
	return put(b, REC_OPTIONS, &so, sizeof(so), e);
}

int arch_snapshot_options(const void *data, uint64_t len, struct vm_options *opt,
			  struct apf_err *e)
{
	struct snap_vm_options so;
	const void *p = record(data, len, REC_OPTIONS, sizeof(so), 0, "VM options", e);
	if (!p)
		return -EINVAL;
	/* Untrusted bytes: never copied into the bools of struct vm_options,
	 * each checked to be a value apfvm writes. */
	memcpy(&so, p, sizeof(so));
	if (so.disable_hlt_exits > 1 || so.pc_legacy > 1 || so.reserved)
		return apf_fail(e, -EINVAL, "snapshot: its VM options are invalid (%u, %u, %u)",
				so.disable_hlt_exits, so.pc_legacy, so.reserved);
	*opt = (struct vm_options){ .disable_hlt_exits = so.disable_hlt_exits != 0,
				    .kvm_features = so.kvm_features,
				    .pc_legacy = so.pc_legacy != 0 };
	return 0;
}

int arch_snapshot_restore_vm(struct vm *vm, const struct vm_options *opt, const void *data,
			     uint64_t len, struct apf_err *e)
{
	const void *p;
	int rc;

	if (opt->pc_legacy) {
		if (!(p = record(data, len, REC_PIT, sizeof(struct kvm_pit_state2), 0, "PIT", e)))
			return -EINVAL;
		if ((rc = set_ioctl(vm->vm_fd, KVM_SET_PIT2, p, "KVM_SET_PIT2", e)))
			return rc;
	}
	if (!(p = record(data, len, REC_CLOCK, sizeof(struct kvm_clock_data), 0, "kvmclock", e)))
		return -EINVAL;
	struct kvm_clock_data clock;
	memcpy(&clock, p, sizeof(clock));
	clock.flags = 0; /* only the clock value carries over */
	if ((rc = set_ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK", e)))
		return rc;
	for (uint32_t c = 0; c < 3; c++) {
		struct kvm_irqchip chip;
		if (!(p = record(data, len, REC_PIC_MASTER + c, sizeof(chip), 0, "irqchip", e)))
			return -EINVAL;
		memcpy(&chip, p, sizeof(chip));
		if (chip.chip_id != c)
			return apf_fail(e, -EINVAL, "snapshot: irqchip record %u names chip %u", c,
					chip.chip_id);
		if ((rc = set_ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP", e)))
			return rc;
	}
	return 0;
}
