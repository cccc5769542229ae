#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "util/file.h"

_Static_assert(sizeof(struct image_header) == 48, "image header layout");
_Static_assert(offsetof(struct image_header, check) == 40, "image header layout");

void image_fill(uint64_t seed, uint64_t first_word, uint64_t *buf, uint64_t nwords)
{
	for (uint64_t i = 0; i < nwords; i++)
		buf[i] = apf_image_word(seed, first_word + i);
}

uint64_t image_header_check(const struct image_header *h)
{
	const unsigned char *p = (const unsigned char *)h;
	uint64_t x = 0xcbf29ce484222325ull; /* FNV-1a */

	for (size_t i = 0; i < offsetof(struct image_header, check); i++) {
		x ^= p[i];
		x *= 0x100000001b3ull;
	}
	return x;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int image_create(const char *path, uint64_t size, uint64_t seed, struct apf_err *e)
{
	enum { CHUNK = 1 << 20 };
	unsigned char hdrbuf[IMAGE_HEADER_SIZE];
	struct image_header h;
	uint64_t *chunk;
	int fd, rc = 0;

	if (size == 0 || size % APF_PAGE_SIZE)
		return apf_fail(e, -EINVAL, "image size must be a positive multiple of 4096 bytes");

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, IMAGE_MAGIC, 8);
	h.version = IMAGE_VERSION;
	h.page_size = APF_PAGE_SIZE;
	h.seed = seed;
	h.data_size = size;
	h.data_offset = IMAGE_HEADER_SIZE;
	h.check = image_header_check(&h);
	memset(hdrbuf, 0, sizeof(hdrbuf));
	memcpy(hdrbuf, &h, sizeof(h));

	/* Written to a new file beside the target, then renamed over it
	 * (util/file.h): an existing image (perhaps being served) is never
	 * truncated in place, a symlink at path is replaced rather than
	 * written through, and a failure leaves path as it was. */
	struct file_out out;
	chunk = malloc(CHUNK);
	if (!chunk)
		return apf_fail(e, -ENOMEM, "out of memory");
	if ((rc = file_out_open(&out, path, 0644))) {
		free(chunk);
		return apf_fail(e, rc, "cannot create image '%s': %s", path, strerror(-rc));
	}
	fd = out.fd;
	rc = write_all(fd, hdrbuf, sizeof(hdrbuf));
	for (uint64_t off = 0; !rc && off < size; off += CHUNK) {
		uint64_t n = size - off < CHUNK ? size - off : CHUNK;
		image_fill(seed, off / 8, chunk, n / 8);
		rc = write_all(fd, chunk, n);
	}
	free(chunk);
	if (rc)
		file_out_abort(&out);
	else
		rc = file_out_commit(&out);
	if (rc)
		return apf_fail(e, rc, "cannot write image '%s': %s", path, strerror(-rc));
	return 0;
}

int image_read_header(int fd, const char *path, struct image_info *info, struct apf_err *e)
{
	struct image_header h;
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) < 0)
		return apf_fail(e, -errno, "cannot stat image '%s': %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return apf_fail(e, -EINVAL, "image '%s' is not a regular file", path);
	n = pread(fd, &h, sizeof(h), 0);
	if (n < 0)
		return apf_fail(e, -errno, "cannot read image '%s': %s", path, strerror(errno));
	if ((size_t)n < sizeof(h) || memcmp(h.magic, IMAGE_MAGIC, 8) != 0)
		return apf_fail(e, -EINVAL,
				"'%s' is not an apfvm image (no APFVMIMG header; create one with 'apfvm mkimage')",
				path);
	if (h.check != image_header_check(&h))
		return apf_fail(e, -EINVAL, "image '%s' has a corrupt header (check value mismatch)", path);
	if (h.version != IMAGE_VERSION)
		return apf_fail(e, -EINVAL, "image '%s' has version %u; this apfvm reads version %u",
				path, h.version, IMAGE_VERSION);
	if (h.page_size != APF_PAGE_SIZE || h.data_offset != IMAGE_HEADER_SIZE ||
	    h.data_size == 0 || h.data_size % APF_PAGE_SIZE)
		return apf_fail(e, -EINVAL, "image '%s' has an invalid geometry", path);
	if ((uint64_t)st.st_size < h.data_offset ||
	    (uint64_t)st.st_size - h.data_offset < h.data_size)
		return apf_fail(e, -EINVAL,
				"image '%s' is truncated: header promises %llu bytes of data, file holds %llu",
				path, (unsigned long long)h.data_size,
				(unsigned long long)((uint64_t)st.st_size > h.data_offset
							     ? (uint64_t)st.st_size - h.data_offset
							     : 0));
	info->seed = h.seed;
	info->data_size = h.data_size;
	info->data_offset = h.data_offset;
	return 0;
}
