/*
 * The checked window: pages [first, first + npages) of an inner source as
 * pages 0.. of this one, each checked against its SHA-256 before it is
 * handed on, and the pages the snapshot lists as zero never asked of the
 * inner source at all.  A snapshot restored from a page server or object storage reads its
 * resident memory and its lazy region through two of these, over two
 * inner sources (one per pager thread: a source has one user), and trusts
 * no page the snapshot's checksums do not vouch for.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apfvm/abi.h"
#include "source/window.h"
#include "util/sha256.h"

struct window_source {
	struct page_source base; /* first */
	struct page_source *inner;
	const struct snap_image *snap;
	uint64_t first;
	char why[256];
	char run_why[256]; /* a run's pages that could not start (window_submit_run) */
};

/* Moves the inner source's completions here, checked. */
static void take_completions(struct window_source *w)
{
	static const unsigned char zero_page[APF_PAGE_SIZE];
	struct source_completion c;

	while (source_reap(w->inner, &c)) {
		c.page -= w->first;
		if (!c.err && !sha256_matches(c.zero ? zero_page : c.buf, APF_PAGE_SIZE,
					      &w->snap->page_digests[c.page + w->first])) {
			c.err = -EBADMSG;
			snprintf(w->why, sizeof(w->why), "%s: the page does not match the snapshot's "
				 "SHA-256 (another snapshot's memory, damaged, or forged)",
				 w->inner->desc);
			c.why = w->why;
		}
		source_complete(&w->base, &c);
	}
	w->base.retries = w->inner->retries;
	w->base.corrupt = w->inner->corrupt;
	w->base.reconnects = w->inner->reconnects;
	if (w->inner->error)
		source_set_error(&w->base, w->inner->error, w->inner->error_what);
}

/* A page the snapshot lists as zero: complete, inner never asked. */
static void complete_zero(struct window_source *w, uint64_t page, void *buf, void *cookie)
{
	struct source_completion c = { .page = page, .buf = buf, .cookie = cookie, .zero = true,
				       .submit_ns = source_now_ns() };
	source_complete(&w->base, &c);
}

static int window_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	struct window_source *w = (struct window_source *)s;
	int rc;

	if (page >= s->npages)
		return -ERANGE;
	if (snap_page_is_zero(w->snap, w->first + page)) {
		complete_zero(w, page, buf, cookie);
		return 0;
	}
	rc = source_submit(w->inner, w->first + page, buf, cookie);
	take_completions(w);
	return rc;
}

/* Pages [from, to) of a run that could not start, when others of it did:
 * each completes failed with the cause. */
static void fail_unstarted(struct window_source *w, uint64_t page, unsigned from, unsigned to,
			   void *const *bufs, void *const *cookies, int err)
{
	snprintf(w->run_why, sizeof(w->run_why), "%s: cannot start fetching: %s", w->inner->desc,
		 strerror(-err));
	for (unsigned i = from; i < to; i++) {
		if (snap_page_is_zero(w->snap, w->first + page + i))
			continue;
		struct source_completion c = { .page = page + i, .buf = bufs[i], .cookie = cookies[i],
					       .err = err, .why = w->run_why,
					       .submit_ns = source_now_ns() };
		source_complete(&w->base, &c);
	}
}

/* The run's non-zero pages to inner, in runs split around the zero pages,
 * then the zero pages completed (only once nothing can fail: an error
 * with nothing started leaves nothing behind). */
static int window_submit_run(struct page_source *s, uint64_t page, unsigned n, void *const *bufs,
			     void *const *cookies, enum source_prio prio)
{
	struct window_source *w = (struct window_source *)s;
	unsigned started = 0, i = 0;
	int rc = 0;

	if (!n || n > SOURCE_RUN_MAX || page >= s->npages || n > s->npages - page)
		return -EINVAL;
	while (i < n) {
		if (snap_page_is_zero(w->snap, w->first + page + i)) {
			i++;
			continue;
		}
		unsigned len = 1, k;
		while (i + len < n && !snap_page_is_zero(w->snap, w->first + page + i + len))
			len++;
		rc = source_submit_run(w->inner, w->first + page + i, len, bufs + i, cookies + i,
				       prio, &k);
		started += k;
		if (rc) {
			i += k;
			break;
		}
		i += len;
	}
	if (rc && !started) {
		take_completions(w);
		return rc;
	}
	if (rc)
		fail_unstarted(w, page, i, n, bufs, cookies, rc);
	for (unsigned j = 0; j < n; j++)
		if (snap_page_is_zero(w->snap, w->first + page + j))
			complete_zero(w, page + j, bufs[j], cookies[j]);
	take_completions(w);
	return 0;
}

static void window_on_event(struct page_source *s)
{
	struct window_source *w = (struct window_source *)s;

	if (w->inner->ops->on_event)
		w->inner->ops->on_event(w->inner);
	take_completions(w);
}

static uint64_t window_expected_ns(struct page_source *s, uint64_t page)
{
	struct window_source *w = (struct window_source *)s;

	if (page < s->npages && snap_page_is_zero(w->snap, w->first + page))
		return 0; /* at hand: no point going async */
	return w->inner->ops->expected_ns(w->inner, w->first + page);
}

static void window_destroy(struct page_source *s)
{
	struct window_source *w = (struct window_source *)s;
	source_close(w->inner);
	free(w);
}

static const struct page_source_ops window_ops = {
	.name = "window",
	.submit = window_submit,
	.submit_run = window_submit_run,
	.on_event = window_on_event,
	.expected_ns = window_expected_ns,
	.destroy = window_destroy,
};

int source_window_wrap(struct page_source *inner, const struct snap_image *snap, uint64_t first,
		       uint64_t npages, struct page_source **out, struct apf_err *e)
{
	struct window_source *w;

	if (first > inner->npages || npages > inner->npages - first)
		return apf_fail(e, -EINVAL, "%s serves %llu pages; pages %llu..%llu were asked for",
				inner->desc, (unsigned long long)inner->npages,
				(unsigned long long)first, (unsigned long long)(first + npages - 1));
	if (first > snap->mem_pages || npages > snap->mem_pages - first)
		return apf_fail(e, -EINVAL, "the snapshot has %llu pages; pages %llu..%llu were asked "
				"for", (unsigned long long)snap->mem_pages, (unsigned long long)first,
				(unsigned long long)(first + npages - 1));
	w = calloc(1, sizeof(*w));
	if (!w)
		return apf_fail(e, -ENOMEM, "out of memory");
	source_init(&w->base, &window_ops, npages);
	w->base.event_fd = inner->event_fd;
	w->base.pattern = inner->pattern;
	w->base.seed = inner->seed;
	memcpy(w->base.desc, inner->desc, sizeof(w->base.desc));
	w->inner = inner;
	w->snap = snap;
	w->first = first;
	*out = &w->base;
	return 0;
}
