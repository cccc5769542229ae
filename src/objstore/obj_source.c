/*
 * The object page source: pages of a memory image in object storage
 * (obj_layout.h), s3://BUCKET/KEY or http(s)://HOST/PATH (obj_http.h).
 *
 * The manifest is read when the source opens.  A page's fetch needs its
 * chunk: a chunk in the cache (decompressed, LRU) answers at once, an
 * all-zero one needs nothing, and one already being fetched is joined,
 * whatever its priority (a demand page on a chunk fetched in bulk simply
 * waits with that fetch).  Otherwise the chunk is queued at the page's
 * priority (source.h: submit() is demand, submit_run says), and one fetch
 * serves every page waiting on it.
 *
 * Fetch slots: up to OBJ_FETCHES_MAX fetches at once, each of one chunk
 * or of several that lie back to back in KEY.data (at most
 * OBJ_RANGE_CHUNKS of them and OBJ_RANGE_BYTES stored bytes; a larger
 * chunk goes alone).  A free slot takes the chunks at the head of a queue
 * as long as each starts where the one before ends; a run's chunks are
 * queued together, so a run needing several adjacent chunks costs one
 * request.  A slot reads the disk tier's copies first, if there is one,
 * then asks for the bytes of the chunks still missing with ONE HTTP Range
 * request (from the first to the last; chunks between them that the disk
 * had are skipped).
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
 * Requests run on libcurl's multi interface driven by this source's
 * event_fd (an epoll set of curl's sockets, one timerfd for curl's
 * timeouts and the retries' backoff, and the worker's eventfd): nothing
 * blocks the pager's thread.  Disk reads, the checks and decompression,
 * and disk writes run on the worker (obj_worker.h).  Each chunk of a reply
 * is checked on its own: it reaches the cache only after its stored bytes
 * and, once decompressed, its pages match the manifest.  Good chunks are
 * installed as they pass; a damaged one is fetched again, alone (several
 * damaged ones of a reply: one request for their span), and never handed
 * out.  A chunk's pages are copied to every page waiting on it as soon as
 * it is installed, before anything else can evict it.  Timeouts, lost
 * connections, 429 and 5xx answers (S3's throttling and server errors)
 * are retried with backoff (100 ms doubling to 2 s); other answers (403,
 * 404, ...) fail at once; after `tries` attempts every page waiting on a
 * chunk still missing fails with the cause, its chunk and pages named.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <stddef.h>

#include "apfvm/abi.h"
#include "objstore/obj_disk.h"
#include "objstore/obj_http.h"
#include "objstore/obj_layout.h"
#include "objstore/obj_source.h"
#include "objstore/obj_worker.h"
#include "util/crc32c.h"

#define OBJ_FETCHES_MAX   32 /* fetch slots: requests (or disk reads) at once */
#define OBJ_DEMAND_SLOTS  8  /* of them, never held by bulk fetches */
#define OBJ_BULK_SLOTS    (OBJ_FETCHES_MAX - OBJ_DEMAND_SLOTS)
/* One request: at most 8 chunks and 1 MiB of stored bytes.  A demand page
 * that joins a bulk request then waits for little more than its own chunk
 * would take, the request stays well within its timeout on a slow link,
 * and a slot's checks fit the worker's queue. */
#define OBJ_RANGE_CHUNKS  8
#define OBJ_RANGE_BYTES   (1u << 20)
#define NONE              UINT32_MAX
#define QUEUED(prio)      (NONE - 1 - (uint32_t)(prio)) /* chunk_state.fetch */
#define BACKOFF_MIN_NS    (100ull * 1000000ull)
#define BACKOFF_MAX_NS    (2000ull * 1000000ull)

_Static_assert(OBJ_WORKER_QUEUE >= OBJ_FETCHES_MAX * OBJ_RANGE_CHUNKS,
	       "the worker takes a job for every chunk of every slot");
_Static_assert(OBJ_RANGE_CHUNKS <= 32, "fetch.need is a 32-bit mask");

struct obj_req {
	uint64_t page;
	void *buf, *cookie;
	uint64_t submit_ns;
	uint32_t next; /* the next request waiting on the same chunk */
	char why[400]; /* a failed completion's cause (source.h: valid until
			* the next call into the source, which may reuse it) */
};

struct chunk_state {
	uint32_t waiters; /* list of obj_req, NONE if empty */
	uint32_t fetch;   /* fetch slot, QUEUED(prio), or NONE */
	uint32_t cache;   /* cache slot, or NONE */
};

/* A fetch slot: chunk[0..n) lie back to back in KEY.data; need has bit k
 * while chunk[k] waits for its pages (its chunk_state.fetch is this slot);
 * the others are installed or were given up.  Its buffer holds the last
 * reply and is freed only once no job points into it (working == 0). */
struct fetch {
	bool used, active;  /* used: holds chunks; active: a transfer in curl */
	bool on_disk;       /* its jobs read the disk tier (else check a reply) */
	bool urgent;        /* a demand page waits: its checks go first */
	enum source_prio prio; /* the queue it came from: counts against
				* OBJ_BULK_SLOTS while bulk */
	unsigned n;
	uint32_t chunk[OBJ_RANGE_CHUNKS];
	uint32_t need;
	unsigned working;   /* of its jobs, at the worker */
	struct obj_job job[OBJ_RANGE_CHUNKS];
	unsigned attempts;  /* requests made for the chunks still needed */
	uint64_t due_ns;    /* !active and !working: when to try again */
	uint64_t start_ns;
	CURL *h;
	unsigned char *buf;
	size_t len, want;
	bool overflow, ignored_range, error_body;
	bool whole_ok;      /* the request is for the whole data object */
	char why[160];      /* the last attempt's failure */
};

struct cache_slot {
	uint64_t chunk;
	uint64_t lru;
	bool used;
	unsigned char *data;
};

struct obj_source {
	struct page_source base; /* first */
	struct obj_target target;
	struct obj_manifest m;
	struct source_net_options net;
	size_t chunk_bytes;
	int ep, timer;
	CURLM *multi;
	uint64_t curl_due_ns, armed_ns;
	struct chunk_state *chunks;
	struct obj_req req[SOURCE_QUEUE_MAX];
	uint32_t free_req[SOURCE_QUEUE_MAX];
	unsigned nfree_req;
	struct fetch fetches[OBJ_FETCHES_MAX];
	/* Chunks with waiters and no fetch slot yet, FIFO each:
	 * queue[SOURCE_DEMAND] and queue[SOURCE_BULK].  A queued chunk has a
	 * waiter, so the two hold at most SOURCE_QUEUE_MAX together. */
	uint32_t queue[2][SOURCE_QUEUE_MAX];
	unsigned q_head[2], q_count[2];
	struct cache_slot *cache;
	unsigned ncache;
	uint64_t lru_clock;
	uint64_t ewma_ns;
	struct obj_disk disk;    /* dirfd -1: no disk tier */
	struct obj_worker worker;
};

/* ---- completing pages ------------------------------------------------------- */

static void complete_page(struct obj_source *o, const struct obj_req *r, int err, const char *why,
			  const unsigned char *chunk_data)
{
	struct source_completion c = { .page = r->page, .buf = r->buf, .cookie = r->cookie,
				       .err = err, .why = why, .submit_ns = r->submit_ns };
	uint64_t first = (r->page / o->m.hdr.chunk_pages) * o->m.hdr.chunk_pages;

	if (!err) {
		if (chunk_data)
			memcpy(r->buf, chunk_data + (r->page - first) * APF_PAGE_SIZE, APF_PAGE_SIZE);
		else
			c.zero = true;
	}
	source_complete(&o->base, &c);
}

/* Completes every page waiting on chunk: from data, or failed (err, why). */
static void release_waiters(struct obj_source *o, uint64_t chunk, int err, const char *why,
			    const unsigned char *data)
{
	uint32_t i = o->chunks[chunk].waiters;

	while (i != NONE) {
		uint32_t next = o->req[i].next;
		if (why)
			snprintf(o->req[i].why, sizeof(o->req[i].why), "%s", why);
		complete_page(o, &o->req[i], err, why ? o->req[i].why : NULL, data);
		o->free_req[o->nfree_req++] = i;
		i = next;
	}
	o->chunks[chunk].waiters = NONE;
}

/* ---- the cache -------------------------------------------------------------- */

/* Installs chunk's checked pages (taking the buffer) in the least
 * recently used slot; returns them. */
static const unsigned char *cache_put(struct obj_source *o, uint64_t chunk, unsigned char *pages)
{
	struct cache_slot *victim = NULL;

	for (unsigned i = 0; i < o->ncache; i++) {
		struct cache_slot *s = &o->cache[i];
		if (!s->used) {
			victim = s;
			break;
		}
		if (!victim || s->lru < victim->lru)
			victim = s;
	}
	if (victim->used)
		o->chunks[victim->chunk].cache = NONE;
	free(victim->data);
	victim->data = pages;
	victim->used = true;
	victim->chunk = chunk;
	victim->lru = ++o->lru_clock;
	o->chunks[chunk].cache = (uint32_t)(victim - o->cache);
	return pages;
}

/* ---- the queues ---------------------------------------------------------------- */

static void queue_push(struct obj_source *o, enum source_prio q, uint32_t chunk)
{
	if (o->q_count[0] + o->q_count[1] == SOURCE_QUEUE_MAX) {
		/* Cannot happen (a queued chunk has a waiter); a lost chunk
		 * would hang a vCPU: the source fails instead. */
		source_set_error(&o->base, -EOVERFLOW, "object fetch queue overflow");
		return;
	}
	o->queue[q][(o->q_head[q] + o->q_count[q]++) % SOURCE_QUEUE_MAX] = chunk;
	o->chunks[chunk].fetch = QUEUED(q);
}

static uint32_t queue_pop(struct obj_source *o, enum source_prio q)
{
	uint32_t chunk = o->queue[q][o->q_head[q]];

	o->q_head[q] = (o->q_head[q] + 1) % SOURCE_QUEUE_MAX;
	o->q_count[q]--;
	return chunk;
}

/* A demand page needs chunk, queued as bulk: it moves to the demand
 * queue's tail, the bulk queue closing up behind it (at most
 * SOURCE_QUEUE_MAX entries moved, in memory). */
static void promote(struct obj_source *o, uint32_t chunk)
{
	uint32_t *q = o->queue[SOURCE_BULK];
	unsigned h = o->q_head[SOURCE_BULK], n = o->q_count[SOURCE_BULK], i = 0;

	while (i < n && q[(h + i) % SOURCE_QUEUE_MAX] != chunk)
		i++;
	if (i == n)
		return; /* not there: cannot happen */
	for (; i + 1 < n; i++)
		q[(h + i) % SOURCE_QUEUE_MAX] = q[(h + i + 1) % SOURCE_QUEUE_MAX];
	o->q_count[SOURCE_BULK]--;
	queue_push(o, SOURCE_DEMAND, chunk);
}

/* ---- fetching chunks --------------------------------------------------------- */

static size_t on_body(char *data, size_t sz, size_t n, void *arg)
{
	struct fetch *f = arg;
	size_t len = sz * n;
	long http = 0;

	/* Only a 206 (or the whole object when that is what was asked for)
	 * carries the chunks; an error's body is not read at all (the status
	 * says what went wrong: a long body must not run into the timeout),
	 * and a 200 that ignores the Range is refused before its bytes are
	 * taken. */
	curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &http);
	if (http != 206 && http != 200) {
		f->error_body = true;
		return 0;
	}
	if (http == 200 && !f->whole_ok) {
		f->ignored_range = true;
		return 0;
	}
	if (len > f->want - f->len) {
		f->overflow = true;
		return 0; /* more than asked for: the transfer fails */
	}
	memcpy(f->buf + f->len, data, len);
	f->len += len;
	return len;
}

static void rearm(struct obj_source *o);

/* The first and the last of f's chunks still needed (f->need != 0). */
static void need_span(const struct fetch *f, unsigned *lo, unsigned *hi)
{
	*lo = (unsigned)__builtin_ctz(f->need);
	*hi = 31u - (unsigned)__builtin_clz(f->need);
}

/* Starts (or starts again) the transfer of f's chunks still needed: one
 * Range request for the bytes from the first of them to the end of the
 * last (they lie back to back; chunks between them already installed
 * come along and are skipped). */
static void start_transfer(struct obj_source *o, struct fetch *f)
{
	unsigned lo, hi;
	char range[64];

	need_span(f, &lo, &hi);
	const struct obj_chunk *a = &o->m.chunks[f->chunk[lo]], *b = &o->m.chunks[f->chunk[hi]];
	uint64_t from = a->offset, to = b->offset + b->stored_len;
	free(f->buf);
	f->want = (size_t)(to - from); /* > 0: a stored chunk has bytes */
	if (!(f->buf = malloc(f->want))) {
		source_set_error(&o->base, -ENOMEM, "out of memory for a chunk");
		return;
	}
	curl_easy_reset(f->h);
	obj_target_setup(&o->target, f->h, o->target.data_url, o->net.timeout_ns);
	snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)from,
		 (unsigned long long)(to - 1));
	curl_easy_setopt(f->h, CURLOPT_RANGE, range);
	curl_easy_setopt(f->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(f->h, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(f->h, CURLOPT_PRIVATE, f);
	f->len = 0;
	f->overflow = f->ignored_range = f->error_body = false;
	f->whole_ok = from == 0 && to == o->m.hdr.data_size;
	f->active = true;
	f->start_ns = source_now_ns();
	CURLMcode mc = curl_multi_add_handle(o->multi, f->h);
	if (mc != CURLM_OK) {
		f->active = false;
		source_set_error(&o->base, -EIO, "libcurl refused a transfer");
	}
}

/* Gives the worker job k of f (filled in by the caller); false (the
 * source failed) if it cannot. */
static bool to_worker(struct obj_source *o, struct fetch *f, unsigned k)
{
	struct obj_job *j = &f->job[k];

	j->tag = (uint32_t)(f - o->fetches) * OBJ_RANGE_CHUNKS + k;
	j->urgent = f->urgent;
	f->working++;
	if (obj_worker_submit(&o->worker, j)) {
		f->working--;
		source_set_error(&o->base, -EIO, "the object source's worker queue is full");
		return false;
	}
	return true;
}

/* Fills free slot f with the chunks at the head of queue q that lie back
 * to back in KEY.data, within one request's bounds. */
static void take_chunks(struct obj_source *o, struct fetch *f, enum source_prio q)
{
	uint32_t slot = (uint32_t)(f - o->fetches);
	uint64_t end = 0, bytes = 0;

	f->n = 0;
	while (o->q_count[q] && f->n < OBJ_RANGE_CHUNKS) {
		const struct obj_chunk *c = &o->m.chunks[o->queue[q][o->q_head[q]]];
		if (f->n && (c->offset != end || bytes + c->stored_len > OBJ_RANGE_BYTES))
			break;
		uint32_t chunk = queue_pop(o, q);
		o->chunks[chunk].fetch = slot;
		f->chunk[f->n++] = chunk;
		end = c->offset + c->stored_len;
		bytes += c->stored_len;
	}
	f->need = (1u << f->n) - 1;
}

/* Starts free slot f on the chunks at the head of queue q: the disk
 * tier's copies first (read and checked by the worker), else the
 * transfer.  Never completes anything itself. */
static void start_slot(struct obj_source *o, struct fetch *f, enum source_prio q)
{
	take_chunks(o, f, q);
	f->used = true;
	f->prio = q;
	f->urgent = q == SOURCE_DEMAND;
	f->attempts = 0;
	f->working = 0;
	f->on_disk = o->disk.dirfd >= 0;
	if (!f->on_disk) {
		start_transfer(o, f);
		return;
	}
	for (unsigned k = 0; k < f->n; k++) {
		f->job[k] = (struct obj_job){ .chunk = f->chunk[k], .from_disk = true };
		if (!to_worker(o, f, k))
			return;
	}
}

static void free_slot(struct obj_source *o, struct fetch *f)
{
	for (unsigned k = 0; k < f->n; k++)
		if (f->need & (1u << k))
			o->chunks[f->chunk[k]].fetch = NONE;
	free(f->buf);
	f->buf = NULL;
	f->n = 0;
	f->need = 0;
	f->used = f->active = false;
}

/* Starts queued chunks while slots are free: every queued demand chunk
 * before any bulk one, bulk ones within OBJ_BULK_SLOTS.  A loop, not a
 * recursion. */
static void start_pending(struct obj_source *o)
{
	for (;;) {
		struct fetch *free_f = NULL;
		unsigned bulk = 0;
		for (unsigned i = 0; i < OBJ_FETCHES_MAX; i++) {
			struct fetch *f = &o->fetches[i];
			if (!f->used && !free_f)
				free_f = f;
			bulk += f->used && f->prio == SOURCE_BULK;
		}
		if (free_f && o->q_count[SOURCE_DEMAND])
			start_slot(o, free_f, SOURCE_DEMAND);
		else if (free_f && o->q_count[SOURCE_BULK] && bulk < OBJ_BULK_SLOTS)
			start_slot(o, free_f, SOURCE_BULK);
		else
			return;
	}
}

/* An attempt at f's chunks failed (f->why says why): tried again after a
 * backoff when `retry` and attempts remain, else every page waiting on a
 * chunk still needed fails, the chunk named.  http: the answer's status,
 * for the pages' error. */
static void attempt_failed(struct obj_source *o, struct fetch *f, bool retry, long http)
{
	if (retry && f->attempts < o->net.tries) {
		uint64_t b = BACKOFF_MIN_NS << (f->attempts - 1 < 5 ? f->attempts - 1 : 5);
		f->due_ns = source_now_ns() + (b < BACKOFF_MAX_NS ? b : BACKOFF_MAX_NS);
		o->base.retries++;
		return;
	}
	int err = http == 404 ? -ENOENT : http == 403 ? -EACCES : -EIO;
	for (unsigned k = 0; k < f->n; k++) {
		if (!(f->need & (1u << k)))
			continue;
		char why[400];
		uint64_t chunk = f->chunk[k], first = chunk * o->m.hdr.chunk_pages;
		snprintf(why, sizeof(why), "%.100s: chunk %llu (pages %llu-%llu): %.150s (%u %s)",
			 o->target.desc, (unsigned long long)chunk, (unsigned long long)first,
			 (unsigned long long)(first + obj_chunk_npages(&o->m.hdr, chunk) - 1), f->why,
			 f->attempts, f->attempts == 1 ? "try" : "tries");
		f->need &= ~(1u << k);
		o->chunks[chunk].fetch = NONE;
		release_waiters(o, chunk, err, why, NULL);
	}
	free_slot(o, f);
}

/* Chunk k of f checked out: into the cache, its pages handed out. */
static void install(struct obj_source *o, struct fetch *f, unsigned k)
{
	uint32_t chunk = f->chunk[k];

	if (!f->job[k].from_disk) {
		uint64_t ns = source_now_ns() - f->start_ns;
		o->ewma_ns = o->ewma_ns ? (o->ewma_ns * 7 + ns) / 8 : ns;
	}
	const unsigned char *pages = cache_put(o, chunk, f->job[k].pages);
	f->job[k].pages = NULL;
	f->need &= ~(1u << k);
	o->chunks[chunk].fetch = NONE;
	release_waiters(o, chunk, 0, NULL, pages);
}

/* The worker is done with job k of f: its chunk installed and handed
 * out, or still needed (from the disk: absent or damaged; fetched:
 * damaged).  Once every job of f is back, the chunks still needed are
 * fetched (after the disk), or tried again (after a reply). */
static void checked(struct obj_source *o, struct fetch *f, unsigned k)
{
	const struct obj_job *j = &f->job[k];

	f->working--;
	if (j->pages) {
		install(o, f, k);
	} else if (j->bad) {
		o->base.corrupt++;
		if (!j->from_disk)
			snprintf(f->why, sizeof(f->why), "%s", j->bad);
	}
	if (f->working)
		return;
	if (!f->need) {
		free_slot(o, f);
	} else if (f->on_disk) {
		f->on_disk = false;
		start_transfer(o, f);
	} else {
		attempt_failed(o, f, true, 0);
	}
}

static void drain_worker(struct obj_source *o)
{
	struct obj_job *j;

	obj_worker_ack(&o->worker);
	while ((j = obj_worker_reap(&o->worker)))
		checked(o, &o->fetches[j->tag / OBJ_RANGE_CHUNKS], j->tag % OBJ_RANGE_CHUNKS);
}

/* f's reply is complete: each chunk still needed goes to the worker with
 * its bytes in f->buf (which stays until every job is back). */
static void to_checks(struct obj_source *o, struct fetch *f)
{
	unsigned lo, hi;

	need_span(f, &lo, &hi);
	uint64_t from = o->m.chunks[f->chunk[lo]].offset;
	for (unsigned k = lo; k <= hi; k++) {
		const struct obj_chunk *c = &o->m.chunks[f->chunk[k]];
		if (!(f->need & (1u << k)))
			continue;
		f->job[k] = (struct obj_job){ .chunk = f->chunk[k], .stored = f->buf + (c->offset - from),
					      .stored_len = c->stored_len };
		if (!to_worker(o, f, k))
			return;
	}
}

static void transfer_done(struct obj_source *o, struct fetch *f, CURLcode cc)
{
	long http = 0;
	bool retry;

	curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &http);
	curl_multi_remove_handle(o->multi, f->h);
	f->active = false;
	f->attempts++;
	if (cc == CURLE_OK && (http == 206 || (http == 200 && f->whole_ok))) {
		if (f->len == f->want) {
			to_checks(o, f); /* the checks are the worker's */
			return;
		}
		snprintf(f->why, sizeof(f->why), "short reply (%zu of %zu bytes)", f->len, f->want);
		retry = true;
	} else if (cc == CURLE_WRITE_ERROR && f->overflow) {
		snprintf(f->why, sizeof(f->why), "reply longer than asked for (%zu bytes)", f->want);
		retry = true;
	} else if (f->ignored_range) {
		snprintf(f->why, sizeof(f->why), "HTTP 200 with the whole object: the server "
			 "ignored the Range request");
		retry = false;
	} else {
		retry = obj_result(f->error_body ? CURLE_OK : cc, http, f->why, sizeof(f->why));
	}
	attempt_failed(o, f, retry, http);
}

static void drain_curl(struct obj_source *o)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(o->multi, &left))) {
		struct fetch *f = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
		if (f)
			transfer_done(o, f, msg->data.result);
	}
}

/* ---- curl's sockets and timer, in our epoll set -------------------------- */

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct obj_source *o = userp;
	struct epoll_event ev = { .data.fd = s };
	(void)easy;
	(void)socketp;

	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(o->ep, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (epoll_ctl(o->ep, EPOLL_CTL_MOD, s, &ev) < 0 &&
	    (errno != ENOENT || epoll_ctl(o->ep, EPOLL_CTL_ADD, s, &ev) < 0))
		source_set_error(&o->base, -errno, "cannot watch a connection");
	return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct obj_source *o = userp;
	(void)multi;

	o->curl_due_ns = timeout_ms < 0 ? 0 : source_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	if (timeout_ms == 0)
		o->curl_due_ns = 1; /* at once: any time in the past */
	rearm(o);
	return 0;
}

static void rearm(struct obj_source *o)
{
	uint64_t due = o->curl_due_ns;

	for (unsigned i = 0; i < OBJ_FETCHES_MAX; i++) {
		const struct fetch *f = &o->fetches[i];
		if (f->used && !f->active && !f->working && (!due || f->due_ns < due))
			due = f->due_ns;
	}
	if (due == o->armed_ns)
		return;
	struct itimerspec its = { .it_value = { .tv_sec = (time_t)(due / 1000000000ull),
						.tv_nsec = (long)(due % 1000000000ull) } };
	if (timerfd_settime(o->timer, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		source_set_error(&o->base, -errno, "cannot arm the fetch timer");
		return;
	}
	o->armed_ns = due;
}

static void obj_on_event(struct page_source *s)
{
	struct obj_source *o = (struct obj_source *)s;
	struct epoll_event evs[16];
	int running, n = epoll_wait(o->ep, evs, 16, 0);

	for (int k = 0; k < n; k++) {
		if (evs[k].data.fd == o->worker.event_fd) {
			drain_worker(o);
		} else if (evs[k].data.fd == o->timer) {
			uint64_t ticks, now = source_now_ns();
			if (read(o->timer, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
				source_set_error(s, -errno, "cannot read the fetch timer");
			o->armed_ns = 0;
			for (unsigned i = 0; i < OBJ_FETCHES_MAX; i++) {
				struct fetch *f = &o->fetches[i];
				if (f->used && !f->active && !f->working && f->due_ns <= now)
					start_transfer(o, f);
			}
			if (o->curl_due_ns && o->curl_due_ns <= now) {
				o->curl_due_ns = 0;
				curl_multi_socket_action(o->multi, CURL_SOCKET_TIMEOUT, 0, &running);
			}
		} else {
			int flags = (evs[k].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
				    (evs[k].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
				    (evs[k].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
			curl_multi_socket_action(o->multi, evs[k].data.fd, flags, &running);
		}
		drain_curl(o);
	}
	start_pending(o);
	rearm(o);
}

/* ---- the page source ops ------------------------------------------------------ */

static bool at_hand(const struct obj_source *o, uint64_t chunk)
{
	return o->m.chunks[chunk].flags == OBJ_CHUNK_ZERO || o->chunks[chunk].cache != NONE;
}

/* Page `page` joins its chunk: completed at once if the chunk is at
 * hand, else it waits on it (a free obj_req taken), and the chunk is
 * queued at prio if nothing fetches it yet.  A demand page moves a chunk
 * queued as bulk to the demand queue, and joins a bulk fetch as it is
 * (making its checks urgent). */
static void add_page(struct obj_source *o, uint64_t page, void *buf, void *cookie,
		     enum source_prio prio, uint64_t now)
{
	uint64_t chunk = page / o->m.hdr.chunk_pages;
	struct chunk_state *cs = &o->chunks[chunk];
	struct obj_req r = { .page = page, .buf = buf, .cookie = cookie, .submit_ns = now };

	if (o->m.chunks[chunk].flags == OBJ_CHUNK_ZERO) {
		complete_page(o, &r, 0, NULL, NULL);
		return;
	}
	if (cs->cache != NONE) {
		o->cache[cs->cache].lru = ++o->lru_clock;
		complete_page(o, &r, 0, NULL, o->cache[cs->cache].data);
		return;
	}
	uint32_t i = o->free_req[--o->nfree_req];
	r.next = cs->waiters;
	o->req[i] = r;
	cs->waiters = i;
	if (cs->fetch == NONE)
		queue_push(o, prio, (uint32_t)chunk);
	else if (prio == SOURCE_DEMAND && cs->fetch == QUEUED(SOURCE_BULK))
		promote(o, (uint32_t)chunk);
	else if (prio == SOURCE_DEMAND && cs->fetch < OBJ_FETCHES_MAX)
		o->fetches[cs->fetch].urgent = true;
}

/* Pages [page, page + n) at prio: their chunks queued in order, so that
 * adjacent ones start as one request. */
static int obj_submit_run(struct page_source *s, uint64_t page, unsigned n, void *const *bufs,
			  void *const *cookies, enum source_prio prio)
{
	struct obj_source *o = (struct obj_source *)s;
	uint64_t now = source_now_ns();
	unsigned waiting = 0;

	if (!n || n > SOURCE_RUN_MAX || page >= s->npages || n > s->npages - page ||
	    (prio != SOURCE_DEMAND && prio != SOURCE_BULK))
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		waiting += !at_hand(o, (page + i) / o->m.hdr.chunk_pages);
	if (waiting > o->nfree_req)
		return -EAGAIN; /* none started */
	for (unsigned i = 0; i < n; i++)
		add_page(o, page + i, bufs[i], cookies[i], prio, now);
	start_pending(o);
	rearm(o);
	return 0;
}

static int obj_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	if (page >= s->npages)
		return -ERANGE;
	return obj_submit_run(s, page, 1, &buf, &cookie, SOURCE_DEMAND);
}

static uint64_t obj_expected_ns(struct page_source *s, uint64_t page)
{
	struct obj_source *o = (struct obj_source *)s;
	uint64_t chunk = page / o->m.hdr.chunk_pages;

	if (o->m.chunks[chunk].flags == OBJ_CHUNK_ZERO || o->chunks[chunk].cache != NONE)
		return 0; /* at hand: a copy */
	return o->ewma_ns;
}

static void obj_destroy(struct page_source *s)
{
	struct obj_source *o = (struct obj_source *)s;

	obj_worker_stop(&o->worker); /* first: it may hold fetches' jobs */
	for (unsigned i = 0; i < OBJ_FETCHES_MAX; i++) {
		struct fetch *f = &o->fetches[i];
		if (f->active)
			curl_multi_remove_handle(o->multi, f->h);
		curl_easy_cleanup(f->h);
		free(f->buf); /* after the worker: its jobs point into it */
		for (unsigned k = 0; k < OBJ_RANGE_CHUNKS; k++)
			free(f->job[k].pages); /* checked, not yet taken */
	}
	if (o->multi)
		curl_multi_cleanup(o->multi);
	for (unsigned i = 0; o->cache && i < o->ncache; i++)
		free(o->cache[i].data);
	free(o->cache);
	free(o->chunks);
	obj_disk_close(&o->disk);
	obj_manifest_free(&o->m);
	obj_target_free(&o->target);
	if (o->timer >= 0)
		close(o->timer);
	if (o->ep >= 0)
		close(o->ep);
	free(o);
}

/* The manifest, in two reads so that nothing larger than it says it is
 * gets buffered: its header (a Range request), checked, then the whole of
 * the size the header gives. */
static int read_manifest(struct obj_source *o, const struct source_net_options *net, void **wire,
			 size_t *wlen, struct apf_err *e)
{
	struct obj_manifest_hdr h;
	void *head = NULL;
	size_t hlen = 0;
	struct apf_err pe;
	int rc;

	if ((rc = obj_get(&o->target, o->target.manifest_url, sizeof(h), true, net->timeout_ns,
			  net->tries, &head, &hlen, e)))
		return rc;
	if (hlen < sizeof(h)) {
		free(head);
		return apf_fail(e, -EPROTO, "%s: not an apfvm manifest (%zu bytes)", o->target.desc,
				hlen);
	}
	memcpy(&h, head, sizeof(h));
	free(head);
	if ((rc = obj_manifest_hdr_check(&h, o->target.desc, &pe)))
		return apf_fail(e, rc, "%s", pe.msg);
	return obj_get(&o->target, o->target.manifest_url, obj_manifest_size(h.nchunks), false,
		       net->timeout_ns, net->tries, wire, wlen, e);
}

static const struct page_source_ops obj_ops = {
	.name = "object",
	.submit = obj_submit,
	.submit_run = obj_submit_run,
	.on_event = obj_on_event,
	.expected_ns = obj_expected_ns,
	.destroy = obj_destroy,
};

int source_object_open(const char *spec, uint64_t lazy_bytes, const struct source_net_options *net,
		       struct page_source **out, struct apf_err *e)
{
	const struct obj_store_options *so = &net->store;
	struct obj_source *o = calloc(1, sizeof(*o));
	void *wire = NULL;
	size_t wlen;
	int rc;

	if (!o)
		return apf_fail(e, -ENOMEM, "out of memory");
	o->ep = o->timer = -1;
	o->disk.dirfd = o->disk.rootfd = -1;
	o->net = *net;
	if ((rc = obj_http_init(e)) || (rc = obj_target_parse(spec, so, &o->target, e)))
		goto fail;
	uint64_t t0 = source_now_ns();
	if ((rc = read_manifest(o, net, &wire, &wlen, e)))
		goto fail;
	o->ewma_ns = source_now_ns() - t0;
	struct apf_err pe;
	if ((rc = obj_manifest_parse(wire, wlen, o->target.desc, &o->m, &pe))) {
		rc = apf_fail(e, rc, "%s", pe.msg);
		goto fail;
	}
	if (o->m.hdr.npages * APF_PAGE_SIZE < lazy_bytes) {
		rc = apf_fail(e, -EINVAL, "%s serves %llu bytes, less than the %llu asked for "
			      "(run's --lazy, fetch's --size)", o->target.desc,
			      (unsigned long long)(o->m.hdr.npages * APF_PAGE_SIZE),
			      (unsigned long long)lazy_bytes);
		goto fail;
	}
	if (so && so->cache_dir) {
		struct sha256 id;
		sha256(wire, wlen, &id); /* two images never share a folder */
		if ((rc = obj_disk_open(&o->disk, so->cache_dir, &id, so->cache_dir_bytes, e)))
			goto fail;
	}
	o->chunk_bytes = (size_t)o->m.hdr.chunk_pages * APF_PAGE_SIZE;
	uint64_t cache_bytes = so && so->cache_bytes ? so->cache_bytes : OBJ_CACHE_DEFAULT_BYTES;
	o->ncache = (unsigned)(cache_bytes / o->chunk_bytes < 4 ? 4 : cache_bytes / o->chunk_bytes);
	if (o->ncache > o->m.hdr.nchunks)
		o->ncache = (unsigned)o->m.hdr.nchunks;
	o->chunks = malloc(o->m.hdr.nchunks * sizeof(*o->chunks));
	o->cache = calloc(o->ncache, sizeof(*o->cache)); /* data comes with each chunk */
	o->multi = curl_multi_init();
	o->ep = epoll_create1(EPOLL_CLOEXEC);
	o->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!o->chunks || !o->cache || !o->multi || o->ep < 0 || o->timer < 0) {
		rc = apf_fail(e, -ENOMEM, "cannot set up the object source: out of memory or fds");
		goto fail;
	}
	if ((rc = obj_worker_start(&o->worker, &o->m, &o->disk))) {
		rc = apf_fail(e, rc, "cannot start the object source's worker: %s", strerror(-rc));
		goto fail;
	}
	for (unsigned i = 0; i < OBJ_FETCHES_MAX; i++)
		if (!(o->fetches[i].h = curl_easy_init())) {
			rc = apf_fail(e, -ENOMEM, "out of memory");
			goto fail;
		}
	for (uint64_t i = 0; i < o->m.hdr.nchunks; i++)
		o->chunks[i] = (struct chunk_state){ .waiters = NONE, .fetch = NONE, .cache = NONE };
	for (uint32_t i = 0; i < SOURCE_QUEUE_MAX; i++)
		o->free_req[o->nfree_req++] = SOURCE_QUEUE_MAX - 1 - i;
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = o->timer };
	struct epoll_event wev = { .events = EPOLLIN, .data.fd = o->worker.event_fd };
	if (epoll_ctl(o->ep, EPOLL_CTL_ADD, o->timer, &ev) < 0 ||
	    epoll_ctl(o->ep, EPOLL_CTL_ADD, o->worker.event_fd, &wev) < 0) {
		rc = apf_fail(e, -errno, "epoll: %s", strerror(errno));
		goto fail;
	}
	curl_multi_setopt(o->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(o->multi, CURLMOPT_SOCKETDATA, o);
	curl_multi_setopt(o->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(o->multi, CURLMOPT_TIMERDATA, o);
	curl_multi_setopt(o->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)OBJ_FETCHES_MAX);
	/* Keep a connection per slot between requests: curl sizes its cache
	 * by the handles added at the moment, which here come and go. */
	curl_multi_setopt(o->multi, CURLMOPT_MAXCONNECTS, (long)OBJ_FETCHES_MAX);
	free(wire);
	source_init(&o->base, &obj_ops, o->m.hdr.npages);
	o->base.event_fd = o->ep;
	o->base.pattern = o->m.hdr.pattern;
	o->base.seed = o->m.hdr.seed;
	snprintf(o->base.desc, sizeof(o->base.desc), "%.100s (seed %llu)", o->target.desc,
		 (unsigned long long)o->m.hdr.seed);
	*out = &o->base;
	return 0;
fail:
	free(wire);
	obj_destroy(&o->base);
	return rc;
}
