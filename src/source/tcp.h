/* The tcp source (spec "tcp:ADDR:PORT"): pages from a page server
 * (`apfvm serve`, net/page_proto.h), pipelined over two connections (one
 * for demand fetches, one for bulk ones); its bound on every fetch is told
 * in tcp.c, how it bears a misbehaving peer in tcp_conn.h. */
#ifndef APFVM_SOURCE_TCP_H
#define APFVM_SOURCE_TCP_H

#include <stdint.h>

#include "source/source.h"
#include "util/err.h"

/* A page server at "ADDR:PORT" (numeric, net/net_addr.h): connects and
 * greets it now (a server that cannot be reached or serves too few pages
 * is an error here), then fetches pipelined (tcp.c).  net is not NULL
 * and already checked (source_open does both). */
int source_tcp_open(const char *addr, uint64_t lazy_bytes, const struct source_net_options *net,
		    struct page_source **out, struct apf_err *e);

#endif
