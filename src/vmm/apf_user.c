#include "apf_user.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "guest_report.h"

/* Set while the pager thread is inside hook_installed(): a raise then is
 * the page's own page-ready (else it follows an ACK). */
static __thread uint64_t installing_since;

/* --- the core's hands ------------------------------------------------- */

static void op_kick(void *ctx, unsigned v, uint64_t page)
{
	struct machine *m = ctx;
	(void)page; /* where the kick poisons it, the pager does (kick_by_poison) */
	if (m->trace.page)
		__atomic_store_n(&m->trace.t_kick[v], host_cycles(), __ATOMIC_RELEASE);
	vcpu_kick(&m->vm.vcpus[v]);
}

static int op_write_u32(void *ctx, uint64_t gpa, uint32_t value)
{
	struct machine *m = ctx;
	volatile uint32_t *p = gmem_ptr(&m->gm, gpa, 4);
	if (!p || gpa % 4)
		return -EFAULT;
	__atomic_store_n(p, value, __ATOMIC_SEQ_CST);
	return 0;
}

static int op_read_u32(void *ctx, uint64_t gpa, uint32_t *value)
{
	struct machine *m = ctx;
	volatile uint32_t *p = gmem_ptr(&m->gm, gpa, 4);
	if (!p || gpa % 4)
		return -EFAULT;
	*value = __atomic_load_n(p, __ATOMIC_SEQ_CST);
	return 0;
}

static int op_raise(void *ctx, unsigned v, uint8_t vector)
{
	struct machine *m = ctx;

	if (m->trace.page) {
		uint64_t now = host_cycles();
		if (installing_since) {
			m->trace.install_to_raise += now - installing_since;
			m->trace.raised_on_install++;
		} else {
			m->trace.raised_on_ack++;
		}
		m->trace.page->raise_tsc = now + m->vm.vcpus[v].tsc_offset; /* guest's clock */
	}
	return arch_apf_raise(&m->vm, v, vector);
}

static bool op_gpa_ok(void *ctx, uint64_t gpa, uint64_t len)
{
	struct machine *m = ctx;
	return gmem_ptr(&m->gm, gpa, len) != NULL;
}

static void op_fail(void *ctx, unsigned v, int err, const char *what)
{
	machine_fail(ctx, "vCPU %u: %s: %s (its parked guest tasks cannot be woken)", v, what,
		     strerror(-err));
}

static const struct apf_core_ops core_ops = {
	.fail = op_fail,
	.kick = op_kick,
	.write_u32 = op_write_u32,
	.read_u32 = op_read_u32,
	.raise = op_raise,
	.gpa_ok = op_gpa_ok,
};

static const struct pager_hooks apf_user_pager_hooks;

int apf_user_init(struct machine *m, struct apf_err *e)
{
	const struct apfvm_config *c = m->cfg;

	m->core = calloc(1, sizeof(*m->core));
	if (!m->core)
		return apf_fail(e, -ENOMEM, "out of memory");
	apf_core_init(m->core, m->vm.nvcpus,
		      c->apf_threshold_ns ? c->apf_threshold_ns : APF_USER_DEFAULT_THRESHOLD_NS,
		      &core_ops, m);
	m->core->ack_paced = c->apf_trap_acks;
	m->pager_hooks = apf_user_pager_hooks;
	m->pager_hooks.ctx = m;
	return 0;
}

/* --- pager hooks (pager thread) --------------------------------------- */

static bool hook_fault(void *ctx, uint32_t tid, uint64_t page, uint64_t expected_ns,
		       bool in_flight)
{
	struct machine *m = ctx;
	uint64_t t_read = m->trace.page ? host_cycles() : 0;
	int v = -1;

	for (unsigned i = 0; i < m->vm.nvcpus; i++)
		if (__atomic_load_n(&m->vm.vcpus[i].tid, __ATOMIC_ACQUIRE) == (int)tid)
			v = (int)i;
	/* Stamped before the core may kick: the vCPU reads it after the kick. */
	if (m->trace.page && v >= 0)
		__atomic_store_n(&m->trace.t_read[v], t_read, __ATOMIC_RELEASE);
	return apf_core_on_fault(m->core, v, page, expected_ns, in_flight) == APF_ASYNC;
}

/* A vCPU thread may wait for the page outside KVM_RUN (wait_page). */
static void wake_page_waiters(struct machine *m)
{
	if (!atomic_load(&m->page_waiters))
		return;
	pthread_mutex_lock(&m->report_lock);
	pthread_cond_broadcast(&m->page_arrived);
	pthread_mutex_unlock(&m->report_lock);
}

static void hook_installed(void *ctx, uint64_t page)
{
	struct machine *m = ctx;
	installing_since = m->trace.page ? host_cycles() : 0;
	apf_core_on_installed(m->core, page);
	installing_since = 0;
	wake_page_waiters(m);
}

static void hook_failed(void *ctx, uint64_t page)
{
	struct machine *m = ctx;
	apf_core_on_installed(m->core, page); /* page-ready: the retry fails */
	wake_page_waiters(m);
}

/* A page-ready waits while the guest has not cleared the token of the one
 * before (it takes the guest microseconds on hardware, longer where exits
 * are slow).  Retried after APF_RETRY_MIN_NS, doubling up to
 * APF_RETRY_MAX_NS while it still waits: on a shared CPU each retry costs
 * the guest a wake-up of this thread. */
#define APF_RETRY_MIN_NS 20000ull
#define APF_RETRY_MAX_NS 1000000ull

static uint64_t hook_poll(void *ctx)
{
	struct machine *m = ctx;

	if (!apf_core_retry(m->core)) {
		m->ready_retry_ns = 0;
		return 0;
	}
	m->ready_retry_ns = m->ready_retry_ns ? m->ready_retry_ns * 2 : APF_RETRY_MIN_NS;
	if (m->ready_retry_ns > APF_RETRY_MAX_NS)
		m->ready_retry_ns = APF_RETRY_MAX_NS;
	return m->ready_retry_ns;
}

static const struct pager_hooks apf_user_pager_hooks = {
	.on_fault = hook_fault,
	.on_installed = hook_installed,
	.on_failed = hook_failed,
	.on_poll = hook_poll,
};

/* --- vCPU threads ---------------------------------------------------- */

static bool page_settled(void *ctx, uint64_t page)
{
	return pager_page_settled(ctx, page);
}

bool apf_user_after_kick(struct machine *m, struct vcpu *v)
{
	uint64_t t_exit = m->trace.page ? host_cycles() : 0;
	struct pager *lazy = machine_lazy_pager(m);
	struct apf_guest_state gs;

	if (!lazy)
		return false; /* nothing to fault on: no kick is due */
	arch_apf_guest_state(v, &gs);
	uint32_t token = apf_core_take_injection(m->core, v->id, &gs, page_settled, lazy);
	if (!token)
		return false;
	int rc = arch_apf_inject_not_present(v, &m->core->vcpus[v->id], token);
	if (rc)
		machine_fail(m, "vCPU %u: cannot deliver a not-present: %s", v->id, strerror(-rc));
	struct machine_trace *t = &m->trace;
	if (t->page) {
		/* The access was stamped by the scan just before it faulted. */
		uint64_t access = t->page->access_tsc;
		uint64_t t_read = __atomic_load_n(&t->t_read[v->id], __ATOMIC_ACQUIRE);
		uint64_t t_kick = __atomic_load_n(&t->t_kick[v->id], __ATOMIC_ACQUIRE);
		uint64_t t_inject = host_cycles();
		/* The guest stamps with its own TSC: to the host's clock. */
		if (access)
			access -= v->tsc_offset;
		if (access && access < t_read)
			t->access_to_read += t_read - access;
		t->read_to_kick += t_kick - t_read;
		t->kick_to_exit += t_exit - t_kick;
		t->exit_to_inject += t_inject - t_exit;
		t->injected++;
		t->page->inject_tsc = t_inject + v->tsc_offset;
	}
	return true;
}

/* Blocks vCPU v's thread until lazy page `page` settled (or the run
 * stops): the synchronous wait, outside KVM_RUN, for a page KVM cannot
 * wait for because it is poisoned. */
static void wait_page(struct machine *m, struct pager *lazy, uint64_t page)
{
	atomic_fetch_add(&m->page_waiters, 1);
	pthread_mutex_lock(&m->report_lock);
	while (!pager_page_settled(lazy, page) && !atomic_load(&m->stop))
		pthread_cond_wait(&m->page_arrived, &m->report_lock);
	pthread_mutex_unlock(&m->report_lock);
	atomic_fetch_sub(&m->page_waiters, 1);
}

bool apf_user_poison_kick(struct machine *m, struct vcpu *v, void *addr)
{
	uintptr_t a = (uintptr_t)addr, base = (uintptr_t)m->gm.lazy;
	struct pager *lazy = machine_lazy_pager(m);

	if (!m->core || !lazy || !m->gm.lazy || a < base || a - base >= m->gm.lazy_size)
		return false;
	uint64_t page = (a - base) / APF_PAGE_SIZE;
	if (!pager_page_kick_poisoned(lazy, page))
		return false; /* a page that failed: the caller reports it */
	/* The kick itself, or the guest's retried access before it took the
	 * not-present (or after it was served synchronously): either way the
	 * vCPU waits here for the page unless a not-present was injected. */
	if (!apf_user_after_kick(m, v))
		wait_page(m, lazy, page);
	return true;
}
