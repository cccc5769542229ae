#include "initramfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NEWC_HEADER 110

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

int cpio_add(uint8_t *buf, size_t cap, size_t *off, const char *name, uint32_t mode,
	     uint32_t rdev_major, uint32_t rdev_minor, const void *data, size_t len)
{
	size_t namesize = strlen(name) + 1;
	size_t head = pad4(NEWC_HEADER + namesize), need = head + pad4(len);
	char hdr[NEWC_HEADER + 1];

	if (len > 0xffffffffu || *off > cap || need > cap - *off)
		return -ENOSPC;
	/* magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	 * devminor, rdevmajor, rdevminor, namesize, check: 8 hex digits each */
	snprintf(hdr, sizeof(hdr),
		 "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 (unsigned)(*off / 4 + 1) /* unique: offsets only grow */, mode, 0u,
		 0u, (mode & S_IFMT) == S_IFDIR ? 2u : 1u, 0u, (unsigned)len, 0u, 0u, rdev_major,
		 rdev_minor, (unsigned)namesize, 0u);
	memset(buf + *off, 0, need);
	memcpy(buf + *off, hdr, NEWC_HEADER);
	memcpy(buf + *off + NEWC_HEADER, name, namesize);
	if (len)
		memcpy(buf + *off + head, data, len);
	*off += need;
	return 0;
}

int cpio_trailer(uint8_t *buf, size_t cap, size_t *off)
{
	return cpio_add(buf, cap, off, "TRAILER!!!", 0, 0, 0, NULL, 0);
}

int initramfs_build(const void *init, size_t len, uint8_t **out, size_t *out_len,
		    struct apf_err *e)
{
	size_t cap = len + 4096, off = 0;
	uint8_t *buf = malloc(cap);
	int rc = 0;

	if (!buf)
		return apf_fail(e, -ENOMEM, "out of memory");
	rc |= cpio_add(buf, cap, &off, "dev", S_IFDIR | 0755, 0, 0, NULL, 0);
	rc |= cpio_add(buf, cap, &off, "dev/console", S_IFCHR | 0600, 5, 1, NULL, 0);
	rc |= cpio_add(buf, cap, &off, "dev/mem", S_IFCHR | 0600, 1, 1, NULL, 0); /* apfvm's pages, the lazy region */
	rc |= cpio_add(buf, cap, &off, "proc", S_IFDIR | 0755, 0, 0, NULL, 0);
	rc |= cpio_add(buf, cap, &off, "sys", S_IFDIR | 0755, 0, 0, NULL, 0);
	rc |= cpio_add(buf, cap, &off, "init", S_IFREG | 0755, 0, 0, init, len);
	rc |= cpio_trailer(buf, cap, &off);
	if (rc) {
		free(buf);
		return apf_fail(e, -ENOMEM, "the built-in initramfs does not fit its buffer");
	}
	*out = buf;
	*out_len = off;
	return 0;
}
