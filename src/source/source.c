#include "source.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apfvm/abi.h"

uint64_t source_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void source_init(struct page_source *s, const struct page_source_ops *ops, uint64_t npages)
{
	memset(s, 0, sizeof(*s));
	s->ops = ops;
	s->npages = npages;
	s->event_fd = -1;
}

void source_complete(struct page_source *s, const struct source_completion *c)
{
	/* The caller bounds in-flight fetches below SOURCE_QUEUE_MAX, so the
	 * ring cannot overflow; if it did, the lost completion would hang a
	 * vCPU: the source is marked failed instead. */
	if (s->count == SOURCE_QUEUE_MAX) {
		source_set_error(s, -EOVERFLOW, "completion queue overflow");
		return;
	}
	s->queue[(s->head + s->count) % SOURCE_QUEUE_MAX] = *c;
	s->count++;
}

void source_set_error(struct page_source *s, int err, const char *what)
{
	if (!s->error) {
		s->error = err;
		s->error_what = what;
	}
}

bool source_reap(struct page_source *s, struct source_completion *out)
{
	if (!s->count)
		return false;
	*out = s->queue[s->head];
	s->head = (s->head + 1) % SOURCE_QUEUE_MAX;
	s->count--;
	s->fetched++;
	s->busy_ns += source_now_ns() - out->submit_ns;
	return true;
}

int source_open(const char *spec, uint64_t lazy_bytes, struct page_source **out,
		struct apf_err *e)
{
	if (!spec || !*spec)
		return apf_fail(e, -EINVAL, "empty page source; use 'zero' or 'file:PATH'");
	if (!strcmp(spec, "zero"))
		return source_zero_open(lazy_bytes / APF_PAGE_SIZE, out, e);
	if (!strncmp(spec, "file:", 5)) {
		if (!spec[5])
			return apf_fail(e, -EINVAL, "source 'file:' needs a path: file:PATH");
		return source_file_open(spec + 5, lazy_bytes, out, e);
	}
	return apf_fail(e, -EINVAL, "unknown page source '%s'; use 'zero' or 'file:PATH'", spec);
}

void source_close(struct page_source *s)
{
	if (s)
		s->ops->destroy(s);
}

int source_pread_page(int fd, uint64_t offset, void *buf)
{
	size_t done = 0;

	while (done < APF_PAGE_SIZE) {
		ssize_t n = pread(fd, (char *)buf + done, APF_PAGE_SIZE - done, (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}
