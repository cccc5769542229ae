#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
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

int file_read_all(const char *path, void **out, size_t *len)
{
	struct stat st;
	char *buf;
	size_t done = 0;
	int fd = file_open_regular(path, &st);

	if (fd < 0)
		return fd == -EINVAL ? -EFBIG : fd;
	if ((uint64_t)st.st_size > FILE_READ_MAX) {
		close(fd);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
		if (n <= 0) {
			int rc = n < 0 ? -errno : -EIO;
			free(buf);
			close(fd);
			return rc;
		}
		done += (size_t)n;
	}
	close(fd);
	*out = buf;
	*len = done;
	return 0;
}
