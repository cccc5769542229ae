/*
 * One fetch slot's work (obj_slot.h says what the fetcher may count on).
 *
 * A slot with a disk tier gives the worker a job per chunk to read and
 * check the disk's copy; the chunks that were not there, or damaged, then
 * come with ONE HTTP Range request, from the first of them to the end of
 * the last (chunks between them already handed over come along and are
 * skipped).  Only a 206 carries the chunks (or a 200 when the whole data
 * object was asked for): an error's body is not read at all, and a reply
 * longer than asked for is cut off.  Each chunk of a reply is checked on
 * the worker on its own: it reaches the source only after its stored
 * bytes and, once decompressed, its pages match the manifest.  Good
 * chunks are handed over as they pass; a damaged one is fetched again,
 * alone (several damaged ones of a reply: one request for their span),
 * and never handed out.  Timeouts, lost connections, 429 and 5xx answers
 * (S3's throttling and server errors), short replies and damaged chunks
 * are retried with backoff (100 ms doubling to 2 s); other answers (403,
 * 404, ...) fail at once; after `tries` attempts every chunk still needed
 * fails with the cause, the chunk and its pages named.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objstore/obj_slot.h"

#define BACKOFF_MIN_NS (100ull * 1000000ull)
#define BACKOFF_MAX_NS (2000ull * 1000000ull)

_Static_assert(OBJ_RANGE_CHUNKS <= 32, "obj_slot.need is a 32-bit mask");

/* ---- the transfer --------------------------------------------------------------- */

static size_t on_body(char *data, size_t sz, size_t n, void *arg)
{
	struct obj_slot *f = arg;
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

/* The first and the last of f's chunks still needed (f->need != 0). */
static void need_span(const struct obj_slot *f, unsigned *lo, unsigned *hi)
{
	*lo = (unsigned)__builtin_ctz(f->need);
	*hi = 31u - (unsigned)__builtin_clz(f->need);
}

/* Starts (or starts again) the transfer of f's chunks still needed: one
 * Range request for the bytes from the first of them to the end of the
 * last (they lie back to back; chunks between them already handed over
 * come along and are skipped). */
static void start_transfer(struct obj_slots *ss, struct obj_slot *f)
{
	unsigned lo, hi;
	char range[64];

	need_span(f, &lo, &hi);
	const struct obj_chunk *a = &ss->m->chunks[f->chunk[lo]], *b = &ss->m->chunks[f->chunk[hi]];
	uint64_t from = a->offset, to = b->offset + b->stored_len;
	free(f->buf);
	f->want = (size_t)(to - from); /* > 0: a stored chunk has bytes */
	if (!(f->buf = malloc(f->want))) {
		source_set_error(ss->src, -ENOMEM, "out of memory for a chunk");
		return;
	}
	curl_easy_reset(f->h);
	obj_target_setup(ss->target, f->h, ss->target->data_url, ss->timeout_ns);
	snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)from,
		 (unsigned long long)(to - 1));
	curl_easy_setopt(f->h, CURLOPT_RANGE, range);
	curl_easy_setopt(f->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(f->h, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(f->h, CURLOPT_PRIVATE, f);
	f->len = 0;
	f->overflow = f->ignored_range = f->error_body = false;
	f->whole_ok = from == 0 && to == ss->m->hdr.data_size;
	f->active = true;
	f->start_ns = source_now_ns();
	CURLMcode mc = curl_multi_add_handle(ss->multi, f->h);
	if (mc != CURLM_OK) {
		f->active = false;
		source_set_error(ss->src, -EIO, "libcurl refused a transfer");
	}
}

void obj_slot_retry(struct obj_slots *ss, struct obj_slot *f)
{
	start_transfer(ss, f);
}

/* Gives the worker job k of f (filled in by the caller); false (the
 * source failed) if it cannot. */
static bool to_worker(struct obj_slots *ss, struct obj_slot *f, unsigned k)
{
	struct obj_job *j = &f->job[k];

	j->tag = (uint32_t)(f - ss->slot) * OBJ_RANGE_CHUNKS + k;
	j->urgent = f->urgent;
	f->working++;
	if (obj_worker_submit(&ss->worker, j)) {
		f->working--;
		source_set_error(ss->src, -EIO, "the object source's worker queue is full");
		return false;
	}
	return true;
}

/* ---- a slot's life --------------------------------------------------------------- */

void obj_slot_start(struct obj_slots *ss, struct obj_slot *f, const uint32_t *chunks, unsigned n,
		    enum source_prio prio)
{
	uint32_t slot = (uint32_t)(f - ss->slot);

	for (unsigned k = 0; k < n; k++) {
		f->chunk[k] = chunks[k];
		ss->fetch_of[chunks[k]] = slot;
	}
	f->n = n;
	f->need = (1u << n) - 1;
	f->used = true;
	f->prio = prio;
	f->urgent = prio == SOURCE_DEMAND;
	f->attempts = 0;
	f->working = 0;
	f->on_disk = ss->disk.dirfd >= 0;
	if (!f->on_disk) {
		start_transfer(ss, f);
		return;
	}
	for (unsigned k = 0; k < f->n; k++) {
		f->job[k] = (struct obj_job){ .chunk = f->chunk[k], .from_disk = true };
		if (!to_worker(ss, f, k))
			return;
	}
}

static void free_slot(struct obj_slots *ss, struct obj_slot *f)
{
	for (unsigned k = 0; k < f->n; k++)
		if (f->need & (1u << k))
			ss->fetch_of[f->chunk[k]] = OBJ_SLOT_NONE;
	free(f->buf);
	f->buf = NULL;
	f->n = 0;
	f->need = 0;
	f->used = f->active = false;
}

/* An attempt at f's chunks failed (f->why says why): tried again after a
 * backoff when `retry` and attempts remain, else every chunk still needed
 * fails, named.  http: the answer's status, for the pages' error. */
static void attempt_failed(struct obj_slots *ss, struct obj_slot *f, bool retry, long http)
{
	if (retry && f->attempts < ss->tries) {
		uint64_t b = BACKOFF_MIN_NS << (f->attempts - 1 < 5 ? f->attempts - 1 : 5);
		f->due_ns = source_now_ns() + (b < BACKOFF_MAX_NS ? b : BACKOFF_MAX_NS);
		ss->src->retries++;
		return;
	}
	int err = http == 404 ? -ENOENT : http == 403 ? -EACCES : -EIO;
	for (unsigned k = 0; k < f->n; k++) {
		if (!(f->need & (1u << k)))
			continue;
		char why[400];
		uint32_t chunk = f->chunk[k];
		uint64_t first = (uint64_t)chunk * ss->m->hdr.chunk_pages;
		snprintf(why, sizeof(why), "%.100s: chunk %llu (pages %llu-%llu): %.150s (%u %s)",
			 ss->target->desc, (unsigned long long)chunk, (unsigned long long)first,
			 (unsigned long long)(first + obj_chunk_npages(&ss->m->hdr, chunk) - 1),
			 f->why, f->attempts, f->attempts == 1 ? "try" : "tries");
		f->need &= ~(1u << k);
		ss->fetch_of[chunk] = OBJ_SLOT_NONE;
		ss->done(ss->src, chunk, NULL, err, why);
	}
	free_slot(ss, f);
}

/* Chunk k of f checked out: handed to the source. */
static void hand_over(struct obj_slots *ss, struct obj_slot *f, unsigned k)
{
	uint32_t chunk = f->chunk[k];
	unsigned char *pages = f->job[k].pages;

	if (!f->job[k].from_disk) {
		uint64_t ns = source_now_ns() - f->start_ns;
		ss->ewma_ns = ss->ewma_ns ? (ss->ewma_ns * 7 + ns) / 8 : ns;
	}
	f->job[k].pages = NULL;
	f->need &= ~(1u << k);
	ss->fetch_of[chunk] = OBJ_SLOT_NONE;
	ss->done(ss->src, chunk, pages, 0, NULL);
}

/* The worker is done with job k of f: its chunk handed over, or still
 * needed (from the disk: absent or damaged; fetched: damaged).  Once
 * every job of f is back, the chunks still needed are fetched (after the
 * disk), or tried again (after a reply). */
void obj_slot_checked(struct obj_slots *ss, struct obj_job *j)
{
	struct obj_slot *f = &ss->slot[j->tag / OBJ_RANGE_CHUNKS];
	unsigned k = j->tag % OBJ_RANGE_CHUNKS;

	f->working--;
	if (j->pages) {
		hand_over(ss, f, k);
	} else if (j->bad) {
		ss->src->corrupt++;
		if (!j->from_disk)
			snprintf(f->why, sizeof(f->why), "%s", j->bad);
	}
	if (f->working)
		return;
	if (!f->need) {
		free_slot(ss, f);
	} else if (f->on_disk) {
		f->on_disk = false;
		start_transfer(ss, f);
	} else {
		attempt_failed(ss, f, true, 0);
	}
}

/* f's reply is complete: each chunk still needed goes to the worker with
 * its bytes in f->buf (which stays until every job is back). */
static void to_checks(struct obj_slots *ss, struct obj_slot *f)
{
	unsigned lo, hi;

	need_span(f, &lo, &hi);
	uint64_t from = ss->m->chunks[f->chunk[lo]].offset;
	for (unsigned k = lo; k <= hi; k++) {
		const struct obj_chunk *c = &ss->m->chunks[f->chunk[k]];
		if (!(f->need & (1u << k)))
			continue;
		f->job[k] = (struct obj_job){ .chunk = f->chunk[k], .stored = f->buf + (c->offset - from),
					      .stored_len = c->stored_len };
		if (!to_worker(ss, f, k))
			return;
	}
}

void obj_slot_replied(struct obj_slots *ss, struct obj_slot *f, CURLcode cc)
{
	long http = 0;
	bool retry;

	curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &http);
	curl_multi_remove_handle(ss->multi, f->h);
	f->active = false;
	f->attempts++;
	if (cc == CURLE_OK && (http == 206 || (http == 200 && f->whole_ok))) {
		if (f->len == f->want) {
			to_checks(ss, f); /* the checks are the worker's */
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
	attempt_failed(ss, f, retry, http);
}

/* ---- setting up and tearing down -------------------------------------------------- */

int obj_slot_open(struct obj_slot *f)
{
	return (f->h = curl_easy_init()) ? 0 : -ENOMEM;
}

void obj_slot_close(struct obj_slots *ss, struct obj_slot *f)
{
	if (f->active)
		curl_multi_remove_handle(ss->multi, f->h);
	curl_easy_cleanup(f->h);
	free(f->buf); /* after the worker: its jobs point into it */
	for (unsigned k = 0; k < OBJ_RANGE_CHUNKS; k++)
		free(f->job[k].pages); /* checked, not yet handed over */
}
