/*
 * Working-set files (src/workset/workset.c): what is written reads back;
 * every damaged, foreign or malformed file is refused with a message
 * naming the file and the cause, before anything of it is used, by
 * ws_read and ws_load alike (ws_load takes any memory's file); a working
 * set that breaks an invariant is never written; sorting gives one
 * first-touch order; the identities tell memories apart.
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
#include "snapshot/snapshot.h"
#include "test.h"
#include "workset/workset.h"

#define MEM_PAGES 10
#define RES_PAGES 6
#define HDR       ((long)sizeof(struct ws_header))

static char dir[] = "/tmp/apfvm-ws-test.XXXXXX";
static char path[128];
static struct sha256 ident;

/* Six touches: resident pages 0, 5, 2 and lazy pages 0, 3 (pages 6, 9),
 * page 1 last, at times that repeat once. */
static struct ws_entry good_entries[] = {
	{ 0, 10 }, { 6, 250 }, { 5, 250 }, { 9, 1000 }, { 2, 40000 }, { 1, 40001 },
};

static struct workset good_ws(void)
{
	return (struct workset){ .identity = ident, .mem_pages = MEM_PAGES,
				 .resident_pages = RES_PAGES, .count = 6, .entries = good_entries };
}

static void setup(void)
{
	struct workset ws = good_ws();
	struct apf_err e;

	if (!path[0]) {
		if (!mkdtemp(dir))
			abort();
		snprintf(path, sizeof(path), "%s/ws", dir);
		ws_identity_lazy(MEM_PAGES - RES_PAGES, APF_PATTERN_SEEDED, 42, &ident);
		ws.identity = ident;
	}
	if (ws_write(path, &ws, &e))
		abort();
}

/* The file's bytes, edited by edit(buf, &len); reseal: the checksum made
 * to match again, as a forger would. */
static void edit_file(void (*edit)(unsigned char *b, long *len), int reseal)
{
	static unsigned char buf[4096];
	FILE *f = fopen(path, "rb");
	REQUIRE(f != NULL);
	long len = (long)fread(buf, 1, sizeof(buf), f);
	fclose(f);
	edit(buf, &len);
	if (reseal && len >= SHA256_LEN)
		sha256(buf, (size_t)len - SHA256_LEN, (struct sha256 *)(buf + len - SHA256_LEN));
	f = fopen(path, "wb");
	REQUIRE(f != NULL);
	fwrite(buf, 1, (size_t)len, f);
	fclose(f);
}

/* A reader's answer got, *ws and e: a refusal (rc, or any error if rc is
 * 0) whose message names the file and contains what, nothing held. */
static int refusal_is(int got, const struct workset *ws, const struct apf_err *e,
		      const char *reader, const char *what, int rc)
{
	if (got >= 0 || (rc && got != rc)) {
		TEST_FAIL_("%s: expected %d (\"%s\"), got %d (\"%s\")", reader, rc, what, got, e->msg);
		return 0;
	}
	if (!strstr(e->msg, what) || !strstr(e->msg, path)) {
		TEST_FAIL_("%s: expected \"%s\" naming %s, got \"%s\"", reader, what, path, e->msg);
		return 0;
	}
	CHECK(ws->entries == NULL && ws->count == 0); /* nothing held */
	return 1;
}

/* ws_read refuses path, its message naming the file and containing what. */
static int refused_with(uint64_t mem_pages, uint64_t resident, const char *what, int rc)
{
	struct workset ws = { .count = 99 };
	struct apf_err e = { { 0 } };
	int got = ws_read(path, &ident, mem_pages, resident, &ws, &e);

	return refusal_is(got, &ws, &e, "ws_read", what, rc);
}

/* ws_load refuses path the same way (every check but the binding). */
static int load_refused_with(const char *what, int rc)
{
	struct workset ws = { .count = 99 };
	struct apf_err e = { { 0 } };
	int got = ws_load(path, &ws, &e);

	return refusal_is(got, &ws, &e, "ws_load", what, rc);
}

/* Refused by both readers: what is wrong with the file itself. */
#define REFUSED(what, rc) \
	CHECK(refused_with(MEM_PAGES, RES_PAGES, what, rc) && load_refused_with(what, rc))
/* Refused by ws_read only: the file is for other memory or other sizes. */
#define STALE(what) CHECK(refused_with(MEM_PAGES, RES_PAGES, what, -ESTALE))

/* What dir holds besides "." and "..": the names, sorted, joined by spaces. */
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

TEST(a_written_working_set_reads_back)
{
	struct workset ws;
	struct apf_err e;
	struct stat st;
	char names[256];

	setup();
	REQUIRE(stat(path, &st) == 0);
	CHECK_EQ_U(st.st_mode & 0777, 0600);
	CHECK_EQ_U(st.st_size, HDR + 6 * 8 + 32); /* 8 bytes a page */
	list_dir(names, sizeof(names));
	CHECK(!strcmp(names, "ws "));
	REQUIRE(ws_read(path, &ident, MEM_PAGES, RES_PAGES, &ws, &e) == 0);
	CHECK_EQ_U(ws.mem_pages, MEM_PAGES);
	CHECK_EQ_U(ws.resident_pages, RES_PAGES);
	CHECK_EQ_U(ws.count, 6);
	CHECK(!memcmp(&ws.identity, &ident, sizeof(ident)));
	CHECK(!memcmp(ws.entries, good_entries, sizeof(good_entries)));
	ws_free(&ws);
	CHECK(ws.entries == NULL && ws.count == 0);
	ws_free(&ws); /* twice: a no-op */
}

TEST(an_empty_working_set_reads_back)
{
	struct workset ws = good_ws(), got;
	struct apf_err e;

	setup();
	ws.count = 0;
	ws.entries = NULL;
	REQUIRE(ws_write(path, &ws, &e) == 0);
	REQUIRE(ws_read(path, &ident, MEM_PAGES, RES_PAGES, &got, &e) == 0);
	CHECK_EQ_U(got.count, 0);
	ws_free(&got);
}

static void flip_entry(unsigned char *b, long *len) { (void)len; b[HDR + 8 * 3 + 1] ^= 0x20; }
static void flip_checksum(unsigned char *b, long *len) { b[*len - 1] ^= 1; }
static void flip_header(unsigned char *b, long *len) { (void)len; b[HDR - 1] ^= 0x80; }

TEST(a_damaged_file_is_refused)
{
	setup();
	edit_file(flip_entry, 0);
	REFUSED("is damaged: its checksum does not match its contents", -EBADMSG);
	setup();
	edit_file(flip_checksum, 0);
	REFUSED("is damaged", -EBADMSG);
	setup();
	edit_file(flip_header, 0); /* the identity's last byte */
	REFUSED("is damaged", -EBADMSG);
}

static void cut_8(unsigned char *b, long *len) { (void)b; *len -= 8; }
static void cut_in_header(unsigned char *b, long *len) { (void)b; *len = HDR - 1; }
static void cut_to_header(unsigned char *b, long *len) { (void)b; *len = HDR; }
static void add_byte(unsigned char *b, long *len) { b[(*len)++] = 0; }
static void count_5(unsigned char *b, long *len) { (void)len; b[32] = 5; }
static void count_7(unsigned char *b, long *len) { (void)len; b[32] = 7; }

TEST(a_truncated_file_or_one_sized_unlike_its_count_is_refused)
{
	setup();
	edit_file(cut_8, 0);
	REFUSED("is truncated: 144 bytes, where its 6 entries take 152", -EINVAL);
	setup();
	edit_file(cut_in_header, 0);
	REFUSED("is truncated: 71 bytes, shorter than its header", -EINVAL);
	setup();
	edit_file(cut_to_header, 0);
	REFUSED("is truncated: 72 bytes, where its 6 entries take 152", -EINVAL);
	setup();
	edit_file(add_byte, 0);
	REFUSED("has 1 stray byte after its 6 entries and checksum", -EINVAL);
	setup();
	edit_file(count_5, 0);
	REFUSED("has 8 stray bytes after its 5 entries and checksum", -EINVAL);
	setup();
	edit_file(count_7, 0);
	REFUSED("is truncated: 152 bytes, where its 7 entries take 160", -EINVAL);
}

static void count_huge(unsigned char *b, long *len) { (void)len; b[32 + 5] = 1; } /* 2^40 + 6 */
static void count_11(unsigned char *b, long *len) { (void)len; b[32] = 11; }

/* A count beyond the guest's pages is refused from the header alone, and
 * a file larger than a working set can be is never read (a sparse 1 GiB
 * file: reading it whole would take seconds and a GiB). */
TEST(a_count_above_the_guests_pages_is_refused_before_reading)
{
	setup();
	edit_file(count_huge, 0);
	REFUSED("lists 1099511627782 pages, more than the guest's 10", -EINVAL);
	setup();
	edit_file(count_11, 1);
	REFUSED("lists 11 pages, more than the guest's 10", -EINVAL);
	setup();
	REQUIRE(truncate(path, 1ll << 30) == 0);
	REFUSED("has 1073741672 stray bytes after its 6 entries", -EINVAL);
	CHECK(refused_with(WS_MAX_PAGES + 1, RES_PAGES, "a guest of 4294967297 pages is more than "
			   "a working set can name", -EINVAL));
}

static void magic_elf(unsigned char *b, long *len) { memcpy(b, "\x7f" "ELF", 4); (void)len; }
static void cut_to_4(unsigned char *b, long *len) { (void)b; *len = 4; }
static void cut_to_0(unsigned char *b, long *len) { (void)b; *len = 0; }
static void version_2(unsigned char *b, long *len) { (void)len; b[8] = 2; }
static void flags_1(unsigned char *b, long *len) { (void)len; b[12] = 1; }

TEST(another_kind_of_file_or_version_is_refused)
{
	setup();
	edit_file(magic_elf, 1);
	REFUSED("is not a working-set file", -EINVAL);
	setup();
	edit_file(cut_to_4, 0);
	REFUSED("is not a working-set file", -EINVAL);
	setup();
	edit_file(cut_to_0, 0);
	REFUSED("is not a working-set file", -EINVAL);
	setup();
	edit_file(version_2, 1);
	REFUSED("has format version 2; this apfvm reads version 1", -EINVAL);
	setup();
	edit_file(flags_1, 1);
	REFUSED("has flags 0x1, which this apfvm does not know", -EINVAL);
}

TEST(a_file_recorded_for_other_memory_is_refused)
{
	struct workset ws = good_ws();
	struct sha256 saved = ident;
	struct apf_err e;

	setup();
	ws_identity_lazy(MEM_PAGES - RES_PAGES, APF_PATTERN_SEEDED, 43, &ident);
	STALE("was recorded for another snapshot or another memory (identity ");
	ident = saved;
	CHECK(refused_with(MEM_PAGES + 1, RES_PAGES, "was recorded for a guest of 10 pages "
			   "(6 resident); this guest has 11 pages (6 resident)", -ESTALE));
	CHECK(refused_with(MEM_PAGES, RES_PAGES - 1, "was recorded for a guest of 10 pages "
			   "(6 resident); this guest has 10 pages (5 resident)", -ESTALE));
	/* Recorded for a larger guest: the count fits this one, the sizes do not. */
	ws.mem_pages = 12;
	REQUIRE(ws_write(path, &ws, &e) == 0);
	STALE("was recorded for a guest of 12 pages (6 resident); this guest has 10 pages");
}

/* ws_load: whatever memory a file was recorded for, it loads whole, with
 * that memory's identity and sizes. */
TEST(a_file_loads_with_the_memory_it_was_recorded_for)
{
	struct workset ws = good_ws(), got = { .count = 99 };
	struct apf_err e;

	ws.mem_pages = 1ull << 32; /* the largest a working set can name */
	ws.resident_pages = 3;
	ws_identity_lazy(77, APF_PATTERN_SEEDED, 5, &ws.identity);
	setup();
	REQUIRE(ws_write(path, &ws, &e) == 0);
	REQUIRE(ws_load(path, &got, &e) == 0);
	CHECK(!memcmp(&got.identity, &ws.identity, sizeof(ws.identity)));
	CHECK_EQ_U(got.mem_pages, 1ull << 32);
	CHECK_EQ_U(got.resident_pages, 3);
	CHECK_EQ_U(got.count, 6);
	CHECK(!memcmp(got.entries, good_entries, sizeof(good_entries)));
	ws_free(&got);
	ws.count = 0;
	ws.entries = NULL;
	REQUIRE(ws_write(path, &ws, &e) == 0);
	REQUIRE(ws_load(path, &got, &e) == 0);
	CHECK_EQ_U(got.count, 0);
	ws_free(&got);
}

/* Header fields forged (checksum resealed): the file's own sizes. */
static uint64_t forged_sizes[3]; /* mem_pages, resident_pages, count */
static void forge_sizes(unsigned char *b, long *len)
{
	(void)len;
	memcpy(b + 16, forged_sizes, sizeof(forged_sizes));
}

/* What ws_read refuses as sizes unlike the guest's, ws_load refuses as
 * sizes that cannot be: checked against the file's own pages, never an
 * unbounded count (a count of 2^61 entries would take 0 bytes mod 2^64). */
TEST(ws_load_bounds_a_file_by_its_own_sizes)
{
	setup();
	forged_sizes[0] = WS_MAX_PAGES + 1, forged_sizes[1] = 0, forged_sizes[2] = 6;
	edit_file(forge_sizes, 1);
	CHECK(load_refused_with("is for a guest of 4294967297 pages; at most 4294967296 can be "
				"named", -EINVAL));
	forged_sizes[0] = 1ull << 62, forged_sizes[2] = 1ull << 61;
	edit_file(forge_sizes, 1);
	CHECK(load_refused_with("is for a guest of 4611686018427387904 pages", -EINVAL));
	forged_sizes[0] = 5, forged_sizes[2] = 6;
	edit_file(forge_sizes, 1);
	CHECK(load_refused_with("lists 6 pages, more than the guest's 5", -EINVAL));
	STALE("was recorded for a guest of 5 pages (0 resident)");
	forged_sizes[0] = 10, forged_sizes[1] = 11;
	edit_file(forge_sizes, 1);
	CHECK(load_refused_with("has impossible sizes: 6 entries, 11 resident pages, 10 pages",
				-EINVAL));
	forged_sizes[0] = 8, forged_sizes[1] = 6;
	edit_file(forge_sizes, 1); /* entry 3 names page 9 */
	CHECK(load_refused_with("names page 9, outside the guest's 8 pages", -EINVAL));
}

/* Forged files with valid checksums: entry 4's page or time set. */
static uint32_t forged_page = 2, forged_time = 40000;
static void forge_entry_4(unsigned char *b, long *len)
{
	(void)len;
	memcpy(b + HDR + 4 * 8, &forged_page, 4);
	memcpy(b + HDR + 4 * 8 + 4, &forged_time, 4);
}

TEST(entries_that_break_the_invariants_are_refused)
{
	setup();
	forged_page = MEM_PAGES;
	edit_file(forge_entry_4, 1);
	REFUSED("names page 10, outside the guest's 10 pages", -EINVAL);
	setup();
	forged_page = 0xffffffffu;
	edit_file(forge_entry_4, 1);
	REFUSED("names page 4294967295, outside the guest's 10 pages", -EINVAL);
	setup();
	forged_page = 6;
	edit_file(forge_entry_4, 1);
	REFUSED("lists page 6 twice (entries 1 and 4)", -EINVAL);
	setup();
	forged_page = 2;
	forged_time = 999;
	edit_file(forge_entry_4, 1);
	REFUSED("goes back in time: entry 4 (page 2) at 999 us, after entry 3 at 1000 us", -EINVAL);
	forged_time = 40000;
}

TEST(what_is_not_a_regular_file_is_refused_at_once)
{
	char sub[160];

	setup();
	unlink(path);
	REFUSED("cannot open working-set file", -ENOENT);
	/* A FIFO with no writer: open must not wait for one. */
	REQUIRE(mkfifo(path, 0600) == 0);
	alarm(10);
	REFUSED("is not a regular file", -EINVAL);
	alarm(0);
	unlink(path);
	REQUIRE(mkdir(path, 0700) == 0);
	REFUSED("is not a regular file", -EINVAL);
	rmdir(path);
	/* A symlink to a regular file is followed (the user named it). */
	snprintf(sub, sizeof(sub), "%s/real", dir);
	setup();
	REQUIRE(rename(path, sub) == 0);
	REQUIRE(symlink(sub, path) == 0);
	struct workset ws;
	struct apf_err e;
	CHECK(ws_read(path, &ident, MEM_PAGES, RES_PAGES, &ws, &e) == 0);
	ws_free(&ws);
	unlink(path);
	unlink(sub);
}

/* A working set that breaks an invariant is not written, and the file
 * already at the path stays as it was. */
static void expect_not_written(struct workset *ws, const char *what)
{
	struct apf_err e = { { 0 } };
	struct stat before, after;
	char names[256];

	REQUIRE(stat(path, &before) == 0);
	CHECK(ws_write(path, ws, &e) == -EINVAL);
	if (!strstr(e.msg, what) || !strstr(e.msg, "cannot write working-set file"))
		TEST_FAIL_("expected \"%s\", got \"%s\"", what, e.msg);
	list_dir(names, sizeof(names));
	CHECK(!strcmp(names, "ws "));
	REQUIRE(stat(path, &after) == 0);
	CHECK(before.st_ino == after.st_ino);
}

TEST(an_invalid_working_set_is_not_written)
{
	struct ws_entry en[3] = { { 1, 5 }, { 7, 6 }, { 3, 9 } };
	struct workset ws = good_ws();

	setup();
	ws.entries = en;
	ws.count = 3;
	en[1].page = MEM_PAGES;
	expect_not_written(&ws, "its working set names page 10, outside the guest's 10 pages");
	en[1].page = 3;
	expect_not_written(&ws, "lists page 3 twice (entries 1 and 2)");
	en[1].page = 7;
	en[2].t_us = 4;
	expect_not_written(&ws, "goes back in time: entry 2 (page 3) at 4 us, after entry 1 at 6 us");
	en[2].t_us = 9;
	ws.count = MEM_PAGES + 1;
	expect_not_written(&ws, "impossible sizes: 11 entries, 6 resident pages, 10 pages");
	ws.count = 3;
	ws.resident_pages = MEM_PAGES + 1;
	expect_not_written(&ws, "impossible sizes");
	ws.resident_pages = RES_PAGES;
	ws.mem_pages = WS_MAX_PAGES + 1;
	expect_not_written(&ws, "is for a guest of 4294967297 pages; at most 4294967296 can be named");
}

TEST(a_failed_write_leaves_nothing_behind)
{
	struct workset ws = good_ws();
	struct apf_err e = { { 0 } };
	char names[256], sub[160];

	setup();
	/* A directory at the path: the rename fails, the new file goes. */
	unlink(path);
	REQUIRE(mkdir(path, 0700) == 0);
	CHECK(ws_write(path, &ws, &e) < 0);
	CHECK(strstr(e.msg, "cannot write working-set file") != NULL);
	list_dir(names, sizeof(names));
	CHECK(!strcmp(names, "ws "));
	rmdir(path);
	/* A folder that does not exist. */
	snprintf(sub, sizeof(sub), "%s/none/ws", dir);
	CHECK(ws_write(sub, &ws, &e) == -ENOENT);
	CHECK(strstr(e.msg, "cannot create working-set file") != NULL);
	/* A symlink at the path is replaced, never written through. */
	snprintf(sub, sizeof(sub), "%s/victim", dir);
	FILE *f = fopen(sub, "w");
	REQUIRE(f != NULL);
	fputs("keep", f);
	fclose(f);
	REQUIRE(symlink(sub, path) == 0);
	REQUIRE(ws_write(path, &ws, &e) == 0);
	struct stat st;
	REQUIRE(lstat(path, &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	REQUIRE(stat(sub, &st) == 0);
	CHECK_EQ_U(st.st_size, 4);
	unlink(sub);
}

TEST(sorting_gives_one_first_touch_order)
{
	/* The resident pager's touches, then the lazy pager's (offset by
	 * the 6 resident pages), as a recorder appends them. */
	struct ws_entry en[] = { { 0, 10 }, { 5, 250 }, { 2, 40000 }, { 1, 40001 },
				 { 6 + 3, 1000 }, { 6 + 0, 250 } };
	struct ws_entry rev[6];
	struct workset ws = good_ws();
	struct apf_err e;

	ws.entries = en;
	CHECK(ws_sort_by_time(&ws) == 0);
	/* By time, then page: 5 before 6 at 250 us. */
	static const struct ws_entry want[] = { { 0, 10 }, { 5, 250 }, { 6, 250 },
						{ 9, 1000 }, { 2, 40000 }, { 1, 40001 } };
	CHECK(!memcmp(en, want, sizeof(want)));
	/* The same whatever order they came in. */
	for (int i = 0; i < 6; i++)
		rev[i] = want[5 - i];
	ws.entries = rev;
	CHECK(ws_sort_by_time(&ws) == 0);
	CHECK(!memcmp(rev, want, sizeof(want)));
	ws.count = 0;
	CHECK(ws_sort_by_time(&ws) == 0);
	/* And sorted, it is a valid working set. */
	setup();
	ws.entries = en;
	ws.count = 6;
	CHECK(ws_write(path, &ws, &e) == 0);
}

TEST(times_saturate)
{
	CHECK_EQ_U(ws_time_us(0), 0);
	CHECK_EQ_U(ws_time_us(1999), 1);
	CHECK_EQ_U(ws_time_us(4294967295000ull), UINT32_MAX);
	CHECK_EQ_U(ws_time_us(4294967296000ull), UINT32_MAX);
	CHECK_EQ_U(ws_time_us(UINT64_MAX), UINT32_MAX);
}

TEST(identities_tell_memories_apart)
{
	struct sha256 a, b;

	ws_identity_lazy(4, APF_PATTERN_SEEDED, 42, &a);
	ws_identity_lazy(4, APF_PATTERN_SEEDED, 42, &b);
	CHECK(!memcmp(&a, &b, sizeof(a)));
	ws_identity_lazy(4, APF_PATTERN_SEEDED, 43, &b);
	CHECK(memcmp(&a, &b, sizeof(a)));
	ws_identity_lazy(5, APF_PATTERN_SEEDED, 42, &b);
	CHECK(memcmp(&a, &b, sizeof(a)));
	ws_identity_lazy(4, APF_PATTERN_ZERO, 42, &b);
	CHECK(memcmp(&a, &b, sizeof(a)));
	/* Zeros are zeros whatever the seed. */
	ws_identity_lazy(4, APF_PATTERN_ZERO, 7, &a);
	CHECK(!memcmp(&a, &b, sizeof(a)));
}

/* A snapshot's identity: what snap_identity truncates to 8 bytes. */
TEST(a_snapshots_identity_is_the_full_snap_identity)
{
	static unsigned char mem[3 * APF_PAGE_SIZE];
	struct sha256 digests[3], full, lazy;
	uint64_t next = 0, id;
	struct snap_writer w;
	struct snap_image s;
	struct apf_err e;
	char spath[160], mpath[170];

	snprintf(spath, sizeof(spath), "%s/snap", dir);
	snprintf(mpath, sizeof(mpath), "%s/snap.mem", dir);
	for (size_t i = 0; i < sizeof(mem); i++)
		mem[i] = (unsigned char)(i * 13);
	REQUIRE(snap_write_begin(&w, spath, SNAP_ARCH_X86_64, 2 * APF_PAGE_SIZE, APF_PAGE_SIZE, &e) == 0);
	REQUIRE(snap_write_memory(&w, mem, sizeof(mem), digests, &next, &e) == 0);
	REQUIRE(snap_write_section(&w, SNAP_SEC_PAGE_DIGESTS, 0, digests, sizeof(digests), &e) == 0);
	REQUIRE(snap_write_end(&w, &e) == 0);
	REQUIRE(snap_open(&s, spath, &e) == 0);
	ws_identity_snapshot(&s, &full);
	id = snap_identity(&s);
	CHECK(!memcmp(&id, full.b, sizeof(id)));
	/* By definition: page count, then page digests. */
	unsigned char buf[8 + sizeof(digests)];
	uint64_t n = 3;
	struct sha256 want;
	memcpy(buf, &n, 8);
	memcpy(buf + 8, digests, sizeof(digests));
	sha256(buf, sizeof(buf), &want);
	CHECK(!memcmp(&want, &full, sizeof(want)));
	ws_identity_lazy(1, APF_PATTERN_SNAPSHOT, id, &lazy);
	CHECK(memcmp(&lazy, &full, sizeof(full)));
	snap_close(&s);
	unlink(spath);
	unlink(mpath);
}

TEST(a_summary_says_what_a_working_set_holds)
{
	struct workset ws = good_ws();
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	REQUIRE(f != NULL);
	CHECK(ws_describe(&ws, f) == 0);
	ws.count = 0;
	CHECK(ws_describe(&ws, f) == 0);
	fclose(f);
	CHECK(strstr(text, "working set: 6 of 10 pages (4 of 6 resident, 2 of 4 lazy)\n") != NULL);
	CHECK(strstr(text, "first touches: from 0.010 ms to 40.001 ms; half of the pages by "
		      "0.250 ms, nine tenths by 40.001 ms\n") != NULL);
	CHECK(strstr(text, "working set: 0 of 10 pages (0 of 6 resident, 0 of 4 lazy)\n") != NULL);
	CHECK(strstr(text, "identity: ") != NULL);
	free(text);
}

TEST(cleanup)
{
	unlink(path);
	CHECK(rmdir(dir) == 0);
}

TEST_MAIN(T(a_written_working_set_reads_back), T(an_empty_working_set_reads_back),
	  T(a_damaged_file_is_refused), T(a_truncated_file_or_one_sized_unlike_its_count_is_refused),
	  T(a_count_above_the_guests_pages_is_refused_before_reading),
	  T(another_kind_of_file_or_version_is_refused), T(a_file_recorded_for_other_memory_is_refused),
	  T(a_file_loads_with_the_memory_it_was_recorded_for),
	  T(ws_load_bounds_a_file_by_its_own_sizes), T(entries_that_break_the_invariants_are_refused), T(what_is_not_a_regular_file_is_refused_at_once),
	  T(an_invalid_working_set_is_not_written), T(a_failed_write_leaves_nothing_behind),
	  T(sorting_gives_one_first_touch_order), T(times_saturate), T(identities_tell_memories_apart),
	  T(a_snapshots_identity_is_the_full_snap_identity), T(a_summary_says_what_a_working_set_holds),
	  T(cleanup))
