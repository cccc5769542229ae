#include "apf_core.h"

#include "apfvm/abi.h"

#include <errno.h>
#include <string.h>

void apf_core_init(struct apf_core *c, unsigned nvcpus, uint64_t threshold_ns,
		   const struct apf_core_ops *ops, void *ctx)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->ops = ops;
	c->ctx = ctx;
	c->nvcpus = nvcpus > APF_CORE_MAX_VCPUS ? APF_CORE_MAX_VCPUS : nvcpus;
	c->threshold_ns = threshold_ns;
	for (unsigned v = 0; v < APF_CORE_MAX_VCPUS; v++) {
		c->vcpus[v].kicked = -1;
	}
}

void apf_core_destroy(struct apf_core *c)
{
	for (unsigned v = 0; v < c->nvcpus; v++)
		apf_core_reset_vcpu(c, v);
	pthread_mutex_destroy(&c->lock);
}

/* --- helpers (lock held) --------------------------------------------- */

static void free_fault(struct apf_core_vcpu *cv, struct apf_fault *f)
{
	f->state = AF_FREE;
	cv->outstanding--;
}

/* Drops every async record of the vCPU (disable, re-enable, reset). */
static void drop_all(struct apf_core *c, struct apf_core_vcpu *cv)
{
	for (unsigned i = 0; i < APF_CORE_MAX_OUTSTANDING; i++) {
		struct apf_fault *f = &cv->faults[i];
		if (f->state == AF_FREE)
			continue;
		if (f->state == AF_KICKED) /* its kick will find nothing to inject */
			c->stats.decisions[APF_SYNC_DISABLED]++;
		else
			c->stats.dropped++;
		free_fault(cv, f);
	}
	cv->kicked = -1;
	cv->rq_head = cv->rq_count = 0;
	cv->wake_all_pending = false;
	cv->ack_owed = false;
}

/* Linux's token form: a per-vCPU counter above the vCPU id, never 0, never
 * the wake-all token, never one still outstanding. */
static uint32_t new_token(struct apf_core_vcpu *cv, unsigned v)
{
	for (;;) {
		uint32_t t = (++cv->next_id << 12) | (v & 0xfff);
		bool used = false;
		if (t == 0 || t == APF_WAKE_ALL_TOKEN || (t >> 12) == 0)
			continue;
		for (unsigned i = 0; i < APF_CORE_MAX_OUTSTANDING; i++)
			used |= cv->faults[i].state != AF_FREE && cv->faults[i].token == t;
		if (!used)
			return t;
	}
}

/* Raises the next page-ready if the slot is free: the guest has cleared
 * the area's token (it does so before it ACKs; a raise between the two
 * waits in its LAPIC until the handler returns, as under KVM), and its
 * LAPIC accepts the vector (KVM too holds page-ready while the LAPIC is
 * software-disabled: Linux enables async PF before its APIC). */
static void deliver(struct apf_core *c, unsigned v)
{
	struct apf_core_vcpu *cv = &c->vcpus[v];
	uint32_t token;

	if (!cv->enabled || (!cv->wake_all_pending && !cv->rq_count) || cv->ack_owed)
		return;
	if (c->ops->read_u32(c->ctx, cv->area_gpa + 4, &token) || token != 0)
		return; /* stays queued: apf_core_retry() */
	bool wake_all = cv->wake_all_pending;
	struct apf_fault *f = wake_all ? NULL : &cv->faults[cv->readyq[cv->rq_head]];
	token = wake_all ? APF_WAKE_ALL_TOKEN : f->token;
	/* Dequeued only once the guest has it: a failed write or raise would
	 * otherwise lose the page-ready and leave its task parked forever. */
	int rc = c->ops->write_u32(c->ctx, cv->area_gpa + 4, token);
	const char *what = "cannot write the page-ready token into the guest's area";
	if (!rc) {
		rc = c->ops->raise(c->ctx, v, cv->vector);
		what = "cannot raise the page-ready interrupt";
		if (rc)
			c->ops->write_u32(c->ctx, cv->area_gpa + 4, 0);
	}
	if (rc == -EAGAIN) { /* not accepted yet: stays queued */
		c->stats.refused++;
		return;
	}
	if (rc) {
		c->stats.deliver_errors++;
		if (c->ops->fail)
			c->ops->fail(c->ctx, v, rc, what);
		return;
	}
	cv->ack_owed = c->ack_paced;
	if (wake_all) {
		cv->wake_all_pending = false;
		c->stats.wake_all++;
	} else {
		cv->rq_head = (cv->rq_head + 1) % APF_CORE_MAX_OUTSTANDING;
		cv->rq_count--;
		free_fault(cv, f);
		c->stats.ready++;
	}
}

/* --- pager thread ----------------------------------------------------- */

enum apf_decision apf_core_on_fault(struct apf_core *c, int v, uint64_t page,
				    uint64_t expected_ns, bool in_flight)
{
	enum apf_decision d = APF_ASYNC;
	struct apf_core_vcpu *cv;

	pthread_mutex_lock(&c->lock);
	if (v < 0 || (unsigned)v >= c->nvcpus || !c->vcpus[v].enabled) {
		d = APF_SYNC_DISABLED;
		goto out;
	}
	cv = &c->vcpus[v];
	if (in_flight)
		d = APF_SYNC_REPEAT; /* never a second not-present for a frame */
	else if (expected_ns <= c->threshold_ns)
		d = APF_SYNC_POLICY;
	else if (cv->outstanding >= APF_CORE_MAX_OUTSTANDING)
		d = APF_SYNC_CAP;
	else if (cv->kicked >= 0)
		d = APF_SYNC_CANNOT_DELIVER; /* one not-present at a time */
	if (d != APF_ASYNC)
		goto out;

	for (unsigned i = 0; i < APF_CORE_MAX_OUTSTANDING; i++) {
		struct apf_fault *f = &cv->faults[i];
		if (f->state != AF_FREE)
			continue;
		f->token = new_token(cv, (unsigned)v);
		f->page = page;
		f->state = AF_KICKED;
		cv->outstanding++;
		cv->kicked = (int)i;
		break;
	}
	if (cv->outstanding > c->stats.outstanding_max)
		c->stats.outstanding_max = cv->outstanding;
	/* Counted once the vCPU has decided: ASYNC, CANNOT_DELIVER or RACED. */
	pthread_mutex_unlock(&c->lock);
	/* Kicked after the unlock: the woken vCPU thread takes the lock at
	 * once, and on a shared CPU it preempts this thread to do so (a kick
	 * under the lock cost two extra context switches per fault). */
	c->ops->kick(c->ctx, (unsigned)v, page);
	return d;
out:
	c->stats.decisions[d]++;
	pthread_mutex_unlock(&c->lock);
	return d;
}

void apf_core_on_installed(struct apf_core *c, uint64_t page)
{
	pthread_mutex_lock(&c->lock);
	for (unsigned v = 0; v < c->nvcpus; v++) {
		struct apf_core_vcpu *cv = &c->vcpus[v];
		if (!cv->outstanding)
			continue;
		for (unsigned i = 0; i < APF_CORE_MAX_OUTSTANDING; i++) {
			struct apf_fault *f = &cv->faults[i];
			if (f->state != AF_INJECTED || f->page != page)
				continue;
			f->state = AF_READY_QUEUED;
			cv->readyq[(cv->rq_head + cv->rq_count++) % APF_CORE_MAX_OUTSTANDING] =
				(uint8_t)i;
		}
		deliver(c, v);
	}
	pthread_mutex_unlock(&c->lock);
}

/* --- vCPU threads ------------------------------------------------------ */

uint32_t apf_core_take_injection(struct apf_core *c, unsigned v,
				 const struct apf_guest_state *gs,
				 bool (*page_settled)(void *ctx, uint64_t page), void *pctx)
{
	struct apf_core_vcpu *cv;
	struct apf_fault *f;
	uint32_t flags, token = 0;

	if (v >= c->nvcpus)
		return 0;
	pthread_mutex_lock(&c->lock);
	cv = &c->vcpus[v];
	if (cv->kicked < 0)
		goto out;
	f = &cv->faults[cv->kicked];
	cv->kicked = -1;
	if (page_settled(pctx, f->page)) {
		/* The fetch beat the kick: the retried access just works (or,
		 * if the page failed, fails at once). */
		c->stats.decisions[APF_SYNC_RACED]++;
		free_fault(cv, f);
		goto out;
	}
	if (!cv->enabled || !gs->irqs_enabled || (!gs->user_mode && !cv->send_always) ||
	    gs->event_pending || c->ops->read_u32(c->ctx, cv->area_gpa, &flags) || flags != 0) {
		/* The vCPU retries the access and waits for the page. */
		c->stats.decisions[APF_SYNC_CANNOT_DELIVER]++;
		free_fault(cv, f);
		goto out;
	}
	c->ops->write_u32(c->ctx, cv->area_gpa, APF_REASON_PAGE_NOT_PRESENT);
	f->state = AF_INJECTED;
	token = f->token;
	c->stats.decisions[APF_ASYNC]++;
	c->stats.not_present++;
out:
	pthread_mutex_unlock(&c->lock);
	return token;
}

/* Under the lock. */
static int enable_locked(struct apf_core *c, unsigned v, uint64_t gpa, uint64_t len,
			 bool send_always)
{
	struct apf_core_vcpu *cv = &c->vcpus[v];

	/* The area must be in resident memory, not the lazy region, where a
	 * host write would wait on the pager (docs/async-pf.md). */
	if (!c->ops->gpa_ok(c->ctx, gpa, len))
		return -1;
	drop_all(c, cv); /* tokens from before mean nothing now */
	cv->enabled = true;
	cv->area_gpa = gpa;
	cv->send_always = send_always;
	cv->wake_all_pending = true;
	deliver(c, v);
	return 0;
}

int apf_core_enable(struct apf_core *c, unsigned v, uint64_t area_gpa, uint64_t area_len,
		    uint8_t vector, bool send_always)
{
	if (v >= c->nvcpus)
		return -1;
	pthread_mutex_lock(&c->lock);
	c->vcpus[v].vector = vector;
	int rc = enable_locked(c, v, area_gpa, area_len, send_always);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void apf_core_disable(struct apf_core *c, unsigned v)
{
	if (v >= c->nvcpus)
		return;
	pthread_mutex_lock(&c->lock);
	drop_all(c, &c->vcpus[v]);
	c->vcpus[v].enabled = false;
	pthread_mutex_unlock(&c->lock);
}

/* Under the lock. */
static void ack_locked(struct apf_core *c, unsigned v)
{
	struct apf_core_vcpu *cv = &c->vcpus[v];

	/* As KVM: a prompt to look at the queue again, nothing more (the
	 * slot is the token).  The guest must clear the token first (else
	 * the slot stays taken): with ack_paced nothing else can have written
	 * the area since the raise, so a set token is the guest's. */
	c->stats.acks++;
	if (cv->enabled && cv->ack_owed) {
		uint32_t token;
		if (!c->ops->read_u32(c->ctx, cv->area_gpa + 4, &token) && token)
			c->stats.acks_early++;
	}
	cv->ack_owed = false;
	deliver(c, v);
}

void apf_core_ack(struct apf_core *c, unsigned v)
{
	if (v >= c->nvcpus)
		return;
	pthread_mutex_lock(&c->lock);
	ack_locked(c, v);
	pthread_mutex_unlock(&c->lock);
}

void apf_core_set_vector(struct apf_core *c, unsigned v, uint8_t vector)
{
	if (v >= c->nvcpus)
		return;
	pthread_mutex_lock(&c->lock);
	c->vcpus[v].vector = vector;
	pthread_mutex_unlock(&c->lock);
}

void apf_core_set_reg_value(struct apf_core *c, unsigned v, uint64_t value)
{
	if (v >= c->nvcpus)
		return;
	pthread_mutex_lock(&c->lock);
	c->vcpus[v].reg_value = value;
	pthread_mutex_unlock(&c->lock);
}

void apf_core_read_reg(struct apf_core *c, unsigned v, uint64_t *value, uint8_t *vector)
{
	*value = 0;
	*vector = 0;
	if (v >= c->nvcpus)
		return;
	pthread_mutex_lock(&c->lock);
	*value = c->vcpus[v].reg_value;
	*vector = c->vcpus[v].vector;
	pthread_mutex_unlock(&c->lock);
}

void apf_core_count_refused(struct apf_core *c)
{
	pthread_mutex_lock(&c->lock);
	c->stats.gp_injected++;
	pthread_mutex_unlock(&c->lock);
}

bool apf_core_retry(struct apf_core *c)
{
	bool queued = false;

	pthread_mutex_lock(&c->lock);
	for (unsigned v = 0; v < c->nvcpus; v++) {
		struct apf_core_vcpu *cv = &c->vcpus[v];
		if (!cv->enabled || (!cv->wake_all_pending && !cv->rq_count))
			continue;
		c->stats.retries++;
		deliver(c, v);
		queued |= cv->wake_all_pending || cv->rq_count;
	}
	pthread_mutex_unlock(&c->lock);
	return queued;
}

void apf_core_reset_vcpu(struct apf_core *c, unsigned v)
{
	if (v >= c->nvcpus)
		return;
	apf_core_disable(c, v);
	pthread_mutex_lock(&c->lock);
	c->vcpus[v].reg_value = 0;
	c->vcpus[v].vector = 0;
	pthread_mutex_unlock(&c->lock);
}

unsigned apf_core_outstanding(struct apf_core *c, unsigned v)
{
	unsigned n;
	if (v >= c->nvcpus)
		return 0;
	pthread_mutex_lock(&c->lock);
	n = c->vcpus[v].outstanding;
	pthread_mutex_unlock(&c->lock);
	return n;
}
