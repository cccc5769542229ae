#include "source/open.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "apfvm/abi.h"
#include "objstore/obj_source.h"
#include "source/file.h"
#include "source/tcp.h"
#include "source/zero.h"

#define SOURCE_SPECS "'zero', 'file:PATH', 'tcp:ADDR:PORT', 's3://BUCKET/KEY' or 'http(s)://HOST/PATH'"

int source_open(const char *spec, uint64_t lazy_bytes, const struct source_net_options *net,
		struct page_source **out, struct apf_err *e)
{
	static const struct source_net_options net_defaults = {
		.timeout_ns = SOURCE_NET_TIMEOUT_DEFAULT_NS,
		.tries = SOURCE_NET_TRIES_DEFAULT,
	};

	if (!spec || !*spec)
		return apf_fail(e, -EINVAL, "empty page source; use " SOURCE_SPECS);
	if (!strcmp(spec, "zero"))
		return source_zero_open(lazy_bytes / APF_PAGE_SIZE, out, e);
	if (!strncmp(spec, "file:", 5)) {
		if (!spec[5])
			return apf_fail(e, -EINVAL, "source 'file:' needs a path: file:PATH");
		return source_file_open(spec + 5, lazy_bytes, out, e);
	}
	bool object = !strncmp(spec, "s3://", 5) || !strncmp(spec, "http://", 7) ||
		      !strncmp(spec, "https://", 8);
	if (!strncmp(spec, "tcp:", 4) || object) {
		if (!net)
			net = &net_defaults;
		if (net->timeout_ns < 1000000 || net->timeout_ns > SOURCE_NET_TIMEOUT_MAX_NS ||
		    net->tries < 1 || net->tries > SOURCE_NET_TRIES_MAX)
			return apf_fail(e, -EINVAL, "fetch timeout must be 1ms..%llus and tries 1..%d",
					(unsigned long long)(SOURCE_NET_TIMEOUT_MAX_NS / 1000000000ull),
					SOURCE_NET_TRIES_MAX);
		return object ? source_object_open(spec, lazy_bytes, net, out, e)
			      : source_tcp_open(spec + 4, lazy_bytes, net, out, e);
	}
	return apf_fail(e, -EINVAL, "unknown page source '%s'; use " SOURCE_SPECS, spec);
}
