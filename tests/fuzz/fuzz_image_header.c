/*
 * libFuzzer target: the image file header (src/image/image.c), read from
 * a file holding the input bytes.  Whatever the bytes, the reader returns 0
 * or an error with a message, never crashes, and a header it accepts
 * describes data that lies inside the file, in whole pages.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "apfvm/abi.h"
#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct image_info info;
	struct apf_err e = { "" };

	if (fd < 0)
		fd = memfd_create("fuzz-image", MFD_CLOEXEC);
	CHECK_OR_DIE(fd >= 0);
	CHECK_OR_DIE(ftruncate(fd, 0) == 0);
	CHECK_OR_DIE(pwrite(fd, data, size, 0) == (ssize_t)size);
	/* Often claim a large file, so that big data sizes can pass the
	 * size check and reach the geometry checks. */
	if (size && (data[0] & 1))
		CHECK_OR_DIE(ftruncate(fd, (off_t)size + (1 << 20)) == 0);
	off_t len = lseek(fd, 0, SEEK_END);
	int rc = image_read_header(fd, "fuzz", &info, &e);
	if (rc) {
		CHECK_OR_DIE(rc < 0 && e.msg[0] != '\0');
		return 0;
	}
	CHECK_OR_DIE(info.data_size > 0 && info.data_size % APF_PAGE_SIZE == 0);
	CHECK_OR_DIE(info.data_offset <= (uint64_t)len);
	CHECK_OR_DIE(info.data_size <= (uint64_t)len - info.data_offset);
	return 0;
}
