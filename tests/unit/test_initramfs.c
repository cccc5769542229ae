/* The built-in initramfs in the newc format Linux unpacks: each header's
 * fields, names and data at 4-byte boundaries, the trailer last. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test.h"
#include "image/initramfs.h"

static unsigned long field(const uint8_t *h, int i)
{
	char hex[9];
	memcpy(hex, h + 6 + 8 * i, 8);
	hex[8] = '\0';
	return strtoul(hex, NULL, 16);
}

TEST(initramfs_holds_console_dirs_and_init_in_newc)
{
	static const char init[] = "\x7f" "ELF pretend";
	static const struct {
		const char *name;
		unsigned long mode, rmaj, rmin, size;
	} want[] = {
		{ "dev", S_IFDIR | 0755, 0, 0, 0 },
		{ "dev/console", S_IFCHR | 0600, 5, 1, 0 },
		{ "dev/mem", S_IFCHR | 0600, 1, 1, 0 },
		{ "proc", S_IFDIR | 0755, 0, 0, 0 },
		{ "sys", S_IFDIR | 0755, 0, 0, 0 },
		{ "init", S_IFREG | 0755, 0, 0, sizeof(init) },
		{ "TRAILER!!!", 0, 0, 0, 0 },
	};
	uint8_t *buf;
	size_t len, off = 0;
	struct apf_err e;

	REQUIRE(initramfs_build(init, sizeof(init), NULL, 0, &buf, &len, &e) == 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		REQUIRE(off + 110 <= len);
		const uint8_t *h = buf + off;
		CHECK(memcmp(h, "070701", 6) == 0);
		unsigned long namesize = field(h, 11), size = field(h, 6);
		CHECK_EQ_U(field(h, 1), want[i].mode);
		CHECK_EQ_U(field(h, 9), want[i].rmaj);
		CHECK_EQ_U(field(h, 10), want[i].rmin);
		CHECK_EQ_U(size, want[i].size);
		CHECK_EQ_U(namesize, strlen(want[i].name) + 1);
		CHECK(memcmp(h + 110, want[i].name, namesize) == 0);
		size_t data = (off + 110 + namesize + 3) & ~(size_t)3;
		if (size)
			CHECK(memcmp(buf + data, init, size) == 0);
		off = (data + size + 3) & ~(size_t)3;
	}
	CHECK_EQ_U(off, len);
	free(buf);
}

/* The entry called name in a newc archive: its mode, data and size. */
static const uint8_t *entry(const uint8_t *buf, size_t len, const char *name,
			    unsigned long *mode, unsigned long *size)
{
	size_t off = 0;
	while (off + 110 <= len) {
		const uint8_t *h = buf + off;
		unsigned long namesize = field(h, 11);
		*size = field(h, 6);
		*mode = field(h, 1);
		size_t data = (off + 110 + namesize + 3) & ~(size_t)3;
		if (!strcmp((const char *)h + 110, name))
			return buf + data;
		off = (data + *size + 3) & ~(size_t)3;
	}
	return NULL;
}

TEST(initramfs_carries_busybox_and_its_applets)
{
	static const char init[] = "init", busybox[] = "\x7f" "ELF busybox";
	static const char *const applets[] = { INITRAMFS_APPLETS };
	unsigned long mode, size;
	uint8_t *buf;
	size_t len;
	struct apf_err e;

	REQUIRE(initramfs_build(init, sizeof(init), busybox, sizeof(busybox), &buf, &len, &e) == 0);
	const uint8_t *d = entry(buf, len, "bin/busybox", &mode, &size);
	REQUIRE(d != NULL);
	CHECK_EQ_U(mode, S_IFREG | 0755);
	CHECK_EQ_U(size, sizeof(busybox));
	CHECK(memcmp(d, busybox, size) == 0);
	CHECK(entry(buf, len, "bin", &mode, &size) && mode == (S_IFDIR | 0755));
	for (size_t i = 0; i < sizeof(applets) / sizeof(applets[0]); i++) {
		char name[32];
		snprintf(name, sizeof(name), "bin/%s", applets[i]);
		d = entry(buf, len, name, &mode, &size);
		REQUIRE(d != NULL);
		CHECK_EQ_U(mode, S_IFLNK | 0777);
		CHECK(size == 7 && memcmp(d, "busybox", 7) == 0);
	}
	CHECK(entry(buf, len, "bin/sh", &mode, &size) != NULL);
	CHECK(entry(buf, len, "init", &mode, &size) != NULL);
	free(buf);
}

TEST(cpio_add_refuses_what_does_not_fit)
{
	uint8_t buf[128];
	size_t off = 0;
	CHECK(cpio_add(buf, sizeof(buf), &off, "a", S_IFREG | 0644, 0, 0, "x", 1) == 0);
	CHECK_EQ_U(off, 116);
	CHECK(cpio_add(buf, sizeof(buf), &off, "b", S_IFREG | 0644, 0, 0, "x", 1) == -ENOSPC);
	CHECK_EQ_U(off, 116); /* unchanged */
}

TEST_MAIN(T(initramfs_holds_console_dirs_and_init_in_newc), T(initramfs_carries_busybox_and_its_applets), T(cpio_add_refuses_what_does_not_fit))
