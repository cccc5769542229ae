/*
 * image: the deterministic memory images apfvm serves as guest memory.
 *
 * File format (little endian): a 4096-byte header, then data_size bytes of
 * page data.  Word i (8 bytes at data offset 8*i) equals
 * apf_image_word(seed, i), so the guest verifies every word it reads
 * without the host's help.  The header carries the seed, so the VMM hands
 * it to the guest without the user repeating it.
 */
#ifndef APFVM_IMAGE_H
#define APFVM_IMAGE_H

#include <stdint.h>

#include "util/err.h"

#define IMAGE_MAGIC       "APFVMIMG"
#define IMAGE_VERSION     1u
#define IMAGE_HEADER_SIZE 4096u

struct image_header {
	char magic[8];
	uint32_t version;
	uint32_t page_size;  /* 4096 */
	uint64_t seed;
	uint64_t data_size;  /* bytes of page data, a multiple of page_size */
	uint64_t data_offset; /* IMAGE_HEADER_SIZE */
	uint64_t check;      /* image_header_check() of the fields above */
};

struct image_info {
	uint64_t seed;
	uint64_t data_size;
	uint64_t data_offset;
};

/* Fills buf with words [first_word, first_word + nwords) of the image. */
void image_fill(uint64_t seed, uint64_t first_word, uint64_t *buf, uint64_t nwords);

/* Writes a complete image of `size` bytes of data (a multiple of 4096, > 0)
 * to path, replacing it. */
int image_create(const char *path, uint64_t size, uint64_t seed, struct apf_err *e);

/* Validates an image header read from fd (magic, version, page size,
 * check value, and that the file holds all of its data).  On success
 * fills *info.  Never trusts a field it has not checked. */
int image_read_header(int fd, const char *path, struct image_info *info, struct apf_err *e);

/* Checksum over the header's fields before `check`. */
uint64_t image_header_check(const struct image_header *h);

#endif
