/*
 * obj_disk: the disk tier of the object source's cache (--cache-dir): the
 * stored bytes of every chunk fetched, one file per chunk under
 * DIR/<manifest identity>/, so that a later run (a restore on the same
 * host, a second VM from the same image) reads them locally instead of
 * from the store.  Files are only hints: what is read back goes through
 * the same checks as what comes from the network (the chunk's crc32c
 * before and after decompression), so a damaged or foreign file costs a
 * fetch, never wrong data.  Writes are best effort (a full disk only
 * loses the hint) and atomic (a temporary file renamed).
 */
#ifndef APFVM_OBJ_DISK_H
#define APFVM_OBJ_DISK_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct obj_disk {
	int dirfd; /* DIR/<identity>, or -1: no disk tier */
};

/* Opens (creating) root/<identity of the manifest bytes>. */
int obj_disk_open(struct obj_disk *d, const char *root, const void *manifest, size_t len,
		  struct apf_err *e);
/* Chunk `chunk`'s stored bytes into buf when its file holds exactly len
 * bytes: 0, else -ENOENT (or -errno). */
int obj_disk_read(const struct obj_disk *d, uint64_t chunk, void *buf, size_t len);
void obj_disk_write(const struct obj_disk *d, uint64_t chunk, const void *buf, size_t len);
/* Forgets a chunk whose file turned out damaged. */
void obj_disk_drop(const struct obj_disk *d, uint64_t chunk);
void obj_disk_close(struct obj_disk *d);

#endif
