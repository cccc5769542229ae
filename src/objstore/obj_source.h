/* The object source (specs "s3://BUCKET/KEY" and "http(s)://HOST/PATH"):
 * a memory image in object storage (objstore/obj_store.h, `apfvm pack`).
 * Builds without libcurl refuse it (obj_none.c). */
#ifndef APFVM_OBJ_SOURCE_H
#define APFVM_OBJ_SOURCE_H

#include <stdint.h>

#include "source/source.h"
#include "util/err.h"

/* Reads the image's manifest now, then fetches chunks with HTTP Range
 * requests.  net is not NULL and already checked (source_open does
 * both). */
int source_object_open(const char *spec, uint64_t lazy_bytes, const struct source_net_options *net,
		       struct page_source **out, struct apf_err *e);

#endif
