#include "source.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apfvm/abi.h"
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

#define SOURCE_SPECS "'zero', 'file:PATH', 'tcp:ADDR:PORT', 's3://BUCKET/KEY' or 'http(s)://HOST/PATH'"

int source_open(const char *spec, uint64_t lazy_bytes, const struct source_net_options *net,
		struct page_source **out, struct apf_err *e)
{
	static const struct source_net_options net_defaults = {
		.timeout_ns = SOURCE_NET_TIMEOUT_DEFAULT_NS,
		.tries = SOURCE_NET_TRIES_DEFAULT,
	};

	if (!spec || !*spec)
		return apf_fail(e, -EINVAL, "empty page source; use " SOURCE_SPECS);
	if (!strcmp(spec, "zero"))
		return source_zero_open(lazy_bytes / APF_PAGE_SIZE, out, e);
	if (!strncmp(spec, "file:", 5)) {
		if (!spec[5])
			return apf_fail(e, -EINVAL, "source 'file:' needs a path: file:PATH");
		return source_file_open(spec + 5, lazy_bytes, out, e);
	}
	bool object = !strncmp(spec, "s3://", 5) || !strncmp(spec, "http://", 7) ||
		      !strncmp(spec, "https://", 8);
	if (!strncmp(spec, "tcp:", 4) || object) {
		if (!net)
			net = &net_defaults;
		if (net->timeout_ns < 1000000 || net->timeout_ns > SOURCE_NET_TIMEOUT_MAX_NS ||
		    net->tries < 1 || net->tries > SOURCE_NET_TRIES_MAX)
			return apf_fail(e, -EINVAL, "fetch timeout must be 1ms..%llus and tries 1..%d",
					(unsigned long long)(SOURCE_NET_TIMEOUT_MAX_NS / 1000000000ull),
					SOURCE_NET_TRIES_MAX);
		return object ? source_object_open(spec, lazy_bytes, net, out, e)
			      : source_tcp_open(spec + 4, lazy_bytes, net, out, e);
	}
	return apf_fail(e, -EINVAL, "unknown page source '%s'; use " SOURCE_SPECS, spec);
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
