/*
 * libFuzzer target: the object storage manifest (src/objstore/
 * obj_layout.c), bytes as a server would send them.  Whatever the bytes,
 * the parser returns 0 or an error with a message, never crashes, and a
 * manifest it accepts has every stored chunk inside the data object and
 * no more than a chunk's compressed bound long.  Inputs are sealed (the
 * crc32c fields set) half of the time, so that the checks behind the
 * checksums are reached.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "fuzz.h"
#include "objstore/obj_layout.h"
#include "util/crc32c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct obj_manifest m;
	struct apf_err e = { "" };
	uint8_t *buf = malloc(size + 1);

	CHECK_OR_DIE(buf);
	memcpy(buf, data, size);
	if (size >= sizeof(struct obj_manifest_hdr) + 4 && (data[0] & 1)) {
		struct obj_manifest_hdr h;
		static const uint32_t zero;
		memcpy(&h, buf, sizeof(h));
		memcpy(h.magic, OBJ_MAGIC, 8);
		h.hdr_crc = crc32c(crc32c(0, &h, sizeof(h) - 4), &zero, 4);
		memcpy(buf, &h, sizeof(h));
		size_t table = size - sizeof(h) - 4;
		uint32_t crc = crc32c(0, buf + sizeof(h), table);
		memcpy(buf + size - 4, &crc, 4);
	}
	int rc = obj_manifest_parse(buf, size, "fuzz", &m, &e);
	if (rc) {
		CHECK_OR_DIE(rc < 0 && e.msg[0] != '\0');
		free(buf);
		return 0;
	}
	for (uint64_t i = 0; i < m.hdr.nchunks; i++) {
		const struct obj_chunk *c = &m.chunks[i];
		size_t raw = (size_t)obj_chunk_npages(&m.hdr, i) * OBJ_PAGE_SIZE;
		CHECK_OR_DIE(raw > 0 && raw <= OBJ_CHUNK_PAGES_MAX * OBJ_PAGE_SIZE);
		CHECK_OR_DIE(c->offset + c->stored_len <= m.hdr.data_size);
		CHECK_OR_DIE(c->stored_len <= ZSTD_compressBound(raw));
	}
	obj_manifest_free(&m);
	free(buf);
	return 0;
}
