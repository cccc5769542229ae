/*
 * Snapshot files (src/snapshot/snapshot.c): what is written reads back,
 * and every damaged form is refused with a message saying what is wrong
 * (truncated, another version, a checksum mismatch, memory shorter than
 * the state says), before anything of it is used.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "arch/arch.h"
#include "snapshot/snapshot.h"
#include "test.h"
#include "util/crc32c.h"

#define RES_PAGES  3
#define LAZY_PAGES 2

static char dir[] = "/tmp/apfvm-snap-test.XXXXXX";
static char path[128], mpath[128];
static const char machine_blob[] = "machine state, 37 bytes of it.......";

/* A valid snapshot: 5 pages of memory with their digests, two sections. */
static void write_good(void)
{
	static unsigned char mem[(RES_PAGES + LAZY_PAGES) * APF_PAGE_SIZE];
	struct sha256 digests[RES_PAGES + LAZY_PAGES];
	uint64_t next = 0;
	struct snap_writer w;
	struct apf_err e;

	for (size_t i = 0; i < sizeof(mem); i++)
		mem[i] = (unsigned char)(i * 7 + i / 4096);
	REQUIRE(snap_write_begin(&w, path, SNAP_ARCH_X86_64, RES_PAGES * APF_PAGE_SIZE,
				 LAZY_PAGES * APF_PAGE_SIZE, &e) == 0);
	REQUIRE(snap_write_memory(&w, mem, sizeof(mem), digests, &next, &e) == 0);
	CHECK_EQ_U(next, RES_PAGES + LAZY_PAGES);
	REQUIRE(snap_write_section(&w, SNAP_SEC_MACHINE, 0, machine_blob, sizeof(machine_blob), &e) == 0);
	REQUIRE(snap_write_section(&w, SNAP_SEC_PAGE_DIGESTS, 0, digests, sizeof(digests), &e) == 0);
	REQUIRE(snap_write_end(&w, &e) == 0);
}

static void setup(void)
{
	if (!path[0]) {
		if (!mkdtemp(dir))
			abort();
		snprintf(path, sizeof(path), "%s/snap", dir);
		snprintf(mpath, sizeof(mpath), "%s/snap.mem", dir);
	}
	write_good();
}

/* Applies edit(buf, len) to the state file. */
static void edit_state(void (*edit)(unsigned char *buf, long *len))
{
	static unsigned char buf[1 << 16];
	FILE *f = fopen(path, "rb");
	REQUIRE(f != NULL);
	long len = (long)fread(buf, 1, sizeof(buf), f);
	fclose(f);
	edit(buf, &len);
	f = fopen(path, "wb");
	REQUIRE(f != NULL);
	fwrite(buf, 1, (size_t)len, f);
	fclose(f);
}

static void expect_refused(const char *what)
{
	struct snap_image s;
	struct apf_err e = { { 0 } };
	CHECK(snap_open(&s, path, &e) < 0);
	if (!strstr(e.msg, what))
		TEST_FAIL_("expected \"%s\", got \"%s\"", what, e.msg);
	CHECK(s.state == NULL && s.mem_fd == -1); /* nothing stays open */
}

TEST(crc32c_is_the_castagnoli_crc)
{
	CHECK_EQ_U(crc32c(0, "123456789", 9), 0xe3069283u);
	CHECK_EQ_U(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}

TEST(a_written_snapshot_reads_back)
{
	struct snap_image s;
	struct apf_err e;

	setup();
	REQUIRE(snap_open(&s, path, &e) == 0);
	CHECK_EQ_U(s.h.arch, SNAP_ARCH_X86_64);
	CHECK_EQ_U(s.h.resident_size, RES_PAGES * APF_PAGE_SIZE);
	CHECK_EQ_U(s.mem_pages, RES_PAGES + LAZY_PAGES);
	const struct snap_section *m = snap_find(&s, SNAP_SEC_MACHINE, 0);
	REQUIRE(m != NULL);
	CHECK_EQ_U(m->len, sizeof(machine_blob));
	CHECK(!memcmp(m->data, machine_blob, sizeof(machine_blob)));
	CHECK(snap_find(&s, SNAP_SEC_VCPU, 0) == NULL);
	unsigned char page[APF_PAGE_SIZE];
	REQUIRE(pread(s.mem_fd, page, sizeof(page), 4 * APF_PAGE_SIZE) == (ssize_t)sizeof(page));
	CHECK(sha256_matches(page, sizeof(page), &s.page_digests[4]));
	snap_close(&s);
}

static void cut_10(unsigned char *b, long *len) { (void)b; *len -= 10; }
static void cut_to_header(unsigned char *b, long *len) { (void)b; *len = 64 + 12; }
/* Version 1: the layout before this one (no progress, no device state). */
static void version_1(unsigned char *b, long *len)
{
	struct snap_header h;
	(void)len;
	memcpy(&h, b, sizeof(h));
	h.version = 1;
	h.header_crc = 0;
	h.header_crc = crc32c(0, &h, sizeof(h));
	memcpy(b, &h, sizeof(h));
}
static void flip_header(unsigned char *b, long *len) { (void)len; b[40] ^= 1; }
static void flip_payload(unsigned char *b, long *len) { (void)len; b[64 + 24 + 3] ^= 0x10; }
static void not_a_snapshot(unsigned char *b, long *len) { memcpy(b, "\x7f" "ELF", 4); (void)len; }

TEST(truncated_state_is_refused)
{
	setup();
	edit_state(cut_10);
	expect_refused("is truncated");
	setup();
	edit_state(cut_to_header);
	expect_refused("is truncated");
}

TEST(other_version_is_refused)
{
	setup();
	edit_state(version_1);
	expect_refused("has format version 1, whose pages are vouched for by crc32c only; "
		       "this apfvm reads version 3: take the snapshot again");
}

TEST(checksum_mismatches_are_refused)
{
	setup();
	edit_state(flip_header);
	expect_refused("header checksum mismatch");
	setup();
	edit_state(flip_payload);
	expect_refused("checksum mismatch in section 1 (type 1)");
}

TEST(not_a_snapshot_is_refused)
{
	setup();
	edit_state(not_a_snapshot);
	expect_refused("is not an apfvm snapshot");
}

TEST(memory_file_shorter_than_the_state_says_is_refused)
{
	setup();
	REQUIRE(truncate(mpath, 4 * APF_PAGE_SIZE) == 0);
	expect_refused("is 16384 bytes; its state says 20480");
	setup();
	unlink(mpath);
	expect_refused("cannot open the snapshot's memory");
	/* A FIFO is refused at once: open never waits for a writer. */
	REQUIRE(mkfifo(mpath, 0600) == 0);
	expect_refused("not a regular file");
	unlink(mpath);
	unlink(path);
	expect_refused("cannot open snapshot");
}

/* What a directory holds: the names, sorted, joined by spaces. */
static void list_dir(char *out, size_t len)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.')
			snprintf(out + strlen(out), len - strlen(out), "%s ", names[i]->d_name);
		free(names[i]);
	}
	free(names);
}

TEST(a_snapshot_is_written_whole_or_not_at_all)
{
	static unsigned char page[APF_PAGE_SIZE];
	struct sha256 digests[1];
	uint64_t next = 0;
	struct snap_writer w;
	struct snap_image img;
	struct apf_err e;
	struct stat st;
	char names[256];

	setup();
	list_dir(names, sizeof(names));
	CHECK(!strcmp(names, "snap snap.mem "));
	/* Both files private, whatever the umask. */
	REQUIRE(stat(path, &st) == 0);
	CHECK_EQ_U(st.st_mode & 0777, 0600);
	REQUIRE(stat(mpath, &st) == 0);
	CHECK_EQ_U(st.st_mode & 0777, 0600);
	/* A snapshot abandoned midway leaves the one before whole, and no
	 * file of its own. */
	REQUIRE(snap_write_begin(&w, path, SNAP_ARCH_X86_64, APF_PAGE_SIZE, 0, &e) == 0);
	REQUIRE(snap_write_memory(&w, page, sizeof(page), digests, &next, &e) == 0);
	snap_write_abort(&w);
	list_dir(names, sizeof(names));
	CHECK(!strcmp(names, "snap snap.mem "));
	REQUIRE(snap_open(&img, path, &e) == 0);
	CHECK_EQ_U(img.mem_pages, RES_PAGES + LAZY_PAGES);
	snap_close(&img);
	/* A symlink at the path is replaced, never written through. */
	char victim[160];
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	FILE *f = fopen(victim, "w");
	REQUIRE(f != NULL);
	fputs("keep", f);
	fclose(f);
	unlink(path);
	REQUIRE(symlink(victim, path) == 0);
	write_good();
	REQUIRE(lstat(path, &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	REQUIRE(stat(victim, &st) == 0);
	CHECK_EQ_U(st.st_size, 4);
	unlink(victim);
	unlink(path);
	unlink(mpath);
	rmdir(dir);
}

#if defined(__x86_64__)
/* The VM options record: integers checked to be 0 or 1, never bytes
 * copied into a bool (a 2 there would be undefined behaviour). */
TEST(vm_options_from_a_snapshot_are_checked_not_copied)
{
	enum { REC_OPTIONS = 37 }; /* src/arch/x86/snapshot_x86.c */
	struct snap_blob b = { 0 };
	struct vm_options opt;
	struct apf_err e;
	uint32_t rec[4] = { 1, 0x123, 1, 0 };

	REQUIRE(snap_blob_put(&b, REC_OPTIONS, rec, sizeof(rec)) == 0);
	REQUIRE(arch_snapshot_options(b.data, b.len, &opt, &e) == 0);
	CHECK(opt.disable_hlt_exits && opt.pc_legacy);
	CHECK_EQ_U(opt.kvm_features, 0x123);
	snap_blob_free(&b);
	rec[0] = 2;
	REQUIRE(snap_blob_put(&b, REC_OPTIONS, rec, sizeof(rec)) == 0);
	CHECK_EQ_U(arch_snapshot_options(b.data, b.len, &opt, &e), -EINVAL);
	CHECK(strstr(e.msg, "VM options are invalid") != NULL);
	snap_blob_free(&b);
	rec[0] = 0;
	rec[3] = 9;
	REQUIRE(snap_blob_put(&b, REC_OPTIONS, rec, sizeof(rec)) == 0);
	CHECK_EQ_U(arch_snapshot_options(b.data, b.len, &opt, &e), -EINVAL);
	snap_blob_free(&b);
}
#define ARCH_TESTS , T(vm_options_from_a_snapshot_are_checked_not_copied)
#else
#define ARCH_TESTS
#endif

TEST_MAIN(T(crc32c_is_the_castagnoli_crc), T(a_written_snapshot_reads_back),
	  T(truncated_state_is_refused), T(other_version_is_refused),
	  T(checksum_mismatches_are_refused), T(not_a_snapshot_is_refused),
	  T(memory_file_shorter_than_the_state_says_is_refused),
	  T(a_snapshot_is_written_whole_or_not_at_all) ARCH_TESTS)
