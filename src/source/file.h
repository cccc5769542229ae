/* The file source (spec "file:PATH"): pages of an image file (`apfvm
 * image`, image/image.h), read inside submit(): a page, or a run of pages
 * (submit_run), with one preadv. */
#ifndef APFVM_SOURCE_FILE_H
#define APFVM_SOURCE_FILE_H

#include <stdbool.h>
#include <stdint.h>

#include "source/source.h"
#include "util/err.h"

/* Opens the image at path, a regular file (-EINVAL otherwise, and when it
 * holds fewer than lazy_bytes). */
int source_file_open(const char *path, uint64_t lazy_bytes, struct page_source **out,
		     struct apf_err *e);

/* For the sources that read a local file (file, raw): reads the pages
 * [page, page + n) (n <= SOURCE_RUN_MAX), the first at byte `offset` of
 * fd, with one preadv into bufs, and queues one completion per page, all
 * stamped with the time of the call.  The pages read whole before a
 * failure complete; the failed one and those after it carry its error
 * (-EIO when the file ends first).  detect_zero: a page of zeros completes
 * as zero.  Returns the nanoseconds the read took. */
uint64_t source_read_pages(struct page_source *s, int fd, uint64_t offset, uint64_t page,
			   unsigned n, void *const *bufs, void *const *cookies, bool detect_zero);

#endif
