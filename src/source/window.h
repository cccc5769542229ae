/* The window wrapper: a checked slice of another source, how a restore
 * reads a snapshot's memory. */
#ifndef APFVM_SOURCE_WINDOW_H
#define APFVM_SOURCE_WINDOW_H

#include <stdint.h>

#include "source/source.h"
#include "util/err.h"
#include "util/sha256.h"

/* Pages [first, first + npages) of inner as pages 0.. of a new source, each
 * checked against its SHA-256, digests[page] (borrowed: must outlive the
 * source); a mismatch fails the page with -EBADMSG: nothing an inner
 * source's peer or cache could forge passes.  Takes ownership of inner on
 * success.  How a restore reads a snapshot's memory, from PATH.mem or
 * from a remote copy alike. */
int source_window_wrap(struct page_source *inner, uint64_t first, uint64_t npages,
		       const struct sha256 *digests, struct page_source **out, struct apf_err *e);

#endif
