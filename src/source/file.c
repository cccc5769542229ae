/*
 * The file source: pages come from an apfvm image (see image/image.h).
 * Reads complete inside submit(): a page, or a run of pages (submit_run),
 * is one preadv into the run's separate buffers, from the page cache,
 * short enough to wait for; slow storage is modelled by the delay
 * wrapper.  A run still completes one page at a time: the pages read whole
 * before a failure (the file ends: it shrank under us; or an I/O error)
 * complete, the failed page and those after it fail with that error.  The
 * priority of a run changes nothing here (one reader, no queue), except
 * that only demand reads feed expected_ns.
 *
 * source_read_pages is that read, shared with the raw source (raw.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "image/image.h"
#include "source/file.h"
#include "util/file.h"

_Static_assert(SOURCE_RUN_MAX <= FILE_PAGES_MAX, "a run is one preadv");

struct file_source {
	struct page_source base; /* first: the ops cast back to this */
	int fd;
	uint64_t data_offset;
	uint64_t ewma_ns; /* recent cost of a demand read */
};

static bool all_zero(const void *buf)
{
	const uint64_t *w = buf;
	for (size_t i = 0; i < APF_PAGE_SIZE / 8; i++)
		if (w[i])
			return false;
	return true;
}

uint64_t source_read_pages(struct page_source *s, int fd, uint64_t offset, uint64_t page,
			   unsigned n, void *const *bufs, void *const *cookies, bool detect_zero)
{
	struct source_completion c = { .submit_ns = source_now_ns() };
	int err;
	unsigned whole = file_preadv_pages(fd, offset, bufs, n, &err);
	uint64_t took = source_now_ns() - c.submit_ns;

	for (unsigned i = 0; i < n; i++) {
		c.page = page + i;
		c.buf = bufs[i];
		c.cookie = cookies[i];
		c.err = i < whole ? 0 : err;
		c.zero = !c.err && detect_zero && all_zero(bufs[i]);
		source_complete(s, &c);
	}
	return took;
}

static int file_submit_run(struct page_source *s, uint64_t page, unsigned n, void *const *bufs,
			   void *const *cookies, enum source_prio prio)
{
	struct file_source *f = (struct file_source *)s;

	if (page >= s->npages || !n || n > SOURCE_RUN_MAX || n > s->npages - page)
		return -ERANGE;
	uint64_t took = source_read_pages(s, f->fd, f->data_offset + page * APF_PAGE_SIZE, page, n,
					  bufs, cookies, false);
	if (prio == SOURCE_DEMAND)
		f->ewma_ns = (f->ewma_ns * 7 + took) / 8;
	return 0;
}

static int file_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	return file_submit_run(s, page, 1, &buf, &cookie, SOURCE_DEMAND);
}

static uint64_t file_expected_ns(struct page_source *s, uint64_t page)
{
	(void)page;
	return ((struct file_source *)s)->ewma_ns;
}

static void file_destroy(struct page_source *s)
{
	struct file_source *f = (struct file_source *)s;
	close(f->fd);
	free(f);
}

static const struct page_source_ops file_ops = {
	.name = "file",
	.submit = file_submit,
	.submit_run = file_submit_run,
	.expected_ns = file_expected_ns,
	.destroy = file_destroy,
};

int source_file_open(const char *path, uint64_t lazy_bytes, struct page_source **out,
		     struct apf_err *e)
{
	struct image_info info;
	struct file_source *f;
	int fd, rc;

	struct stat st;
	fd = file_open_regular(path, &st);
	if (fd == -EINVAL)
		return apf_fail(e, fd, "cannot open image '%s': not a regular file", path);
	if (fd < 0)
		return apf_fail(e, fd, "cannot open image '%s': %s", path, strerror(-fd));
	rc = image_read_header(fd, path, &info, e);
	if (rc) {
		close(fd);
		return rc;
	}
	if (info.data_size < lazy_bytes) {
		close(fd);
		return apf_fail(e, -EINVAL,
				"image '%s' holds %llu bytes, less than the %llu asked for (run's "
				"--lazy, fetch's --size); make a larger image or ask for less",
				path, (unsigned long long)info.data_size,
				(unsigned long long)lazy_bytes);
	}
	f = malloc(sizeof(*f));
	if (!f) {
		close(fd);
		return apf_fail(e, -ENOMEM, "out of memory");
	}
	source_init(&f->base, &file_ops, info.data_size / APF_PAGE_SIZE);
	f->fd = fd;
	f->data_offset = info.data_offset;
	f->ewma_ns = 0;
	f->base.pattern = APF_PATTERN_SEEDED;
	f->base.seed = info.seed;
	snprintf(f->base.desc, sizeof(f->base.desc), "file:%.80s (seed %llu)", path,
		 (unsigned long long)info.seed);
	*out = &f->base;
	return 0;
}
