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
 * The fetches are obj_fetch.h's: fetch slots of adjacent chunks, demand
 * before bulk, the disk tier, the worker's checks, retries.  A chunk
 * comes back from there checked against the manifest, or failed with its
 * cause.  A checked chunk goes into the cache and its pages are copied to
 * every page waiting on it at once, before anything else can evict it; a
 * failed one fails every page waiting on it with the cause, its chunk and
 * pages named.  Nothing else reaches a page: a damaged chunk is never
 * handed out.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apfvm/abi.h"
#include "objstore/obj_fetch.h"
#include "objstore/obj_http.h"
#include "objstore/obj_layout.h"
#include "objstore/obj_source.h"

#define NONE UINT32_MAX

struct obj_req {
	uint64_t page;
	void *buf, *cookie;
	uint64_t submit_ns;
	uint32_t next; /* the next request waiting on the same chunk */
	char why[400]; /* a failed completion's cause (source.h: valid until
			* the next call into the source, which may reuse it) */
};

/* A chunk's pages waiting, and its place in the cache.  Whether it is
 * being fetched is the fetcher's to know: it is while it has waiters. */
struct chunk_state {
	uint32_t waiters; /* list of obj_req, NONE if empty */
	uint32_t cache;   /* cache slot, or NONE */
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
	struct obj_fetcher *fetch; /* NULL until set up */
	struct chunk_state *chunks;
	struct obj_req req[SOURCE_QUEUE_MAX];
	uint32_t free_req[SOURCE_QUEUE_MAX];
	unsigned nfree_req;
	struct cache_slot *cache;
	unsigned ncache;
	uint64_t lru_clock;
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

/* obj_chunk_done_fn: the fetcher lets go of chunk.  Its checked pages go
 * into the cache and to every page waiting on it; or every page waiting
 * fails with the cause. */
static void chunk_done(struct page_source *s, uint32_t chunk, unsigned char *pages, int err,
		       const char *why)
{
	struct obj_source *o = (struct obj_source *)s;

	if (pages)
		release_waiters(o, chunk, 0, NULL, cache_put(o, chunk, pages));
	else
		release_waiters(o, chunk, err, why, NULL);
}

/* ---- the page source ops ------------------------------------------------------ */

static bool at_hand(const struct obj_source *o, uint64_t chunk)
{
	return o->m.chunks[chunk].flags == OBJ_CHUNK_ZERO || o->chunks[chunk].cache != NONE;
}

/* Page `page` joins its chunk: completed at once if the chunk is at
 * hand, else it waits on it (a free obj_req taken) and the fetcher is
 * told (obj_fetch_want: queued at prio, or joined). */
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
	obj_fetch_want(o->fetch, (uint32_t)chunk, prio);
}

/* Pages [page, page + n) at prio: their chunks wanted in order, so that
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
	obj_fetch_start(o->fetch);
	return 0;
}

static int obj_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	if (page >= s->npages)
		return -ERANGE;
	return obj_submit_run(s, page, 1, &buf, &cookie, SOURCE_DEMAND);
}

static void obj_on_event(struct page_source *s)
{
	obj_fetch_on_event(((struct obj_source *)s)->fetch);
}

static uint64_t obj_expected_ns(struct page_source *s, uint64_t page)
{
	struct obj_source *o = (struct obj_source *)s;

	if (at_hand(o, page / o->m.hdr.chunk_pages))
		return 0; /* a copy */
	return obj_fetch_expected_ns(o->fetch);
}

static void obj_destroy(struct page_source *s)
{
	struct obj_source *o = (struct obj_source *)s;

	obj_fetch_close(o->fetch); /* first: it borrows the manifest and target */
	for (unsigned i = 0; o->cache && i < o->ncache; i++)
		free(o->cache[i].data);
	free(o->cache);
	free(o->chunks);
	obj_manifest_free(&o->m);
	obj_target_free(&o->target);
	free(o);
}

static const struct page_source_ops obj_ops = {
	.name = "object",
	.submit = obj_submit,
	.submit_run = obj_submit_run,
	.on_event = obj_on_event,
	.expected_ns = obj_expected_ns,
	.destroy = obj_destroy,
};

/* ---- opening ------------------------------------------------------------------ */

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

/* Reads the manifest into o->m (*wire: its bytes, the caller's to free;
 * *read_ns: how long the reads took) and checks that the image holds
 * lazy_bytes. */
static int load_manifest(struct obj_source *o, const struct source_net_options *net,
			 uint64_t lazy_bytes, void **wire, size_t *wlen, uint64_t *read_ns,
			 struct apf_err *e)
{
	uint64_t t0 = source_now_ns();
	struct apf_err pe;
	int rc;

	if ((rc = read_manifest(o, net, wire, wlen, e)))
		return rc;
	*read_ns = source_now_ns() - t0;
	if ((rc = obj_manifest_parse(*wire, *wlen, o->target.desc, &o->m, &pe)))
		return apf_fail(e, rc, "%s", pe.msg);
	if (o->m.hdr.npages * APF_PAGE_SIZE < lazy_bytes)
		return apf_fail(e, -EINVAL, "%s serves %llu bytes, less than the %llu asked for "
				"(run's --lazy, fetch's --size)", o->target.desc,
				(unsigned long long)(o->m.hdr.npages * APF_PAGE_SIZE),
				(unsigned long long)lazy_bytes);
	return 0;
}

/* The cache (so->cache_bytes of chunks, at least 4 and at most the
 * image's), every chunk's state, the free requests. */
static int set_up_chunks(struct obj_source *o, const struct obj_store_options *so,
			 struct apf_err *e)
{
	size_t chunk_bytes = (size_t)o->m.hdr.chunk_pages * APF_PAGE_SIZE;
	uint64_t cache_bytes = so && so->cache_bytes ? so->cache_bytes : OBJ_CACHE_DEFAULT_BYTES;

	o->ncache = (unsigned)(cache_bytes / chunk_bytes < 4 ? 4 : cache_bytes / chunk_bytes);
	if (o->ncache > o->m.hdr.nchunks)
		o->ncache = (unsigned)o->m.hdr.nchunks;
	o->chunks = malloc(o->m.hdr.nchunks * sizeof(*o->chunks));
	o->cache = calloc(o->ncache, sizeof(*o->cache)); /* data comes with each chunk */
	if (!o->chunks || !o->cache)
		return apf_fail(e, -ENOMEM, "cannot set up the object source: out of memory");
	for (uint64_t i = 0; i < o->m.hdr.nchunks; i++)
		o->chunks[i] = (struct chunk_state){ .waiters = NONE, .cache = NONE };
	for (uint32_t i = 0; i < SOURCE_QUEUE_MAX; i++)
		o->free_req[o->nfree_req++] = SOURCE_QUEUE_MAX - 1 - i;
	return 0;
}

/* The fetcher: its first guess of a fetch's time the manifest's reads,
 * its disk tier (if any) in a folder named after the manifest's bytes,
 * so that two images never share one. */
static int start_fetcher(struct obj_source *o, const struct source_net_options *net,
			 const void *wire, size_t wlen, uint64_t read_ns, struct apf_err *e)
{
	struct sha256 id;
	struct obj_fetch_setup setup = { .src = &o->base, .m = &o->m, .target = &o->target,
					 .net = net, .first_ns = read_ns, .done = chunk_done };

	if (net->store.cache_dir) {
		sha256(wire, wlen, &id);
		setup.manifest_id = &id;
	}
	return obj_fetch_open(&setup, &o->fetch, e);
}

int source_object_open(const char *spec, uint64_t lazy_bytes, const struct source_net_options *net,
		       struct page_source **out, struct apf_err *e)
{
	struct obj_source *o = calloc(1, sizeof(*o));
	void *wire = NULL;
	size_t wlen = 0;
	uint64_t read_ns = 0;
	int rc;

	if (!o)
		return apf_fail(e, -ENOMEM, "out of memory");
	if ((rc = obj_http_init(e)) || (rc = obj_target_parse(spec, &net->store, &o->target, e)) ||
	    (rc = load_manifest(o, net, lazy_bytes, &wire, &wlen, &read_ns, e)) ||
	    (rc = set_up_chunks(o, &net->store, e)) ||
	    (rc = start_fetcher(o, net, wire, wlen, read_ns, e))) {
		free(wire);
		obj_destroy(&o->base);
		return rc;
	}
	free(wire);
	source_init(&o->base, &obj_ops, o->m.hdr.npages);
	o->base.event_fd = obj_fetch_event_fd(o->fetch);
	o->base.pattern = o->m.hdr.pattern;
	o->base.seed = o->m.hdr.seed;
	snprintf(o->base.desc, sizeof(o->base.desc), "%.100s (seed %llu)", o->target.desc,
		 (unsigned long long)o->m.hdr.seed);
	*out = &o->base;
	return 0;
}
