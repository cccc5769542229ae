/*
 * x86-64 VM and vCPU setup: the in-kernel LAPIC (and, for a PC, the PIT and
 * virtual-wire LINTs), CPUID with KVM's hypervisor leaves, and the vCPU
 * entering 64-bit mode with paging on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/arch.h"
#include "paging.h"
#include "vmm/kvm_vm.h"

#define KVM_CPUID_TIMING    0x40000010u /* EAX: TSC kHz, EBX: APIC bus kHz */

int arch_mode_options(struct vm_options *opt, enum apfvm_apf_mode mode, struct apf_err *e)
{
	(void)e;
	switch (mode) {
	case APFVM_APF_OFF:
		/* Keep KVM's own async path out (it would halt the vCPU and let it
		 * take interrupts): a fault simply blocks the vCPU thread. */
		opt->disable_hlt_exits = true;
		break;
	case APFVM_APF_KERNEL:
		/* KVM delivers not-present and page-ready itself: advertise the
		 * feature, keep halts in the kernel and the in-kernel LAPIC. */
		opt->kvm_features = 1u << KVM_FEATURE_ASYNC_PF | 1u << KVM_FEATURE_ASYNC_PF_INT;
		break;
	case APFVM_APF_USER:
		/* The VMM is the host side: KVM must not take its own async
		 * path, and the guest's async-PF MSRs come to us. */
		opt->disable_hlt_exits = true;
		opt->kvm_features = 1u << KVM_FEATURE_ASYNC_PF | 1u << KVM_FEATURE_ASYNC_PF_INT;
		break;
	}
	return 0;
}

int arch_vm_init(struct vm *vm, const struct vm_options *opt, struct apf_err *e)
{
	if (opt->disable_hlt_exits) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_X86_DISABLE_EXITS,
					      .args = { KVM_X86_DISABLE_EXITS_HLT } };
		if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
			return apf_fail(e, -errno, "KVM_CAP_X86_DISABLE_EXITS: %s", strerror(errno));
	}
	/* Only needed by VMX for real mode; harmless (and may fail) elsewhere. */
	ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return apf_fail(e, -errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	if (opt->pc_legacy) {
		struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
		if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
			return apf_fail(e, -errno, "KVM_CREATE_PIT2: %s", strerror(errno));
	}
	return 0;
}

void arch_vm_destroy(struct vm *vm)
{
	(void)vm; /* the irqchip goes with the VM */
}

int arch_vm_finalize(struct vm *vm, const struct vm_options *opt, struct apf_err *e)
{
	(void)vm;
	(void)opt;
	(void)e;
	return 0; /* the LAPIC needs no finalizing */
}

static struct kvm_cpuid_entry2 *find_leaf(struct kvm_cpuid2 *c, uint32_t fn)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn)
			return &c->entries[i];
	return NULL;
}

static struct kvm_cpuid_entry2 *add_leaf(struct kvm_cpuid2 *c, uint32_t cap, uint32_t fn)
{
	struct kvm_cpuid_entry2 *l = find_leaf(c, fn);
	if (l)
		return l;
	if (c->nent == cap)
		return NULL;
	l = &c->entries[c->nent++];
	memset(l, 0, sizeof(*l));
	l->function = fn;
	return l;
}

static int setup_cpuid(struct vm *vm, struct vcpu *v, const struct vm_options *opt,
		       struct apf_err *e)
{
	enum { CAP = 256 };
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + CAP * sizeof(c->entries[0]));
	struct kvm_cpuid_entry2 *l;
	int rc = 0;

	if (!c)
		return apf_fail(e, -ENOMEM, "out of memory");
	c->nent = CAP - 3; /* room for the leaves we add */
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		rc = apf_fail(e, -errno, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		goto out;
	}
	/* "Running under a hypervisor" (leaf 1, ECX bit 31): Linux looks for
	 * the hypervisor leaves only then. */
	l = find_leaf(c, 1);
	if (l)
		l->ecx |= 1u << 31;
	/* The hypervisor leaves: KVM's signature, exactly the features the
	 * VMM implements, and the TSC frequency (CPUID 0x15 is empty here). */
	l = add_leaf(c, CAP, KVM_CPUID_SIGNATURE);
	l->eax = KVM_CPUID_TIMING;
	memcpy(&l->ebx, "KVMK", 4);
	memcpy(&l->ecx, "VMKV", 4);
	memcpy(&l->edx, "M\0\0\0", 4);
	l = add_leaf(c, CAP, KVM_CPUID_FEATURES);
	l->eax = opt->kvm_features;
	l->ebx = l->ecx = l->edx = 0;
	l = add_leaf(c, CAP, KVM_CPUID_TIMING);
	l->eax = (uint32_t)vm->tsc_khz;
	l->ebx = 1000000; /* LAPIC timer: 1 GHz */
	l->ecx = l->edx = 0;
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
		rc = apf_fail(e, -errno, "KVM_SET_CPUID2: %s", strerror(errno));
out:
	free(c);
	return rc;
}

static void seg64(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffff;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

static int setup_regs(struct vcpu *v, const struct arch_entry *entry, struct apf_err *e)
{
	struct kvm_sregs sr;
	struct kvm_regs r;

	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0)
		return apf_fail(e, -errno, "KVM_GET_SREGS: %s", strerror(errno));
	seg64(&sr.cs, 0x08, 0xb, true);
	seg64(&sr.ds, 0x10, 0x3, false);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	memset(&sr.tr, 0, sizeof(sr.tr));
	sr.tr.type = 0xb; /* busy 64-bit TSS; the guest loads its own */
	sr.tr.present = 1;
	sr.tr.limit = 0x67;
	sr.cr0 = 0x80050033; /* PG WP NE ET MP PE */
	sr.cr3 = entry->page_table;
	sr.cr4 = 0x20;       /* PAE */
	sr.efer = 0x500;     /* LMA LME */
	if (ioctl(v->fd, KVM_SET_SREGS, &sr) < 0)
		return apf_fail(e, -errno, "KVM_SET_SREGS: %s", strerror(errno));
	memset(&r, 0, sizeof(r));
	r.rip = entry->pc;
	r.rdi = entry->arg; /* the reference guest's boot info */
	r.rsi = entry->arg; /* Linux's zero page */
	r.rflags = 0x2;
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return apf_fail(e, -errno, "KVM_SET_REGS: %s", strerror(errno));
	return 0;
}

/* LINT0 = ExtINT, LINT1 = NMI: the PIC's interrupts reach the CPU (the
 * "virtual wire" of a PC without an I/O APIC description). */
static int setup_lint(struct vcpu *v, struct apf_err *e)
{
	struct kvm_lapic_state s;
	enum { LVT_LINT0 = 0x350, LVT_LINT1 = 0x360, MODE_EXTINT = 0x700, MODE_NMI = 0x400 };

	if (ioctl(v->fd, KVM_GET_LAPIC, &s) < 0)
		return apf_fail(e, -errno, "KVM_GET_LAPIC: %s", strerror(errno));
	uint32_t lint0 = MODE_EXTINT, lint1 = MODE_NMI;
	memcpy(s.regs + LVT_LINT0, &lint0, 4);
	memcpy(s.regs + LVT_LINT1, &lint1, 4);
	if (ioctl(v->fd, KVM_SET_LAPIC, &s) < 0)
		return apf_fail(e, -errno, "KVM_SET_LAPIC: %s", strerror(errno));
	return 0;
}

/* The vCPU's TSC offset (struct vcpu), or 0 where KVM does not expose it. */
static uint64_t read_tsc_offset(struct vcpu *v)
{
	uint64_t offset = 0;
	struct kvm_device_attr attr = {
		.group = KVM_VCPU_TSC_CTRL,
		.attr = KVM_VCPU_TSC_OFFSET,
		.addr = (uint64_t)(uintptr_t)&offset,
	};

	if (ioctl(v->fd, KVM_HAS_DEVICE_ATTR, &attr) < 0 ||
	    ioctl(v->fd, KVM_GET_DEVICE_ATTR, &attr) < 0)
		return 0;
	return offset;
}

int arch_vcpu_init(struct vm *vm, struct vcpu *v, const struct vm_options *opt,
		   const struct arch_entry *entry, struct apf_err *e)
{
	if (!vm->tsc_khz) {
		int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
		if (khz <= 0)
			return apf_fail(e, -errno, "KVM_GET_TSC_KHZ: %s", strerror(errno));
		vm->tsc_khz = (uint64_t)khz;
	}
	v->tsc_offset = read_tsc_offset(v);
	int rc = setup_cpuid(vm, v, opt, e);
	if (!rc && opt->pc_legacy)
		rc = setup_lint(v, e);
	return rc ? rc : setup_regs(v, entry, e);
}

int arch_load_reference(struct guest_mem *gm, const struct elf_image *img,
			struct guest_layout *layout, struct arch_entry *entry, struct apf_err *e)
{
	int rc = paging_build(gm, img, layout, e);
	if (rc)
		return rc;
	entry->pc = img->entry;
	entry->page_table = layout->page_table;
	entry->arg = APF_BOOT_INFO_GPA;
	return 0;
}
