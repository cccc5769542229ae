#include "net_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int net_addr_parse(const char *spec, const char *what, int allow_port0,
		   struct sockaddr_storage *ss, socklen_t *len, struct apf_err *e)
{
	char host[64], *end;
	const char *colon = strrchr(spec, ':');
	const char *h = spec;
	size_t hl;

	if (!colon || !colon[1])
		return apf_fail(e, -EINVAL, "%s '%s': expected ADDR:PORT", what, spec);
	hl = (size_t)(colon - spec);
	if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']')
		h = spec + 1, hl -= 2;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (hl == 0 || hl >= sizeof(host) || *end || errno || port > 65535 || colon[1] == '-' ||
	    colon[1] == '+' || (!port && !allow_port0))
		return apf_fail(e, -EINVAL, "%s '%s': expected ADDR:PORT (port %s..65535)", what,
				spec, allow_port0 ? "0" : "1");
	memcpy(host, h, hl);
	host[hl] = '\0';
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*v6);
	} else {
		return apf_fail(e, -EINVAL,
				"%s '%s': '%s' is not a numeric IPv4 or IPv6 address (no host names)",
				what, spec, host);
	}
	return 0;
}

void net_addr_format(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &v6->sin6_addr, a, sizeof(a));
		snprintf(buf, size, "[%s]:%u", a, ntohs(v6->sin6_port));
	} else {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &v4->sin_addr, a, sizeof(a));
		snprintf(buf, size, "%s:%u", a, ntohs(v4->sin_port));
	}
}
