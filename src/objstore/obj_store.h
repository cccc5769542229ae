/*
 * obj_store: memory images in object storage (S3, or any HTTP server with
 * Range requests), docs/object-storage.md.  This header is the part the
 * rest of apfvm sees, free of libcurl: the store options, `apfvm pack`,
 * and (in objstore/obj_source.h) the s3:// and http(s):// page sources.  Builds
 * without libcurl and zstd (the static arm64 one) link obj_none.c
 * instead, which refuses both with a message.
 */
#ifndef APFVM_OBJ_STORE_H
#define APFVM_OBJ_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct obj_store_options {
	const char *s3_endpoint; /* NULL: from the environment */
	const char *s3_region;   /* NULL: from the environment */
	uint64_t cache_bytes;    /* decompressed chunks kept in memory; 0: default */
	const char *cache_dir;   /* NULL, or where fetched chunks are kept on disk
				  * for later runs (obj_disk.h) */
	uint64_t cache_dir_bytes; /* its bound, all images together; 0: 1 GiB */
};
#define OBJ_CACHE_DEFAULT_BYTES (64ull << 20)

struct obj_pack_stats {
	uint64_t npages, nchunks, zero_chunks, raw_chunks;
	uint64_t data_bytes;  /* of KEY.data */
};

/* `apfvm pack`: the image at path (or with `snapshot`, the memory of the
 * snapshot at path, announced as APF_PATTERN_SNAPSHOT with its identity)
 * cut into chunks of chunk_pages pages (1..1024), each compressed with
 * zstd at `level` (1..19), kept raw where that does not shrink it,
 * all-zero ones not stored; written as DEST.data and the manifest DEST,
 * to files, or uploaded to s3://BUCKET/KEY (the data first). */
int obj_pack(const char *path, bool snapshot, const char *dest, uint32_t chunk_pages, int level,
	     const struct obj_store_options *o, struct obj_pack_stats *st, struct apf_err *e);

#endif
