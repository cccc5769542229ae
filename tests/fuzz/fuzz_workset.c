/*
 * libFuzzer target: working-set files (src/workset/workset.c), the file
 * from the input bytes.  Half the inputs are made to pass the outer checks
 * first (structure-aware: magic, version, this guest's sizes and identity,
 * a count the bytes hold, the checksum resealed), so the checks of the
 * entries behind them are reached too.  Whatever the bytes: an error with
 * a message and nothing held, or a working set that keeps every invariant
 * of workset.h and writes back to the very same bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "apfvm/abi.h"
#include "workset/workset.h"

#define MEM_PAGES 64
#define RES_PAGES 16

static char dir[] = "/tmp/apfvm-fuzz-ws.XXXXXX";
static char path[64], path2[64];
static struct sha256 ident;

/* Makes buf[0..*size) a file the outer checks accept. */
static void seal(uint8_t *buf, size_t *size)
{
	const size_t hdr = sizeof(struct ws_header), tail = SHA256_LEN;
	struct ws_header h;

	if (*size < hdr + tail)
		return;
	memcpy(&h, buf, hdr);
	memcpy(h.magic, WS_MAGIC, sizeof(h.magic));
	h.version = WS_VERSION;
	h.flags = 0;
	h.mem_pages = MEM_PAGES;
	h.resident_pages = RES_PAGES;
	h.identity = ident;
	h.count %= MEM_PAGES + 1;
	if (h.count > (*size - hdr - tail) / sizeof(struct ws_entry))
		h.count = (*size - hdr - tail) / sizeof(struct ws_entry);
	memcpy(buf, &h, hdr);
	*size = hdr + h.count * sizeof(struct ws_entry) + tail;
	sha256(buf, *size - tail, (struct sha256 *)(buf + *size - tail));
}

/* The invariants of workset.h, checked the slow way. */
static void check_valid(const struct workset *ws)
{
	CHECK_OR_DIE(ws->mem_pages == MEM_PAGES && ws->resident_pages == RES_PAGES);
	CHECK_OR_DIE(ws->count <= MEM_PAGES && (ws->entries || !ws->count));
	for (uint64_t i = 0; i < ws->count; i++) {
		CHECK_OR_DIE(ws->entries[i].page < MEM_PAGES);
		CHECK_OR_DIE(i == 0 || ws->entries[i].t_us >= ws->entries[i - 1].t_us);
		for (uint64_t j = 0; j < i; j++)
			CHECK_OR_DIE(ws->entries[i].page != ws->entries[j].page);
	}
}

static void write_file(const char *p, const uint8_t *buf, size_t size)
{
	FILE *f = fopen(p, "wb");
	CHECK_OR_DIE(f && (size == 0 || fwrite(buf, 1, size, f) == size) && fclose(f) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[1 << 12], back[1 << 12];
	struct apf_err e = { "" };
	struct workset ws;

	if (!path[0]) {
		CHECK_OR_DIE(mkdtemp(dir) != NULL);
		snprintf(path, sizeof(path), "%s/ws", dir);
		snprintf(path2, sizeof(path2), "%s/ws2", dir);
		ws_identity_lazy(MEM_PAGES - RES_PAGES, APF_PATTERN_SEEDED, 42, &ident);
	}
	if (size < 1 || size - 1 > sizeof(buf))
		return 0;
	size_t len = size - 1;
	memcpy(buf, data + 1, len);
	if (data[0] & 1)
		seal(buf, &len);
	write_file(path, buf, len);

	int rc = ws_read(path, &ident, MEM_PAGES, RES_PAGES, &ws, &e);
	if (rc) {
		CHECK_OR_DIE(rc < 0 && e.msg[0] != '\0' && strstr(e.msg, path));
		CHECK_OR_DIE(ws.entries == NULL && ws.count == 0);
		return 0;
	}
	check_valid(&ws);
	/* What was read writes back byte for byte. */
	CHECK_OR_DIE(ws_write(path2, &ws, &e) == 0);
	FILE *f = fopen(path2, "rb");
	CHECK_OR_DIE(f && fread(back, 1, sizeof(back), f) == len && fclose(f) == 0);
	CHECK_OR_DIE(memcmp(back, buf, len) == 0);
	ws_free(&ws);
	return 0;
}
