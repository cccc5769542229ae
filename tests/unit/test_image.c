/*
 * image: create an image, read its header back, and reject every kind of
 * file that is not a complete, intact image.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "image/image.h"
#include "test.h"

/* A fresh temporary file name (the file exists, empty). */
static int temp_path(char *path)
{
	strcpy(path, "/tmp/apfvm-image-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* Opens path and runs image_read_header; returns its rc. */
static int read_header(const char *path, struct image_info *info, struct apf_err *e)
{
	memset(e, 0, sizeof(*e));
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno - 1000;
	int rc = image_read_header(fd, path, info, e);
	close(fd);
	return rc;
}

/* Overwrites the header of the image at path with h. */
static int write_header(const char *path, const struct image_header *h)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ssize_t n = pwrite(fd, h, sizeof(*h), 0);
	close(fd);
	return n == (ssize_t)sizeof(*h) ? 0 : -1;
}

static int load_header(const char *path, struct image_header *h)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = pread(fd, h, sizeof(*h), 0);
	close(fd);
	return n == (ssize_t)sizeof(*h) ? 0 : -1;
}

TEST(create_and_read_header_roundtrip)
{
	char path[64];
	struct image_info info;
	struct apf_err e;
	struct stat st;

	REQUIRE(temp_path(path) == 0);
	REQUIRE(image_create(path, 64 * 4096, 42, &e) == 0);
	REQUIRE(stat(path, &st) == 0);
	CHECK_EQ_U(st.st_size, IMAGE_HEADER_SIZE + 64 * 4096);

	memset(&info, 0, sizeof(info));
	int rc = read_header(path, &info, &e);
	if (rc)
		TEST_FAIL_("image_read_header: %d: %s", rc, e.msg);
	CHECK_EQ_U(info.seed, 42);
	CHECK_EQ_U(info.data_size, 64 * 4096);
	CHECK_EQ_U(info.data_offset, IMAGE_HEADER_SIZE);

	struct image_header h;
	REQUIRE(load_header(path, &h) == 0);
	CHECK(!memcmp(h.magic, IMAGE_MAGIC, 8));
	CHECK_EQ_U(h.version, IMAGE_VERSION);
	CHECK_EQ_U(h.page_size, APF_PAGE_SIZE);
	CHECK_EQ_U(h.check, image_header_check(&h));
	unlink(path);
}

TEST(create_replaces_existing_file)
{
	char path[64];
	struct image_info info;
	struct apf_err e;
	struct stat st;

	REQUIRE(temp_path(path) == 0);
	REQUIRE(image_create(path, 16 * 4096, 1, &e) == 0);
	REQUIRE(image_create(path, 4096, 9, &e) == 0);
	REQUIRE(stat(path, &st) == 0);
	CHECK_EQ_U(st.st_size, IMAGE_HEADER_SIZE + 4096); /* truncated, not overwritten in place */
	CHECK(read_header(path, &info, &e) == 0);
	CHECK_EQ_U(info.seed, 9);
	CHECK_EQ_U(info.data_size, 4096);
	unlink(path);
}

/* Replacing an image never truncates the old one in place: a reader that
 * has it open (a running VM's page source) keeps its complete data. */
TEST(create_over_an_open_image_leaves_the_reader_its_data)
{
	char path[64];
	struct image_info info;
	struct apf_err e;
	struct stat st;

	REQUIRE(temp_path(path) == 0);
	REQUIRE(image_create(path, 16 * 4096, 1, &e) == 0);
	int fd = open(path, O_RDONLY);
	REQUIRE(fd >= 0);
	REQUIRE(image_create(path, 4096, 9, &e) == 0);
	CHECK(fstat(fd, &st) == 0 && st.st_size == IMAGE_HEADER_SIZE + 16 * 4096);
	CHECK(image_read_header(fd, path, &info, &e) == 0 && info.seed == 1);
	close(fd);
	unlink(path);
}

/* A symlink at the path is replaced, never written through. */
TEST(create_does_not_write_through_a_symlink)
{
	char path[64], target[80];
	struct apf_err e;
	struct stat st;

	REQUIRE(temp_path(path) == 0);
	snprintf(target, sizeof(target), "%s.target", path);
	int fd = open(target, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0 && write(fd, "keep", 4) == 4);
	close(fd);
	unlink(path);
	REQUIRE(symlink(target, path) == 0);
	REQUIRE(image_create(path, 4096, 3, &e) == 0);
	CHECK(stat(target, &st) == 0 && st.st_size == 4);
	CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
	unlink(path);
	unlink(target);
}

/* A failed write leaves the path as it was and no temporary file behind
 * (it used to unlink the path). */
TEST(failed_create_leaves_the_old_image_in_place)
{
	char path[64];
	struct image_info info;
	struct apf_err e;
	struct rlimit old, small = { 64 * 1024, 64 * 1024 };

	REQUIRE(temp_path(path) == 0);
	REQUIRE(image_create(path, 4096, 5, &e) == 0);
	signal(SIGXFSZ, SIG_IGN); /* writes past the limit fail with EFBIG */
	REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
	small.rlim_max = old.rlim_max;
	REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
	int rc = image_create(path, 64 * 4096, 6, &e);
	setrlimit(RLIMIT_FSIZE, &old);
	CHECK(rc == -EFBIG);
	CHECK(strstr(e.msg, "cannot write image") != NULL);
	CHECK(read_header(path, &info, &e) == 0 && info.seed == 5);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "ls %s.?????? >/dev/null 2>&1", path);
	CHECK(system(cmd) != 0); /* no leftover temporary */
	unlink(path);
}

TEST(data_words_follow_the_pattern)
{
	/* Larger than image_create's 1 MiB chunk, and not a multiple of it. */
	const uint64_t size = (1u << 20) + 5 * 4096;
	const uint64_t nwords = size / 8;
	const uint64_t seed = 0x1234abcd;
	char path[64];
	struct apf_err e;

	REQUIRE(temp_path(path) == 0);
	REQUIRE(image_create(path, size, seed, &e) == 0);
	int fd = open(path, O_RDONLY);
	REQUIRE(fd >= 0);

	uint64_t samples[] = { 0, 1, 511, 512, 4095, (1u << 20) / 8 - 1, (1u << 20) / 8,
			       (1u << 20) / 8 + 1, nwords / 2 + 3, nwords - 2, nwords - 1 };
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		uint64_t w = 0, idx = samples[i];
		ssize_t n = pread(fd, &w, 8, (off_t)(IMAGE_HEADER_SIZE + idx * 8));
		CHECK_EQ_U(n, 8);
		if (w != apf_image_word(seed, idx))
			TEST_FAIL_("word %llu = %#llx, expected %#llx", (unsigned long long)idx,
				   (unsigned long long)w, (unsigned long long)apf_image_word(seed, idx));
	}
	/* a whole page in the middle, word by word */
	uint64_t page[512];
	uint64_t first = 100 * 512;
	REQUIRE(pread(fd, page, sizeof(page), (off_t)(IMAGE_HEADER_SIZE + first * 8)) ==
		(ssize_t)sizeof(page));
	for (unsigned i = 0; i < 512; i++)
		CHECK_EQ_U(page[i], apf_image_word(seed, first + i));
	/* nothing after the data */
	uint64_t extra;
	CHECK_EQ_U(pread(fd, &extra, 8, (off_t)(IMAGE_HEADER_SIZE + size)), 0);
	close(fd);
	unlink(path);
}

TEST(image_fill_matches_image_word)
{
	uint64_t buf[64];

	image_fill(5, 1000, buf, 64);
	for (unsigned i = 0; i < 64; i++)
		CHECK_EQ_U(buf[i], apf_image_word(5, 1000 + i));
}

TEST(image_word_depends_on_seed_and_index)
{
	unsigned same_seed = 0, same_index = 0;

	for (uint64_t i = 0; i < 1000; i++) {
		if (apf_image_word(1, i) == apf_image_word(2, i))
			same_seed++;
		if (apf_image_word(1, i) == apf_image_word(1, i + 1))
			same_index++;
	}
	CHECK_EQ_U(same_seed, 0);
	CHECK_EQ_U(same_index, 0);
	CHECK(apf_image_word(0, 0) != 0); /* a zero page is distinguishable */
	CHECK_EQ_U(apf_image_word(7, 12345), apf_image_word(7, 12345));
}

TEST(rejects_non_image_file)
{
	char path[64];
	struct image_info info = { 11, 22, 33 };
	struct apf_err e;

	REQUIRE(temp_path(path) == 0);
	int fd = open(path, O_WRONLY);
	REQUIRE(fd >= 0);
	char junk[8192];
	memset(junk, 'j', sizeof(junk));
	CHECK_EQ_U(write(fd, junk, sizeof(junk)), sizeof(junk));
	close(fd);

	CHECK(read_header(path, &info, &e) == -EINVAL);
	CHECK(strstr(e.msg, "mkimage") != NULL);
	CHECK(strstr(e.msg, path) != NULL);
	CHECK(info.seed == 11 && info.data_size == 22 && info.data_offset == 33);

	/* an empty file, too */
	REQUIRE(truncate(path, 0) == 0);
	CHECK(read_header(path, &info, &e) == -EINVAL);
	CHECK(strstr(e.msg, "mkimage") != NULL);
	unlink(path);
}

TEST(rejects_truncated_image)
{
	char path[64];
	struct image_info info;
	struct apf_err e;

	REQUIRE(temp_path(path) == 0);
	REQUIRE(image_create(path, 8 * 4096, 3, &e) == 0);
	REQUIRE(truncate(path, IMAGE_HEADER_SIZE + 7 * 4096) == 0);
	CHECK(read_header(path, &info, &e) == -EINVAL);
	CHECK(strstr(e.msg, "truncated") != NULL);
	CHECK(strstr(e.msg, "32768") != NULL); /* what the header promises */
	CHECK(strstr(e.msg, "28672") != NULL); /* what the file holds */

	/* one byte short */
	REQUIRE(truncate(path, IMAGE_HEADER_SIZE + 8 * 4096 - 1) == 0);
	CHECK(read_header(path, &info, &e) == -EINVAL);
	CHECK(strstr(e.msg, "truncated") != NULL);

	/* only the header left */
	REQUIRE(truncate(path, IMAGE_HEADER_SIZE) == 0);
	CHECK(read_header(path, &info, &e) == -EINVAL);
	CHECK(strstr(e.msg, "truncated") != NULL);
	unlink(path);
}

TEST(rejects_corrupt_header_byte)
{
	char path[64];
	struct image_info info;
	struct image_header h;
	struct apf_err e;

	REQUIRE(temp_path(path) == 0);
	REQUIRE(image_create(path, 4096, 3, &e) == 0);
	REQUIRE(load_header(path, &h) == 0);
	h.seed ^= 1ull << 40; /* one flipped bit, check not updated */
	REQUIRE(write_header(path, &h) == 0);
	CHECK(read_header(path, &info, &e) == -EINVAL);
	CHECK(strstr(e.msg, "check") != NULL);
	CHECK(strstr(e.msg, "corrupt") != NULL);

	/* a corrupt check value itself */
	REQUIRE(image_create(path, 4096, 3, &e) == 0);
	REQUIRE(load_header(path, &h) == 0);
	h.check ^= 0x80;
	REQUIRE(write_header(path, &h) == 0);
	CHECK(read_header(path, &info, &e) == -EINVAL);
	CHECK(strstr(e.msg, "check") != NULL);
	unlink(path);
}

TEST(rejects_other_version_even_with_valid_check)
{
	char path[64];
	struct image_info info;
	struct image_header h;
	struct apf_err e;

	REQUIRE(temp_path(path) == 0);
	REQUIRE(image_create(path, 4096, 3, &e) == 0);
	REQUIRE(load_header(path, &h) == 0);
	h.version = IMAGE_VERSION + 1;
	h.check = image_header_check(&h);
	REQUIRE(write_header(path, &h) == 0);
	CHECK(read_header(path, &info, &e) == -EINVAL);
	CHECK(strstr(e.msg, "version 2") != NULL);
	unlink(path);
}

TEST(rejects_forged_geometry_with_valid_check)
{
	char path[64];
	struct image_info info;
	struct image_header h, orig;
	struct apf_err e;

	REQUIRE(temp_path(path) == 0);
	REQUIRE(image_create(path, 4 * 4096, 3, &e) == 0);
	REQUIRE(load_header(path, &orig) == 0);

	struct image_header forged[5];
	for (int i = 0; i < 5; i++)
		forged[i] = orig;
	forged[0].page_size = 8192;
	forged[1].data_offset = 0;
	forged[2].data_size = 0;
	forged[3].data_size = 4096 + 8;
	forged[4].data_size = UINT64_MAX - 4095; /* a multiple of 4096 that overflows offset+size */
	for (int i = 0; i < 5; i++) {
		h = forged[i];
		h.check = image_header_check(&h);
		REQUIRE(write_header(path, &h) == 0);
		int rc = read_header(path, &info, &e);
		if (rc != -EINVAL)
			TEST_FAIL_("forged header %d accepted (rc %d)", i, rc);
	}
	/* and the untouched header is still fine */
	REQUIRE(write_header(path, &orig) == 0);
	CHECK(read_header(path, &info, &e) == 0);
	unlink(path);
}

TEST(rejects_directory)
{
	char dir[] = "/tmp/apfvm-image-dir-XXXXXX";
	struct image_info info;
	struct apf_err e;

	REQUIRE(mkdtemp(dir) != NULL);
	CHECK(read_header(dir, &info, &e) == -EINVAL);
	CHECK(strstr(e.msg, "regular file") != NULL);
	rmdir(dir);
}

TEST(create_rejects_bad_sizes)
{
	char path[64];
	struct apf_err e;
	struct stat st;

	REQUIRE(temp_path(path) == 0);
	unlink(path);
	memset(&e, 0, sizeof(e));
	CHECK(image_create(path, 0, 1, &e) == -EINVAL);
	CHECK(strstr(e.msg, "4096") != NULL);
	memset(&e, 0, sizeof(e));
	CHECK(image_create(path, 4097, 1, &e) == -EINVAL);
	CHECK(strstr(e.msg, "4096") != NULL);
	CHECK(image_create(path, 2048, 1, &e) == -EINVAL);
	CHECK(stat(path, &st) < 0); /* nothing was created */
}

TEST(create_in_missing_directory_fails_with_message)
{
	char dir[] = "/tmp/apfvm-image-dir-XXXXXX";
	char path[128];
	struct apf_err e;

	REQUIRE(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/no/such/dir/x.img", dir);
	memset(&e, 0, sizeof(e));
	CHECK(image_create(path, 4096, 1, &e) == -ENOENT);
	CHECK(strstr(e.msg, path) != NULL);
	rmdir(dir);
}

TEST_MAIN(T(create_and_read_header_roundtrip), T(create_replaces_existing_file), T(create_over_an_open_image_leaves_the_reader_its_data),
	  T(create_does_not_write_through_a_symlink), T(failed_create_leaves_the_old_image_in_place),
	  T(data_words_follow_the_pattern), T(image_fill_matches_image_word),
	  T(image_word_depends_on_seed_and_index), T(rejects_non_image_file),
	  T(rejects_truncated_image), T(rejects_corrupt_header_byte),
	  T(rejects_other_version_even_with_valid_check), T(rejects_forged_geometry_with_valid_check),
	  T(rejects_directory), T(create_rejects_bad_sizes),
	  T(create_in_missing_directory_fails_with_message))
