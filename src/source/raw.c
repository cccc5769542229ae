/*
 * The raw source: pages of a file of raw pages (a snapshot's PATH.mem),
 * from offset 0, read inside submit() as the file source reads them (a
 * page or a run, one preadv: source_read_pages, file.c, which says how a
 * run that fails part way completes).  It checks nothing: a
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
#include "source/file.h"
#include "source/raw.h"

struct raw_source {
	struct page_source base; /* first: the ops cast back to this */
	int fd;                  /* borrowed */
	uint64_t ewma_ns;        /* recent cost of a demand read */
};

static int raw_submit_run(struct page_source *s, uint64_t page, unsigned n, void *const *bufs,
			  void *const *cookies, enum source_prio prio)
{
	struct raw_source *f = (struct raw_source *)s;

	if (page >= s->npages || !n || n > SOURCE_RUN_MAX || n > s->npages - page)
		return -ERANGE;
	uint64_t took = source_read_pages(s, f->fd, page * APF_PAGE_SIZE, page, n, bufs, cookies,
					  true);
	if (prio == SOURCE_DEMAND)
		f->ewma_ns = (f->ewma_ns * 7 + took) / 8;
	return 0;
}

static int raw_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	return raw_submit_run(s, page, 1, &buf, &cookie, SOURCE_DEMAND);
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
	.submit_run = raw_submit_run,
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
