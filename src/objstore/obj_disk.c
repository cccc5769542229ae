#include "obj_disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* A directory of the cache: ours alone, or refused (why, in e). */
static int open_private_dir(int atfd, const char *name, const char *shown, struct apf_err *e)
{
	struct stat st;

	if (mkdirat(atfd, name, 0700) && errno != EEXIST)
		return apf_fail(e, -errno, "--cache-dir: cannot create '%s': %s", shown,
				strerror(errno));
	int fd = openat(atfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return apf_fail(e, -errno, "--cache-dir: cannot open '%s': %s", shown,
				errno == ELOOP || errno == ENOTDIR ? "not a directory (a symlink?)"
								    : strerror(errno));
	if (fstat(fd, &st) < 0) {
		int rc = -errno;
		close(fd);
		return apf_fail(e, rc, "--cache-dir: '%s': %s", shown, strerror(-rc));
	}
	if (st.st_uid != geteuid() || (st.st_mode & 022)) {
		close(fd);
		return apf_fail(e, -EPERM, "--cache-dir: '%s' is %s: a cache others can write "
				"into could be planted", shown,
				st.st_uid != geteuid() ? "owned by another user"
						       : "writable by others");
	}
	return fd;
}

/* Calls visit(ctx, folder fd, name, stat) for every chunk file under
 * rootfd, one level of folders down (regular files only, hidden ones and
 * symlinks skipped). */
static void each_chunk_file(int rootfd, void (*visit)(void *ctx, int dirfd, const char *name,
						      const struct stat *st),
			    void *ctx)
{
	int fd = dup(rootfd);
	DIR *root = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!root) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(root);
	while ((de = readdir(root))) {
		if (de->d_name[0] == '.')
			continue;
		int sub = openat(rootfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		DIR *d = sub >= 0 ? fdopendir(sub) : NULL;
		struct dirent *f;
		struct stat st;
		if (!d) {
			if (sub >= 0)
				close(sub);
			continue;
		}
		while ((f = readdir(d)))
			if (f->d_name[0] != '.' &&
			    !fstatat(dirfd(d), f->d_name, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode))
				visit(ctx, dirfd(d), f->d_name, &st);
		closedir(d);
	}
	closedir(root);
}

static void add_size(void *ctx, int dirfd, const char *name, const struct stat *st)
{
	(void)dirfd, (void)name;
	*(uint64_t *)ctx += (uint64_t)st->st_size;
}

/* Bytes of the chunk files under rootfd. */
static uint64_t measure(int rootfd)
{
	uint64_t total = 0;
	each_chunk_file(rootfd, add_size, &total);
	return total;
}

int obj_disk_open(struct obj_disk *d, const char *root, const struct sha256 *manifest_sha256,
		  uint64_t limit_bytes, struct apf_err *e)
{
	char hex[2 * SHA256_LEN + 1];
	int rc;

	d->rootfd = d->dirfd = -1;
	d->limit_bytes = limit_bytes ? limit_bytes : OBJ_DISK_DEFAULT_LIMIT;
	if ((rc = open_private_dir(AT_FDCWD, root, root, e)) < 0)
		return rc;
	d->rootfd = rc;
	sha256_hex(manifest_sha256, hex);
	if ((rc = open_private_dir(d->rootfd, hex, hex, e)) < 0) {
		obj_disk_close(d);
		return rc;
	}
	d->dirfd = rc;
	d->used_bytes = measure(d->rootfd);
	return 0;
}

int obj_disk_read(const struct obj_disk *d, uint64_t chunk, void *buf, size_t len)
{
	char name[32];
	struct stat st;
	size_t got = 0;

	snprintf(name, sizeof(name), "%llu", (unsigned long long)chunk);
	int fd = openat(d->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
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
	futimens(fd, NULL); /* used now: the last to be evicted */
	close(fd);
	return 0;
}

struct oldest {
	int dirfd;            /* a dup of its folder's fd, or -1 */
	char name[256];
	uint64_t size;
	struct timespec mtime;
};

static void keep_oldest(void *ctx, int dirfd, const char *name, const struct stat *st)
{
	struct oldest *o = ctx;
	if (o->dirfd >= 0 && (st->st_mtim.tv_sec > o->mtime.tv_sec ||
			      (st->st_mtim.tv_sec == o->mtime.tv_sec &&
			       st->st_mtim.tv_nsec >= o->mtime.tv_nsec)))
		return;
	int fd = dup(dirfd);
	if (fd < 0)
		return;
	if (o->dirfd >= 0)
		close(o->dirfd);
	o->dirfd = fd;
	snprintf(o->name, sizeof(o->name), "%s", name);
	o->size = (uint64_t)st->st_size;
	o->mtime = st->st_mtim;
}

/* Removes the least recently used files until DIR is within 90% of its
 * bound (measured again first: other processes share it). */
static void keep_within_bound(struct obj_disk *d)
{
	if (d->used_bytes <= d->limit_bytes)
		return;
	d->used_bytes = measure(d->rootfd);
	while (d->used_bytes > d->limit_bytes / 10 * 9) {
		struct oldest o = { .dirfd = -1 };
		each_chunk_file(d->rootfd, keep_oldest, &o);
		if (o.dirfd < 0)
			break;
		int rc = unlinkat(o.dirfd, o.name, 0);
		close(o.dirfd);
		if (rc)
			break;
		d->used_bytes -= o.size < d->used_bytes ? o.size : d->used_bytes;
	}
}

void obj_disk_write(struct obj_disk *d, uint64_t chunk, const void *buf, size_t len)
{
	char name[32], tmp[64];
	size_t done = 0;
	uint64_t r;

	/* A chunk larger than what keep_within_bound trims down to would be
	 * removed right after it is written, with every older one. */
	if (len > d->limit_bytes / 10 * 9 || getrandom(&r, sizeof(r), 0) != sizeof(r))
		return;
	snprintf(name, sizeof(name), "%llu", (unsigned long long)chunk);
	snprintf(tmp, sizeof(tmp), ".%llu.tmp-%016llx", (unsigned long long)chunk,
		 (unsigned long long)r);
	int fd = openat(d->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
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
	if (close(fd) || done != len || renameat(d->dirfd, tmp, d->dirfd, name)) {
		unlinkat(d->dirfd, tmp, 0);
		return;
	}
	d->used_bytes += len;
	keep_within_bound(d);
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
	if (d->rootfd >= 0)
		close(d->rootfd);
	d->dirfd = d->rootfd = -1;
}
