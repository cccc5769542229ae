#include "initramfs.h"

#include <elf.h>
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

int initramfs_build(const void *init, size_t init_len, const void *busybox, size_t busybox_len,
		    uint8_t **out, size_t *out_len, struct apf_err *e)
{
	static const char *const applets[] = { INITRAMFS_APPLETS };
	size_t cap = init_len + busybox_len + 8192, off = 0;
	uint8_t *buf = malloc(cap);
	int rc = 0;

	if (!buf)
		return apf_fail(e, -ENOMEM, "out of memory");
	rc |= cpio_add(buf, cap, &off, "dev", S_IFDIR | 0755, 0, 0, NULL, 0);
	rc |= cpio_add(buf, cap, &off, "dev/console", S_IFCHR | 0600, 5, 1, NULL, 0);
	rc |= cpio_add(buf, cap, &off, "dev/mem", S_IFCHR | 0600, 1, 1, NULL, 0); /* apfvm's pages, the lazy region */
	rc |= cpio_add(buf, cap, &off, "proc", S_IFDIR | 0755, 0, 0, NULL, 0);
	rc |= cpio_add(buf, cap, &off, "sys", S_IFDIR | 0755, 0, 0, NULL, 0);
	rc |= cpio_add(buf, cap, &off, "init", S_IFREG | 0755, 0, 0, init, init_len);
	if (busybox) {
		rc |= cpio_add(buf, cap, &off, "bin", S_IFDIR | 0755, 0, 0, NULL, 0);
		rc |= cpio_add(buf, cap, &off, "bin/busybox", S_IFREG | 0755, 0, 0, busybox,
			       busybox_len);
		for (size_t i = 0; i < sizeof(applets) / sizeof(applets[0]); i++) {
			char name[32];
			snprintf(name, sizeof(name), "bin/%s", applets[i]);
			rc |= cpio_add(buf, cap, &off, name, S_IFLNK | 0777, 0, 0, "busybox", 7);
		}
	}
	rc |= cpio_trailer(buf, cap, &off);
	if (rc) {
		free(buf);
		return apf_fail(e, -ENOMEM, "the built-in initramfs does not fit its buffer");
	}
	*out = buf;
	*out_len = off;
	return 0;
}

bool initramfs_static_elf(const void *buf, size_t len)
{
	Elf64_Ehdr eh;

	if (len < sizeof(eh))
		return false;
	memcpy(&eh, buf, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_machine != EM_X86_64 || (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > len ||
	    (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff)
		return false;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, (const uint8_t *)buf + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_INTERP)
			return false;
	}
	return true;
}
