/*
 * initramfs: the archive an unmodified Linux guest unpacks as its root
 * when apfvm supplies it (no `--initrd`): the "newc" cpio format of
 * Linux's Documentation/driver-api/early-userspace/buffer-format.rst,
 * with /dev/console (so /init has a console), /dev/mem (its way to apfvm's
 * pages and the lazy region), /dev, /proc, /sys, /init and, when given,
 * busybox in /bin.
 */
#ifndef APFVM_INITRAMFS_H
#define APFVM_INITRAMFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* One newc entry appended at *off in buf (cap bytes): header, name, data,
 * each padded to 4 bytes.  mode has the file type bits (S_IFDIR, S_IFREG,
 * S_IFCHR, S_IFLNK: data is the link's target); rdev_* are a device's
 * numbers.  -ENOSPC if it does not fit. */
int cpio_add(uint8_t *buf, size_t cap, size_t *off, const char *name, uint32_t mode,
	     uint32_t rdev_major, uint32_t rdev_minor, const void *data, size_t len);

/* The closing "TRAILER!!!" entry. */
int cpio_trailer(uint8_t *buf, size_t cap, size_t *off);

/* Whether buf is a 64-bit ELF executable without a program interpreter
 * (a static program that can run in the initramfs, which has no
 * libraries). */
bool initramfs_static_elf(const void *buf, size_t len);

/* The busybox applets linked in /bin when a busybox is given. */
#define INITRAMFS_APPLETS "sh", "cat", "grep", "ls", "dmesg", "head", "tail", "ps", "free", "uname"

/* Builds the built-in initramfs around `init` (a static program,
 * init_len bytes) and, if busybox is not NULL, a static busybox as
 * /bin/busybox with INITRAMFS_APPLETS linked to it, in a new buffer
 * (free() it).  0 or -ENOMEM. */
int initramfs_build(const void *init, size_t init_len, const void *busybox, size_t busybox_len,
		    uint8_t **out, size_t *out_len, struct apf_err *e);

#endif
