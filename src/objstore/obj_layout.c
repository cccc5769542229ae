#include "obj_layout.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "apfvm/abi.h"
#include "util/crc32c.h"

static uint32_t hdr_crc(const struct obj_manifest_hdr *h)
{
	static const uint32_t zero;
	return crc32c(crc32c(0, h, sizeof(*h) - 4), &zero, 4);
}

void obj_manifest_encode(struct obj_manifest *m, void *buf)
{
	size_t table = m->hdr.nchunks * sizeof(struct obj_chunk);
	uint32_t crc = crc32c(0, m->chunks, table);

	m->hdr.hdr_crc = hdr_crc(&m->hdr);
	memcpy(buf, &m->hdr, sizeof(m->hdr));
	memcpy((char *)buf + sizeof(m->hdr), m->chunks, table);
	memcpy((char *)buf + sizeof(m->hdr) + table, &crc, 4);
}

void obj_manifest_free(struct obj_manifest *m)
{
	free(m->chunks);
	m->chunks = NULL;
}

int obj_manifest_hdr_check(const struct obj_manifest_hdr *hp, const char *what, struct apf_err *e)
{
	struct obj_manifest_hdr h = *hp;

	if (memcmp(h.magic, OBJ_MAGIC, 8))
		return apf_fail(e, -EPROTO, "%s: not an apfvm manifest (no %s)", what, OBJ_MAGIC);
	if (h.hdr_crc != hdr_crc(&h))
		return apf_fail(e, -EPROTO, "%s: manifest header checksum mismatch", what);
	if (h.version < OBJ_VERSION)
		return apf_fail(e, -EPROTO, "%s: manifest version %u, whose chunks are vouched for "
				"by crc32c only (this apfvm reads %u): pack the image again", what,
				h.version, OBJ_VERSION);
	if (h.version != OBJ_VERSION)
		return apf_fail(e, -EPROTO, "%s: manifest version %u (this apfvm reads %u)", what,
				h.version, OBJ_VERSION);
	if (h.page_size != OBJ_PAGE_SIZE || !h.npages || h.npages > OBJ_NPAGES_MAX ||
	    !h.chunk_pages || h.chunk_pages > OBJ_CHUNK_PAGES_MAX || h.reserved ||
	    h.pattern > APF_PATTERN_MAX)
		return apf_fail(e, -EPROTO, "%s: manifest header out of range (pages %llu, "
				"chunk pages %u, page size %u, pattern %u)", what,
				(unsigned long long)h.npages, h.chunk_pages, h.page_size, h.pattern);
	if (h.nchunks != (h.npages + h.chunk_pages - 1) / h.chunk_pages)
		return apf_fail(e, -EPROTO, "%s: manifest says %llu chunks for %llu pages of %u",
				what, (unsigned long long)h.nchunks, (unsigned long long)h.npages,
				h.chunk_pages);
	if (h.nchunks > OBJ_NCHUNKS_MAX)
		return apf_fail(e, -EPROTO, "%s: manifest of %llu chunks (at most %llu)", what,
				(unsigned long long)h.nchunks, (unsigned long long)OBJ_NCHUNKS_MAX);
	return 0;
}

int obj_manifest_parse(const void *bytes, size_t len, const char *what, struct obj_manifest *m,
		       struct apf_err *e)
{
	struct obj_manifest_hdr h;
	int rc;

	memset(m, 0, sizeof(*m));
	if (len < sizeof(h))
		return apf_fail(e, -EPROTO, "%s: not an apfvm manifest (%zu bytes)", what, len);
	memcpy(&h, bytes, sizeof(h));
	if ((rc = obj_manifest_hdr_check(&h, what, e)))
		return rc;
	if (len != obj_manifest_size(h.nchunks))
		return apf_fail(e, -EPROTO, "%s: manifest of %zu bytes, expected %zu", what, len,
				obj_manifest_size(h.nchunks));
	size_t table = h.nchunks * sizeof(struct obj_chunk);
	uint32_t crc;
	memcpy(&crc, (const char *)bytes + sizeof(h) + table, 4);
	if (crc != crc32c(0, (const char *)bytes + sizeof(h), table))
		return apf_fail(e, -EPROTO, "%s: chunk table checksum mismatch", what);
	struct obj_chunk *c = malloc(table);
	if (!c)
		return apf_fail(e, -ENOMEM, "out of memory");
	memcpy(c, (const char *)bytes + sizeof(h), table);
	for (uint64_t i = 0; i < h.nchunks; i++) {
		uint64_t raw = (uint64_t)obj_chunk_npages(&h, i) * OBJ_PAGE_SIZE;
		bool zero = c[i].flags == OBJ_CHUNK_ZERO, rawf = c[i].flags == OBJ_CHUNK_RAW;
		bool ok = c[i].flags <= OBJ_CHUNK_RAW &&
			  (zero ? c[i].stored_len == 0 && c[i].offset == 0
				: c[i].stored_len > 0 && c[i].stored_len <= ZSTD_compressBound(raw) &&
					  (!rawf || c[i].stored_len == raw) &&
					  c[i].offset <= h.data_size &&
					  c[i].stored_len <= h.data_size - c[i].offset);
		if (!ok) {
			rc = apf_fail(e, -EPROTO, "%s: chunk %llu out of range (offset %llu, %u "
				      "bytes, flags %u; data object %llu bytes)", what,
				      (unsigned long long)i, (unsigned long long)c[i].offset,
				      c[i].stored_len, c[i].flags, (unsigned long long)h.data_size);
			free(c);
			return rc;
		}
	}
	m->hdr = h;
	m->chunks = c;
	return 0;
}
