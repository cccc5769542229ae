/*
 * Snapshot files (src/snapshot/snapshot.c): what is written reads back,
 * zero pages listed in the state and left as holes in the memory file,
 * and every damaged form is refused with a message saying what is wrong
 * (truncated, another version, a checksum mismatch, memory shorter than
 * the state says, a zero-page bitmap that is malformed or disagrees with
 * the digests), before anything of it is used.
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
static void version_5(unsigned char *b, long *len)
{
	struct snap_header h;
	(void)len;
	memcpy(&h, b, sizeof(h));
	h.version = 5;
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
		       "this apfvm reads versions 3 to 4: take the snapshot again");
	setup();
	edit_state(version_5);
	expect_refused("has format version 5; this apfvm reads versions 3 to 4");
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

/* ---- zero pages ------------------------------------------------------ */

#define SPARSE_RES  128
#define SPARSE_LAZY 125 /* 253 pages: the bitmap's last byte has 3 spare bits */
#define SPARSE_ALL  (SPARSE_RES + SPARSE_LAZY)

/* Whether page p of the sparse snapshot holds data (the rest are zero, the
 * last 53 pages among them: a zero tail). */
static int sparse_has_data(unsigned p)
{
	return p == 0 || p == 5 || p == 6 || p == 127 || p == 128 || p == 199;
}

static unsigned char sparse_mem[SPARSE_ALL * APF_PAGE_SIZE];
static struct sha256 sparse_digests[SPARSE_ALL];

/* A snapshot of 253 pages, 6 of them with data: resident memory in one
 * write, the lazy region page by page (as snapshot_save writes them). */
static void write_sparse(void)
{
	uint64_t next = 0;
	struct snap_writer w;
	struct apf_err e;

	memset(sparse_mem, 0, sizeof(sparse_mem));
	for (unsigned p = 0; p < SPARSE_ALL; p++)
		if (sparse_has_data(p))
			memset(sparse_mem + p * APF_PAGE_SIZE + p % 4096, (int)(p + 1), 100);
	REQUIRE(snap_write_begin(&w, path, SNAP_ARCH_X86_64, SPARSE_RES * APF_PAGE_SIZE,
				 SPARSE_LAZY * APF_PAGE_SIZE, &e) == 0);
	REQUIRE(snap_write_memory(&w, sparse_mem, SPARSE_RES * APF_PAGE_SIZE, sparse_digests, &next,
				  &e) == 0);
	for (unsigned p = SPARSE_RES; p < SPARSE_ALL; p++)
		REQUIRE(snap_write_memory(&w, sparse_mem + p * APF_PAGE_SIZE, APF_PAGE_SIZE,
					  sparse_digests, &next, &e) == 0);
	CHECK_EQ_U(next, SPARSE_ALL);
	/* Nothing beyond the pages the header describes. */
	CHECK_EQ_U(snap_write_memory(&w, sparse_mem, APF_PAGE_SIZE, sparse_digests, &next, &e),
		   -EINVAL);
	CHECK(strstr(e.msg, "beyond the 253 pages its header describes") != NULL);
	REQUIRE(snap_write_section(&w, SNAP_SEC_MACHINE, 0, machine_blob, sizeof(machine_blob), &e) == 0);
	REQUIRE(snap_write_section(&w, SNAP_SEC_PAGE_DIGESTS, 0, sparse_digests,
				   sizeof(sparse_digests), &e) == 0);
	REQUIRE(snap_write_end(&w, &e) == 0);
}

TEST(the_digest_of_a_zero_page_is_sha256_of_4096_zero_bytes)
{
	static const unsigned char zeros[APF_PAGE_SIZE];
	CHECK(sha256_matches(zeros, sizeof(zeros), snap_zero_page_digest()));
}

TEST(zero_pages_are_listed_and_read_back_as_zeros_from_holes)
{
	static unsigned char page[APF_PAGE_SIZE];
	struct snap_image s;
	struct apf_err e;
	struct stat st;

	setup();
	write_sparse();
	REQUIRE(snap_open(&s, path, &e) == 0);
	CHECK_EQ_U(s.h.version, 4);
	CHECK_EQ_U(s.mem_pages, SPARSE_ALL);
	CHECK_EQ_U(s.zero_pages, SPARSE_ALL - 6);
	for (unsigned p = 0; p < SPARSE_ALL; p++) {
		CHECK_EQ_U(snap_page_is_zero(&s, p), !sparse_has_data(p));
		REQUIRE(pread(s.mem_fd, page, sizeof(page), (off_t)p * APF_PAGE_SIZE) ==
			(ssize_t)sizeof(page));
		CHECK(!memcmp(page, sparse_mem + p * APF_PAGE_SIZE, sizeof(page)));
		CHECK(sha256_matches(page, sizeof(page), &s.page_digests[p]));
	}
	/* The layout is kept (the file is as long as its pages), the zero
	 * pages take no space: 6 pages of data, about 24 KiB, not 1 MiB. */
	REQUIRE(fstat(s.mem_fd, &st) == 0);
	CHECK_EQ_U(st.st_size, SPARSE_ALL * APF_PAGE_SIZE);
	printf("# %u pages, %u of them zero: %lld bytes long, %lld bytes on disk\n", SPARSE_ALL,
	       SPARSE_ALL - 6, (long long)st.st_size, (long long)st.st_blocks * 512);
	CHECK((uint64_t)st.st_blocks * 512 <= 16 * APF_PAGE_SIZE);
	CHECK((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size / 8);
	snap_close(&s);
}

/* The state file's sections, to edit one and write the file back with its
 * checksums right (what a forger would do). */
struct state_buf {
	unsigned char b[1 << 16];
	size_t len;
};

static void read_state_file(struct state_buf *st)
{
	FILE *f = fopen(path, "rb");
	REQUIRE(f != NULL);
	st->len = fread(st->b, 1, sizeof(st->b), f);
	fclose(f);
}

/* Rewrites the section of `type` (0: none) through edit(payload, &len) (a
 * NULL edit drops it), its crc recomputed, and the header's count and crc;
 * version: the header's (0: as it was). */
static void rewrite_section(uint32_t type, void (*edit)(unsigned char *p, uint64_t *len),
			    uint32_t version)
{
	static struct state_buf in, out;
	struct snap_header h;

	read_state_file(&in);
	memcpy(&h, in.b, sizeof(h));
	size_t off = sizeof(h);
	out.len = sizeof(h);
	uint32_t n = 0;
	for (uint32_t i = 0; i < h.nsections; i++) {
		struct snap_section_hdr sh;
		memcpy(&sh, in.b + off, sizeof(sh));
		static unsigned char payload[16384];
		uint64_t len = sh.length;
		REQUIRE(len <= sizeof(payload) - 64);
		memcpy(payload, in.b + off + sizeof(sh), len);
		off += sizeof(sh) + len + (8 - len % 8) % 8;
		if (sh.type == type && !edit)
			continue;
		if (sh.type == type)
			edit(payload, &len);
		sh.length = len;
		sh.crc = crc32c(0, payload, len);
		memcpy(out.b + out.len, &sh, sizeof(sh));
		memset(out.b + out.len + sizeof(sh), 0, len + 8);
		memcpy(out.b + out.len + sizeof(sh), payload, len);
		out.len += sizeof(sh) + len + (8 - len % 8) % 8;
		n++;
	}
	h.nsections = n;
	if (version)
		h.version = version;
	h.header_crc = 0;
	h.header_crc = crc32c(0, &h, sizeof(h));
	memcpy(out.b, &h, sizeof(h));
	FILE *f = fopen(path, "wb");
	REQUIRE(f != NULL);
	fwrite(out.b, 1, out.len, f);
	fclose(f);
}

static void bits_one_byte_short(unsigned char *p, uint64_t *len) { (void)p; (*len)--; }
static void bits_beyond_the_last_page(unsigned char *p, uint64_t *len) { p[*len - 1] |= 0x80; }
/* Page 5 (data) listed as zero: the digest says otherwise. */
static void bits_data_page_zero(unsigned char *p, uint64_t *len) { (void)len; p[0] |= 1 << 5; }
/* Page 7 (zero) not listed: allowed (read from the file, a hole: zeros). */
static void bits_zero_page_unlisted(unsigned char *p, uint64_t *len) { (void)len; p[0] &= ~(1 << 7); }

TEST(a_damaged_or_forged_zero_page_bitmap_is_refused)
{
	struct snap_image s;
	struct apf_err e;

	setup();
	write_sparse();
	/* Changed, its crc not: the section's checksum.  (The file's last
	 * byte is the bitmap's: 32 bytes, no padding.) */
	static struct state_buf st;
	read_state_file(&st);
	st.b[st.len - 1] ^= 0x01;
	FILE *f = fopen(path, "wb");
	REQUIRE(f != NULL);
	fwrite(st.b, 1, st.len, f);
	fclose(f);
	expect_refused("checksum mismatch in section 3 (type 9)");
	/* Forged, crc and all. */
	write_sparse();
	rewrite_section(SNAP_SEC_ZERO_PAGES, bits_one_byte_short, 0);
	expect_refused("the zero-page bitmap holds 31 bytes; its 253 pages need 32");
	write_sparse();
	rewrite_section(SNAP_SEC_ZERO_PAGES, bits_beyond_the_last_page, 0);
	expect_refused("the zero-page bitmap marks pages beyond its 253");
	write_sparse();
	rewrite_section(SNAP_SEC_ZERO_PAGES, NULL, 0);
	expect_refused("has no zero-page bitmap");
	write_sparse();
	rewrite_section(SNAP_SEC_ZERO_PAGES, bits_data_page_zero, 0);
	expect_refused("page 5 is listed as all zero but its SHA-256 is not a zero page's");
	/* A zero page left off the list costs a read, nothing else. */
	write_sparse();
	rewrite_section(SNAP_SEC_ZERO_PAGES, bits_zero_page_unlisted, 0);
	REQUIRE(snap_open(&s, path, &e) == 0);
	CHECK(!snap_page_is_zero(&s, 7) && snap_page_is_zero(&s, 8));
	CHECK_EQ_U(s.zero_pages, SPARSE_ALL - 7);
	snap_close(&s);
}

TEST(a_version_3_snapshot_is_still_read_with_no_zero_pages_known)
{
	struct snap_image s;
	struct apf_err e;

	setup();
	write_sparse();
	rewrite_section(SNAP_SEC_ZERO_PAGES, NULL, 3);
	REQUIRE(snap_open(&s, path, &e) == 0);
	CHECK_EQ_U(s.h.version, 3);
	CHECK(s.zero_bits == NULL);
	CHECK_EQ_U(s.zero_pages, 0);
	for (unsigned p = 0; p < SPARSE_ALL; p++)
		CHECK(!snap_page_is_zero(&s, p));
	snap_close(&s);
	/* A version 3 state with a bitmap (none was ever written) ignores it. */
	write_sparse();
	rewrite_section(0, NULL, 3);
	REQUIRE(snap_open(&s, path, &e) == 0);
	CHECK(s.zero_bits == NULL && !snap_page_is_zero(&s, 1));
	snap_close(&s);
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
	  T(the_digest_of_a_zero_page_is_sha256_of_4096_zero_bytes),
	  T(zero_pages_are_listed_and_read_back_as_zeros_from_holes),
	  T(a_damaged_or_forged_zero_page_bitmap_is_refused),
	  T(a_version_3_snapshot_is_still_read_with_no_zero_pages_known),
	  T(a_snapshot_is_written_whole_or_not_at_all) ARCH_TESTS)
