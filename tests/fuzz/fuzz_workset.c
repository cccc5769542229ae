/*
 * libFuzzer target: working-set files (src/workset/workset.c), the file
 * from the input bytes.  Half the inputs are made to pass the outer checks
 * first (structure-aware: magic, version, this guest's sizes and identity,
 * a count the bytes hold, the checksum resealed), so the checks of the
 * entries behind them are reached too; some of those keep sizes of their
 * own, for ws_load.  Whatever the bytes: an error with a message and
 * nothing held, or a working set that keeps every invariant of workset.h
 * and writes back to the very same bytes.  ws_load (every check but the
 * binding) accepts whatever ws_read accepts, reading the same working set,
 * and what it accepts keeps the invariants for the file's own sizes and
 * compares with itself as one set (ws_compare).
 */
#include <stdbool.h>
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

/* Makes buf[0..*size) a file the outer checks accept: for this guest, or
 * (own) for sizes of the file's own, below 128 pages. */
static void seal(uint8_t *buf, size_t *size, bool own)
{
	const size_t hdr = sizeof(struct ws_header), tail = SHA256_LEN;
	struct ws_header h;

	if (*size < hdr + tail)
		return;
	memcpy(&h, buf, hdr);
	memcpy(h.magic, WS_MAGIC, sizeof(h.magic));
	h.version = WS_VERSION;
	h.flags = 0;
	h.mem_pages = own ? h.mem_pages % 128 : MEM_PAGES;
	h.resident_pages = own ? h.resident_pages % 128 : RES_PAGES;
	h.identity = ident;
	h.count %= h.mem_pages + 1;
	if (h.count > (*size - hdr - tail) / sizeof(struct ws_entry))
		h.count = (*size - hdr - tail) / sizeof(struct ws_entry);
	memcpy(buf, &h, hdr);
	*size = hdr + h.count * sizeof(struct ws_entry) + tail;
	sha256(buf, *size - tail, (struct sha256 *)(buf + *size - tail));
}

/* The invariants of workset.h, checked the slow way. */
static void check_valid(const struct workset *ws)
{
	CHECK_OR_DIE(ws->mem_pages <= WS_MAX_PAGES && ws->resident_pages <= ws->mem_pages);
	CHECK_OR_DIE(ws->count <= ws->mem_pages && (ws->entries || !ws->count));
	for (uint64_t i = 0; i < ws->count; i++) {
		CHECK_OR_DIE(ws->entries[i].page < ws->mem_pages);
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

static struct workset last_load; /* what check_load read, until ws_read's compared */

/* ws_load of path: an error with a message and nothing held, or a valid
 * working set (kept in last_load) equal to itself as a set.  Its result. */
static int check_load(void)
{
	struct apf_err e = { "" };
	struct ws_comparison c;

	ws_free(&last_load);
	int rc = ws_load(path, &last_load, &e);
	if (rc) {
		CHECK_OR_DIE(rc < 0 && e.msg[0] != '\0' && strstr(e.msg, path));
		CHECK_OR_DIE(last_load.entries == NULL && last_load.count == 0);
		return rc;
	}
	check_valid(&last_load);
	CHECK_OR_DIE(ws_compare(&last_load, &last_load, &c, &e) == 0);
	CHECK_OR_DIE(c.both == last_load.count && !c.unused && !c.missed && c.jaccard == 1);
	return 0;
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
		seal(buf, &len, data[0] & 2);
	write_file(path, buf, len);

	int loaded = check_load();
	int rc = ws_read(path, &ident, MEM_PAGES, RES_PAGES, &ws, &e);
	if (rc) {
		CHECK_OR_DIE(rc < 0 && e.msg[0] != '\0' && strstr(e.msg, path));
		CHECK_OR_DIE(ws.entries == NULL && ws.count == 0);
		return 0;
	}
	CHECK_OR_DIE(loaded == 0);
	check_valid(&ws);
	CHECK_OR_DIE(ws.mem_pages == MEM_PAGES && ws.resident_pages == RES_PAGES);
	CHECK_OR_DIE(ws.count == last_load.count);
	CHECK_OR_DIE(!ws.count || !memcmp(ws.entries, last_load.entries,
					  ws.count * sizeof(*ws.entries)));
	ws_free(&last_load);
	/* What was read writes back byte for byte. */
	CHECK_OR_DIE(ws_write(path2, &ws, &e) == 0);
	FILE *f = fopen(path2, "rb");
	CHECK_OR_DIE(f && fread(back, 1, sizeof(back), f) == len && fclose(f) == 0);
	CHECK_OR_DIE(memcmp(back, buf, len) == 0);
	ws_free(&ws);
	return 0;
}
