/*
 * open: the page sources a user names, and the one place that knows
 * every kind.  A spec is one of
 *
 *   zero                  every page zeros (source/zero.h)
 *   file:PATH             an image file, `apfvm image` (source/file.h)
 *   tcp:ADDR:PORT         a page server, `apfvm serve` (source/tcp.h)
 *   s3://BUCKET/KEY       a memory image in object storage, `apfvm pack`
 *   http(s)://HOST/PATH   (objstore/obj_source.h)
 *
 * The kinds themselves know only source/source.h; what they are called by
 * users is decided here.
 */
#ifndef APFVM_SOURCE_OPEN_H
#define APFVM_SOURCE_OPEN_H

#include <stdint.h>

#include "source/source.h"
#include "util/err.h"

/* Creates the source a spec names (above).  `lazy_bytes` is the size it
 * must serve (checked: an image smaller than the lazy region is an error).
 * net: for remote sources, NULL for the defaults (checked: a timeout
 * outside 1 ms..SOURCE_NET_TIMEOUT_MAX_NS or tries outside
 * 1..SOURCE_NET_TRIES_MAX is -EINVAL).  0, or -errno with e filled: an
 * empty or unknown spec is -EINVAL. */
int source_open(const char *spec, uint64_t lazy_bytes, const struct source_net_options *net,
		struct page_source **out, struct apf_err *e);

#endif
