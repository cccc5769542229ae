/*
 * obj_disk: the disk tier of the object source's cache (--cache-dir): the
 * stored bytes of every chunk fetched, one file per chunk under
 * DIR/<SHA-256 of the manifest>/, so that a later run (a restore on the
 * same host, a second VM from the same image) reads them locally instead
 * of from the store.
 *
 * Files are only hints: what is read back goes through the same checks as
 * what comes from the network (the chunk's SHA-256), so a damaged, foreign
 * or planted file costs a fetch, never wrong data.  Still, the directory
 * is the user's alone: DIR and its folders are made 0700 and refused when
 * another user owns them, when others may write in them, or when they are
 * symlinks; no symlink in them is followed; files are 0600.  Writes are
 * best effort (a full disk only loses the hint) and atomic (a new file
 * under a random name, renamed).  The whole of DIR is bounded
 * (limit_bytes): past it, the least recently used chunk files (any
 * image's) are removed.  The worker thread (obj_worker.h) does all of it.
 */
#ifndef APFVM_OBJ_DISK_H
#define APFVM_OBJ_DISK_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/sha256.h"

#define OBJ_DISK_DEFAULT_LIMIT (1ull << 30)

struct obj_disk {
	int rootfd;           /* DIR, or -1: no disk tier */
	int dirfd;            /* DIR/<manifest>, or -1 */
	uint64_t limit_bytes; /* of DIR, all images together */
	uint64_t used_bytes;  /* an estimate: measured at open, grown by writes */
};

/* Opens (creating) root/<hex of manifest_sha256>, checked as above.
 * limit_bytes 0: OBJ_DISK_DEFAULT_LIMIT. */
int obj_disk_open(struct obj_disk *d, const char *root, const struct sha256 *manifest_sha256,
		  uint64_t limit_bytes, struct apf_err *e);
/* Chunk `chunk`'s stored bytes into buf when its file holds exactly len
 * bytes (and marks it used now): 0, else -ENOENT (or -errno). */
int obj_disk_read(const struct obj_disk *d, uint64_t chunk, void *buf, size_t len);
/* Stores a chunk, then keeps DIR within its bound. */
void obj_disk_write(struct obj_disk *d, uint64_t chunk, const void *buf, size_t len);
/* Forgets a chunk whose file turned out damaged. */
void obj_disk_drop(const struct obj_disk *d, uint64_t chunk);
void obj_disk_close(struct obj_disk *d);

#endif
