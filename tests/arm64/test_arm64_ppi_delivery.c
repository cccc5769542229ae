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
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef UFFDIO_POISON /* Linux 6.6; the cross headers are 6.1 */
struct uffdio_poison {
	struct uffdio_range range;
	uint64_t mode;
	int64_t updated;
};
#define _UFFDIO_POISON 0x08
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#define UFFD_FEATURE_POISON (1 << 14)
#endif

#define PAGE       4096ul
#define CODE_IPA   0x40000000ul
#define CODE_SIZE  0x10000ul
#define LAZY_IPA   0x40100000ul
#define MMIO_IPA   0x50000000ul  /* +0 content, +8 INTID from the handler, +16 ready */
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

static int vm_fd, vcpu_fd, uffd, done_fd;
static struct kvm_run *run;
static uint8_t *lazy;
static volatile sig_atomic_t sigbus_seen;
static int run_rc, run_errno;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	sigbus_seen = 1;
}

static void fail_exit(const char *what)
{
	printf("FAIL arm64_ppi_setup: %s: %s\n", what, strerror(errno));
	exit(0);
}

static uint64_t core_reg(size_t off)
{
	uint64_t v = 0;
	struct kvm_one_reg r = { .id = KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |
				       (off / sizeof(uint32_t)),
				 .addr = (uint64_t)(uintptr_t)&v };
	ioctl(vcpu_fd, KVM_GET_ONE_REG, &r);
	return v;
}

static void *vcpu_thread(void *arg)
{
	uint64_t one = 1;
	(void)arg;
	run_rc = ioctl(vcpu_fd, KVM_RUN, 0);
	run_errno = errno;
	if (write(done_fd, &one, sizeof(one)) != sizeof(one))
		abort();
	return NULL;
}

/* One KVM_RUN on a thread of its own (the uffd wait may need the main
 * thread); whether it returned within ms. */
static int run_vcpu(int ms)
{
	pthread_t t;
	struct pollfd p = { .fd = done_fd, .events = POLLIN };
	uint64_t v;
	pthread_create(&t, NULL, vcpu_thread, NULL);
	if (poll(&p, 1, ms) != 1)
		return 0;
	if (read(done_fd, &v, sizeof(v)) != sizeof(v))
		abort();
	pthread_join(t, NULL);
	return 1;
}

static int mmio_write_at(uint64_t addr, uint64_t *value)
{
	if (run_rc || run->exit_reason != KVM_EXIT_MMIO || !run->mmio.is_write ||
	    run->mmio.phys_addr != addr)
		return 0;
	*value = 0;
	memcpy(value, run->mmio.data, run->mmio.len < 8 ? run->mmio.len : 8);
	return 1;
}

static void set_attr(int fd, uint32_t group, uint64_t attr, void *addr, const char *what)
{
	struct kvm_device_attr a = { .group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)addr };
	if (ioctl(fd, KVM_SET_DEVICE_ATTR, &a))
		fail_exit(what);
}

static void setup(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		fail_exit("/dev/kvm");
	vm_fd = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm_fd < 0)
		fail_exit("KVM_CREATE_VM");
	uint8_t *code = mmap(NULL, CODE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	lazy = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (code == MAP_FAILED || lazy == MAP_FAILED)
		fail_exit("mmap");
	/* As integers: the two labels are distinct objects to C. */
	size_t code_len = (uintptr_t)guest_end - (uintptr_t)guest_start;
	if (!code_len || code_len > CODE_SIZE)
		fail_exit("the guest's code size");
	memcpy(code, guest_start, code_len);

	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_POISON };
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api))
		fail_exit("userfaultfd with UFFD_FEATURE_POISON");
	struct uffdio_register reg = { .range = { (uint64_t)(uintptr_t)lazy, PAGE },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		fail_exit("UFFDIO_REGISTER");
	struct kvm_userspace_memory_region slots[2] = {
		{ .slot = 0, .guest_phys_addr = CODE_IPA, .memory_size = CODE_SIZE,
		  .userspace_addr = (uint64_t)(uintptr_t)code },
		{ .slot = 1, .guest_phys_addr = LAZY_IPA, .memory_size = PAGE,
		  .userspace_addr = (uint64_t)(uintptr_t)lazy },
	};
	for (int i = 0; i < 2; i++)
		if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &slots[i]))
			fail_exit("KVM_SET_USER_MEMORY_REGION");

	struct kvm_create_device gic = { .type = KVM_DEV_TYPE_ARM_VGIC_V3 };

	if (ioctl(vm_fd, KVM_CREATE_DEVICE, &gic))
		fail_exit("KVM_CREATE_DEVICE vGICv3");
	uint64_t dist = GICD_IPA, redist = GICR_IPA;
	set_attr(gic.fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &dist, "GICD address");
	set_attr(gic.fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist, "GICR address");

	vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	if (vcpu_fd < 0)
		fail_exit("KVM_CREATE_VCPU");
	struct kvm_vcpu_init init;
	if (ioctl(vm_fd, KVM_ARM_PREFERRED_TARGET, &init) || ioctl(vcpu_fd, KVM_ARM_VCPU_INIT, &init))
		fail_exit("KVM_ARM_VCPU_INIT");
	set_attr(gic.fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL, "vGIC init");
	uint64_t pc = CODE_IPA;
	struct kvm_one_reg r = { .id = KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |
				       (offsetof(struct kvm_regs, regs.pc) / sizeof(uint32_t)),
				 .addr = (uint64_t)(uintptr_t)&pc };
	if (ioctl(vcpu_fd, KVM_SET_ONE_REG, &r))
		fail_exit("KVM_SET_ONE_REG pc");
	int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
	if (run == MAP_FAILED)
		fail_exit("mmap kvm_run");
	done_fd = eventfd(0, EFD_CLOEXEC);
	struct sigaction sb = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
	sigaction(SIGBUS, &sb, NULL);
}

static int ppi_line(int level)
{
	struct kvm_irq_level l = {
		.irq = (KVM_ARM_IRQ_TYPE_PPI << KVM_ARM_IRQ_TYPE_SHIFT) | (0 << KVM_ARM_IRQ_VCPU_SHIFT) | PPI,
		.level = (uint32_t)level,
	};
	return ioctl(vm_fd, KVM_IRQ_LINE, &l);
}

int main(void)
{
	uint64_t v;
	struct uffd_msg msg;

	setup();
	if (!run_vcpu(20000)) {
		printf("FAIL guest_sets_up_its_gic: KVM_RUN did not return\n");
		fflush(stdout);
		_exit(0); /* the vCPU thread still holds the vCPU */
	}
	if (!mmio_write_at(MMIO_IPA + 16, &v)) {
		printf("FAIL guest_sets_up_its_gic: no ready report (rc %d %s, exit %u, hw reason 0x%llx, "
		       "PC 0x%llx, mmio addr 0x%llx)\n", run_rc, strerror(run_errno), run->exit_reason,
		       (unsigned long long)run->hw.hardware_exit_reason,
		       (unsigned long long)core_reg(offsetof(struct kvm_regs, regs.pc)),
		       (unsigned long long)run->mmio.phys_addr);
		return 0;
	}
	/* The lazy load waits on the userfaultfd; the poison kick frees it. */
	pthread_t t;
	pthread_create(&t, NULL, vcpu_thread, NULL);
	struct pollfd p = { .fd = uffd, .events = POLLIN };
	if (poll(&p, 1, 60000) != 1 || read(uffd, &msg, sizeof(msg)) != sizeof(msg)) {
		printf("FAIL guest_sets_up_its_gic: the lazy load did not fault\n");
		return 0;
	}
	struct uffdio_poison poison = { .range = { (uint64_t)(uintptr_t)lazy, PAGE } };
	if (ioctl(uffd, UFFDIO_POISON, &poison)) {
		printf("FAIL guest_sets_up_its_gic: UFFDIO_POISON: %s\n", strerror(errno));
		return 0;
	}
	struct pollfd d = { .fd = done_fd, .events = POLLIN };
	if (poll(&d, 1, 10000) != 1 || read(done_fd, &v, sizeof(v)) != sizeof(v)) {
		printf("FAIL guest_sets_up_its_gic: the poison did not free the vCPU\n");
		return 0;
	}
	pthread_join(t, NULL);
	printf("ok guest_sets_up_its_gic\n");

	uint64_t pstate = core_reg(offsetof(struct kvm_regs, regs.pstate));
	uint64_t fault_pc = core_reg(offsetof(struct kvm_regs, regs.pc));
	if (pstate & (1u << 7))
		printf("FAIL pstate_readable_at_the_fault: I set (PSTATE 0x%llx)\n",
		       (unsigned long long)pstate);
	else
		printf("ok pstate_readable_at_the_fault (PSTATE 0x%llx, EL%llu, I clear)\n",
		       (unsigned long long)pstate, (unsigned long long)((pstate >> 2) & 3));

	/* The PPI, raised while the page is still poisoned: the handler must
	 * run before the load is retried (else the retry gets SIGBUS). */
	sigbus_seen = 0;
	if (ppi_line(1)) {
		printf("FAIL irq_taken_before_the_refault: KVM_IRQ_LINE: %s\n", strerror(errno));
		return 0;
	}
	if (!run_vcpu(60000)) {
		printf("FAIL irq_taken_before_the_refault: KVM_RUN did not return\n");
		fflush(stdout);
		_exit(0);
	}
	if (mmio_write_at(MMIO_IPA + 8, &v) && v == PPI)
		printf("ok irq_taken_before_the_refault (INTID %llu, no SIGBUS)\n",
		       (unsigned long long)v);
	else
		printf("FAIL irq_taken_before_the_refault: rc %d (%s), exit %u, SIGBUS %s\n", run_rc,
		       strerror(run_errno), run->exit_reason, sigbus_seen ? "seen" : "not seen");
	ppi_line(0);

	/* The page arrives; the handler returns; the load completes. */
	static uint64_t src[PAGE / 8] __attribute__((aligned(4096)));
	src[0] = CONTENT;
	struct uffdio_copy copy = { .dst = (uint64_t)(uintptr_t)lazy,
				    .src = (uint64_t)(uintptr_t)src, .len = PAGE };
	if (ioctl(uffd, UFFDIO_COPY, &copy)) {
		printf("FAIL load_completes_after_the_handler: UFFDIO_COPY: %s\n", strerror(errno));
		return 0;
	}
	if (run_vcpu(60000) && mmio_write_at(MMIO_IPA, &v) && v == CONTENT &&
	    core_reg(offsetof(struct kvm_regs, regs.pc)) == fault_pc + 4)
		printf("ok load_completes_after_the_handler\n");
	else
		printf("FAIL load_completes_after_the_handler: rc %d exit %u value 0x%llx\n", run_rc,
		       run->exit_reason, (unsigned long long)v);
	return 0;
}
