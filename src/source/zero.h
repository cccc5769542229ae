/* The zero source (spec "zero"): every page zeros, available at once. */
#ifndef APFVM_SOURCE_ZERO_H
#define APFVM_SOURCE_ZERO_H

#include <stdint.h>

#include "source/source.h"
#include "util/err.h"

/* A source of npages zero pages; it completes inside submit(). */
int source_zero_open(uint64_t npages, struct page_source **out, struct apf_err *e);

#endif
