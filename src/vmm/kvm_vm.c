#include "kvm_vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "apfvm/abi.h"

#define KVM_CPUID_TIMING    0x40000010u /* EAX: TSC kHz, EBX: APIC bus kHz */

int vm_create(struct vm *vm, struct guest_mem *gm, const struct vm_options *opt,
	      struct apf_err *e)
{
	struct kvm_userspace_memory_region slot;
	int v;

	memset(vm, 0, sizeof(*vm));
	vm->vm_fd = -1;
	vm->gm = gm;
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return apf_fail(e, -errno,
				"cannot open /dev/kvm: %s (is KVM enabled and do you have access to /dev/kvm?)",
				strerror(errno));
	v = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (v < 0)
		return apf_fail(e, -errno, "/dev/kvm does not answer KVM_GET_API_VERSION: %s (not a KVM device?)",
				strerror(errno));
	if (v != KVM_API_VERSION)
		return apf_fail(e, -EINVAL, "unsupported KVM API version %d", v);
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return apf_fail(e, -errno, "KVM_CREATE_VM: %s", strerror(errno));
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

	memset(&slot, 0, sizeof(slot));
	slot.slot = 0;
	slot.guest_phys_addr = 0;
	slot.memory_size = gm->resident_size;
	slot.userspace_addr = (uintptr_t)gm->resident;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return apf_fail(e, -errno, "KVM_SET_USER_MEMORY_REGION (resident): %s", strerror(errno));
	if (gm->lazy_size) {
		slot.slot = 1;
		slot.guest_phys_addr = APF_LAZY_GPA;
		slot.memory_size = gm->lazy_size;
		slot.userspace_addr = (uintptr_t)gm->lazy;
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return apf_fail(e, -errno, "KVM_SET_USER_MEMORY_REGION (lazy): %s",
					strerror(errno));
	}
	return 0;
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

static int setup_regs(struct vcpu *v, uint64_t rip, uint64_t pml4, uint64_t arg,
		      struct apf_err *e)
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
	sr.cr3 = pml4;
	sr.cr4 = 0x20;       /* PAE */
	sr.efer = 0x500;     /* LMA LME */
	if (ioctl(v->fd, KVM_SET_SREGS, &sr) < 0)
		return apf_fail(e, -errno, "KVM_SET_SREGS: %s", strerror(errno));
	memset(&r, 0, sizeof(r));
	r.rip = rip;
	r.rdi = arg;
	r.rsi = arg;
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

int vm_add_vcpu(struct vm *vm, const struct vm_options *opt, uint64_t rip, uint64_t pml4,
		uint64_t arg, struct apf_err *e)
{
	struct vcpu *v;
	int sz;

	if (vm->nvcpus == VM_MAX_VCPUS)
		return apf_fail(e, -EINVAL, "too many vCPUs");
	v = &vm->vcpus[vm->nvcpus];
	memset(v, 0, sizeof(*v));
	pthread_mutex_init(&v->kick_lock, NULL);
	v->vm = vm;
	v->id = vm->nvcpus;
	v->cpu = -1;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)v->id);
	if (v->fd < 0)
		return apf_fail(e, -errno, "KVM_CREATE_VCPU: %s", strerror(errno));
	vm->nvcpus++;
	sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0)
		return apf_fail(e, -errno, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	v->run_size = (size_t)sz;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return apf_fail(e, -errno, "mmap kvm_run: %s", strerror(errno));
	}
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
	return rc ? rc : setup_regs(v, rip, pml4, arg, e);
}

void vm_destroy(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (vm->vcpus[i].run)
			munmap(vm->vcpus[i].run, vm->vcpus[i].run_size);
		close(vm->vcpus[i].fd);
		pthread_mutex_destroy(&vm->vcpus[i].kick_lock);
	}
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->nvcpus = 0;
	vm->vm_fd = vm->kvm_fd = -1;
}
