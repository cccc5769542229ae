/*
 * obj_worker: the object source's second thread, so that nothing on the
 * pager's thread waits on a disk or on decompression.  It takes a fetched
 * (or to-be-read-from-disk) chunk, checks its stored bytes, decompresses
 * it, checks its pages, and hands back the pages, or why not; and it
 * writes fetched chunks to the disk tier when it has nothing more urgent.
 *
 * Ownership: a job given to obj_worker_submit belongs to the worker until
 * obj_worker_reap returns it (the caller must not touch it meanwhile), and
 * so do the bytes it points at (stored): the caller keeps them until then
 * and frees them after; the worker copies what it keeps for the disk
 * tier.  The manifest (read-only) and the disk tier must outlive the
 * worker; the disk tier is the worker's to use from its start.  Urgent
 * jobs (a guest waits on them) are checked before every other job queued.
 * event_fd (an eventfd) is readable while finished jobs wait.
 */
#ifndef APFVM_OBJ_WORKER_H
#define APFVM_OBJ_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objstore/obj_disk.h"
#include "objstore/obj_layout.h"

#define OBJ_WORKER_QUEUE   256 /* jobs at once: at least the chunks of every fetch slot */
#define OBJ_WORKER_WRITES  64  /* disk writes waiting at once; more are dropped */

struct obj_job {
	uint64_t chunk;
	uint32_t tag;            /* the caller's, untouched */
	bool urgent;             /* checked before the jobs that are not */
	bool from_disk;          /* read the stored bytes from the disk tier */
	const unsigned char *stored; /* !from_disk: the bytes fetched (the caller's) */
	size_t stored_len;
	/* Results. */
	unsigned char *pages;    /* the chunk's pages, checked (malloc'ed), or NULL */
	const char *bad;         /* with pages NULL: why (static text); NULL when a
				  * disk read found nothing */
};

struct obj_disk_write {
	uint64_t chunk;
	unsigned char *bytes;
	size_t len;
};

struct obj_worker {
	const struct obj_manifest *m;
	struct obj_disk *disk;        /* dirfd -1: none; the worker's alone once started */
	int event_fd;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;                    /* under lock */
	/* in[0]: urgent jobs, in[1] the others; together at most
	 * OBJ_WORKER_QUEUE. */
	struct obj_job *in[2][OBJ_WORKER_QUEUE], *out[OBJ_WORKER_QUEUE];
	unsigned in_head[2], in_count[2], out_head, out_count;
	struct obj_disk_write writes[OBJ_WORKER_WRITES];
	unsigned w_head, w_count;
	uint64_t writes_dropped;      /* under lock */
};

/* 0 or -errno. */
int obj_worker_start(struct obj_worker *w, const struct obj_manifest *m, struct obj_disk *disk);
/* Queues a job: 0, or -EAGAIN when OBJ_WORKER_QUEUE are queued. */
int obj_worker_submit(struct obj_worker *w, struct obj_job *job);
/* When event_fd is readable: obj_worker_ack() (clears it), then
 * obj_worker_reap() until NULL.  In that order, a job finished meanwhile
 * signals again: none is left unseen. */
void obj_worker_ack(struct obj_worker *w);
/* Takes a finished job (oldest first), or NULL. */
struct obj_job *obj_worker_reap(struct obj_worker *w);
/* Stops the thread after its current job and the disk writes queued (the
 * jobs not started stay with their owners, unchecked). */
void obj_worker_stop(struct obj_worker *w);

/* The check itself, for the worker and the tests: chunk `chunk`'s stored
 * bytes against the manifest, decompressed into a new buffer of its
 * pages, checked again.  Returns the pages, or NULL with *bad set. */
unsigned char *obj_chunk_expand(const struct obj_manifest *m, uint64_t chunk,
				const unsigned char *stored, size_t len, void *zstd_dctx,
				const char **bad);

#endif
