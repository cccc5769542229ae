#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int file_open_regular(const char *path, struct stat *st)
{
	/* O_NONBLOCK: open() of a FIFO returns at once instead of waiting
	 * for a writer; the type check below then rejects it. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	int flags;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return -EINVAL;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}
