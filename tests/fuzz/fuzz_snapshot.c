/*
 * libFuzzer target: snapshot files (src/snapshot/snapshot.c), the state
 * file from the input bytes, with a memory file of a few pages beside it.
 * Half the inputs get their checksums fixed first (structure-aware), so
 * the parser's checks behind the CRCs are reached too.  Whatever the
 * bytes: an error with a message, or a snapshot whose every section and
 * record lies inside the file, whose page digests cover its memory file,
 * and whose zero-page bitmap (version 4) lies inside the file too and
 * lists only pages whose digest is a zero page's.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "apfvm/abi.h"
#include "snapshot/snapshot.h"
#include "util/crc32c.h"

static char dir[] = "/tmp/apfvm-fuzz-snap.XXXXXX";
static char path[64], mpath[64];

/* Recomputes the header's and each in-bounds section's CRC; the version
 * the one read (4) or the one before (3). */
static void fix_crcs(uint8_t *buf, size_t size, uint32_t version)
{
	struct snap_header h;
	if (size < sizeof(h))
		return;
	memcpy(&h, buf, sizeof(h));
	memcpy(h.magic, SNAP_MAGIC, 8);
	h.version = version;
	h.page_size = APF_PAGE_SIZE;
	h.resident_size %= 4 * APF_PAGE_SIZE;
	h.resident_size -= h.resident_size % APF_PAGE_SIZE;
	h.lazy_size %= 4 * APF_PAGE_SIZE;
	h.lazy_size -= h.lazy_size % APF_PAGE_SIZE;
	size_t off = sizeof(h);
	uint32_t n = 0;
	while (size - off >= sizeof(struct snap_section_hdr) && n < SNAP_MAX_SECTIONS) {
		struct snap_section_hdr sh;
		memcpy(&sh, buf + off, sizeof(sh));
		off += sizeof(sh);
		sh.length %= (size - off) + 1;
		sh.crc = crc32c(0, buf + off, sh.length);
		memcpy(buf + off - sizeof(sh), &sh, sizeof(sh));
		off += sh.length + (8 - sh.length % 8) % 8;
		n++;
		if (off > size)
			break;
	}
	h.nsections = n;
	h.header_crc = 0;
	h.header_crc = crc32c(0, &h, sizeof(h));
	memcpy(buf, &h, sizeof(h));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[1 << 16];
	struct snap_image s;
	struct apf_err e = { "" };

	if (!path[0]) {
		CHECK_OR_DIE(mkdtemp(dir) != NULL);
		snprintf(path, sizeof(path), "%s/s", dir);
		snprintf(mpath, sizeof(mpath), "%s/s.mem", dir);
	}
	if (size < 1 || size - 1 > sizeof(buf))
		return 0;
	memcpy(buf, data + 1, size - 1);
	if (data[0] & 1)
		fix_crcs(buf, size - 1, data[0] & 0x10 ? SNAP_VERSION_MIN : SNAP_VERSION);
	FILE *f = fopen(path, "wb");
	CHECK_OR_DIE(f && fwrite(buf, 1, size - 1, f) == size - 1 && fclose(f) == 0);
	int mfd = open(mpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK_OR_DIE(mfd >= 0 && ftruncate(mfd, (off_t)((data[0] >> 1) % 8) * APF_PAGE_SIZE) == 0);
	close(mfd);

	int rc = snap_open(&s, path, &e);
	if (rc) {
		CHECK_OR_DIE(rc < 0 && e.msg[0] != '\0');
		CHECK_OR_DIE(s.state == NULL && s.mem_fd == -1);
		return 0;
	}
	const unsigned char *lo = s.state, *hi = s.state + s.state_len;
	for (unsigned i = 0; i < s.nsections; i++) {
		const struct snap_section *sec = &s.sections[i];
		const unsigned char *p = sec->data;
		CHECK_OR_DIE(p >= lo && p <= hi && sec->len <= (uint64_t)(hi - p));
		for (uint32_t tag = 0; tag < 40; tag++) {
			uint32_t len = 0;
			const unsigned char *r = snap_blob_get(sec->data, sec->len, tag, &len);
			if (r)
				CHECK_OR_DIE(r >= p && len <= sec->len && r + len <= p + sec->len);
		}
	}
	CHECK_OR_DIE(s.page_digests && s.mem_pages == (s.h.resident_size + s.h.lazy_size) / APF_PAGE_SIZE);
	CHECK_OR_DIE(s.zero_bits ? s.h.version >= 4 : s.zero_pages == 0);
	if (s.zero_bits)
		CHECK_OR_DIE(s.zero_bits >= lo && (uint64_t)(hi - s.zero_bits) >= (s.mem_pages + 7) / 8);
	uint64_t zero = 0;
	for (uint64_t p = 0; p < s.mem_pages; p++)
		if (snap_page_is_zero(&s, p)) {
			CHECK_OR_DIE(!memcmp(&s.page_digests[p], snap_zero_page_digest(),
					     sizeof(struct sha256)));
			zero++;
		}
	CHECK_OR_DIE(zero == s.zero_pages);
	snap_close(&s);
	return 0;
}
