#include "obj_worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zstd.h>

#include "util/crc32c.h"

unsigned char *obj_chunk_expand(const struct obj_manifest *m, uint64_t chunk,
				const unsigned char *stored, size_t len, void *zstd_dctx,
				const char **bad)
{
	const struct obj_chunk *c = &m->chunks[chunk];
	size_t plen = (size_t)obj_chunk_npages(&m->hdr, chunk) * OBJ_PAGE_SIZE;
	unsigned char *pages;

	if (len != c->stored_len) {
		*bad = "short or long chunk";
		return NULL;
	}
	if (crc32c(0, stored, len) != c->stored_crc) {
		*bad = "corrupt chunk (stored checksum mismatch)";
		return NULL;
	}
	/* What an attacker cannot forge, as crc32c can be. */
	if (!sha256_matches(stored, len, &c->stored_sha256)) {
		*bad = "corrupt or forged chunk (SHA-256 mismatch)";
		return NULL;
	}
	if (!(pages = malloc(plen ? plen : 1))) {
		*bad = "out of memory";
		return NULL;
	}
	if (c->flags == OBJ_CHUNK_RAW) {
		memcpy(pages, stored, plen);
	} else {
		size_t n = ZSTD_decompressDCtx(zstd_dctx, pages, plen, stored, len);
		if (ZSTD_isError(n) || n != plen) {
			free(pages);
			*bad = "corrupt chunk (does not decompress to its size)";
			return NULL;
		}
	}
	if (crc32c(0, pages, plen) != c->data_crc) {
		free(pages);
		*bad = "corrupt chunk (page checksum mismatch after decompression)";
		return NULL;
	}
	return pages;
}

/* One job: the stored bytes (from the disk if asked), checked, expanded. */
static void run_job(struct obj_worker *w, struct obj_job *j, ZSTD_DCtx *dctx)
{
	const struct obj_chunk *c = &w->m->chunks[j->chunk];

	j->pages = NULL;
	j->bad = NULL;
	if (j->from_disk) {
		unsigned char *buf = malloc(c->stored_len ? c->stored_len : 1);
		if (!buf || obj_disk_read(w->disk, j->chunk, buf, c->stored_len)) {
			free(buf);
			return; /* not there: the caller fetches it */
		}
		j->pages = obj_chunk_expand(w->m, j->chunk, buf, c->stored_len, dctx, &j->bad);
		free(buf);
		if (!j->pages)
			obj_disk_drop(w->disk, j->chunk); /* damaged: fetched again */
		return;
	}
	j->pages = obj_chunk_expand(w->m, j->chunk, j->stored, j->stored_len, dctx, &j->bad);
}

/* The next job to check (under lock): an urgent one first. */
static struct obj_job *take_job(struct obj_worker *w)
{
	unsigned q = w->in_count[0] ? 0 : 1;
	struct obj_job *j = w->in[q][w->in_head[q]];

	w->in_head[q] = (w->in_head[q] + 1) % OBJ_WORKER_QUEUE;
	w->in_count[q]--;
	return j;
}

/* Checks job j (not under lock), hands it back, and queues its stored
 * bytes for the disk tier if it came from the network and checked out. */
static void run_and_return(struct obj_worker *w, struct obj_job *j, ZSTD_DCtx *dctx)
{
	unsigned char *copy = NULL;

	if (dctx)
		run_job(w, j, dctx);
	else
		j->pages = NULL, j->bad = "out of memory";
	/* The bytes are the caller's once the job is back: the disk write
	 * gets its own copy. */
	bool keep = !j->from_disk && j->pages && w->disk->dirfd >= 0;
	if (keep && (copy = malloc(j->stored_len)))
		memcpy(copy, j->stored, j->stored_len);
	pthread_mutex_lock(&w->lock);
	if (copy && w->w_count < OBJ_WORKER_WRITES) {
		w->writes[(w->w_head + w->w_count++) % OBJ_WORKER_WRITES] =
			(struct obj_disk_write){ j->chunk, copy, j->stored_len };
	} else if (keep) {
		free(copy);
		w->writes_dropped++;
	}
	w->out[(w->out_head + w->out_count++) % OBJ_WORKER_QUEUE] = j;
	pthread_mutex_unlock(&w->lock);
	uint64_t one = 1;
	if (write(w->event_fd, &one, sizeof(one)) < 0) {
		/* an eventfd's counter cannot overflow here */
	}
}

static void *worker_main(void *arg)
{
	struct obj_worker *w = arg;
	ZSTD_DCtx *dctx = ZSTD_createDCtx();

	pthread_mutex_lock(&w->lock);
	for (;;) {
		bool jobs = w->in_count[0] || w->in_count[1];
		while (!w->stop && !jobs && !w->w_count) {
			pthread_cond_wait(&w->wake, &w->lock);
			jobs = w->in_count[0] || w->in_count[1];
		}
		/* Stopping: the checks no one waits for are left, the disk
		 * writes finished (at most OBJ_WORKER_WRITES of them). */
		if (w->stop && !w->w_count)
			break;
		if (!w->stop && jobs) {
			/* Checks first: a guest waits on them. */
			struct obj_job *j = take_job(w);
			pthread_mutex_unlock(&w->lock);
			run_and_return(w, j, dctx);
			pthread_mutex_lock(&w->lock);
			continue;
		}
		struct obj_disk_write d = w->writes[w->w_head];
		w->w_head = (w->w_head + 1) % OBJ_WORKER_WRITES;
		w->w_count--;
		pthread_mutex_unlock(&w->lock);
		obj_disk_write(w->disk, d.chunk, d.bytes, d.len);
		free(d.bytes);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	ZSTD_freeDCtx(dctx);
	return NULL;
}

int obj_worker_start(struct obj_worker *w, const struct obj_manifest *m, struct obj_disk *disk)
{
	memset(w, 0, sizeof(*w));
	w->m = m;
	w->disk = disk;
	w->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->event_fd < 0)
		return -errno;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	int rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc) {
		close(w->event_fd);
		w->event_fd = -1;
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->lock);
		return -rc;
	}
	w->started = true;
	return 0;
}

int obj_worker_submit(struct obj_worker *w, struct obj_job *job)
{
	unsigned q = job->urgent ? 0 : 1;

	pthread_mutex_lock(&w->lock);
	if (w->in_count[0] + w->in_count[1] == OBJ_WORKER_QUEUE) {
		pthread_mutex_unlock(&w->lock);
		return -EAGAIN;
	}
	w->in[q][(w->in_head[q] + w->in_count[q]++) % OBJ_WORKER_QUEUE] = job;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

void obj_worker_ack(struct obj_worker *w)
{
	uint64_t n;
	if (read(w->event_fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: nothing was signalled */
	}
}

struct obj_job *obj_worker_reap(struct obj_worker *w)
{
	struct obj_job *j = NULL;

	pthread_mutex_lock(&w->lock);
	if (w->out_count) {
		j = w->out[w->out_head];
		w->out_head = (w->out_head + 1) % OBJ_WORKER_QUEUE;
		w->out_count--;
	}
	pthread_mutex_unlock(&w->lock);
	return j;
}

void obj_worker_stop(struct obj_worker *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	while (w->w_count) {
		free(w->writes[w->w_head].bytes);
		w->w_head = (w->w_head + 1) % OBJ_WORKER_WRITES;
		w->w_count--;
	}
	close(w->event_fd);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	w->started = false;
}
