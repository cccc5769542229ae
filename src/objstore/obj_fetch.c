/*
 * The object source's fetcher (obj_fetch.h says what it promises the
 * source): which chunks start in which slot, and when; what one slot then
 * does with them is obj_slot.c's.
 *
 * Fetch slots: up to OBJ_FETCHES_MAX fetches at once, each of one chunk
 * or of several that lie back to back in KEY.data (at most
 * OBJ_RANGE_CHUNKS of them and OBJ_RANGE_BYTES stored bytes; a larger
 * chunk goes alone).  A free slot takes the chunks at the head of a queue
 * as long as each starts where the one before ends; a run's chunks are
 * queued together, so a run needing several adjacent chunks costs one
 * request.
 *
 * Demand before bulk: two FIFO queues.  Queued demand chunks start before
 * every queued bulk chunk, in any free slot; bulk ones only while fewer
 * than OBJ_FETCHES_MAX - OBJ_DEMAND_SLOTS slots hold bulk fetches, so a
 * demand fault always finds a slot that bulk work cannot take.  A demand
 * page for a chunk queued as bulk moves the chunk to the demand queue; a
 * demand page joining a bulk fetch makes that slot's checks urgent on the
 * worker (the slot still counts as bulk).  Queued chunks start as slots
 * free (never from inside a completion: nothing here recurses).
 *
 * Requests run on libcurl's multi interface driven by the source's
 * event_fd (an epoll set of curl's sockets, one timerfd for curl's
 * timeouts and the retries' backoff, and the worker's eventfd): nothing
 * blocks the pager's thread.  Disk reads, the checks and decompression,
 * and disk writes run on the worker (obj_worker.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "objstore/obj_fetch.h"
#include "objstore/obj_slot.h"

#define OBJ_DEMAND_SLOTS 8 /* of the slots, never held by bulk fetches */
#define OBJ_BULK_SLOTS   (OBJ_FETCHES_MAX - OBJ_DEMAND_SLOTS)
/* One request: at most OBJ_RANGE_CHUNKS (8) chunks and 1 MiB of stored
 * bytes.  A demand page that joins a bulk request then waits for little
 * more than its own chunk would take, the request stays well within its
 * timeout on a slow link, and a slot's checks fit the worker's queue. */
#define OBJ_RANGE_BYTES  (1u << 20)
#define NONE             OBJ_SLOT_NONE
#define QUEUED(prio)     (NONE - 1 - (uint32_t)(prio)) /* obj_slots.fetch_of */

struct obj_fetcher {
	struct obj_slots s;
	int ep, timer;
	uint64_t curl_due_ns, armed_ns;
	/* Wanted chunks with no slot yet, FIFO each: queue[SOURCE_DEMAND]
	 * and queue[SOURCE_BULK].  A wanted chunk has a waiting page, so the
	 * two hold at most SOURCE_QUEUE_MAX together. */
	uint32_t queue[2][SOURCE_QUEUE_MAX];
	unsigned q_head[2], q_count[2];
};

/* ---- the queues ---------------------------------------------------------------- */

static void queue_push(struct obj_fetcher *fx, enum source_prio q, uint32_t chunk)
{
	if (fx->q_count[0] + fx->q_count[1] == SOURCE_QUEUE_MAX) {
		/* Cannot happen (a wanted chunk has a waiting page); a lost
		 * chunk would hang a vCPU: the source fails instead. */
		source_set_error(fx->s.src, -EOVERFLOW, "object fetch queue overflow");
		return;
	}
	fx->queue[q][(fx->q_head[q] + fx->q_count[q]++) % SOURCE_QUEUE_MAX] = chunk;
	fx->s.fetch_of[chunk] = QUEUED(q);
}

static uint32_t queue_pop(struct obj_fetcher *fx, enum source_prio q)
{
	uint32_t chunk = fx->queue[q][fx->q_head[q]];

	fx->q_head[q] = (fx->q_head[q] + 1) % SOURCE_QUEUE_MAX;
	fx->q_count[q]--;
	return chunk;
}

/* A demand page needs chunk, queued as bulk: it moves to the demand
 * queue's tail, the bulk queue closing up behind it (at most
 * SOURCE_QUEUE_MAX entries moved, in memory). */
static void promote(struct obj_fetcher *fx, uint32_t chunk)
{
	uint32_t *q = fx->queue[SOURCE_BULK];
	unsigned h = fx->q_head[SOURCE_BULK], n = fx->q_count[SOURCE_BULK], i = 0;

	while (i < n && q[(h + i) % SOURCE_QUEUE_MAX] != chunk)
		i++;
	if (i == n)
		return; /* not there: cannot happen */
	for (; i + 1 < n; i++)
		q[(h + i) % SOURCE_QUEUE_MAX] = q[(h + i + 1) % SOURCE_QUEUE_MAX];
	fx->q_count[SOURCE_BULK]--;
	queue_push(fx, SOURCE_DEMAND, chunk);
}

void obj_fetch_want(struct obj_fetcher *fx, uint32_t chunk, enum source_prio prio)
{
	uint32_t at = fx->s.fetch_of[chunk];

	if (at == NONE)
		queue_push(fx, prio, chunk);
	else if (prio == SOURCE_DEMAND && at == QUEUED(SOURCE_BULK))
		promote(fx, chunk);
	else if (prio == SOURCE_DEMAND && at < OBJ_FETCHES_MAX)
		fx->s.slot[at].urgent = true;
}

/* ---- starting slots ------------------------------------------------------------ */

/* Starts free slot f on the chunks at the head of queue q that lie back
 * to back in KEY.data, within one request's bounds. */
static void start_slot(struct obj_fetcher *fx, struct obj_slot *f, enum source_prio q)
{
	uint32_t chunks[OBJ_RANGE_CHUNKS];
	uint64_t end = 0, bytes = 0;
	unsigned n = 0;

	while (fx->q_count[q] && n < OBJ_RANGE_CHUNKS) {
		const struct obj_chunk *c = &fx->s.m->chunks[fx->queue[q][fx->q_head[q]]];
		if (n && (c->offset != end || bytes + c->stored_len > OBJ_RANGE_BYTES))
			break;
		chunks[n++] = queue_pop(fx, q);
		end = c->offset + c->stored_len;
		bytes += c->stored_len;
	}
	obj_slot_start(&fx->s, f, chunks, n, q);
}

/* Starts queued chunks while slots are free: every queued demand chunk
 * before any bulk one, bulk ones within OBJ_BULK_SLOTS.  A loop, not a
 * recursion. */
static void start_pending(struct obj_fetcher *fx)
{
	for (;;) {
		struct obj_slot *free_f = NULL;
		unsigned bulk = 0;
		for (unsigned i = 0; i < OBJ_FETCHES_MAX; i++) {
			struct obj_slot *f = &fx->s.slot[i];
			if (!f->used && !free_f)
				free_f = f;
			bulk += f->used && f->prio == SOURCE_BULK;
		}
		if (free_f && fx->q_count[SOURCE_DEMAND])
			start_slot(fx, free_f, SOURCE_DEMAND);
		else if (free_f && fx->q_count[SOURCE_BULK] && bulk < OBJ_BULK_SLOTS)
			start_slot(fx, free_f, SOURCE_BULK);
		else
			return;
	}
}

/* Whether f waits out a backoff (due_ns says until when). */
static bool backing_off(const struct obj_slot *f)
{
	return f->used && !f->active && !f->working;
}

/* ---- events --------------------------------------------------------------------- */

static void drain_worker(struct obj_fetcher *fx)
{
	struct obj_job *j;

	obj_worker_ack(&fx->s.worker);
	while ((j = obj_worker_reap(&fx->s.worker)))
		obj_slot_checked(&fx->s, j);
}

static void drain_curl(struct obj_fetcher *fx)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(fx->s.multi, &left))) {
		struct obj_slot *f = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
		if (f)
			obj_slot_replied(&fx->s, f, msg->data.result);
	}
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct obj_fetcher *fx = userp;
	struct epoll_event ev = { .data.fd = s };
	(void)easy;
	(void)socketp;

	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(fx->ep, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (epoll_ctl(fx->ep, EPOLL_CTL_MOD, s, &ev) < 0 &&
	    (errno != ENOENT || epoll_ctl(fx->ep, EPOLL_CTL_ADD, s, &ev) < 0))
		source_set_error(fx->s.src, -errno, "cannot watch a connection");
	return 0;
}

/* Arms the timer for the earliest of curl's timeout and the slots'
 * backoffs. */
static void rearm(struct obj_fetcher *fx)
{
	uint64_t due = fx->curl_due_ns;

	for (unsigned i = 0; i < OBJ_FETCHES_MAX; i++) {
		const struct obj_slot *f = &fx->s.slot[i];
		if (backing_off(f) && (!due || f->due_ns < due))
			due = f->due_ns;
	}
	if (due == fx->armed_ns)
		return;
	struct itimerspec its = { .it_value = { .tv_sec = (time_t)(due / 1000000000ull),
						.tv_nsec = (long)(due % 1000000000ull) } };
	if (timerfd_settime(fx->timer, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		source_set_error(fx->s.src, -errno, "cannot arm the fetch timer");
		return;
	}
	fx->armed_ns = due;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct obj_fetcher *fx = userp;
	(void)multi;

	fx->curl_due_ns = timeout_ms < 0 ? 0 : source_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	if (timeout_ms == 0)
		fx->curl_due_ns = 1; /* at once: any time in the past */
	rearm(fx);
	return 0;
}

/* The timer fired: the slots whose backoff is over try again, and curl's
 * timeout runs if it is due. */
static void on_timer(struct obj_fetcher *fx)
{
	uint64_t ticks, now = source_now_ns();
	int running;

	if (read(fx->timer, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		source_set_error(fx->s.src, -errno, "cannot read the fetch timer");
	fx->armed_ns = 0;
	for (unsigned i = 0; i < OBJ_FETCHES_MAX; i++) {
		struct obj_slot *f = &fx->s.slot[i];
		if (backing_off(f) && f->due_ns <= now)
			obj_slot_retry(&fx->s, f);
	}
	if (fx->curl_due_ns && fx->curl_due_ns <= now) {
		fx->curl_due_ns = 0;
		curl_multi_socket_action(fx->s.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
}

void obj_fetch_on_event(struct obj_fetcher *fx)
{
	struct epoll_event evs[16];
	int running, n = epoll_wait(fx->ep, evs, 16, 0);

	for (int k = 0; k < n; k++) {
		if (evs[k].data.fd == fx->s.worker.event_fd) {
			drain_worker(fx);
		} else if (evs[k].data.fd == fx->timer) {
			on_timer(fx);
		} else {
			int flags = (evs[k].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
				    (evs[k].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
				    (evs[k].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
			curl_multi_socket_action(fx->s.multi, evs[k].data.fd, flags, &running);
		}
		drain_curl(fx);
	}
	obj_fetch_start(fx);
}

void obj_fetch_start(struct obj_fetcher *fx)
{
	start_pending(fx);
	rearm(fx);
}

int obj_fetch_event_fd(const struct obj_fetcher *fx)
{
	return fx->ep;
}

uint64_t obj_fetch_expected_ns(const struct obj_fetcher *fx)
{
	return fx->s.ewma_ns;
}

/* ---- open and close ------------------------------------------------------------- */

/* The epoll set (the timer, the worker's eventfd; curl adds its
 * sockets) and libcurl's multi handle, its callbacks in it. */
static int watch(struct obj_fetcher *fx, struct apf_err *e)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fx->timer };
	struct epoll_event wev = { .events = EPOLLIN, .data.fd = fx->s.worker.event_fd };
	CURLM *multi = fx->s.multi;

	if (epoll_ctl(fx->ep, EPOLL_CTL_ADD, fx->timer, &ev) < 0 ||
	    epoll_ctl(fx->ep, EPOLL_CTL_ADD, fx->s.worker.event_fd, &wev) < 0)
		return apf_fail(e, -errno, "epoll: %s", strerror(errno));
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, fx);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(multi, CURLMOPT_TIMERDATA, fx);
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)OBJ_FETCHES_MAX);
	/* Keep a connection per slot between requests: curl sizes its cache
	 * by the handles added at the moment, which here come and go. */
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)OBJ_FETCHES_MAX);
	return 0;
}

/* Everything after the disk tier: memory, fds, the worker, the slots'
 * curl handles, the epoll set. */
static int set_up(struct obj_fetcher *fx, struct apf_err *e)
{
	struct obj_slots *ss = &fx->s;
	int rc;

	ss->fetch_of = malloc(ss->m->hdr.nchunks * sizeof(*ss->fetch_of));
	ss->multi = curl_multi_init();
	fx->ep = epoll_create1(EPOLL_CLOEXEC);
	fx->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!ss->fetch_of || !ss->multi || fx->ep < 0 || fx->timer < 0)
		return apf_fail(e, -ENOMEM, "cannot set up the object source: out of memory or fds");
	if ((rc = obj_worker_start(&ss->worker, ss->m, &ss->disk)))
		return apf_fail(e, rc, "cannot start the object source's worker: %s", strerror(-rc));
	for (unsigned i = 0; i < OBJ_FETCHES_MAX; i++)
		if ((rc = obj_slot_open(&ss->slot[i])))
			return apf_fail(e, rc, "out of memory");
	for (uint64_t i = 0; i < ss->m->hdr.nchunks; i++)
		ss->fetch_of[i] = NONE;
	return watch(fx, e);
}

int obj_fetch_open(const struct obj_fetch_setup *setup, struct obj_fetcher **out,
		   struct apf_err *e)
{
	const struct obj_store_options *so = &setup->net->store;
	struct obj_fetcher *fx = calloc(1, sizeof(*fx));
	int rc;

	if (!fx)
		return apf_fail(e, -ENOMEM, "out of memory");
	fx->ep = fx->timer = -1;
	fx->s.disk.dirfd = fx->s.disk.rootfd = -1;
	fx->s.src = setup->src;
	fx->s.m = setup->m;
	fx->s.target = setup->target;
	fx->s.done = setup->done;
	fx->s.timeout_ns = setup->net->timeout_ns;
	fx->s.tries = setup->net->tries;
	fx->s.ewma_ns = setup->first_ns;
	if (so->cache_dir && (rc = obj_disk_open(&fx->s.disk, so->cache_dir, setup->manifest_id,
						 so->cache_dir_bytes, e)))
		goto fail;
	if ((rc = set_up(fx, e)))
		goto fail;
	*out = fx;
	return 0;
fail:
	obj_fetch_close(fx);
	return rc;
}

void obj_fetch_close(struct obj_fetcher *fx)
{
	if (!fx)
		return;
	obj_worker_stop(&fx->s.worker); /* first: it may hold the slots' jobs */
	for (unsigned i = 0; i < OBJ_FETCHES_MAX; i++)
		obj_slot_close(&fx->s, &fx->s.slot[i]);
	if (fx->s.multi)
		curl_multi_cleanup(fx->s.multi);
	free(fx->s.fetch_of);
	obj_disk_close(&fx->s.disk);
	if (fx->timer >= 0)
		close(fx->timer);
	if (fx->ep >= 0)
		close(fx->ep);
	free(fx);
}
