/*
 * What stock arm64 KVM does with a vCPU whose stage-2 fault waits on a
 * userfaultfd: the facts apfvm's arm64 host side is built on
 * (docs/arm64.md), checked on the host it runs on.  A static arm64 program,
 * run inside the emulated arm64 host (tests/arm64/run_arm64.sh).
 *
 * A one-page guest (MMU off, EL1) loads a word from a second page that is
 * registered MISSING with a userfaultfd and writes it to an address outside
 * every memory slot (an MMIO exit that carries the word out).  Checked:
 *   - the fault reaches the userfaultfd, from the vCPU thread;
 *   - a signal to that thread does NOT take it out of the wait (arm64
 *     resolves stage-2 faults with a killable, not interruptible, GUP): the
 *     x86 kick cannot work here;
 *   - UFFDIO_POISON on the page does: KVM_RUN returns, the vCPU thread gets
 *     SIGBUS naming the page, the guest's PC is still at the load;
 *   - the page can then be installed (after MADV_DONTNEED drops the poison
 *     marker), KVM_RUN resumes the load, and the guest reads the content.
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

#define PAGE      4096ul
#define CODE_IPA  0x40000000ul
#define LAZY_IPA  0x40100000ul
#define MMIO_IPA  0x50000000ul
#define CONTENT   0x1122334455667788ull

static const uint32_t guest_code[] = {
	0xd2a80200, /* movz x0, #0x4010, lsl #16   x0 = LAZY_IPA */
	0xf9400001, /* ldr  x1, [x0]                the lazy load */
	0xd2aa0002, /* movz x2, #0x5000, lsl #16   x2 = MMIO_IPA */
	0xf9000041, /* str  x1, [x2]                MMIO exit carrying x1 */
	0x14000000, /* b    . */
};

static int vm_fd, vcpu_fd, uffd, done_fd;
static struct kvm_run *run;
static uint8_t *lazy;
static volatile sig_atomic_t sigbus_seen;
static void *volatile sigbus_addr;
static int run_rc, run_errno;

static void on_sigusr1(int sig)
{
	(void)sig;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	sigbus_addr = si->si_addr;
	sigbus_seen = 1;
}

static void fail_exit(const char *what)
{
	printf("FAIL arm64_fault_path_setup: %s: %s\n", what, strerror(errno));
	exit(0);
}

static uint64_t core_reg_id(size_t off)
{
	return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (off / sizeof(uint32_t));
}

static uint64_t get_pc(void)
{
	uint64_t pc = 0;
	struct kvm_one_reg r = { .id = core_reg_id(offsetof(struct kvm_regs, regs.pc)),
				 .addr = (uint64_t)(uintptr_t)&pc };
	ioctl(vcpu_fd, KVM_GET_ONE_REG, &r);
	return pc;
}

/* The vCPU thread: one KVM_RUN, then tells the main thread. */
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

/* Whether the vCPU thread's KVM_RUN returned within ms milliseconds. */
static int run_returned_within(int ms)
{
	struct pollfd p = { .fd = done_fd, .events = POLLIN };
	uint64_t v;
	if (poll(&p, 1, ms) != 1)
		return 0;
	if (read(done_fd, &v, sizeof(v)) != sizeof(v))
		abort();
	return 1;
}

static void setup(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		fail_exit("/dev/kvm");
	vm_fd = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm_fd < 0)
		fail_exit("KVM_CREATE_VM");
	uint8_t *code = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	lazy = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (code == MAP_FAILED || lazy == MAP_FAILED)
		fail_exit("mmap");
	memcpy(code, guest_code, sizeof(guest_code));

	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		fail_exit("userfaultfd");
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_POISON };
	if (ioctl(uffd, UFFDIO_API, &api))
		fail_exit("UFFDIO_API with UFFD_FEATURE_POISON");
	struct uffdio_register reg = { .range = { (uint64_t)(uintptr_t)lazy, PAGE },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		fail_exit("UFFDIO_REGISTER");

	struct kvm_userspace_memory_region slots[2] = {
		{ .slot = 0, .guest_phys_addr = CODE_IPA, .memory_size = PAGE,
		  .userspace_addr = (uint64_t)(uintptr_t)code },
		{ .slot = 1, .guest_phys_addr = LAZY_IPA, .memory_size = PAGE,
		  .userspace_addr = (uint64_t)(uintptr_t)lazy },
	};
	for (int i = 0; i < 2; i++)
		if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &slots[i]))
			fail_exit("KVM_SET_USER_MEMORY_REGION");

	vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	if (vcpu_fd < 0)
		fail_exit("KVM_CREATE_VCPU");
	struct kvm_vcpu_init init;
	if (ioctl(vm_fd, KVM_ARM_PREFERRED_TARGET, &init) || ioctl(vcpu_fd, KVM_ARM_VCPU_INIT, &init))
		fail_exit("KVM_ARM_VCPU_INIT");
	uint64_t pc = CODE_IPA;
	struct kvm_one_reg r = { .id = core_reg_id(offsetof(struct kvm_regs, regs.pc)),
				 .addr = (uint64_t)(uintptr_t)&pc };
	if (ioctl(vcpu_fd, KVM_SET_ONE_REG, &r))
		fail_exit("KVM_SET_ONE_REG pc");
	int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
	if (run == MAP_FAILED)
		fail_exit("mmap kvm_run");
	done_fd = eventfd(0, EFD_CLOEXEC);

	struct sigaction sa = { .sa_handler = on_sigusr1 }; /* no SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);
	struct sigaction sb = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
	sigaction(SIGBUS, &sb, NULL);
}

int main(void)
{
	pthread_t t;
	struct pollfd p;
	struct uffd_msg msg;

	setup();
	/* 1. The guest's load waits on the userfaultfd. */
	pthread_create(&t, NULL, vcpu_thread, NULL);
	p = (struct pollfd){ .fd = uffd, .events = POLLIN };
	if (poll(&p, 1, 60000) != 1 || read(uffd, &msg, sizeof(msg)) != sizeof(msg) ||
	    msg.event != UFFD_EVENT_PAGEFAULT ||
	    (msg.arg.pagefault.address & ~(PAGE - 1)) != (uint64_t)(uintptr_t)lazy) {
		printf("FAIL stage2_fault_reaches_userfaultfd: no fault event on the lazy page\n");
		return 0;
	}
	printf("ok stage2_fault_reaches_userfaultfd\n");

	/* 2. A signal does not take the vCPU out of that wait. */
	pthread_kill(t, SIGUSR1);
	if (run_returned_within(1000)) {
		printf("FAIL signal_does_not_free_the_vcpu: KVM_RUN returned (rc %d, %s): the x86 "
		       "kick would work here\n", run_rc, strerror(run_errno));
		return 0;
	}
	printf("ok signal_does_not_free_the_vcpu\n");

	/* 3. UFFDIO_POISON does: SIGBUS on the vCPU thread, naming the page. */
	struct uffdio_poison poison = { .range = { (uint64_t)(uintptr_t)lazy, PAGE } };
	if (ioctl(uffd, UFFDIO_POISON, &poison)) {
		printf("FAIL poison_frees_the_vcpu_with_sigbus: UFFDIO_POISON: %s\n", strerror(errno));
		return 0;
	}
	if (!run_returned_within(10000)) {
		printf("FAIL poison_frees_the_vcpu_with_sigbus: KVM_RUN still waits\n");
		return 0;
	}
	pthread_join(t, NULL);
	uint64_t pc = get_pc();
	if (!sigbus_seen || (uintptr_t)sigbus_addr / PAGE != (uintptr_t)lazy / PAGE ||
	    pc != CODE_IPA + 4)
		printf("FAIL poison_frees_the_vcpu_with_sigbus: KVM_RUN rc %d (%s), SIGBUS %s at %p "
		       "(page %p), pc 0x%llx\n", run_rc, strerror(run_errno),
		       sigbus_seen ? "seen" : "not seen", sigbus_addr, (void *)lazy,
		       (unsigned long long)pc);
	else
		printf("ok poison_frees_the_vcpu_with_sigbus (KVM_RUN rc %d, %s; pc at the load)\n",
		       run_rc, strerror(run_errno));

	/* 4. The page installed afterwards; the load completes with it. */
	static uint64_t src[PAGE / 8] __attribute__((aligned(4096)));
	src[0] = CONTENT;
	struct uffdio_copy copy = { .dst = (uint64_t)(uintptr_t)lazy,
				    .src = (uint64_t)(uintptr_t)src, .len = PAGE };
	int crc = ioctl(uffd, UFFDIO_COPY, &copy);
	int cerr = crc ? errno : 0;
	if (crc && cerr == EEXIST) { /* the poison marker occupies the PTE */
		madvise(lazy, PAGE, MADV_DONTNEED);
		copy.copy = 0;
		crc = ioctl(uffd, UFFDIO_COPY, &copy);
	}
	if (crc) {
		printf("FAIL page_installed_after_poison: UFFDIO_COPY: %s\n", strerror(errno));
		return 0;
	}
	pthread_create(&t, NULL, vcpu_thread, NULL);
	if (!run_returned_within(60000)) {
		printf("FAIL page_installed_after_poison: KVM_RUN did not return\n");
		return 0;
	}
	pthread_join(t, NULL);
	uint64_t got = 0;
	if (run_rc == 0 && run->exit_reason == KVM_EXIT_MMIO && run->mmio.is_write)
		memcpy(&got, run->mmio.data, sizeof(got));
	if (run_rc || run->exit_reason != KVM_EXIT_MMIO || run->mmio.phys_addr != MMIO_IPA ||
	    got != CONTENT)
		printf("FAIL page_installed_after_poison: rc %d exit %u addr 0x%llx data 0x%llx\n",
		       run_rc, run->exit_reason, (unsigned long long)run->mmio.phys_addr,
		       (unsigned long long)got);
	else
		printf("ok page_installed_after_poison (%s)\n",
		       cerr == EEXIST ? "UFFDIO_COPY needed MADV_DONTNEED first" : "UFFDIO_COPY at once");
	return 0;
}
