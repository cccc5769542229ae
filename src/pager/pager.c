#include "pager.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "pager/pager_bulk.h"
#include "pager/pager_uffd.h"
#include "util/thread.h"

int pager_init(struct pager *p, const struct pager_config *cfg, struct apf_err *e)
{
	struct epoll_event ev;

	memset(p, 0, sizeof(*p));
	p->uffd = p->stop_fd = p->epoll_fd = -1;
	p->cfg = *cfg;
	if (!p->cfg.region)
		p->cfg.region = "lazy region";
	if (!cfg->size || cfg->size % APF_PAGE_SIZE || (uintptr_t)cfg->host_base % APF_PAGE_SIZE)
		return apf_fail(e, -EINVAL, "pager: region must be page aligned");
	if (cfg->max_inflight < 1 || cfg->max_inflight > SOURCE_QUEUE_MAX)
		return apf_fail(e, -EINVAL, "in-flight limit must be 1..%d", SOURCE_QUEUE_MAX);
	if (cfg->source->npages < cfg->size / APF_PAGE_SIZE)
		return apf_fail(e, -EINVAL, "page source is smaller than the %s", p->cfg.region);
	if (cfg->size / APF_PAGE_SIZE > UINT32_MAX)
		return apf_fail(e, -EINVAL, "%s too large", p->cfg.region);

	p->npages = cfg->size / APF_PAGE_SIZE;
	p->state = calloc(p->npages, 1);
	p->kick_poisoned = calloc(p->npages, 1);
	p->fault_ns = calloc(p->npages, sizeof(*p->fault_ns));
	p->waitq = calloc(p->npages, sizeof(*p->waitq));
	p->service_us = calloc(p->npages, sizeof(*p->service_us));
	p->flags = calloc(p->npages, 1);
	p->bulk_ns = calloc(p->npages, sizeof(*p->bulk_ns));
	p->touches = cfg->record_touches ? calloc(p->npages, sizeof(*p->touches)) : NULL;
	p->free_bufs = calloc(cfg->max_inflight, sizeof(*p->free_bufs));
	p->bufs = aligned_alloc(APF_PAGE_SIZE, (size_t)cfg->max_inflight * APF_PAGE_SIZE);
	if (!p->state || !p->kick_poisoned || !p->fault_ns || !p->waitq || !p->service_us ||
	    !p->flags || !p->bulk_ns || (cfg->record_touches && !p->touches) || !p->free_bufs || !p->bufs)
		return apf_fail(e, -ENOMEM, "pager: out of memory");
	int rc = pager_bulk_init(p, e);
	if (rc)
		return rc;
	for (unsigned i = 0; i < cfg->max_inflight; i++)
		p->free_bufs[p->nfree++] = cfg->max_inflight - 1 - i;

	if ((rc = pager_uffd_register(p, e)))
		return rc;

	p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (p->stop_fd < 0 || p->epoll_fd < 0)
		return apf_fail(e, -errno, "pager: %s", strerror(errno));
	ev.events = EPOLLIN;
	ev.data.fd = p->uffd;
	if (epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->uffd, &ev) < 0)
		return apf_fail(e, -errno, "epoll_ctl: %s", strerror(errno));
	ev.data.fd = p->stop_fd;
	if (epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->stop_fd, &ev) < 0)
		return apf_fail(e, -errno, "epoll_ctl: %s", strerror(errno));
	if (cfg->source->event_fd >= 0) {
		ev.data.fd = cfg->source->event_fd;
		if (epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0)
			return apf_fail(e, -errno, "epoll_ctl: %s", strerror(errno));
	}
	return 0;
}

/* Records the first error and reports it (on_error); later ones only
 * count, except that the first blocking one is reported too.  The message
 * names the page, or not when page < 0, and the cause: `cause`, or
 * strerror(-err) when NULL. */
static void record_error_why(struct pager *p, int err, const char *what, int64_t page,
			     const char *cause, bool blocking)
{
	bool report = !p->error || (blocking && !p->error_blocking);

	if (!p->error) {
		p->error = err;
		if (page >= 0)
			snprintf(p->error_msg, sizeof(p->error_msg), "%s page %lld of the %s: %s",
				 what, (long long)page, p->cfg.region,
				 cause ? cause
				 : err == -EEXIST ? "it is already mapped by someone else (content unknown)"
						  : strerror(-err));
		else
			snprintf(p->error_msg, sizeof(p->error_msg), "%s: %s", what, strerror(-err));
	}
	if (!report)
		return;
	p->error_blocking |= blocking;
	if (p->cfg.on_error)
		p->cfg.on_error(p->cfg.ctx, blocking);
}

static void record_error(struct pager *p, int err, const char *what, int64_t page, bool blocking)
{
	record_error_why(p, err, what, page, NULL, blocking);
}

/* Makes `page` FAILED: poisoned where the kernel can (every access, the
 * blocked ones included, then fails), else left missing (accesses stay
 * blocked).  Never mapped with other content.  A completion that arrives
 * for it later is dropped (complete_fetches). */
static void fail_page(struct pager *p, uint64_t page)
{
	__atomic_store_n(&p->state[page], PAGE_FAILED, __ATOMIC_RELEASE);
	p->stats.pages_failed++;
	if (p->can_poison) {
		int rc = pager_uffd_poison(p, page);
		/* EEXIST: mapped behind our back; the error is already recorded.
		 * Otherwise the page stays missing, which is safe too. */
		if (rc && rc != -EEXIST)
			record_error(p, rc, "cannot poison", (int64_t)page, true);
	}
	if (p->cfg.hooks && p->cfg.hooks->on_failed)
		p->cfg.hooks->on_failed(p->cfg.hooks->ctx, page);
}

/* A fetch of `page` failed (err, in step `what`, cause as for
 * record_error_why): counted, reported (as blocking where the page cannot
 * be poisoned), and the page FAILED. */
static void fetch_failed(struct pager *p, uint64_t page, int err, const char *what,
			 const char *cause)
{
	p->stats.fetch_errors++;
	record_error_why(p, err, what, (int64_t)page, cause, !p->can_poison);
	fail_page(p, page);
}

/* The source itself failed (source.h: error): completions may be lost, so
 * every page being fetched fails now and every later fault at once. */
static void check_source(struct pager *p)
{
	struct page_source *s = p->cfg.source;
	char what[160];

	if (p->source_released || !s->error || p->source_failed)
		return;
	p->source_failed = true;
	snprintf(what, sizeof(what), "the page source failed: %s",
		 s->error_what ? s->error_what : "?");
	record_error(p, s->error, what, -1, !p->can_poison);
	p->wq_count = 0;
	for (uint64_t page = 0; page < p->npages; page++)
		if (p->state[page] == PAGE_FETCHING)
			fail_page(p, page);
}

static void submit_fetch(struct pager *p, uint64_t page)
{
	unsigned b = p->free_bufs[--p->nfree];
	int rc = source_submit(p->cfg.source, page, p->bufs + (size_t)b * APF_PAGE_SIZE,
			       (void *)(uintptr_t)b);
	if (rc) {
		p->free_bufs[p->nfree++] = b;
		fetch_failed(p, page, rc, "cannot start fetching", NULL);
		return;
	}
	p->inflight++;
	if (p->inflight > p->stats.inflight_max)
		p->stats.inflight_max = p->inflight;
}

/* Starts fetches for waiting pages while buffers are free. */
static void pump_waitq(struct pager *p)
{
	while (p->wq_count && p->nfree) {
		uint64_t page = p->waitq[p->wq_head];
		p->wq_head = (p->wq_head + 1) % p->npages;
		p->wq_count--;
		submit_fetch(p, page);
	}
}

/* Every page is present: the source is not used again (its owner may
 * close it in on_populated). */
static void release_source(struct pager *p)
{
	struct page_source *s = p->cfg.source;

	p->source_released = true;
	p->stats.populated_ns = source_now_ns();
	if (s->event_fd >= 0)
		epoll_ctl(p->epoll_fd, EPOLL_CTL_DEL, s->event_fd, NULL);
	if (p->cfg.on_populated)
		p->cfg.on_populated(p->cfg.ctx);
}

/* The counts of a page just made present by a fetch; f: its flags when
 * the fetch completed. */
static void account_installed(struct pager *p, uint64_t page, uint8_t f)
{
	uint64_t now = source_now_ns();

	p->stats.pages_fetched++;
	p->stats.bytes_fetched += APF_PAGE_SIZE;
	if (f & PAGE_F_BULK) {
		p->stats.pages_prefetched++;
		p->stats.pages_background += !!(f & PAGE_F_BACKGROUND);
	}
	if (f & PAGE_F_FAULTED) {
		uint64_t ns = now - p->fault_ns[page];
		p->service_us[p->nservice++] = (uint32_t)(ns / 1000);
		p->stats.fault_ns_sum += ns;
		log_histo_add(&p->stats.demand_us, ns / 1000);
	}
	if ((f & PAGE_F_LISTED) && ++p->stats.prefetch_loaded == p->stats.prefetch_listed)
		p->stats.ws_loaded_ns = now;
	p->npresent++;
}

/* A bulk fetch nobody waits for failed (f: the page's flags): the page is
 * absent again (a fault fetches it anew), unless the source itself
 * failed.  Whether it was dealt with so. */
static bool bulk_failed_quietly(struct pager *p, uint64_t page, uint8_t f)
{
	if (!(f & PAGE_F_BULK) || (f & PAGE_F_FAULTED) || p->cfg.source->error)
		return false;
	p->stats.bulk_errors++;
	__atomic_store_n(&p->state[page], PAGE_ABSENT, __ATOMIC_RELAXED);
	return true;
}

static void complete_fetches(struct pager *p)
{
	struct source_completion c;

	if (p->source_released)
		return;
	while (source_reap(p->cfg.source, &c)) {
		unsigned b = (unsigned)(uintptr_t)c.cookie;
		uint8_t f = p->flags[c.page];
		int rc;

		p->free_bufs[p->nfree++] = b;
		p->inflight--;
		if (f & PAGE_F_BULK) {
			p->bulk_inflight--;
			p->flags[c.page] = f & (uint8_t)~(PAGE_F_BULK | PAGE_F_BACKGROUND);
		}
		if (p->state[c.page] == PAGE_FAILED)
			continue; /* failed with its source: never install it now */
		rc = c.err ? c.err : pager_install(p, &c);
		if (rc) {
			if (c.err && bulk_failed_quietly(p, c.page, f))
				continue;
			fetch_failed(p, c.page, rc, c.err ? "cannot fetch" : "cannot install",
				     c.err ? c.why : NULL);
			continue;
		}
		/* Release: a vCPU thread may check presence (pager_page_present). */
		__atomic_store_n(&p->state[c.page], PAGE_PRESENT, __ATOMIC_RELEASE);
		account_installed(p, c.page, f);
		/* Only a page a fault was read on can have an async fault (or a
		 * thread) waiting for it: bulk pages nobody touched skip it. */
		if (p->cfg.hooks && (f & PAGE_F_FAULTED))
			p->cfg.hooks->on_installed(p->cfg.hooks->ctx, c.page);
		if (p->stats.pages_fetched == p->cfg.notify_pages && p->cfg.on_pages_fetched)
			p->cfg.on_pages_fetched(p->cfg.ctx);
	}
	pump_waitq(p);
	pager_bulk_pump(p);
	if (p->npresent == p->npages && !p->inflight)
		release_source(p);
}

/* The first fault read on an absent or fetching page: a page the guest
 * waits for. */
static void first_fault(struct pager *p, uint64_t page)
{
	p->flags[page] |= PAGE_F_FAULTED;
	p->fault_ns[page] = source_now_ns();
	p->stats.demand_faults++;
	if (p->touches)
		p->touches[p->ntouches++] = (uint32_t)page;
}

/* The first fault on a page a bulk fetch is bringing: it waits for that
 * fetch, whose remaining time (by the source's estimate) is what the
 * host side's policy weighs: a page about to arrive stays synchronous. */
static void join_bulk(struct pager *p, uint64_t page, uint32_t tid)
{
	struct page_source *s = p->cfg.source;
	uint64_t due, now;

	first_fault(p, page);
	p->stats.prefetch_joined++;
	if (!p->cfg.hooks)
		return;
	now = p->fault_ns[page];
	due = p->bulk_ns[page] + s->ops->expected_ns(s, page);
	if (p->cfg.hooks->on_fault(p->cfg.hooks->ctx, tid, page, due > now ? due - now : 0, false) &&
	    p->cfg.kick_by_poison)
		pager_poison_for_kick(p, page);
}

static void handle_fault(struct pager *p, const struct uffd_msg *m)
{
	uint64_t addr = m->arg.pagefault.address & ~(uint64_t)(APF_PAGE_SIZE - 1);
	uint64_t base = (uintptr_t)p->cfg.host_base;
	uint64_t page;

	p->stats.faults_total++;
	if (addr < base || addr - base >= p->cfg.size)
		return; /* cannot happen: only our range is registered */
	page = (addr - base) / APF_PAGE_SIZE;
	switch (p->state[page]) {
	case PAGE_PRESENT:
		p->stats.faults_spurious++;
		pager_uffd_wake(p, page);
		return;
	case PAGE_FAILED:
		/* Poisoned: woken, the access fails.  Else it stays blocked. */
		p->stats.faults_failed++;
		if (p->can_poison)
			pager_uffd_wake(p, page);
		return;
	case PAGE_FETCHING:
		p->stats.faults_joined++;
		if (!(p->flags[page] & PAGE_F_FAULTED)) {
			join_bulk(p, page, m->arg.pagefault.feat.ptid);
			return;
		}
		if (p->cfg.hooks && p->cfg.hooks->on_fault(p->cfg.hooks->ctx,
							   m->arg.pagefault.feat.ptid, page, 0, true) &&
		    p->cfg.kick_by_poison)
			pager_poison_for_kick(p, page);
		return;
	case PAGE_ABSENT:
		break;
	}
	first_fault(p, page);
	if (p->source_failed) {
		p->stats.faults_failed++;
		fail_page(p, page);
		return;
	}
	/* Atomic: vCPU threads read the state (pager_page_present). */
	__atomic_store_n(&p->state[page], PAGE_FETCHING, __ATOMIC_RELAXED);
	if (p->nfree && !p->wq_count)
		submit_fetch(p, page);
	else
		p->waitq[(p->wq_head + p->wq_count++) % p->npages] = (uint32_t)page;
	if (p->cfg.hooks &&
	    p->cfg.hooks->on_fault(p->cfg.hooks->ctx, m->arg.pagefault.feat.ptid, page,
				   p->cfg.source->ops->expected_ns(p->cfg.source, page), false) &&
	    p->cfg.kick_by_poison)
		pager_poison_for_kick(p, page);
}

static void read_faults(struct pager *p)
{
	struct uffd_msg msgs[64];

	for (;;) {
		ssize_t n = read(p->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				record_error(p, -errno, "cannot read fault events", -1, true);
				p->broken = true;
			}
			return; /* EAGAIN: drained */
		}
		size_t count = (size_t)n / sizeof(msgs[0]);
		for (size_t i = 0; i < count; i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				handle_fault(p, &msgs[i]);
		/* Fetches that completed inline are installed at once: the
		 * vCPU is waiting. */
		complete_fetches(p);
		/* A short read drained the queue; a later fault makes the
		 * (level-triggered) epoll report the descriptor again.  Not
		 * reading until EAGAIN saves a system call per wake-up. */
		if (count < sizeof(msgs) / sizeof(msgs[0]))
			return;
	}
}

/* epoll_wait with a timeout in ns (0: none).  epoll_pwait2 (Linux 5.11);
 * before it, epoll_wait rounded up to whole milliseconds. */
static int wait_events(struct pager *p, struct epoll_event *evs, int max, uint64_t timeout_ns)
{
	if (!timeout_ns)
		return epoll_wait(p->epoll_fd, evs, max, -1);
	if (!p->no_pwait2) {
		struct timespec ts = { .tv_sec = (time_t)(timeout_ns / 1000000000u),
				       .tv_nsec = (long)(timeout_ns % 1000000000u) };
		int n = epoll_pwait2(p->epoll_fd, evs, max, &ts, NULL);
		if (n >= 0 || errno != ENOSYS)
			return n;
		p->no_pwait2 = true;
	}
	return epoll_wait(p->epoll_fd, evs, max, (int)((timeout_ns + 999999) / 1000000));
}

static void *pager_thread(void *arg)
{
	struct pager *p = arg;
	struct epoll_event evs[4];

	prctl(PR_SET_NAME, "apfvm-pager");
	/* Timer slack would add ~50 us to every delayed completion. */
	prctl(PR_SET_TIMERSLACK, 1UL);
	uint64_t poll_ns = 0;
	complete_fetches(p); /* the first bulk fetches */
	while (!p->broken) {
		/* Completions already queued (a source that completes inside
		 * submit, after bulk fetches): only look for faults first. */
		bool queued = !p->source_released && p->cfg.source->count;
		int n = queued ? epoll_wait(p->epoll_fd, evs, 4, 0) : wait_events(p, evs, 4, poll_ns);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			record_error(p, -errno, "epoll_wait failed while serving", -1, true);
			break;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == p->stop_fd)
				return NULL;
			if (fd == p->uffd)
				read_faults(p);
			else if (!p->source_released && fd == p->cfg.source->event_fd &&
				 p->cfg.source->ops->on_event)
				p->cfg.source->ops->on_event(p->cfg.source);
		}
		complete_fetches(p);
		check_source(p);
		if (p->cfg.hooks && p->cfg.hooks->on_poll)
			poll_ns = p->cfg.hooks->on_poll(p->cfg.hooks->ctx);
	}
	/* Cannot serve any more (reported): faults stay blocked, never
	 * zero-filled, until their threads are stopped. */
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Fills the latency percentiles from the per-page service times. */
static void compute_percentiles(struct pager *p)
{
	uint64_t n = p->nservice;
	if (!n)
		return;
	qsort(p->service_us, n, sizeof(*p->service_us), cmp_u32);
	p->stats.fault_us_p50 = p->service_us[(n - 1) / 2];
	p->stats.fault_us_p99 = p->service_us[(n - 1) * 99 / 100];
}

const uint32_t *pager_touches(const struct pager *p, uint64_t *n)
{
	*n = p->ntouches;
	return p->touches;
}

uint64_t pager_fault_ns(const struct pager *p, uint64_t page)
{
	return page < p->npages ? p->fault_ns[page] : 0;
}

int pager_start(struct pager *p, struct apf_err *e)
{
	int rc = thread_start_pinned(&p->thread, p->cfg.cpu, pager_thread, p);

	if (rc == EINVAL && p->cfg.cpu >= 0)
		return apf_fail(e, -rc, "cannot pin the pager thread to CPU %d: not in this process's CPU set",
				p->cfg.cpu);
	if (rc)
		return apf_fail(e, -rc, "cannot start the pager thread: %s", strerror(rc));
	p->running = true;
	return 0;
}

int pager_stop_within(struct pager *p, uint64_t timeout_ns)
{
	uint64_t one = 1;
	ssize_t n;

	if (!p->running)
		return 0;
	while ((n = write(p->stop_fd, &one, sizeof(one))) < 0 && errno == EINTR)
		;
	if (n < 0)
		return -errno; /* cannot happen: our own eventfd, counter far from max */
	if (timeout_ns) {
		if (join_within(p->thread, timeout_ns) != 0) {
			pthread_detach(p->thread);
			p->running = false;
			p->abandoned = true;
			return -ETIMEDOUT;
		}
	} else {
		pthread_join(p->thread, NULL);
	}
	p->running = false;
	compute_percentiles(p);
	return 0;
}

int pager_stop(struct pager *p)
{
	return pager_stop_within(p, 0);
}

bool pager_page_present(const struct pager *p, uint64_t page)
{
	return page < p->npages &&
	       __atomic_load_n(&p->state[page], __ATOMIC_ACQUIRE) == PAGE_PRESENT;
}

bool pager_page_settled(const struct pager *p, uint64_t page)
{
	if (page >= p->npages)
		return false;
	uint8_t st = __atomic_load_n(&p->state[page], __ATOMIC_ACQUIRE);
	return st == PAGE_PRESENT || st == PAGE_FAILED;
}

uint64_t pager_count_state(const struct pager *p, enum page_state st)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < p->npages; i++)
		n += p->state[i] == st;
	return n;
}

void pager_destroy(struct pager *p)
{
	if (p->abandoned || pager_stop(p))
		return; /* the thread still runs: leak rather than free under it */
	if (p->uffd >= 0)
		close(p->uffd);
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	if (p->epoll_fd >= 0)
		close(p->epoll_fd);
	free(p->state);
	free(p->kick_poisoned);
	free(p->fault_ns);
	free(p->waitq);
	free(p->service_us);
	free(p->flags);
	free(p->bulk_ns);
	free(p->touches);
	free(p->free_bufs);
	free(p->bufs);
	memset(p, 0, sizeof(*p));
	p->uffd = p->stop_fd = p->epoll_fd = -1;
}
