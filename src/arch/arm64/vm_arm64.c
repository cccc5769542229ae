/*
 * arm64 VM and vCPU setup: the in-kernel vGICv3 (distributor and
 * redistributors in the device window, abi_arm64.h), the vCPU as KVM's
 * preferred target, and the reference guest entered at EL1 with the MMU on
 * over the VMM's tables (the translation registers set through ONE_REG).
 * The architected timer needs nothing: KVM gives every vCPU its virtual
 * timer on PPI 27.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/arch.h"
#include "paging_arm64.h"
#include "regs_arm64.h"
#include "vmm/kvm_vm.h"
#include "vmm/guest_layout.h"

int arch_mode_options(struct vm_options *opt, enum apfvm_apf_mode mode, struct apf_err *e)
{
	switch (mode) {
	case APFVM_APF_OFF:
		return 0; /* arm64 KVM has no async path of its own: a fault blocks */
	case APFVM_APF_KERNEL:
		return apf_fail(e, -ENOTSUP,
				"--apf kernel does not exist on arm64: no arm64 kernel has asynchronous "
				"page faults (the 2020 port was never merged); use --apf user, where "
				"apfvm is the host side, or --apf off");
	case APFVM_APF_USER:
		opt->apf_user = true;
		return 0;
	}
	return apf_fail(e, -EINVAL, "unknown --apf mode");
}

static int gic_attr(struct vm *vm, uint32_t group, uint64_t attr, void *addr, const char *what,
		    struct apf_err *e)
{
	struct kvm_device_attr a = { .group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)addr };
	if (ioctl(vm->arch.gic_fd, KVM_SET_DEVICE_ATTR, &a) < 0)
		return apf_fail(e, -errno, "vGICv3 %s: %s", what, strerror(errno));
	return 0;
}

int arch_vm_init(struct vm *vm, const struct vm_options *opt, struct apf_err *e)
{
	struct kvm_create_device gic = { .type = KVM_DEV_TYPE_ARM_VGIC_V3 };
	uint64_t dist = APF_ARM64_GICD_GPA, redist = APF_ARM64_GICR_GPA;

	(void)opt;
	if (ioctl(vm->vm_fd, KVM_CREATE_DEVICE, &gic) < 0)
		return apf_fail(e, -errno, "KVM_CREATE_DEVICE (vGICv3): %s (apfvm needs a GICv3 host)",
				strerror(errno));
	vm->arch.gic_fd = (int)gic.fd;
	pthread_mutex_init(&vm->arch.line_lock, NULL);
	int rc = gic_attr(vm, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &dist,
			  "distributor address", e);
	return rc ? rc : gic_attr(vm, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST,
				  &redist, "redistributor address", e);
}

int arch_vm_finalize(struct vm *vm, const struct vm_options *opt, struct apf_err *e)
{
	(void)opt;
	/* Once every vCPU exists, before the first runs. */
	return gic_attr(vm, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL, "init", e);
}

void arch_vm_destroy(struct vm *vm)
{
	if (vm->arch.gic_fd > 0) {
		close(vm->arch.gic_fd);
		pthread_mutex_destroy(&vm->arch.line_lock);
	}
	vm->arch.gic_fd = 0;
}

int arch_vcpu_init(struct vm *vm, struct vcpu *v, const struct vm_options *opt,
		   const struct arch_entry *entry, struct apf_err *e)
{
	struct kvm_vcpu_init init;

	(void)opt;
	memset(&init, 0, sizeof(init));
	if (ioctl(vm->vm_fd, KVM_ARM_PREFERRED_TARGET, &init) < 0)
		return apf_fail(e, -errno, "KVM_ARM_PREFERRED_TARGET: %s", strerror(errno));
	init.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2;
	if (ioctl(v->fd, KVM_ARM_VCPU_INIT, &init) < 0)
		return apf_fail(e, -errno, "KVM_ARM_VCPU_INIT: %s", strerror(errno));
	if (!vm->tsc_khz)
		vm->tsc_khz = arm64_counter_khz();
	/* The guest's virtual counter starts near 0 at the VM's creation. */
	uint64_t guest_cnt = 0;
	if (!arm64_get_reg(v->fd, ARM64_REG_CNTVCT, &guest_cnt))
		v->tsc_offset = guest_cnt - host_cycles();
	struct { uint64_t id, value; const char *name; } regs[] = {
		{ ARM64_SYSREG_MAIR_EL1, PAGING_MAIR_EL1, "MAIR_EL1" },
		{ ARM64_SYSREG_TCR_EL1, PAGING_TCR_EL1, "TCR_EL1" },
		{ ARM64_SYSREG_TTBR0_EL1, entry->page_table, "TTBR0_EL1" },
		{ ARM64_SYSREG_SCTLR_EL1, ARM64_SCTLR_MMU_ON, "SCTLR_EL1" },
		{ ARM64_CORE_REG(regs.regs[0]), entry->arg, "X0" },
		{ ARM64_CORE_REG(regs.pc), entry->pc, "PC" },
		{ ARM64_CORE_REG(regs.pstate), ARM64_PSTATE_EL1H_MASKED, "PSTATE" },
	};
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
		if (arm64_set_reg(v->fd, regs[i].id, regs[i].value))
			return apf_fail(e, -errno, "KVM_SET_ONE_REG %s: %s", regs[i].name,
					strerror(errno));
	return 0;
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
