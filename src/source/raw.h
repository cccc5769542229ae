/* The raw source: pages of a raw page file, a snapshot's PATH.mem.  Not a
 * spec a user names: a restore opens it itself. */
#ifndef APFVM_SOURCE_RAW_H
#define APFVM_SOURCE_RAW_H

#include <stdint.h>

#include "source/source.h"
#include "util/err.h"

/* Pages of the raw page file fd (borrowed: must outlive the source), from
 * offset 0: a snapshot's PATH.mem, read through source_window_wrap
 * (source/window.h). */
int source_raw_open(int fd, uint64_t npages, const char *desc, struct page_source **out,
		    struct apf_err *e);

#endif
