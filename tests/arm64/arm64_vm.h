/*
 * arm64_vm: the bare KVM machine the arm64 tier's tests build: one vCPU at
 * EL1 with the MMU off, a code slot, and a one-page "lazy" slot registered
 * MISSING (with poisoning) on a userfaultfd; KVM_RUN on a thread of its own
 * so the main thread can serve or poison the page.  Header-only: each test
 * is one static program.
 */
#ifndef APFVM_TESTS_ARM64_VM_H
#define APFVM_TESTS_ARM64_VM_H

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

#define PAGE      4096ul
#define CODE_IPA  0x40000000ul
#define LAZY_IPA  0x40100000ul
#define MMIO_IPA  0x50000000ul /* outside every slot: a store there exits */

struct arm64_vm {
	int kvm_fd, vm_fd, vcpu_fd, uffd, done_fd;
	struct kvm_run *run;
	uint8_t *lazy;            /* host view of the lazy page */
	int run_rc, run_errno;    /* of the last KVM_RUN */
	pthread_t thread;
};

static volatile sig_atomic_t arm64_sigbus_seen;
static void *volatile arm64_sigbus_addr;

static void arm64_on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	arm64_sigbus_addr = si->si_addr;
	arm64_sigbus_seen = 1;
}

/* A setup step failed: one FAIL line named after the test, then exit. */
static void arm64_setup_failed(const char *test, const char *what)
{
	printf("FAIL %s: %s: %s\n", test, what, strerror(errno));
	exit(0);
}

/* The VM, its code slot (code copied to CODE_IPA, slot code_size bytes)
 * and the lazy page at LAZY_IPA; SIGBUS recorded.  No vCPU yet (a device
 * such as the vGIC may come first). */
static void arm64_vm_create(struct arm64_vm *m, const void *code, size_t len, size_t code_size,
			    const char *test)
{
	memset(m, 0, sizeof(*m));
	m->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (m->kvm_fd < 0)
		arm64_setup_failed(test, "/dev/kvm");
	m->vm_fd = ioctl(m->kvm_fd, KVM_CREATE_VM, 0);
	if (m->vm_fd < 0)
		arm64_setup_failed(test, "KVM_CREATE_VM");
	uint8_t *host_code = mmap(NULL, code_size, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	m->lazy = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (host_code == MAP_FAILED || m->lazy == MAP_FAILED || !len || len > code_size)
		arm64_setup_failed(test, "guest memory");
	memcpy(host_code, code, len);

	m->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_POISON };
	if (m->uffd < 0 || ioctl(m->uffd, UFFDIO_API, &api))
		arm64_setup_failed(test, "userfaultfd with UFFD_FEATURE_POISON");
	struct uffdio_register reg = { .range = { (uint64_t)(uintptr_t)m->lazy, PAGE },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(m->uffd, UFFDIO_REGISTER, &reg))
		arm64_setup_failed(test, "UFFDIO_REGISTER");
	struct kvm_userspace_memory_region slots[2] = {
		{ .slot = 0, .guest_phys_addr = CODE_IPA, .memory_size = code_size,
		  .userspace_addr = (uint64_t)(uintptr_t)host_code },
		{ .slot = 1, .guest_phys_addr = LAZY_IPA, .memory_size = PAGE,
		  .userspace_addr = (uint64_t)(uintptr_t)m->lazy },
	};
	for (int i = 0; i < 2; i++)
		if (ioctl(m->vm_fd, KVM_SET_USER_MEMORY_REGION, &slots[i]))
			arm64_setup_failed(test, "KVM_SET_USER_MEMORY_REGION");
	m->done_fd = eventfd(0, EFD_CLOEXEC);
	struct sigaction sb = { .sa_sigaction = arm64_on_sigbus, .sa_flags = SA_SIGINFO };
	sigaction(SIGBUS, &sb, NULL);
}

static uint64_t arm64_core_reg_id(size_t off)
{
	return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (off / sizeof(uint32_t));
}

/* Only while no KVM_RUN is in progress (the vCPU's ioctls wait for it). */
static uint64_t arm64_core_reg(struct arm64_vm *m, size_t off)
{
	uint64_t v = 0;
	struct kvm_one_reg r = { .id = arm64_core_reg_id(off), .addr = (uint64_t)(uintptr_t)&v };
	ioctl(m->vcpu_fd, KVM_GET_ONE_REG, &r);
	return v;
}

/* vCPU 0, initialized as the host prefers, starting at CODE_IPA. */
static void arm64_vcpu_create(struct arm64_vm *m, const char *test)
{
	m->vcpu_fd = ioctl(m->vm_fd, KVM_CREATE_VCPU, 0);
	if (m->vcpu_fd < 0)
		arm64_setup_failed(test, "KVM_CREATE_VCPU");
	struct kvm_vcpu_init init;
	if (ioctl(m->vm_fd, KVM_ARM_PREFERRED_TARGET, &init) ||
	    ioctl(m->vcpu_fd, KVM_ARM_VCPU_INIT, &init))
		arm64_setup_failed(test, "KVM_ARM_VCPU_INIT");
	uint64_t pc = CODE_IPA;
	struct kvm_one_reg r = { .id = arm64_core_reg_id(offsetof(struct kvm_regs, regs.pc)),
				 .addr = (uint64_t)(uintptr_t)&pc };
	if (ioctl(m->vcpu_fd, KVM_SET_ONE_REG, &r))
		arm64_setup_failed(test, "KVM_SET_ONE_REG pc");
	int size = ioctl(m->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	m->run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, m->vcpu_fd, 0);
	if (m->run == MAP_FAILED)
		arm64_setup_failed(test, "mmap kvm_run");
}

static void *arm64_vcpu_thread(void *arg)
{
	struct arm64_vm *m = arg;
	uint64_t one = 1;
	m->run_rc = ioctl(m->vcpu_fd, KVM_RUN, 0);
	m->run_errno = errno;
	if (write(m->done_fd, &one, sizeof(one)) != sizeof(one))
		abort();
	return NULL;
}

/* Starts one KVM_RUN on its own thread. */
static void arm64_run_start(struct arm64_vm *m)
{
	pthread_create(&m->thread, NULL, arm64_vcpu_thread, m);
}

/* Whether that KVM_RUN returned within ms (then its thread is joined). */
static int arm64_run_returned_within(struct arm64_vm *m, int ms)
{
	struct pollfd p = { .fd = m->done_fd, .events = POLLIN };
	uint64_t v;
	if (poll(&p, 1, ms) != 1)
		return 0;
	if (read(m->done_fd, &v, sizeof(v)) != sizeof(v))
		abort();
	pthread_join(m->thread, NULL);
	return 1;
}

/* Waits up to ms for the guest's fault on the lazy page to reach the
 * userfaultfd. */
static int arm64_lazy_fault_within(struct arm64_vm *m, int ms)
{
	struct pollfd p = { .fd = m->uffd, .events = POLLIN };
	struct uffd_msg msg;
	return poll(&p, 1, ms) == 1 && read(m->uffd, &msg, sizeof(msg)) == sizeof(msg) &&
	       msg.event == UFFD_EVENT_PAGEFAULT &&
	       (msg.arg.pagefault.address & ~(PAGE - 1)) == (uint64_t)(uintptr_t)m->lazy;
}

static int arm64_poison_lazy(struct arm64_vm *m)
{
	struct uffdio_poison poison = { .range = { (uint64_t)(uintptr_t)m->lazy, PAGE } };
	return ioctl(m->uffd, UFFDIO_POISON, &poison);
}

/* Installs the lazy page with `first` as its first word; -1 with errno. */
static int arm64_install_lazy(struct arm64_vm *m, uint64_t first)
{
	static uint64_t src[PAGE / 8] __attribute__((aligned(4096)));
	src[0] = first;
	struct uffdio_copy copy = { .dst = (uint64_t)(uintptr_t)m->lazy,
				    .src = (uint64_t)(uintptr_t)src, .len = PAGE };
	return ioctl(m->uffd, UFFDIO_COPY, &copy);
}

/* Whether the last KVM_RUN ended in a guest store to addr; its value. */
static int arm64_mmio_write_at(struct arm64_vm *m, uint64_t addr, uint64_t *value)
{
	struct kvm_run *r = m->run;
	if (m->run_rc || r->exit_reason != KVM_EXIT_MMIO || !r->mmio.is_write ||
	    r->mmio.phys_addr != addr)
		return 0;
	*value = 0;
	memcpy(value, r->mmio.data, r->mmio.len < 8 ? r->mmio.len : 8);
	return 1;
}

#endif
