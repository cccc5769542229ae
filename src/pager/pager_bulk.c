#include "pager_bulk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "apfvm/abi.h"
#include "pager/pager_uffd.h"

int pager_bulk_init(struct pager *p, struct apf_err *e)
{
	const struct pager_config *c = &p->cfg;

	if (c->max_inflight + c->bulk_inflight > SOURCE_QUEUE_MAX)
		return apf_fail(e, -EINVAL, "fetches in flight for faults and bulk (%u + %u) above %d",
				c->max_inflight, c->bulk_inflight, SOURCE_QUEUE_MAX);
	/* Buffers of its own only where there is bulk work. */
	if (c->nprefetch || c->populate_background)
		p->bulk_budget = c->bulk_inflight ? c->bulk_inflight : PAGER_BULK_INFLIGHT_DEFAULT;
	if (p->bulk_budget + c->max_inflight > SOURCE_QUEUE_MAX)
		return apf_fail(e, -EINVAL, "fetches in flight for faults and bulk (%u + %u) above %d",
				c->max_inflight, p->bulk_budget, SOURCE_QUEUE_MAX);
	for (uint64_t i = 0; i < c->nprefetch; i++) {
		uint32_t page = c->prefetch[i];
		if (page >= p->npages)
			return apf_fail(e, -EINVAL, "prefetch list: page %u is outside the %s (%llu pages)",
					page, c->region, (unsigned long long)p->npages);
		if (p->flags[page] & PAGE_F_LISTED)
			return apf_fail(e, -EINVAL, "prefetch list: page %u of the %s listed twice",
					page, c->region);
		p->flags[page] |= PAGE_F_LISTED;
	}
	p->stats.prefetch_listed = c->nprefetch;
	return 0;
}

static bool absent(const struct pager *p, uint64_t page)
{
	return p->state[page] == PAGE_ABSENT;
}

/* The next run to fetch, at most `limit` pages: contiguous absent pages
 * taken from the prefetch list in its order, then from the background
 * cursor.  false when there is none. */
static bool next_run(struct pager *p, unsigned limit, uint64_t *first, unsigned *n, bool *bg)
{
	const uint32_t *list = p->cfg.prefetch;

	while (p->pf_next < p->cfg.nprefetch) {
		uint64_t page = list[p->pf_next++];
		if (!absent(p, page))
			continue;
		*first = page;
		*n = 1;
		*bg = false;
		while (*n < limit && p->pf_next < p->cfg.nprefetch &&
		       list[p->pf_next] == page + *n && absent(p, page + *n)) {
			(*n)++;
			p->pf_next++;
		}
		return true;
	}
	if (!p->cfg.populate_background)
		return false;
	while (p->bg_next < p->npages && !absent(p, p->bg_next))
		p->bg_next++;
	if (p->bg_next == p->npages)
		return false;
	*first = p->bg_next;
	*n = 0;
	*bg = true;
	while (*n < limit && p->bg_next < p->npages && absent(p, p->bg_next)) {
		(*n)++;
		p->bg_next++;
	}
	return true;
}

/* Starts one run; false if the source refused it (the pages stay absent:
 * a fault fetches them). */
static bool submit_run(struct pager *p, uint64_t first, unsigned n, bool bg)
{
	void *bufs[SOURCE_RUN_MAX], *cookies[SOURCE_RUN_MAX];
	uint64_t now = source_now_ns();
	unsigned started = 0;

	for (unsigned i = 0; i < n; i++) {
		cookies[i] = (void *)(uintptr_t)pager_take_buf(p, &bufs[i]);
		/* Atomic: vCPU threads read the state (pager_page_present). */
		__atomic_store_n(&p->state[first + i], PAGE_FETCHING, __ATOMIC_RELAXED);
		p->flags[first + i] |= PAGE_F_BULK | (bg ? PAGE_F_BACKGROUND : 0);
		p->bulk_ns[first + i] = now;
	}
	int rc = source_submit_run(p->cfg.source, first, n, bufs, cookies, SOURCE_BULK, &started);
	for (unsigned i = started; i < n; i++) {
		p->free_bufs[p->nfree++] = (unsigned)(uintptr_t)cookies[i];
		p->flags[first + i] &= (uint8_t)~(PAGE_F_BULK | PAGE_F_BACKGROUND);
		__atomic_store_n(&p->state[first + i], PAGE_ABSENT, __ATOMIC_RELAXED);
	}
	p->stats.bulk_requests++;
	p->stats.bulk_errors += n - started;
	p->inflight += started;
	p->bulk_inflight += started;
	if (p->inflight > p->stats.inflight_max)
		p->stats.inflight_max = p->inflight;
	return rc == 0;
}

bool pager_bulk_pump(struct pager *p)
{
	bool any = false;

	if (p->source_failed || p->source_released || p->wq_count)
		return false;
	while (p->bulk_inflight < p->bulk_budget && p->nfree) {
		unsigned limit = p->bulk_budget - p->bulk_inflight, n;
		uint64_t first;
		bool bg;

		if (limit > p->nfree)
			limit = p->nfree;
		if (limit > SOURCE_RUN_MAX)
			limit = SOURCE_RUN_MAX;
		if (!next_run(p, limit, &first, &n, &bg) || !submit_run(p, first, n, bg))
			break;
		any = true;
	}
	return any;
}

/* --- the eager fill (pager_populate) ------------------------------------ */

/* Installs one completion of pager_populate's. */
static int populate_one(struct pager *p, const struct source_completion *c, struct apf_err *e)
{
	int rc = c->err ? c->err : pager_install(p, c);

	if (rc)
		return apf_fail(e, rc, "populating page %llu: %s", (unsigned long long)c->page,
				c->err && c->why ? c->why : strerror(-rc));
	p->state[c->page] = PAGE_PRESENT;
	p->npresent++;
	return 0;
}

int pager_populate(struct pager *p, struct page_source *src, struct apf_err *e)
{
	struct source_completion c;
	uint64_t next = 0, done = 0;
	unsigned inflight = 0;
	int rc;

	/* Pipelined over the pager's buffers: as many fetches in flight as
	 * it allows (bufs[i] for cookie i). */
	while (done < p->npages) {
		while (next < p->npages && p->nfree) {
			unsigned b = p->free_bufs[--p->nfree];
			rc = source_submit(src, next, p->bufs + (size_t)b * APF_PAGE_SIZE,
					   (void *)(uintptr_t)b);
			if (rc) {
				p->free_bufs[p->nfree++] = b;
				apf_fail(e, rc, "populating page %llu: %s", (unsigned long long)next,
					 strerror(-rc));
				goto drain;
			}
			next++;
			inflight++;
		}
		while (source_reap(src, &c)) {
			p->free_bufs[p->nfree++] = (unsigned)(uintptr_t)c.cookie;
			inflight--;
			done++;
			if ((rc = populate_one(p, &c, e)))
				goto drain;
		}
		if (src->error) {
			rc = apf_fail(e, src->error, "populating: the page source failed: %s",
				      src->error_what ? src->error_what : "?");
			goto drain;
		}
		if (done < p->npages && !src->count && inflight &&
		    (rc = source_wait(src, -1))) /* its own timeouts bound the wait */
			return apf_fail(e, rc, "populating: %s", rc == -EINVAL
						  ? "the source lost fetches" : strerror(-rc));
	}
	return 0;
drain:
	/* The run ends here: buffers of fetches still in flight stay taken
	 * (their completions die with the source). */
	while (source_reap(src, &c))
		p->free_bufs[p->nfree++] = (unsigned)(uintptr_t)c.cookie;
	return rc;
}
