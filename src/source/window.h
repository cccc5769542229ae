/* The window wrapper: a checked slice of another source, how a restore
 * reads a snapshot's memory. */
#ifndef APFVM_SOURCE_WINDOW_H
#define APFVM_SOURCE_WINDOW_H

#include <stdint.h>

#include "snapshot/snapshot.h"
#include "source/source.h"
#include "util/err.h"

/* Pages [first, first + npages) of inner, which serves the memory of the
 * snapshot `snap` (inner's page p is page p of its PATH.mem), as pages 0..
 * of a new source:
 *   - a page the snapshot lists as all zero (snap_page_is_zero) completes
 *     at once as a zero completion, inner never asked for it;
 *   - every other page is fetched from inner and checked against its
 *     SHA-256 in snap->page_digests; a mismatch fails the page with
 *     -EBADMSG: nothing an inner source's peer or cache could forge passes.
 * snap is borrowed (its state must outlive the source).  Takes ownership
 * of inner on success.  How a restore reads a snapshot's memory, from
 * PATH.mem or from a remote copy alike.
 *
 * submit_run: the run's zero pages complete at once, its non-zero pages go
 * to inner in runs (source_submit_run), split around the zero ones.  0, or
 * -errno with none of the run started; if the run had to be split and a
 * later part cannot start, that part's pages complete failed (the cause
 * in `why`) rather than leave the run half started behind an error. */
int source_window_wrap(struct page_source *inner, const struct snap_image *snap, uint64_t first,
		       uint64_t npages, struct page_source **out, struct apf_err *e);

#endif
