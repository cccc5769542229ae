/*
 * Can apfvm deliver an arm64 async event as a plain, maskable interrupt?
 * The reviewers of the 2020 RFC asked for an architected mechanism the
 * guest can block through PSTATE (Marc Zyngier) and noted that a pending
 * IRQ need not be taken before a stage-2 fault on the first instruction
 * (James Morse).  This checks, on the host apfvm runs on, what that design
 * needs (docs/arm64.md):
 *   - a PPI raised by userspace on an in-kernel vGICv3 (KVM_IRQ_LINE) while
 *     the vCPU is out of KVM_RUN after the poison kick;
 *   - PSTATE of the interrupted guest readable there (I = 0: it can take it);
 *   - the guest takes the IRQ *before* re-executing the faulting load (its
 *     handler runs and reports while the page is still poisoned);
 *   - after its handler returns and the page is installed, the load
 *     completes with the page's content.
 * The order of the third point is the CPU's choice (ARM ARM D1.13.4 allows
 * the refault first); this checks the CPU the tests run on, QEMU's
 * emulated one.  On hardware the design must not depend on it.
 * The guest (EL1, MMU off) sets up its vectors, the GIC distributor,
 * redistributor and CPU interface, unmasks IRQs and loads from a lazy page.
 * Prints "ok NAME" / "FAIL NAME: why" lines.
 */
#include "arm64_vm.h"

#define CODE_SIZE  0x10000ul
/* MMIO_IPA +0: the load's content, +8: the INTID the handler took,
 * +16: the guest is ready (GIC set up, about to unmask and load). */
#define GICD_IPA   0x08000000ul
#define GICR_IPA   0x080a0000ul
#define PPI        22
#define CONTENT    0x0123456789abcdefull

/* The guest: position-independent, copied to CODE_IPA. */
__asm__(".pushsection .rodata.guest, \"a\"\n"
	".balign 0x1000\n"
	".global guest_start, guest_end\n"
	"guest_start:\n"
	"	b	2f\n"
	"	.balign 0x800\n"
	"vectors:\n"
	"	.rept 5\n"          /* sync/irq/fiq/serror SP0, sync SPx */
	"	b	.\n"
	"	.balign 0x80\n"
	"	.endr\n"
	/* IRQ, current EL with SPx (VBAR + 0x280) */
	"	mrs	x10, S3_0_C12_C12_0\n"   /* ICC_IAR1_EL1 */
	"	movz	x11, #0x5000, lsl #16\n"
	"	str	x10, [x11, #8]\n"        /* report the INTID */
	"	msr	S3_0_C12_C12_1, x10\n"   /* ICC_EOIR1_EL1 */
	"	isb\n"
	"	eret\n"
	"	.balign 0x80\n"
	"	.rept 10\n"
	"	b	.\n"
	"	.balign 0x80\n"
	"	.endr\n"
	"2:\n"
	"	adr	x0, vectors\n"
	"	msr	vbar_el1, x0\n"
	"	isb\n"
	"	movz	x1, #0x0800, lsl #16\n"  /* GICD_CTLR = ARE_NS | EnableGrp1NS */
	"	mov	w2, #0x12\n"
	"	str	w2, [x1]\n"
	"	movz	x1, #0x080a, lsl #16\n"  /* GICR_WAKER: not asleep */
	"	str	wzr, [x1, #0x14]\n"
	"	add	x3, x1, #0x10, lsl #12\n" /* SGI frame */
	"	mov	w2, #-1\n"
	"	str	w2, [x3, #0x80]\n"       /* IGROUPR0: group 1 */
	"	mov	w2, #0x400000\n"         /* ISENABLER0: PPI 22 */
	"	str	w2, [x3, #0x100]\n"
	"	mov	x2, #1\n"
	"	msr	S3_0_C12_C12_5, x2\n"    /* ICC_SRE_EL1.SRE */
	"	isb\n"
	"	mov	x2, #0xff\n"
	"	msr	S3_0_C4_C6_0, x2\n"      /* ICC_PMR_EL1 */
	"	mov	x2, #1\n"
	"	msr	S3_0_C12_C12_7, x2\n"    /* ICC_IGRPEN1_EL1 */
	"	isb\n"
	"	movz	x11, #0x5000, lsl #16\n"
	"	str	xzr, [x11, #16]\n"       /* ready */
	"	msr	daifclr, #2\n"           /* PSTATE.I = 0 */
	"	movz	x0, #0x4010, lsl #16\n"
	"	ldr	x1, [x0]\n"              /* the lazy load */
	"	str	x1, [x11]\n"
	"	b	.\n"
	"guest_end:\n"
	".popsection\n");
extern const uint8_t guest_start[], guest_end[];

static void set_attr(int fd, uint32_t group, uint64_t attr, void *addr, const char *what)
{
	struct kvm_device_attr a = { .group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)addr };
	if (ioctl(fd, KVM_SET_DEVICE_ATTR, &a))
		arm64_setup_failed("arm64_ppi_setup", what);
}

static int ppi_line(struct arm64_vm *m, int level)
{
	struct kvm_irq_level l = {
		.irq = (KVM_ARM_IRQ_TYPE_PPI << KVM_ARM_IRQ_TYPE_SHIFT) | (0 << KVM_ARM_IRQ_VCPU_SHIFT) | PPI,
		.level = (uint32_t)level,
	};
	return ioctl(m->vm_fd, KVM_IRQ_LINE, &l);
}

/* A KVM_RUN that does not return leaves its thread holding the vCPU:
 * nothing more can be asked of it. */
static void run_or_give_up(struct arm64_vm *m, const char *test)
{
	arm64_run_start(m);
	if (!arm64_run_returned_within(m, 60000)) {
		printf("FAIL %s: KVM_RUN did not return\n", test);
		fflush(stdout);
		_exit(0);
	}
}

int main(void)
{
	static struct arm64_vm vm;
	struct arm64_vm *m = &vm;
	uint64_t v;

	/* As integers: the two labels are distinct objects to C. */
	arm64_vm_create(m, guest_start, (uintptr_t)guest_end - (uintptr_t)guest_start, CODE_SIZE,
			"arm64_ppi_setup");
	struct kvm_create_device gic = { .type = KVM_DEV_TYPE_ARM_VGIC_V3 };
	if (ioctl(m->vm_fd, KVM_CREATE_DEVICE, &gic))
		arm64_setup_failed("arm64_ppi_setup", "KVM_CREATE_DEVICE vGICv3");
	uint64_t dist = GICD_IPA, redist = GICR_IPA;
	set_attr(gic.fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &dist, "GICD address");
	set_attr(gic.fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist, "GICR address");
	arm64_vcpu_create(m, "arm64_ppi_setup");
	set_attr(gic.fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL, "vGIC init");

	run_or_give_up(m, "guest_sets_up_its_gic");
	if (!arm64_mmio_write_at(m, MMIO_IPA + 16, &v)) {
		printf("FAIL guest_sets_up_its_gic: no ready report (rc %d %s, exit %u, PC 0x%llx)\n",
		       m->run_rc, strerror(m->run_errno), m->run->exit_reason,
		       (unsigned long long)arm64_core_reg(m, offsetof(struct kvm_regs, regs.pc)));
		return 0;
	}
	/* The lazy load waits on the userfaultfd; the poison kick frees it. */
	arm64_run_start(m);
	if (!arm64_lazy_fault_within(m, 60000) || arm64_poison_lazy(m) ||
	    !arm64_run_returned_within(m, 10000)) {
		printf("FAIL guest_sets_up_its_gic: the lazy load did not fault, or the poison did "
		       "not free the vCPU\n");
		fflush(stdout);
		_exit(0);
	}
	printf("ok guest_sets_up_its_gic\n");

	uint64_t pstate = arm64_core_reg(m, offsetof(struct kvm_regs, regs.pstate));
	uint64_t fault_pc = arm64_core_reg(m, offsetof(struct kvm_regs, regs.pc));
	if (pstate & (1u << 7))
		printf("FAIL pstate_readable_at_the_fault: I set (PSTATE 0x%llx)\n",
		       (unsigned long long)pstate);
	else
		printf("ok pstate_readable_at_the_fault (PSTATE 0x%llx, EL%llu, I clear)\n",
		       (unsigned long long)pstate, (unsigned long long)((pstate >> 2) & 3));

	/* The PPI, raised while the page is still poisoned: the handler must
	 * run before the load is retried (else the retry gets SIGBUS). */
	arm64_sigbus_seen = 0;
	if (ppi_line(m, 1)) {
		printf("FAIL irq_taken_before_the_refault: KVM_IRQ_LINE: %s\n", strerror(errno));
		return 0;
	}
	run_or_give_up(m, "irq_taken_before_the_refault");
	if (arm64_mmio_write_at(m, MMIO_IPA + 8, &v) && v == PPI)
		printf("ok irq_taken_before_the_refault (INTID %llu, no SIGBUS)\n",
		       (unsigned long long)v);
	else
		printf("FAIL irq_taken_before_the_refault: rc %d (%s), exit %u, SIGBUS %s\n",
		       m->run_rc, strerror(m->run_errno), m->run->exit_reason,
		       arm64_sigbus_seen ? "seen" : "not seen");
	ppi_line(m, 0);

	/* The page arrives; the handler returns; the load completes. */
	if (arm64_install_lazy(m, CONTENT)) {
		printf("FAIL load_completes_after_the_handler: UFFDIO_COPY: %s\n", strerror(errno));
		return 0;
	}
	run_or_give_up(m, "load_completes_after_the_handler");
	if (arm64_mmio_write_at(m, MMIO_IPA, &v) && v == CONTENT &&
	    arm64_core_reg(m, offsetof(struct kvm_regs, regs.pc)) == fault_pc + 4)
		printf("ok load_completes_after_the_handler\n");
	else
		printf("FAIL load_completes_after_the_handler: rc %d exit %u value 0x%llx\n",
		       m->run_rc, m->run->exit_reason, (unsigned long long)v);
	return 0;
}
