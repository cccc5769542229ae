/*
 * net_addr: the socket addresses users give apfvm ("ADDR:PORT" for
 * `apfvm serve --listen`, "HOST:PORT" after tcp: in --source).
 *
 * Numeric addresses only, IPv4 or [IPv6]: no name service, so that the
 * static arm64 build needs none and a lookup can never stall a VMM.
 */
#ifndef APFVM_NET_ADDR_H
#define APFVM_NET_ADDR_H

#include <stdint.h>
#include <sys/socket.h>

#include "util/err.h"

/* Parses `spec` ("1.2.3.4:80", "[::1]:80") into *ss and *len.  `what`
 * names the setting in messages ("--listen").  Port 0 is accepted only
 * with allow_port0 (a listener: the kernel picks one).  0, or -EINVAL. */
int net_addr_parse(const char *spec, const char *what, int allow_port0,
		   struct sockaddr_storage *ss, socklen_t *len, struct apf_err *e);

/* "1.2.3.4:80" or "[::1]:80" for messages; buf of at least 64 bytes. */
void net_addr_format(const struct sockaddr_storage *ss, char *buf, size_t size);

#endif
