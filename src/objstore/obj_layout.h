/*
 * obj_layout: apfvm's layout of a memory image in object storage
 * (docs/object-storage.md): two objects, so that the store holds few,
 * large ones and a reader fetches any chunk with one HTTP Range request.
 *
 *   KEY       the manifest: what is served (pages, content pattern and
 *             seed) and, for every chunk of chunk_pages pages, where its
 *             bytes lie in KEY.data, their SHA-256 as stored (what no one
 *             can forge), and their crc32c before and after compression
 *             (a cheap first check for damage)
 *   KEY.data  the chunks, each a zstd frame (or raw when zstd would not
 *             shrink it), back to back; all-zero chunks are not stored
 *
 * Integers are little-endian.  The manifest's header and its chunk table
 * each end with a crc32c.  This module only encodes and checks (no I/O):
 * obj_manifest_parse() is the one gate for manifest bytes from the
 * network, and checks every field before anything uses it.
 */
#ifndef APFVM_OBJ_LAYOUT_H
#define APFVM_OBJ_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/sha256.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the object layout is little-endian, as this code's hosts"
#endif

#define OBJ_MAGIC           "APFVMOBJ"
#define OBJ_VERSION         2 /* 2: chunks vouched for by SHA-256 */
#define OBJ_PAGE_SIZE       4096u
#define OBJ_CHUNK_PAGES_MAX 1024u              /* 4 MiB chunks at most */
#define OBJ_NPAGES_MAX      (16ull << 20)      /* 64 GiB */
#define OBJ_NCHUNKS_MAX     (1ull << 20)       /* a manifest of at most 57 MiB */
#define OBJ_DATA_SUFFIX     ".data"

struct obj_manifest_hdr {
	char magic[8];         /* OBJ_MAGIC, no NUL */
	uint32_t version;      /* OBJ_VERSION */
	uint32_t page_size;    /* OBJ_PAGE_SIZE */
	uint64_t npages;       /* 1 .. OBJ_NPAGES_MAX */
	uint32_t chunk_pages;  /* 1 .. OBJ_CHUNK_PAGES_MAX */
	uint32_t pattern;      /* enum apf_pattern of the content, and its seed */
	uint64_t seed;
	uint64_t nchunks;      /* ceil(npages / chunk_pages) */
	uint64_t data_size;    /* bytes of KEY.data */
	uint32_t reserved;     /* 0 */
	uint32_t hdr_crc;      /* crc32c of this header, this field 0 */
};
_Static_assert(sizeof(struct obj_manifest_hdr) == 64, "obj_manifest_hdr layout");

enum obj_chunk_flags {
	OBJ_CHUNK_ZERO = 1, /* every byte 0: nothing stored */
	OBJ_CHUNK_RAW = 2,  /* stored as it is (zstd would not shrink it) */
};

struct obj_chunk {
	uint64_t offset;       /* in KEY.data */
	uint32_t stored_len;   /* bytes in KEY.data; 0 for a zero chunk */
	uint32_t flags;        /* enum obj_chunk_flags */
	uint32_t data_crc;     /* crc32c of the chunk's pages */
	uint32_t stored_crc;   /* crc32c of its stored bytes */
	struct sha256 stored_sha256; /* SHA-256 of its stored bytes (zero chunk: 0) */
};
_Static_assert(sizeof(struct obj_chunk) == 56, "obj_chunk layout");

/* A manifest in memory: the header and the chunk table (nchunks entries).
 * The manifest on the wire is the header, the table, then the table's
 * crc32c (4 bytes). */
struct obj_manifest {
	struct obj_manifest_hdr hdr;
	struct obj_chunk *chunks;
};

/* Bytes of a manifest with n chunks on the wire. */
static inline size_t obj_manifest_size(uint64_t nchunks)
{
	return sizeof(struct obj_manifest_hdr) + nchunks * sizeof(struct obj_chunk) + 4;
}

/* Pages in chunk i (the last may hold fewer). */
static inline uint32_t obj_chunk_npages(const struct obj_manifest_hdr *h, uint64_t i)
{
	uint64_t first = i * h->chunk_pages;
	return (uint32_t)(h->npages - first < h->chunk_pages ? h->npages - first : h->chunk_pages);
}

/* Checks a manifest's header alone (untrusted bytes, the first
 * sizeof(struct obj_manifest_hdr) of the object): 0, or -EPROTO with a
 * message.  Then obj_manifest_size(h->nchunks) is the manifest's size. */
int obj_manifest_hdr_check(const struct obj_manifest_hdr *h, const char *what, struct apf_err *e);

/* Checks `len` untrusted bytes as a manifest and, if sound, fills *m (its
 * chunk table malloc'd: obj_manifest_free).  0, -EPROTO (or -ENOMEM) with
 * a message naming the fault.  `what` names the object in messages. */
int obj_manifest_parse(const void *bytes, size_t len, const char *what, struct obj_manifest *m,
		       struct apf_err *e);

/* Seals m's header (hdr_crc) and writes the wire form into buf (of
 * obj_manifest_size(m->hdr.nchunks) bytes). */
void obj_manifest_encode(struct obj_manifest *m, void *buf);

void obj_manifest_free(struct obj_manifest *m);

#endif
