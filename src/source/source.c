#include "source.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>

#include "util/thread.h"

uint64_t source_now_ns(void)
{
	return monotonic_ns();
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

int source_submit_run(struct page_source *s, uint64_t page, unsigned n, void *const *bufs,
		      void *const *cookies, enum source_prio prio, unsigned *started)
{
	int rc;

	*started = 0;
	if (!n || n > SOURCE_RUN_MAX || page >= s->npages || n > s->npages - page)
		return -EINVAL;
	if (s->ops->submit_run) {
		rc = s->ops->submit_run(s, page, n, bufs, cookies, prio);
		if (!rc)
			*started = n;
		return rc;
	}
	for (unsigned i = 0; i < n; i++) {
		if ((rc = s->ops->submit(s, page + i, bufs[i], cookies[i])))
			return rc;
		(*started)++;
	}
	return 0;
}

int source_wait(struct page_source *s, int timeout_ms)
{
	struct pollfd p = { .fd = s->event_fd, .events = POLLIN };
	int n;

	if (s->event_fd < 0 || !s->ops->on_event)
		return -EINVAL;
	n = poll(&p, 1, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ETIME;
	s->ops->on_event(s);
	return 0;
}

void source_close(struct page_source *s)
{
	if (s)
		s->ops->destroy(s);
}
