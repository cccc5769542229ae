/*
 * The delay wrapper: emulates remote storage by holding each completion of
 * an inner source until submit time + a delay (fixed, or uniform in
 * [min, max]).  One timerfd armed at the earliest deadline serves every
 * fetch in flight, so thousands may overlap without a thread each.
 * Completions leave in deadline order, which with random delays differs
 * from submit order.
 *
 * A run (submit_run) goes to the inner source as a run (one preadv on a
 * file) and is one request to the storage modelled: one delay is drawn
 * for it, and each of its pages completes that delay after its submit
 * time (all at once, for a source that stamps a run with one time).  The
 * priority is passed on; the delay does not depend on it.
 *
 * The inner source must complete inside submit() (zero, file).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "source/delay.h"

struct pending {
	uint64_t due_ns;
	struct source_completion c;
};

struct delay_source {
	struct page_source base; /* first */
	struct page_source *inner;
	uint64_t min_ns, max_ns;
	uint64_t rng;
	struct pending heap[SOURCE_QUEUE_MAX]; /* min-heap on due_ns */
	unsigned nheap;
	uint64_t armed_ns; /* deadline the timer is set to, 0 = disarmed */
};

static uint64_t rng_next(uint64_t *x)
{
	/* xorshift64*: cheap, good enough for spreading delays */
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 0x2545f4914f6cdd1dull;
}

static void heap_swap(struct pending *a, struct pending *b)
{
	struct pending t = *a;
	*a = *b;
	*b = t;
}

static void heap_push(struct delay_source *d, const struct pending *p)
{
	unsigned i = d->nheap++;
	d->heap[i] = *p;
	while (i && d->heap[(i - 1) / 2].due_ns > d->heap[i].due_ns) {
		heap_swap(&d->heap[(i - 1) / 2], &d->heap[i]);
		i = (i - 1) / 2;
	}
}

static void heap_pop(struct delay_source *d, struct pending *out)
{
	unsigned i = 0;
	*out = d->heap[0];
	d->heap[0] = d->heap[--d->nheap];
	for (;;) {
		unsigned l = 2 * i + 1, r = l + 1, m = i;
		if (l < d->nheap && d->heap[l].due_ns < d->heap[m].due_ns)
			m = l;
		if (r < d->nheap && d->heap[r].due_ns < d->heap[m].due_ns)
			m = r;
		if (m == i)
			break;
		heap_swap(&d->heap[m], &d->heap[i]);
		i = m;
	}
}

static void arm(struct delay_source *d)
{
	struct itimerspec its;
	uint64_t due = d->nheap ? d->heap[0].due_ns : 0;

	if (due == d->armed_ns)
		return;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(due / 1000000000ull);
	its.it_value.tv_nsec = (long)(due % 1000000000ull);
	/* due == 0 disarms.  Failure is impossible with a valid fd and
	 * time; if it happened, fetches would never complete: the source is
	 * marked failed. */
	if (timerfd_settime(d->base.event_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		source_set_error(&d->base, -errno, "cannot arm the delay timer");
		return;
	}
	d->armed_ns = due;
}

/* Moves every due fetch to the completion queue. */
static void release_due(struct delay_source *d)
{
	uint64_t now = source_now_ns();
	struct pending p;

	while (d->nheap && d->heap[0].due_ns <= now) {
		heap_pop(d, &p);
		source_complete(&d->base, &p.c);
	}
	arm(d);
}

/* Holds every completion the inner source queued until its submit time +
 * delay. */
static void hold_completions(struct delay_source *d, uint64_t delay)
{
	struct pending p;

	if (d->inner->error)
		source_set_error(&d->base, d->inner->error, d->inner->error_what);
	while (source_reap(d->inner, &p.c)) {
		p.due_ns = p.c.submit_ns + delay;
		heap_push(d, &p);
	}
	release_due(d);
}

static uint64_t draw_delay(struct delay_source *d)
{
	/* max_ns <= SOURCE_DELAY_MAX_NS: span + 1 and the sum cannot wrap. */
	uint64_t span = d->max_ns - d->min_ns;
	return d->min_ns + (span ? rng_next(&d->rng) % (span + 1) : 0);
}

static int delay_submit_run(struct page_source *s, uint64_t page, unsigned n, void *const *bufs,
			    void *const *cookies, enum source_prio prio)
{
	struct delay_source *d = (struct delay_source *)s;
	unsigned started;

	if (n > SOURCE_QUEUE_MAX - d->nheap)
		return -EAGAIN;
	int rc = source_submit_run(d->inner, page, n, bufs, cookies, prio, &started);
	if (rc && !started)
		return rc;
	/* Pages an inner source without submit_run did not start (it failed
	 * part way): failed here, so that the run is started whole. */
	for (unsigned i = started; i < n; i++) {
		struct source_completion c = { .page = page + i, .buf = bufs[i],
					       .cookie = cookies[i], .err = rc,
					       .submit_ns = source_now_ns() };
		source_complete(d->inner, &c);
	}
	hold_completions(d, draw_delay(d));
	return 0;
}

static int delay_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	struct delay_source *d = (struct delay_source *)s;
	int rc;

	if (d->nheap == SOURCE_QUEUE_MAX)
		return -EAGAIN;
	rc = source_submit(d->inner, page, buf, cookie);
	if (rc)
		return rc;
	hold_completions(d, draw_delay(d));
	return 0;
}

static void delay_on_event(struct page_source *s)
{
	struct delay_source *d = (struct delay_source *)s;
	uint64_t ticks;

	/* Clear the fd's readiness; the heap decides what is due. */
	if (read(s->event_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN) {
		source_set_error(s, -errno, "cannot read the delay timer");
		return;
	}
	d->armed_ns = 0; /* a fired one-shot timer is disarmed */
	release_due(d);
}

static uint64_t delay_expected_ns(struct page_source *s, uint64_t page)
{
	struct delay_source *d = (struct delay_source *)s;
	return d->inner->ops->expected_ns(d->inner, page) + (d->min_ns + d->max_ns) / 2;
}

static void delay_destroy(struct page_source *s)
{
	struct delay_source *d = (struct delay_source *)s;
	close(s->event_fd);
	source_close(d->inner);
	free(d);
}

static const struct page_source_ops delay_ops = {
	.name = "delay",
	.submit = delay_submit,
	.submit_run = delay_submit_run,
	.on_event = delay_on_event,
	.expected_ns = delay_expected_ns,
	.destroy = delay_destroy,
};

int source_delay_wrap(struct page_source *inner, uint64_t min_ns, uint64_t max_ns,
		      uint64_t rng_seed, struct page_source **out, struct apf_err *e)
{
	struct delay_source *d;
	int fd;

	if (inner->event_fd >= 0)
		return apf_fail(e, -EINVAL, "added latency (--latency) is for the local sources "
				"(zero, file:); %s has latency of its own", inner->desc);
	if (min_ns > max_ns)
		return apf_fail(e, -EINVAL, "latency range is inverted");
	if (max_ns > SOURCE_DELAY_MAX_NS)
		return apf_fail(e, -EINVAL, "latency must be at most %llu s",
				(unsigned long long)(SOURCE_DELAY_MAX_NS / 1000000000ull));
	d = calloc(1, sizeof(*d));
	if (!d)
		return apf_fail(e, -ENOMEM, "out of memory");
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0) {
		free(d);
		return apf_fail(e, -errno, "timerfd_create: %s", strerror(errno));
	}
	source_init(&d->base, &delay_ops, inner->npages);
	d->base.event_fd = fd;
	d->base.pattern = inner->pattern;
	d->base.seed = inner->seed;
	memcpy(d->base.desc, inner->desc, sizeof(d->base.desc));
	d->inner = inner;
	d->min_ns = min_ns;
	d->max_ns = max_ns;
	d->rng = rng_seed ? rng_seed : 0x9e3779b97f4a7c15ull;
	*out = &d->base;
	return 0;
}
