#include "bzimage.h"

#include <errno.h>
#include <string.h>

/* Offsets in the file and in the zero page (zero-page.rst, boot.rst). */
#define OFF_EXT_RAMDISK_IMAGE 0x0c0
#define OFF_EXT_RAMDISK_SIZE  0x0c4
#define OFF_EXT_CMD_LINE_PTR  0x0c8
#define OFF_E820_ENTRIES      0x1e8
#define OFF_SETUP_SECTS       0x1f1
#define OFF_VID_MODE          0x1fa
#define OFF_BOOT_FLAG         0x1fe
#define OFF_JUMP              0x200
#define OFF_MAGIC             0x202
#define OFF_VERSION           0x206
#define OFF_KERNEL_VERSION    0x20e
#define OFF_TYPE_OF_LOADER    0x210
#define OFF_LOADFLAGS         0x211
#define OFF_RAMDISK_IMAGE     0x218
#define OFF_RAMDISK_SIZE      0x21c
#define OFF_CMD_LINE_PTR      0x228
#define OFF_INITRD_ADDR_MAX   0x22c
#define OFF_XLOADFLAGS        0x236
#define OFF_CMDLINE_SIZE      0x238
#define OFF_INIT_SIZE         0x260
#define OFF_HEADER_LIMIT      0x290 /* the zero page's next field */
#define OFF_E820_TABLE        0x2d0

#define LOADED_HIGH    0x01 /* loadflags: the kernel runs from 1 MiB */
#define XLF_KERNEL_64  0x01 /* xloadflags: has the 64-bit entry at +0x200 */
#define MIN_VERSION    0x020c /* 2.12: xloadflags */

static uint16_t get16(const uint8_t *p, size_t off)
{
	return (uint16_t)(p[off] | p[off + 1] << 8);
}

static uint32_t get32(const uint8_t *p, size_t off)
{
	return (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
	       (uint32_t)p[off + 3] << 24;
}

static void put8(uint8_t *p, size_t off, uint8_t v)
{
	p[off] = v;
}

static void put32(uint8_t *p, size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, size_t off, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

/* The version string: kernel_version points at it, less 0x200, inside the
 * setup code; printable characters up to the first NUL or space run. */
static void read_version(const uint8_t *file, size_t setup_end, struct bzimage *k)
{
	uint16_t ptr = get16(file, OFF_KERNEL_VERSION);
	size_t at = (size_t)ptr + 0x200, n = 0;

	k->kernel_version[0] = '\0';
	if (!ptr || at >= setup_end)
		return;
	while (at + n < setup_end && n + 1 < sizeof(k->kernel_version) && file[at + n] >= 0x20 &&
	       file[at + n] < 0x7f)
		n++;
	memcpy(k->kernel_version, file + at, n);
	k->kernel_version[n] = '\0';
}

int bzimage_parse(const uint8_t *file, size_t size, struct bzimage *k, struct apf_err *e)
{
	memset(k, 0, sizeof(*k));
	if (size < OFF_INIT_SIZE + 4 || memcmp(file + OFF_MAGIC, "HdrS", 4) ||
	    get16(file, OFF_BOOT_FLAG) != 0xaa55)
		return apf_fail(e, -ENOEXEC, "not a Linux bzImage (no \"HdrS\" boot header)");
	k->version = get16(file, OFF_VERSION);
	if (k->version < MIN_VERSION)
		return apf_fail(e, -ENOEXEC,
				"boot protocol %u.%02u is too old: 2.12 or later is needed (64-bit entry)",
				k->version >> 8, k->version & 0xff);
	if (!(file[OFF_LOADFLAGS] & LOADED_HIGH))
		return apf_fail(e, -ENOEXEC, "not a bzImage: loadflags lacks LOADED_HIGH (a zImage?)");
	if (!(get16(file, OFF_XLOADFLAGS) & XLF_KERNEL_64))
		return apf_fail(e, -ENOEXEC, "the kernel has no 64-bit entry point (xloadflags bit 0)");
	/* The header ends where the jump at 0x200 lands (boot.rst). */
	size_t header_end = OFF_JUMP + 2 + file[OFF_JUMP + 1];
	if (file[OFF_JUMP] != 0xeb || header_end <= OFF_INIT_SIZE + 4 || header_end > OFF_HEADER_LIMIT ||
	    header_end > size)
		return apf_fail(e, -ENOEXEC, "malformed boot header (its length, from the jump at 0x200)");
	unsigned setup_sects = file[OFF_SETUP_SECTS] ? file[OFF_SETUP_SECTS] : 4;
	size_t setup_end = (size_t)(setup_sects + 1) * 512;
	if (setup_end < header_end || setup_end >= size)
		return apf_fail(e, -ENOEXEC,
				"truncated: the setup code (%u sectors) leaves no kernel in %zu bytes",
				setup_sects, size);
	k->header = file + BZ_HEADER_OFFSET;
	k->header_len = header_end - BZ_HEADER_OFFSET;
	k->kernel = file + setup_end;
	k->kernel_size = size - setup_end;
	k->init_size = get32(file, OFF_INIT_SIZE);
	if (k->init_size < k->kernel_size)
		return apf_fail(e, -ENOEXEC,
				"malformed boot header: init_size %u is smaller than the kernel (%zu bytes)",
				k->init_size, k->kernel_size);
	k->cmdline_max = get32(file, OFF_CMDLINE_SIZE);
	k->initrd_max = get32(file, OFF_INITRD_ADDR_MAX);
	read_version(file, setup_end, k);
	return 0;
}

int bzimage_zero_page(const struct bzimage *k, const struct bz_boot *b, uint8_t *zp,
		      struct apf_err *e)
{
	if (b->ne820 > BZ_E820_MAX)
		return apf_fail(e, -EINVAL, "%u memory map entries: the zero page holds %u", b->ne820,
				BZ_E820_MAX);
	if (b->initrd_size && (b->initrd_gpa + b->initrd_size > (uint64_t)k->initrd_max + 1 ||
			       b->initrd_gpa + b->initrd_size < b->initrd_gpa))
		return apf_fail(e, -EINVAL, "the initrd ends above 0x%x, the highest this kernel takes",
				k->initrd_max);
	memset(zp, 0, BZ_ZERO_PAGE_SIZE);
	memcpy(zp + BZ_HEADER_OFFSET, k->header, k->header_len);
	zp[OFF_VID_MODE] = zp[OFF_VID_MODE + 1] = 0xff; /* "normal" */
	put8(zp, OFF_TYPE_OF_LOADER, 0xff);              /* undefined loader */
	put8(zp, OFF_LOADFLAGS, zp[OFF_LOADFLAGS] & LOADED_HIGH);
	put32(zp, OFF_CMD_LINE_PTR, (uint32_t)b->cmdline_gpa);
	put32(zp, OFF_EXT_CMD_LINE_PTR, (uint32_t)(b->cmdline_gpa >> 32));
	put32(zp, OFF_RAMDISK_IMAGE, (uint32_t)b->initrd_gpa);
	put32(zp, OFF_EXT_RAMDISK_IMAGE, (uint32_t)(b->initrd_gpa >> 32));
	put32(zp, OFF_RAMDISK_SIZE, (uint32_t)b->initrd_size);
	put32(zp, OFF_EXT_RAMDISK_SIZE, (uint32_t)(b->initrd_size >> 32));
	put8(zp, OFF_E820_ENTRIES, (uint8_t)b->ne820);
	for (unsigned i = 0; i < b->ne820; i++) {
		size_t off = OFF_E820_TABLE + (size_t)i * 20;
		put64(zp, off, b->e820[i].addr);
		put64(zp, off + 8, b->e820[i].size);
		put32(zp, off + 16, b->e820[i].type);
	}
	return 0;
}
