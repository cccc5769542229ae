/*
 * The snapshot source: pages of a snapshot's memory file (snapshot.h),
 * each checked against its CRC from the snapshot's state before it is
 * handed over, so a damaged memory file never maps wrong data into the
 * guest: the page fails instead (pager.h, Errors).  A page of zeros is
 * reported as such (installed without a copy).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "source.h"
#include "util/crc32c.h"

struct snapshot_source {
	struct page_source base; /* first: the ops cast back to this */
	int fd;                  /* borrowed: the snapshot's memory file */
	uint64_t first_page;     /* of the memory file */
	const uint32_t *crcs;    /* borrowed, npages of them from first_page */
	uint64_t ewma_ns;
	uint64_t bad_pages;      /* CRC mismatches */
};

static int is_zero(const void *buf)
{
	const uint64_t *w = buf;
	for (size_t i = 0; i < APF_PAGE_SIZE / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

static int snap_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	struct snapshot_source *f = (struct snapshot_source *)s;
	struct source_completion c = { .page = page, .buf = buf, .cookie = cookie };

	if (page >= s->npages)
		return -ERANGE;
	c.submit_ns = source_now_ns();
	c.err = source_pread_page(f->fd, (f->first_page + page) * APF_PAGE_SIZE, buf);
	if (!c.err && crc32c(0, buf, APF_PAGE_SIZE) != f->crcs[page]) {
		c.err = -EBADMSG; /* "Bad message": the page's checksum does not match */
		f->bad_pages++;
	}
	if (!c.err && is_zero(buf))
		c.zero = true;
	f->ewma_ns = (f->ewma_ns * 7 + (source_now_ns() - c.submit_ns)) / 8;
	source_complete(s, &c);
	return 0;
}

static uint64_t snap_expected_ns(struct page_source *s, uint64_t page)
{
	(void)page;
	return ((struct snapshot_source *)s)->ewma_ns;
}

static void snap_destroy(struct page_source *s)
{
	free(s);
}

static const struct page_source_ops snapshot_ops = {
	.name = "snapshot",
	.submit = snap_submit,
	.expected_ns = snap_expected_ns,
	.destroy = snap_destroy,
};

int source_snapshot_open(int fd, uint64_t first_page, uint64_t npages, const uint32_t *crcs,
			 const char *desc, struct page_source **out, struct apf_err *e)
{
	struct snapshot_source *f = calloc(1, sizeof(*f));
	if (!f)
		return apf_fail(e, -ENOMEM, "out of memory");
	source_init(&f->base, &snapshot_ops, npages);
	f->fd = fd;
	f->first_page = first_page;
	f->crcs = crcs;
	snprintf(f->base.desc, sizeof(f->base.desc), "%s", desc);
	*out = &f->base;
	return 0;
}
