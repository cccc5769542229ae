/*
 * workset: working-set files (format and semantics: docs/working-set.md).
 *
 * A working set is the list of pages a restored guest touched, in the
 * order it first touched them, each with the time of that touch: recorded
 * by `apfvm restore --record-ws FILE`, streamed ahead of the guest by
 * `--prefetch FILE`.  Pages are indices into the guest's whole memory as a
 * snapshot's memory file orders it: resident memory's pages first, then
 * the lazy region's (a lazy page L is page resident_pages + L).
 *
 * Invariants of a valid working set (ws_write refuses, ws_read refuses
 * and says why, otherwise): mem_pages <= WS_MAX_PAGES, resident_pages <=
 * mem_pages, count <= mem_pages, every page < mem_pages, no page twice,
 * times never going backwards (entries in first-touch order).
 *
 * A file is bound to the memory it was recorded against by an identity
 * (ws_identity_snapshot, ws_identity_lazy) and the two sizes; one recorded
 * for anything else is refused before it is used.  Everything in a file
 * is untrusted: checked whole, checksum first, before ws_read (or
 * ws_load, which returns a file's binding instead of checking it) returns.
 */
#ifndef APFVM_WORKSET_H
#define APFVM_WORKSET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "snapshot/snapshot.h"
#include "util/err.h"
#include "util/sha256.h"

#define WS_MAGIC   "APFVMWS" /* and a NUL: 8 bytes */
#define WS_VERSION 1
/* A page is a u32 index: at most 2^32 pages (16 TiB) of guest memory. */
#define WS_MAX_PAGES (1ull << 32)

/* One page's first touch.  t_us: microseconds from the pagers' start,
 * UINT32_MAX for a touch at or after 71 min 34 s (ws_time_us). */
struct ws_entry {
	uint32_t page;
	uint32_t t_us;
};
_Static_assert(sizeof(struct ws_entry) == 8, "working-set entry layout");

struct workset {
	struct sha256 identity; /* the memory it was recorded against */
	uint64_t mem_pages;     /* the guest's pages: resident, then lazy */
	uint64_t resident_pages;
	uint64_t count;         /* entries */
	struct ws_entry *entries; /* malloc'ed; first-touch order once sorted */
};

/* The file's header, little-endian (as every apfvm host is); then count
 * entries (struct ws_entry), then the SHA-256 of everything before it. */
struct ws_header {
	char magic[8];          /* WS_MAGIC */
	uint32_t version;       /* WS_VERSION */
	uint32_t flags;         /* 0: none defined */
	uint64_t mem_pages;
	uint64_t resident_pages;
	uint64_t count;
	struct sha256 identity;
};
_Static_assert(sizeof(struct ws_header) == 72, "working-set header layout");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "working-set files are little-endian");

/* Microseconds in elapsed_ns, saturating at UINT32_MAX: a t_us. */
static inline uint32_t ws_time_us(uint64_t elapsed_ns)
{
	uint64_t us = elapsed_ns / 1000;
	return us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Writes ws to path: a new file beside it (mode 0600, less the umask),
 * renamed over path once complete (util/file.h), so a failure leaves
 * nothing new behind and whatever was at path whole.  Refuses (-EINVAL,
 * nothing written) a working set that breaks an invariant above.  0 or
 * -errno, with the reason in e. */
int ws_write(const char *path, const struct workset *ws, struct apf_err *e);

/* Reads path into *ws (entries malloc'ed: ws_free) if it is a valid
 * working-set file recorded against `identity` for a guest of mem_pages
 * pages of which resident_pages are resident.  Refuses, naming the file
 * and the cause: not a regular file (never blocks on a FIFO), not a
 * working-set file, another version, truncated or sized unlike its count,
 * more entries than mem_pages (checked before the file is read whole: at
 * most a header, mem_pages entries and a checksum are ever read), damaged
 * (-EBADMSG), recorded for other memory or other sizes (-ESTALE), or
 * breaking an invariant above (-EINVAL).  On error *ws is empty. */
int ws_read(const char *path, const struct sha256 *identity, uint64_t mem_pages,
	    uint64_t resident_pages, struct workset *ws, struct apf_err *e);

/* Reads path into *ws as ws_read does, with every check of ws_read but
 * the binding: whatever memory the file was recorded against, its identity
 * and sizes are returned in *ws (for looking at a file, or comparing two:
 * `apfvm ws`).  The file's own mem_pages bounds what is read: refused if
 * above WS_MAX_PAGES, or if the count exceeds it, before the entries are
 * read.  0 or -errno, with the same messages as ws_read's; on error *ws is
 * empty. */
int ws_load(const char *path, struct workset *ws, struct apf_err *e);

/* Frees the entries; *ws is left empty (ws_free of an empty one is a no-op). */
void ws_free(struct workset *ws);

/* Sorts the entries into first-touch order: by t_us, then by page (a
 * total order over distinct pages, so the result does not depend on the
 * order they came in).  For a recorder that appends the resident pager's
 * touches and the lazy pager's (offset by resident_pages).  Returns 0. */
int ws_sort_by_time(struct workset *ws);

/* The identity of a snapshot's memory: snap_identity_full(), the SHA-256
 * of its page count and page digests (snap_identity is its first 8 bytes). */
void ws_identity_snapshot(const struct snap_image *s, struct sha256 *out);

/* The identity of the lazy region of `apfvm run --lazy`, named by what its
 * source serves (struct page_source's pattern and seed; the seed counts
 * only for APF_PATTERN_SEEDED) and its size.  Hashed after a label, so it
 * never equals a snapshot's identity (whose hash starts with a page count
 * below 2^32, the label's bytes 4..7 are not zero). */
void ws_identity_lazy(uint64_t lazy_pages, uint32_t pattern, uint64_t seed, struct sha256 *out);

/* Prints a summary of a working set in first-touch order (as ws_read
 * returns it) to f: its pages in each region, the span of its times, when
 * half and nine tenths of them had been touched, its identity.  0, or -EIO
 * when f fails. */
int ws_describe(const struct workset *ws, FILE *f);

/* Two working sets of the same memory as sets of pages: one replayed
 * (--prefetch) against one recorded without a prefetch (what the guest
 * touched then; a recording made while prefetching lists only the pages
 * the prefetch did not install before the guest's touch).  The host sees
 * no touch of a page installed ahead of the guest, so this is how much of
 * a prefetch was used is measured. */
struct ws_comparison {
	uint64_t replayed; /* pages in the replayed working set: prefetched */
	uint64_t actual;   /* pages in the actual one: touched by the guest */
	uint64_t both;     /* in both: prefetched, then used */
	uint64_t unused;   /* only in replayed: prefetched, never used */
	uint64_t missed;   /* only in actual: demand faults in a replay */
	double coverage;   /* both / actual; 1 if actual is empty (nothing missed) */
	double jaccard;    /* both / pages in either; 1 if both are empty */
};

/* Compares two valid working sets (as ws_read or ws_load return them: no
 * page twice) into *out.  Refuses (-ESTALE) two of different memory:
 * another identity or other sizes, and says which.  0, -ESTALE or -ENOMEM,
 * with the reason in e. */
int ws_compare(const struct workset *replayed, const struct workset *actual,
	       struct ws_comparison *out, struct apf_err *e);

/* Prints c to f: each count with what it means, the unused pages as a
 * percentage of replayed, the coverage as one of actual (to 0.1%, never
 * rounded to 0 or 100% unless exactly so), the Jaccard index.  0, or -EIO
 * when f fails. */
int ws_comparison_print(const struct ws_comparison *c, FILE *f);

/* Prints c to f as one CSV line, "replayed,actual,both,unused,missed,
 * jaccard" (the Jaccard index with 4 decimals), after that header line if
 * header.  0, or -EIO when f fails. */
int ws_comparison_csv(const struct ws_comparison *c, bool header, FILE *f);

#endif
