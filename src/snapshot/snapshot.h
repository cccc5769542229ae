/*
 * snapshot: apfvm's snapshot files (format: docs/snapshot.md).
 *
 * A snapshot is two files: PATH, the state (a header and checksummed
 * sections: the machine, each vCPU, the VM, devices, the async-PF host
 * side, one SHA-256 per memory page, and which pages are all zero), and
 * PATH.mem, the guest's memory as raw pages (resident memory, then the
 * lazy region), so a restore can serve it page by page and check each page
 * against its digest as it goes.
 *
 * Zero pages cost nothing: the state lists them (SNAP_SEC_ZERO_PAGES, from
 * version 4), and PATH.mem keeps its layout but holds them as holes (no
 * disk space; they read back as zeros).  A reader that knows a page is
 * zero never fetches it.  A zero page's digest stays in the digest section
 * (the SHA-256 of 4096 zero bytes): snap_open() refuses a state whose
 * bitmap and digests disagree.
 *
 * Everything read from a snapshot is untrusted: snap_open() validates the
 * header, every section's bounds and checksum, the zero-page bitmap, and
 * the memory file's size before anything is used, and says what is wrong.
 */
#ifndef APFVM_SNAPSHOT_H
#define APFVM_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"
#include "util/file.h"
#include "util/sha256.h"

#define SNAP_MAGIC        "APFVMSNP"
#define SNAP_VERSION      4 /* 3: pages vouched for by SHA-256; 4: zero pages listed */
#define SNAP_VERSION_MIN  3 /* the oldest read: version 3 (no zero pages known) */
#define SNAP_MAX_SECTIONS 64
#define SNAP_MAX_STATE    (512ull << 20) /* state file bytes, page digests included */
#define SNAP_MEM_SUFFIX   ".mem"

enum snap_arch { SNAP_ARCH_X86_64 = 1, SNAP_ARCH_ARM64 = 2 };

enum snap_section_type {
	SNAP_SEC_MACHINE = 1,   /* struct snap_machine: what rebuilds the run */
	SNAP_SEC_VCPU = 2,      /* index = vCPU id: the architecture's vCPU state */
	SNAP_SEC_VM = 3,        /* the architecture's VM state (irqchip, timers, clock) */
	SNAP_SEC_DEVICES = 4,   /* apfvm's device state (the guest kind's) */
	SNAP_SEC_APF = 5,       /* index = vCPU id: the async-PF host side's state */
	SNAP_SEC_PAGE_DIGESTS = 8, /* struct sha256 per page of PATH.mem */
	SNAP_SEC_REPORT = 7,    /* what the guest reported before the snapshot */
	SNAP_SEC_ZERO_PAGES = 9, /* version 4: a bitmap, bit p%8 of byte p/8 set when page
				  * p of PATH.mem is all zero; ceil(pages / 8) bytes */
};

struct snap_header {
	char magic[8];
	uint32_t version;
	uint32_t arch;          /* enum snap_arch */
	uint32_t nsections;
	uint32_t header_crc;    /* crc32c of the header with this field 0 */
	uint64_t resident_size; /* bytes of resident memory in PATH.mem */
	uint64_t lazy_size;     /* bytes of the lazy region, after them */
	uint32_t page_size;     /* 4096 */
	uint32_t reserved0;
	uint64_t reserved[2];
};
_Static_assert(sizeof(struct snap_header) == 64, "snapshot header layout");

struct snap_section_hdr {
	uint32_t type;
	uint32_t index;
	uint64_t length;        /* payload bytes (the payload is padded to 8) */
	uint32_t crc;           /* crc32c of the payload */
	uint32_t reserved;
};
_Static_assert(sizeof(struct snap_section_hdr) == 24, "snapshot section layout");

/* --- writing ------------------------------------------------------------ */

/* A snapshot being written: its state (PATH) and memory (PATH.mem) as two
 * new files beside them (util/file.h), 0600, put in place together by
 * snap_write_end: a snapshot that fails leaves nothing behind, and a
 * snapshot already at PATH stays whole until the new one is.  The memory
 * goes in place first; a state that then failed to would leave the old
 * state with the new memory, which the state's page checksums refuse. */
struct snap_writer {
	FILE *f;                /* the state, buffered */
	struct file_out state, mem;
	struct snap_header h;
	uint64_t mem_pages;     /* pages the header describes */
	uint64_t mem_written;   /* pages of PATH.mem written so far (zero ones as holes) */
	uint8_t *zero_bits;     /* SNAP_SEC_ZERO_PAGES, filled by snap_write_memory */
	uint64_t zero_pages;    /* bits set in it */
};

/* Creates the new files for PATH with h's sizes and arch. */
int snap_write_begin(struct snap_writer *w, const char *path, enum snap_arch arch,
		     uint64_t resident_size, uint64_t lazy_size, struct apf_err *e);
int snap_write_section(struct snap_writer *w, uint32_t type, uint32_t index, const void *data,
		       uint64_t len, struct apf_err *e);
/* Appends the zero-page bitmap (SNAP_SEC_ZERO_PAGES), ends PATH.mem at the
 * pages written (a trailing run of zero pages is a hole too), writes the
 * final header and puts both files in place; on failure removes the new
 * files. */
int snap_write_end(struct snap_writer *w, struct apf_err *e);
/* Drops an unfinished snapshot (its new files). */
void snap_write_abort(struct snap_writer *w);

/* Writes `len` bytes (a multiple of the page size) as the next pages of
 * the memory file, adding each page's SHA-256 to digests[next_page...].
 * An all-zero page is not written: its bit is set in the zero-page bitmap
 * and the file gets a hole there.  -EINVAL beyond the pages the header
 * describes. */
int snap_write_memory(struct snap_writer *w, const void *data, uint64_t len,
		      struct sha256 *digests, uint64_t *next_page, struct apf_err *e);

/* --- records inside a section ------------------------------------------- */

/* A section's payload may be a sequence of records {u32 tag, u32 length,
 * data padded to 8}: the architecture's vCPU and VM state, where each
 * KVM structure is one record. */
struct snap_blob {
	unsigned char *data;
	uint64_t len, cap;
};

int snap_blob_put(struct snap_blob *b, uint32_t tag, const void *data, uint32_t len);
void snap_blob_free(struct snap_blob *b);
/* The record `tag` in [data, data + len): its bytes and length, or NULL
 * when absent or when the records are malformed (out of bounds). */
const void *snap_blob_get(const void *data, uint64_t len, uint32_t tag, uint32_t *out_len);

/* --- reading ------------------------------------------------------------ */

struct snap_section {
	uint32_t type, index;
	const void *data;
	uint64_t len;
};

struct snap_image {
	struct snap_header h;
	unsigned char *state;   /* the whole state file */
	uint64_t state_len;
	struct snap_section sections[SNAP_MAX_SECTIONS];
	unsigned nsections;
	int mem_fd;             /* PATH.mem, -1 if not open */
	uint64_t mem_pages;
	const struct sha256 *page_digests; /* mem_pages of them */
	const uint8_t *zero_bits; /* SNAP_SEC_ZERO_PAGES (mem_pages bits), or NULL
				   * (version 3: no page known to be zero) */
	uint64_t zero_pages;    /* bits set in zero_bits */
};

/* Opens and validates PATH and PATH.mem (see the header comment); on error
 * nothing stays open. */
int snap_open(struct snap_image *s, const char *path, struct apf_err *e);
/* The same for PATH alone (mem_fd stays -1): the memory comes from
 * elsewhere (a page server, object storage), each page checked against
 * page_digests all the same. */
int snap_open_state(struct snap_image *s, const char *path, struct apf_err *e);

/* What identifies a snapshot's memory: the SHA-256 of its page count (a
 * u64, little-endian) followed by its page digests.  A working-set file
 * (workset/workset.h) is bound to it whole. */
void snap_identity_full(const struct snap_image *s, struct sha256 *out);
/* The same to whoever serves the memory: snap_identity_full's first 8
 * bytes (the seed a server announces with APF_PATTERN_SNAPSHOT).  A label
 * to catch the wrong snapshot early, not a proof: each page is checked
 * against its digest. */
uint64_t snap_identity(const struct snap_image *s);
void snap_close(struct snap_image *s);

/* Whether the state says page `page` (< mem_pages) of PATH.mem is all
 * zero: then it need not be read (it is a hole), and its digest is the
 * SHA-256 of a zero page (snap_open checked). */
static inline bool snap_page_is_zero(const struct snap_image *s, uint64_t page)
{
	return s->zero_bits && (s->zero_bits[page / 8] >> (page % 8) & 1);
}

/* The SHA-256 of APF_PAGE_SIZE zero bytes. */
const struct sha256 *snap_zero_page_digest(void);

/* The section of `type` and `index`, or NULL. */
const struct snap_section *snap_find(const struct snap_image *s, uint32_t type, uint32_t index);

/* SNAP_SEC_APF's payload (index = vCPU): the guest's async-PF
 * registration, from whichever host side held it (the core with --apf
 * user, KVM's MSRs with --apf kernel).  msr_en: x86's raw MSR value (0 on arm64). */
struct snap_apf {
	uint64_t msr_en;
	uint64_t area_gpa;
	uint32_t vector;
	uint32_t enabled;
	uint32_t send_always;
	uint32_t pad;
};

#endif
