#include "vcpu_loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "apf_user.h"
#include "guest_report.h"
#include "hcall.h"
#include "util/thread.h"

static void kick_handler(int sig)
{
	(void)sig; /* its only job is to make KVM_RUN return -EINTR */
}

/* A guest access to a poisoned lazy page (pager.h, Errors) makes KVM send
 * the vCPU thread SIGBUS (BUS_MCEERR_AR, si_addr = the host address) from
 * inside KVM_RUN, which then returns -EINTR.  The handler takes only
 * those: it records the address for the loop.  Any other SIGBUS goes to
 * the handler installed before (or gets the default action), so a real
 * fault still kills the process as it would without apfvm. */
static __thread volatile sig_atomic_t tl_in_kvm_run
	__attribute__((tls_model("initial-exec")));
static __thread void *volatile tl_poisoned_addr __attribute__((tls_model("initial-exec")));
static struct sigaction sigbus_before;
static pthread_once_t sigbus_once = PTHREAD_ONCE_INIT;
static int sigbus_rc;

static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
	if (tl_in_kvm_run && si->si_code == BUS_MCEERR_AR) {
		tl_poisoned_addr = si->si_addr;
		return;
	}
	if (sigbus_before.sa_flags & SA_SIGINFO) {
		sigbus_before.sa_sigaction(sig, si, uc);
		return;
	}
	if (sigbus_before.sa_handler != SIG_DFL && sigbus_before.sa_handler != SIG_IGN) {
		sigbus_before.sa_handler(sig);
		return;
	}
	/* The default action: SIGBUS is blocked in here, so the raised one
	 * is delivered on return, with no handler (or the fault recurs). */
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigaction(SIGBUS, &dfl, NULL);
	raise(SIGBUS);
}

static void install_sigbus(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigbus_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &sigbus_before) < 0)
		sigbus_rc = -errno;
}

int vcpu_loop_setup_sigbus(void)
{
	pthread_once(&sigbus_once, install_sigbus);
	return sigbus_rc;
}

int vcpu_loop_setup_signal(int sig)
{
	struct sigaction old, sa;

	if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP)
		return -EINVAL;
	if (sigaction(sig, NULL, &old) < 0)
		return -errno;
	if (old.sa_handler == SIG_IGN)
		return -EINVAL; /* an ignored signal would not interrupt KVM_RUN */
	if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
		return 0; /* the embedder's own handler does the job */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL) < 0 ? -errno : 0;
}

/* The kick signal is blocked in the vCPU thread except inside KVM_RUN
 * (KVM_SET_SIGNAL_MASK): there a pending kick makes KVM_RUN return -EINTR;
 * outside it the kick stays pending and is taken with sigtimedwait(), so
 * the handler never runs.  Running it cost a signal frame per kick (the
 * whole register state saved and restored: 400-500 us per async fault on
 * the emulated host).  No kick is lost: one that lands outside KVM_RUN
 * stays pending until taken, and immediate_exit, set before every kick,
 * makes the next KVM_RUN return at once whatever the signal's state.
 * SIGBUS stays unblocked everywhere (KVM's report of a poisoned page). */
static int setup_thread_signals(struct vcpu *v)
{
	/* struct kvm_signal_mask: len, then the kernel's 64-bit sigset. */
	union {
		struct kvm_signal_mask hdr;
		uint8_t bytes[sizeof(struct kvm_signal_mask) + 8];
	} km;
	sigset_t set;
	int rc;

	sigemptyset(&set);
	sigaddset(&set, SIGBUS);
	if ((rc = pthread_sigmask(SIG_UNBLOCK, &set, NULL)))
		return -rc;
	sigemptyset(&set);
	sigaddset(&set, v->vm->kick_signal);
	if ((rc = pthread_sigmask(SIG_BLOCK, &set, NULL)))
		return -rc;
	pthread_sigmask(SIG_BLOCK, NULL, &set);
	sigdelset(&set, v->vm->kick_signal); /* the mask inside KVM_RUN */
	km.hdr.len = 8;
	memcpy(km.bytes + sizeof(struct kvm_signal_mask), &set, 8);
	return ioctl(v->fd, KVM_SET_SIGNAL_MASK, &km) < 0 ? -errno : 0;
}

/* Takes a kick that is pending (blocked) in this thread, if any. */
static void take_pending_kick(struct vcpu *v)
{
	static const struct timespec now;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, v->vm->kick_signal);
	while (sigtimedwait(&set, NULL, &now) < 0 && errno == EINTR)
		;
}

/* The guest touched a lazy page that could not be fetched: KVM failed the
 * access (SIGBUS, above).  The vCPU cannot go on. */
static void fail_poisoned_access(struct machine *m, struct vcpu *v, void *addr)
{
	uintptr_t a = (uintptr_t)addr, base = (uintptr_t)m->gm.lazy;

	uintptr_t rbase = (uintptr_t)m->gm.resident;
	const struct pager *res = m->region[MACHINE_RESIDENT].pager;
	if (m->gm.lazy && a >= base && a - base < m->gm.lazy_size)
		machine_fail(m, "vCPU %u: the guest accessed page %llu of the lazy region, which could not be fetched",
			     v->id, (unsigned long long)((a - base) / APF_PAGE_SIZE));
	else if (res && a >= rbase && a - rbase < m->gm.resident_size)
		machine_fail(m, "vCPU %u: the guest accessed resident page %llu, which could not be "
			     "restored from the snapshot (%s)", v->id,
			     (unsigned long long)((a - rbase) / APF_PAGE_SIZE),
			     res->error_msg[0] ? res->error_msg : "see the pager's error");
	else
		machine_fail(m, "vCPU %u: KVM reported poisoned host memory at %p (not the lazy region)",
			     v->id, addr);
}

static void fail_unbacked_mmio(struct machine *m, struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char what[160];

	snprintf(what, sizeof(what), "access to unbacked guest physical address 0x%llx (%s, %u bytes)",
		 (unsigned long long)run->mmio.phys_addr, run->mmio.is_write ? "write" : "read",
		 run->mmio.len);
	machine_fail_vcpu(m, v, what);
}

/* Port I/O for the guest kind's devices (a Linux guest's PC), if it has
 * any; else a guest bug that ends the run. */
static void port_io(struct machine *m, struct vcpu *v)
{
	char what[160];

	if (m->guest.port_io) {
		m->guest.port_io(m, v);
		return;
	}
	arch_describe_port_io(v->run, what, sizeof(what));
	machine_fail_vcpu(m, v, what);
}

/* The exits every architecture has, then the architecture's decoded
 * ones, each dispatched to what handles it. */
static void handle_exit(struct machine *m, struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct vcpu_exit x;
	char what[160];

	switch (run->exit_reason) {
	case KVM_EXIT_INTR:
		return;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(what, sizeof(what), "KVM internal error, suberror %u%s", run->internal.suberror,
			 run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
				 ? " (instruction emulation failed: an instruction this KVM cannot emulate)"
				 : "");
		machine_fail_vcpu(m, v, what);
		return;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof(what), "VM entry failed (hardware reason 0x%llx)",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		machine_fail_vcpu(m, v, what);
		return;
	}
	arch_decode_exit(v, m->core, &x);
	switch (x.kind) {
	case VCPU_EXIT_HANDLED:
		break;
	case VCPU_EXIT_HYPERCALL:
		hcall_handle(m, v, x.gpa);
		break;
	case VCPU_EXIT_PORT_IO:
		port_io(m, v);
		break;
	case VCPU_EXIT_MMIO_UNBACKED:
		fail_unbacked_mmio(m, v);
		break;
	case VCPU_EXIT_FAIL:
		machine_fail_vcpu(m, v, x.what);
		break;
	case VCPU_EXIT_UNKNOWN:
		snprintf(what, sizeof(what), "unexpected KVM exit reason %u", run->exit_reason);
		machine_fail_vcpu(m, v, what);
		break;
	}
}

/* An I/O, MMIO or hypercall exit is complete (the instruction retired,
 * the data of a read in its register) only once KVM_RUN is entered again
 * (KVM's api.rst, "immediate_exit").  A vCPU stopped for a snapshot right
 * after such an exit enters once more with immediate_exit set: KVM
 * finishes the operation and returns -EINTR before any guest instruction
 * runs.  Otherwise the snapshot would hold the instruction unretired and
 * the restored guest would execute it twice. */
static void complete_pending_exit(struct machine *m, struct vcpu *v)
{
	if (!atomic_load(&m->snapshot_requested) || machine_failed(m))
		return;
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	int r = ioctl(v->fd, KVM_RUN, 0);
	if (r == 0)
		machine_fail(m, "--snapshot: the vCPU ran on while its last exit was completed");
	else if (errno != EINTR && errno != EAGAIN)
		machine_fail(m, "--snapshot: completing the vCPU's last exit: %s", strerror(errno));
	take_pending_kick(v);
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct machine *m = machine_of(v);
	char name[16];

	snprintf(name, sizeof(name), "apfvm-vcpu%u", v->id);
	prctl(PR_SET_NAME, name);
	int rc = setup_thread_signals(v);
	if (rc) {
		machine_fail(m, "cannot set up the vCPU kick signal: %s", strerror(-rc));
		return NULL;
	}
	pthread_mutex_lock(&v->kick_lock);
	v->pid = getpid();
	__atomic_store_n(&v->tid, (int)gettid(), __ATOMIC_RELEASE);
	v->kickable = true;
	pthread_mutex_unlock(&v->kick_lock);
	if (m->core)
		arch_apf_vcpu_init(v);
	uint64_t zero = 0;
	atomic_compare_exchange_strong(&m->first_run_ns, &zero, monotonic_ns());
	while (!atomic_load(&m->stop)) {
		tl_in_kvm_run = 1;
		int r = ioctl(v->fd, KVM_RUN, 0);
		tl_in_kvm_run = 0;
		if (tl_poisoned_addr) {
			void *addr = tl_poisoned_addr;
			tl_poisoned_addr = NULL;
			if (apf_user_poison_kick(m, v, addr)) {
				/* The kick's signal, if it came too, is done. */
				__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				take_pending_kick(v);
				continue;
			}
			fail_poisoned_access(m, v, addr);
			break;
		}
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				/* A kick: clear it, then look at why. */
				__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				take_pending_kick(v);
				if (m->core)
					apf_user_after_kick(m, v);
				continue;
			}
			char what[96];
			snprintf(what, sizeof(what), "KVM_RUN failed: %s", strerror(errno));
			machine_fail_vcpu(m, v, what);
			break;
		}
		handle_exit(m, v);
		/* A page-ready the guest's LAPIC refused waits in the core; the
		 * pager retries it on its clock, but there may be no pager (no
		 * lazy region) or it may sleep: every exit is a chance too. */
		if (m->core)
			apf_core_retry(m->core);
	}
	complete_pending_exit(m, v);
	pthread_mutex_lock(&v->kick_lock);
	v->kickable = false;
	pthread_mutex_unlock(&v->kick_lock);
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	return -thread_start_pinned(&v->thread, v->cpu, vcpu_thread, v);
}
