#include "host_kernel.h"

#include <stdio.h>
#include <sys/utsname.h>

bool host_kernel_older_than(unsigned major, unsigned minor)
{
	struct utsname u;
	unsigned ma = 0, mi = 0;

	if (uname(&u) || sscanf(u.release, "%u.%u", &ma, &mi) != 2)
		return false;
	return ma < major || (ma == major && mi < minor);
}
