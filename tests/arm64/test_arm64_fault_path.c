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
#include "arm64_vm.h"

#define CONTENT 0x1122334455667788ull

static const uint32_t guest_code[] = {
	0xd2a80200, /* movz x0, #0x4010, lsl #16   x0 = LAZY_IPA */
	0xf9400001, /* ldr  x1, [x0]                the lazy load */
	0xd2aa0002, /* movz x2, #0x5000, lsl #16   x2 = MMIO_IPA */
	0xf9000041, /* str  x1, [x2]                MMIO exit carrying x1 */
	0x14000000, /* b    . */
};

static void on_sigusr1(int sig)
{
	(void)sig;
}

int main(void)
{
	static struct arm64_vm vm;
	struct arm64_vm *m = &vm;
	uint64_t got;

	arm64_vm_create(m, guest_code, sizeof(guest_code), PAGE, "arm64_fault_path_setup");
	arm64_vcpu_create(m, "arm64_fault_path_setup");
	struct sigaction sa = { .sa_handler = on_sigusr1 }; /* no SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);

	/* 1. The guest's load waits on the userfaultfd. */
	arm64_run_start(m);
	if (!arm64_lazy_fault_within(m, 60000)) {
		printf("FAIL stage2_fault_reaches_userfaultfd: no fault event on the lazy page\n");
		return 0;
	}
	printf("ok stage2_fault_reaches_userfaultfd\n");

	/* 2. A signal does not take the vCPU out of that wait. */
	pthread_kill(m->thread, SIGUSR1);
	if (arm64_run_returned_within(m, 1000)) {
		printf("FAIL signal_does_not_free_the_vcpu: KVM_RUN returned (rc %d, %s): the x86 "
		       "kick would work here\n", m->run_rc, strerror(m->run_errno));
		return 0;
	}
	printf("ok signal_does_not_free_the_vcpu\n");

	/* 3. UFFDIO_POISON does: SIGBUS on the vCPU thread, naming the page. */
	if (arm64_poison_lazy(m)) {
		printf("FAIL poison_frees_the_vcpu_with_sigbus: UFFDIO_POISON: %s\n", strerror(errno));
		return 0;
	}
	if (!arm64_run_returned_within(m, 10000)) {
		printf("FAIL poison_frees_the_vcpu_with_sigbus: KVM_RUN still waits\n");
		return 0;
	}
	uint64_t pc = arm64_core_reg(m, offsetof(struct kvm_regs, regs.pc));
	if (!arm64_sigbus_seen || (uintptr_t)arm64_sigbus_addr / PAGE != (uintptr_t)m->lazy / PAGE ||
	    pc != CODE_IPA + 4)
		printf("FAIL poison_frees_the_vcpu_with_sigbus: KVM_RUN rc %d (%s), SIGBUS %s at %p "
		       "(page %p), pc 0x%llx\n", m->run_rc, strerror(m->run_errno),
		       arm64_sigbus_seen ? "seen" : "not seen", arm64_sigbus_addr, (void *)m->lazy,
		       (unsigned long long)pc);
	else
		printf("ok poison_frees_the_vcpu_with_sigbus (KVM_RUN rc %d, %s; pc at the load)\n",
		       m->run_rc, strerror(m->run_errno));

	/* 4. The page installed afterwards; the load completes with it. */
	int crc = arm64_install_lazy(m, CONTENT);
	int cerr = crc ? errno : 0;
	if (crc && cerr == EEXIST) { /* the poison marker occupies the PTE */
		madvise(m->lazy, PAGE, MADV_DONTNEED);
		crc = arm64_install_lazy(m, CONTENT);
	}
	if (crc) {
		printf("FAIL page_installed_after_poison: UFFDIO_COPY: %s\n", strerror(errno));
		return 0;
	}
	arm64_run_start(m);
	if (!arm64_run_returned_within(m, 60000)) {
		printf("FAIL page_installed_after_poison: KVM_RUN did not return\n");
		return 0;
	}
	if (!arm64_mmio_write_at(m, MMIO_IPA, &got) || got != CONTENT)
		printf("FAIL page_installed_after_poison: rc %d exit %u addr 0x%llx\n", m->run_rc,
		       m->run->exit_reason, (unsigned long long)m->run->mmio.phys_addr);
	else
		printf("ok page_installed_after_poison (%s)\n",
		       cerr == EEXIST ? "UFFDIO_COPY needed MADV_DONTNEED first" : "UFFDIO_COPY at once");
	return 0;
}
