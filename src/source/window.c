/*
 * The checked window: pages [first, first + npages) of an inner source as
 * pages 0.. of this one, each checked against its SHA-256 before it is
 * handed on.  A snapshot restored from a page server or object storage reads its
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
	uint64_t first;
	const struct sha256 *digests;
	char why[256];
};

/* Moves the inner source's completions here, checked. */
static void take_completions(struct window_source *w)
{
	static const unsigned char zero_page[APF_PAGE_SIZE];
	struct source_completion c;

	while (source_reap(w->inner, &c)) {
		uint64_t page = c.page - w->first;
		c.page = page;
		if (!c.err &&
		    !sha256_matches(c.zero ? zero_page : c.buf, APF_PAGE_SIZE, &w->digests[page])) {
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

static int window_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	struct window_source *w = (struct window_source *)s;
	int rc;

	if (page >= s->npages)
		return -ERANGE;
	rc = source_submit(w->inner, w->first + page, buf, cookie);
	take_completions(w);
	return rc;
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
	.on_event = window_on_event,
	.expected_ns = window_expected_ns,
	.destroy = window_destroy,
};

int source_window_wrap(struct page_source *inner, uint64_t first, uint64_t npages,
		       const struct sha256 *digests, struct page_source **out, struct apf_err *e)
{
	struct window_source *w;

	if (first > inner->npages || npages > inner->npages - first)
		return apf_fail(e, -EINVAL, "%s serves %llu pages; pages %llu..%llu were asked for",
				inner->desc, (unsigned long long)inner->npages,
				(unsigned long long)first, (unsigned long long)(first + npages - 1));
	w = calloc(1, sizeof(*w));
	if (!w)
		return apf_fail(e, -ENOMEM, "out of memory");
	source_init(&w->base, &window_ops, npages);
	w->base.event_fd = inner->event_fd;
	w->base.pattern = inner->pattern;
	w->base.seed = inner->seed;
	memcpy(w->base.desc, inner->desc, sizeof(w->base.desc));
	w->inner = inner;
	w->first = first;
	w->digests = digests;
	*out = &w->base;
	return 0;
}
