#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#include "apfvm/abi.h"

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

int file_pread_page(int fd, uint64_t offset, void *buf)
{
	return file_pread_full(fd, offset, buf, APF_PAGE_SIZE);
}

int file_pread_full(int fd, uint64_t offset, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

unsigned file_preadv_pages(int fd, uint64_t offset, void *const *bufs, unsigned n, int *err)
{
	struct iovec iov[FILE_PAGES_MAX];
	size_t done = 0, total = (size_t)n * APF_PAGE_SIZE;

	*err = 0;
	if (n > FILE_PAGES_MAX) {
		*err = -EINVAL;
		return 0;
	}
	while (done < total) {
		/* The pages not read yet, the first perhaps in part. */
		unsigned first = (unsigned)(done / APF_PAGE_SIZE);
		size_t in = done % APF_PAGE_SIZE;
		for (unsigned i = first; i < n; i++) {
			iov[i - first].iov_base = (char *)bufs[i] + (i == first ? in : 0);
			iov[i - first].iov_len = APF_PAGE_SIZE - (i == first ? in : 0);
		}
		ssize_t got = preadv(fd, iov, (int)(n - first), (off_t)(offset + done));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			*err = got < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)got;
	}
	return (unsigned)(done / APF_PAGE_SIZE);
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

int file_out_open(struct file_out *o, const char *path, mode_t mode)
{
	size_t len = strlen(path) + sizeof(".tmp-0123456789abcdef");

	o->fd = -1;
	o->path = strdup(path);
	o->tmp = malloc(len);
	if (!o->path || !o->tmp) {
		file_out_abort(o);
		return -ENOMEM;
	}
	for (int attempt = 0; attempt < 16; attempt++) {
		uint64_t r;
		if (getrandom(&r, sizeof(r), 0) != sizeof(r)) {
			int rc = -errno;
			file_out_abort(o);
			return rc;
		}
		snprintf(o->tmp, len, "%s.tmp-%016llx", path, (unsigned long long)r);
		o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
		if (o->fd >= 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	int rc = -errno;
	free(o->tmp);
	o->tmp = NULL; /* nothing of ours to remove */
	file_out_abort(o);
	return rc;
}

int file_out_commit(struct file_out *o)
{
	int rc = 0;

	if (fsync(o->fd) < 0 && errno != EINVAL)
		rc = -errno;
	if (close(o->fd) < 0 && !rc)
		rc = -errno;
	o->fd = -1;
	if (!rc && rename(o->tmp, o->path) < 0)
		rc = -errno;
	if (rc) {
		file_out_abort(o);
		return rc;
	}
	free(o->tmp);
	o->tmp = NULL;
	file_out_abort(o);
	return 0;
}

void file_out_abort(struct file_out *o)
{
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	if (o->tmp)
		unlink(o->tmp);
	free(o->tmp);
	free(o->path);
	o->tmp = o->path = NULL;
}

bool file_is(const char *path, const struct stat *st)
{
	struct stat other;
	return stat(path, &other) == 0 && other.st_dev == st->st_dev && other.st_ino == st->st_ino;
}

int file_temp_anonymous(void)
{
	const char *dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int fd = open(dir, O_RDWR | O_TMPFILE | O_EXCL | O_CLOEXEC, 0600);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
		return fd >= 0 ? fd : -errno;
	/* A file system without O_TMPFILE: a random name, removed at once. */
	char path[4096];
	snprintf(path, sizeof(path), "%s/apfvm.XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}
