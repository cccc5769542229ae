/*
 * The raw source: pages of a file of raw pages (a snapshot's PATH.mem),
 * from offset 0, read with pread inside submit().  It checks nothing: a
 * snapshot's pages reach the pager through a checked window
 * (source_window_wrap) that holds them against the snapshot's SHA-256s,
 * the same for this file as for a remote copy of it.  A page of zeros is
 * reported as such (installed without a copy).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "source/raw.h"
#include "util/file.h"

struct raw_source {
	struct page_source base; /* first: the ops cast back to this */
	int fd;                  /* borrowed */
	uint64_t ewma_ns;
};

static int is_zero(const void *buf)
{
	const uint64_t *w = buf;
	for (size_t i = 0; i < APF_PAGE_SIZE / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

static int raw_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	struct raw_source *f = (struct raw_source *)s;
	struct source_completion c = { .page = page, .buf = buf, .cookie = cookie };

	if (page >= s->npages)
		return -ERANGE;
	c.submit_ns = source_now_ns();
	c.err = file_pread_page(f->fd, page * APF_PAGE_SIZE, buf);
	if (!c.err && is_zero(buf))
		c.zero = true;
	f->ewma_ns = (f->ewma_ns * 7 + (source_now_ns() - c.submit_ns)) / 8;
	source_complete(s, &c);
	return 0;
}

static uint64_t raw_expected_ns(struct page_source *s, uint64_t page)
{
	(void)page;
	return ((struct raw_source *)s)->ewma_ns;
}

static void raw_destroy(struct page_source *s)
{
	free(s);
}

static const struct page_source_ops raw_ops = {
	.name = "raw",
	.submit = raw_submit,
	.expected_ns = raw_expected_ns,
	.destroy = raw_destroy,
};

int source_raw_open(int fd, uint64_t npages, const char *desc, struct page_source **out,
		    struct apf_err *e)
{
	struct raw_source *f = calloc(1, sizeof(*f));
	if (!f)
		return apf_fail(e, -ENOMEM, "out of memory");
	source_init(&f->base, &raw_ops, npages);
	f->fd = fd;
	snprintf(f->base.desc, sizeof(f->base.desc), "%s", desc);
	*out = &f->base;
	return 0;
}
