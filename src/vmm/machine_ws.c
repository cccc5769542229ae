#include "machine_ws.h"

#include <errno.h>
#include <stdlib.h>

#include "apfvm/abi.h"
#include "workset/workset.h"

/* The memory a working set of this machine describes: its identity and
 * its pages, resident ones first. */
static void describe_memory(struct machine *m)
{
	struct sha256 *id = &m->ws.identity;
	uint64_t *mem_pages = &m->ws.mem_pages, *resident_pages = &m->ws.resident_pages;
	const struct machine_region *lazy = &m->region[MACHINE_LAZY];
	uint64_t lazy_pages = lazy->size / APF_PAGE_SIZE;

	if (m->restore.snap) {
		ws_identity_snapshot(m->restore.snap, id);
		*resident_pages = m->region[MACHINE_RESIDENT].size / APF_PAGE_SIZE;
	} else {
		ws_identity_lazy(lazy_pages, lazy->pattern, lazy->seed, id);
		*resident_pages = 0;
	}
	*mem_pages = *resident_pages + lazy_pages;
}

int machine_ws_load(struct machine *m, struct apf_err *e)
{
	const char *path = m->cfg->prefetch_ws_path;
	uint64_t resident_pages;
	struct workset ws = { 0 };
	int rc;

	if (path || m->cfg->record_ws_path)
		describe_memory(m);
	if (!path)
		return 0;
	resident_pages = m->ws.resident_pages;
	if ((rc = ws_read(path, &m->ws.identity, m->ws.mem_pages, resident_pages, &ws, e)))
		return rc;
	for (int r = 0; r < MACHINE_REGIONS; r++) {
		m->ws.list[r] = malloc((ws.count ? ws.count : 1) * sizeof(uint32_t));
		if (!m->ws.list[r]) {
			ws_free(&ws);
			return apf_fail(e, -ENOMEM, "out of memory");
		}
	}
	for (uint64_t i = 0; i < ws.count; i++) {
		uint32_t page = ws.entries[i].page;
		if (page < resident_pages)
			m->ws.list[MACHINE_RESIDENT][m->ws.n[MACHINE_RESIDENT]++] = page;
		else
			m->ws.list[MACHINE_LAZY][m->ws.n[MACHINE_LAZY]++] =
				(uint32_t)(page - resident_pages);
	}
	ws_free(&ws);
	return 0;
}

/* Appends region r's first faults to ws (pages offset by `first`). */
static void add_touches(const struct machine *m, int r, uint64_t first, struct workset *ws)
{
	const struct pager *p = m->region[r].pager;
	uint64_t n;
	const uint32_t *t;

	if (!p || !(t = pager_touches(p, &n)))
		return;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t ns = pager_fault_ns(p, t[i]);
		ws->entries[ws->count++] = (struct ws_entry){
			.page = (uint32_t)(first + t[i]),
			.t_us = ws_time_us(ns > m->ws.base_ns ? ns - m->ws.base_ns : 0),
		};
	}
}

int machine_ws_record(struct machine *m, struct apf_err *e)
{
	const char *path = m->cfg->record_ws_path;
	struct workset ws = { 0 };
	int rc;

	if (!path)
		return 0;
	ws.identity = m->ws.identity;
	ws.mem_pages = m->ws.mem_pages;
	ws.resident_pages = m->ws.resident_pages;
	ws.entries = malloc((ws.mem_pages ? ws.mem_pages : 1) * sizeof(*ws.entries));
	if (!ws.entries)
		return apf_fail(e, -ENOMEM, "out of memory");
	add_touches(m, MACHINE_RESIDENT, 0, &ws);
	add_touches(m, MACHINE_LAZY, ws.resident_pages, &ws);
	ws_sort_by_time(&ws);
	rc = ws_write(path, &ws, e);
	ws_free(&ws);
	return rc;
}

void machine_ws_free(struct machine *m)
{
	for (int r = 0; r < MACHINE_REGIONS; r++) {
		free(m->ws.list[r]);
		m->ws.list[r] = NULL;
	}
}
