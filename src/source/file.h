/* The file source (spec "file:PATH"): pages of an image file (`apfvm
 * image`, image/image.h), read with pread inside submit(). */
#ifndef APFVM_SOURCE_FILE_H
#define APFVM_SOURCE_FILE_H

#include <stdint.h>

#include "source/source.h"
#include "util/err.h"

/* Opens the image at path, a regular file (-EINVAL otherwise, and when it
 * holds fewer than lazy_bytes). */
int source_file_open(const char *path, uint64_t lazy_bytes, struct page_source **out,
		     struct apf_err *e);

#endif
