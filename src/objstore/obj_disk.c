#include "obj_disk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/crc32c.h"

int obj_disk_open(struct obj_disk *d, const char *root, const void *manifest, size_t len,
		  struct apf_err *e)
{
	char dir[4200];

	d->dirfd = -1;
	if (strlen(root) > 4000)
		return apf_fail(e, -ENAMETOOLONG, "--cache-dir: path too long");
	if (mkdir(root, 0755) && errno != EEXIST)
		return apf_fail(e, -errno, "--cache-dir '%s': %s", root, strerror(errno));
	snprintf(dir, sizeof(dir), "%s/%08x-%zu", root, crc32c(0, manifest, len), len);
	if (mkdir(dir, 0755) && errno != EEXIST)
		return apf_fail(e, -errno, "--cache-dir: cannot create '%s': %s", dir, strerror(errno));
	d->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dirfd < 0)
		return apf_fail(e, -errno, "--cache-dir: cannot open '%s': %s", dir, strerror(errno));
	return 0;
}

int obj_disk_read(const struct obj_disk *d, uint64_t chunk, void *buf, size_t len)
{
	char name[32];
	struct stat st;
	size_t got = 0;

	snprintf(name, sizeof(name), "%llu", (unsigned long long)chunk);
	int fd = openat(d->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -ENOENT;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != len) {
		close(fd);
		return -ENOENT;
	}
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return n < 0 ? -errno : -ENOENT;
		}
		got += (size_t)n;
	}
	close(fd);
	return 0;
}

void obj_disk_write(const struct obj_disk *d, uint64_t chunk, const void *buf, size_t len)
{
	char name[32], tmp[48];
	size_t done = 0;

	snprintf(name, sizeof(name), "%llu", (unsigned long long)chunk);
	snprintf(tmp, sizeof(tmp), "%llu.%d.tmp", (unsigned long long)chunk, (int)getpid());
	int fd = openat(d->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return;
	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (close(fd) || done != len || renameat(d->dirfd, tmp, d->dirfd, name))
		unlinkat(d->dirfd, tmp, 0);
}

void obj_disk_drop(const struct obj_disk *d, uint64_t chunk)
{
	char name[32];
	snprintf(name, sizeof(name), "%llu", (unsigned long long)chunk);
	unlinkat(d->dirfd, name, 0);
}

void obj_disk_close(struct obj_disk *d)
{
	if (d->dirfd >= 0)
		close(d->dirfd);
	d->dirfd = -1;
}
