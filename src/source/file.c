/*
 * The file source: pages come from an apfvm image (see image/image.h).
 * Reads are pread()s of one page from the page cache, short enough to
 * complete inside submit(); slow storage is modelled by the delay wrapper.
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

struct file_source {
	struct page_source base; /* first: the ops cast back to this */
	int fd;
	uint64_t data_offset;
	uint64_t ewma_ns; /* recent pread cost */
};

static int file_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	struct file_source *f = (struct file_source *)s;
	struct source_completion c = { .page = page, .buf = buf, .cookie = cookie };

	if (page >= s->npages)
		return -ERANGE;
	c.submit_ns = source_now_ns();
	c.err = file_pread_page(f->fd, f->data_offset + page * APF_PAGE_SIZE, buf);
	f->ewma_ns = (f->ewma_ns * 7 + (source_now_ns() - c.submit_ns)) / 8;
	source_complete(s, &c);
	return 0;
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
