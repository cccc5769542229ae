/*
 * Object storage in a build without libcurl and zstd (the static arm64
 * build): the s3:// and http(s):// sources and `apfvm pack` say so.
 */
#include <errno.h>

#include "objstore/obj_source.h"
#include "objstore/obj_store.h"

#define NOT_BUILT "this apfvm was built without libcurl and zstd: no object storage " \
		  "(s3://, http(s)://, apfvm pack); build it natively with them installed"

int source_object_open(const char *spec, uint64_t lazy_bytes, const struct source_net_options *net,
		       struct page_source **out, struct apf_err *e)
{
	(void)spec, (void)lazy_bytes, (void)net, (void)out;
	return apf_fail(e, -ENOTSUP, NOT_BUILT);
}

int obj_pack(const char *path, bool snapshot, const char *dest, uint32_t chunk_pages, int level,
	     const struct obj_store_options *o, struct obj_pack_stats *st, struct apf_err *e)
{
	(void)path, (void)snapshot, (void)dest, (void)chunk_pages, (void)level, (void)o, (void)st;
	return apf_fail(e, -ENOTSUP, NOT_BUILT);
}
