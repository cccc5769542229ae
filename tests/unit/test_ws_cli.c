/*
 * Looking at working sets (`apfvm ws`, src/cli/ws.c; ws_compare in
 * src/workset/workset.c): the counts of a comparison on known sets,
 * whatever order the pages come in; two working sets of different memory
 * refused, saying which; the report and the CSV line as documented; and
 * the command itself, run on files written with ws_write: its output, its
 * messages and its exit status (0 done, 1 a bad file, 2 bad usage).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "cli/ws.h"
#include "test.h"
#include "workset/workset.h"

#define MEM_PAGES 20
#define RES_PAGES 12

static struct sha256 ident;

/* A working set of the n pages listed, one microsecond apart. */
static struct workset make_ws(const uint32_t *pages, uint64_t n, struct ws_entry *buf)
{
	for (uint64_t i = 0; i < n; i++)
		buf[i] = (struct ws_entry){ .page = pages[i], .t_us = (uint32_t)i };
	return (struct workset){ .identity = ident, .mem_pages = MEM_PAGES,
				 .resident_pages = RES_PAGES, .count = n, .entries = buf };
}

static void setup(void)
{
	ws_identity_lazy(MEM_PAGES - RES_PAGES, APF_PATTERN_SEEDED, 7, &ident);
}

/* Pages 0..9 prefetched, in first-touch order (not page order); 5..14 touched. */
static const uint32_t replayed_pages[10] = { 9, 0, 8, 1, 7, 2, 6, 3, 5, 4 };
static const uint32_t actual_pages[10] = { 14, 5, 13, 6, 12, 7, 11, 8, 10, 9 };

TEST(a_comparison_counts_pages_in_both_and_in_each_alone)
{
	struct ws_entry ba[10], bb[10];
	struct ws_comparison c;
	struct apf_err e = { "" };

	setup();
	struct workset a = make_ws(replayed_pages, 10, ba), b = make_ws(actual_pages, 10, bb);
	REQUIRE(ws_compare(&a, &b, &c, &e) == 0);
	CHECK_EQ_U(c.replayed, 10);
	CHECK_EQ_U(c.actual, 10);
	CHECK_EQ_U(c.both, 5);
	CHECK_EQ_U(c.unused, 5);
	CHECK_EQ_U(c.missed, 5);
	CHECK(c.coverage == 0.5);
	CHECK(c.jaccard == 5.0 / 15);
	/* The other way round: what was unused is missed. */
	REQUIRE(ws_compare(&b, &a, &c, &e) == 0);
	CHECK_EQ_U(c.both, 5);
	/* A subset: everything touched was prefetched. */
	b = make_ws(actual_pages + 5, 5, bb); /* 7, 11, 8, 10, 9 */
	REQUIRE(ws_compare(&a, &b, &c, &e) == 0);
	CHECK_EQ_U(c.both, 3);
	CHECK_EQ_U(c.unused, 7);
	CHECK_EQ_U(c.missed, 2);
	CHECK(c.jaccard == 3.0 / 12);
}

TEST(identical_disjoint_and_empty_working_sets)
{
	static const uint32_t high[3] = { 19, 15, 12 };
	struct ws_entry ba[10], bb[10];
	struct ws_comparison c;
	struct apf_err e = { "" };

	setup();
	struct workset a = make_ws(replayed_pages, 10, ba), b = make_ws(replayed_pages, 10, bb);
	REQUIRE(ws_compare(&a, &b, &c, &e) == 0);
	CHECK(c.both == 10 && c.unused == 0 && c.missed == 0);
	CHECK(c.coverage == 1 && c.jaccard == 1);
	b = make_ws(high, 3, bb);
	REQUIRE(ws_compare(&a, &b, &c, &e) == 0);
	CHECK(c.both == 0 && c.unused == 10 && c.missed == 3);
	CHECK(c.coverage == 0 && c.jaccard == 0);
	b = make_ws(NULL, 0, bb); /* nothing touched: nothing missed */
	REQUIRE(ws_compare(&a, &b, &c, &e) == 0);
	CHECK(c.both == 0 && c.unused == 10 && c.missed == 0);
	CHECK(c.coverage == 1 && c.jaccard == 0);
	a = make_ws(NULL, 0, ba); /* two empty sets: the same set */
	REQUIRE(ws_compare(&a, &b, &c, &e) == 0);
	CHECK(c.replayed == 0 && c.actual == 0 && c.both == 0);
	CHECK(c.coverage == 1 && c.jaccard == 1);
}

TEST(working_sets_of_different_memory_are_refused)
{
	struct ws_entry ba[10], bb[10];
	struct ws_comparison c = { .both = 99 };
	struct apf_err e = { "" };

	setup();
	struct workset a = make_ws(replayed_pages, 10, ba), b = make_ws(actual_pages, 10, bb);
	ws_identity_lazy(MEM_PAGES - RES_PAGES, APF_PATTERN_SEEDED, 8, &b.identity);
	CHECK(ws_compare(&a, &b, &c, &e) == -ESTALE);
	CHECK(strstr(e.msg, "the two working sets are for different memory: identities ") != NULL);
	CHECK_EQ_U(c.both, 0);
	b.identity = ident;
	b.mem_pages = MEM_PAGES + 1;
	CHECK(ws_compare(&a, &b, &c, &e) == -ESTALE);
	CHECK(strstr(e.msg, "for different memory: a guest of 20 pages (12 resident) and one of "
			    "21 pages (12 resident)") != NULL);
	b.mem_pages = MEM_PAGES;
	b.resident_pages = RES_PAGES - 1;
	CHECK(ws_compare(&a, &b, &c, &e) == -ESTALE);
	CHECK(strstr(e.msg, "and one of 20 pages (11 resident)") != NULL);
}

/* What print(c, f) writes, in a malloc'ed string. */
static char *printed(const struct ws_comparison *c, int csv, bool header)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		abort();
	if (csv ? ws_comparison_csv(c, header, f) : ws_comparison_print(c, f))
		abort();
	fclose(f);
	return text;
}

TEST(the_csv_line_and_the_report_say_what_the_docs_say)
{
	struct ws_entry ba[10], bb[10];
	struct ws_comparison c;
	struct apf_err e = { "" };
	char *t;

	setup();
	struct workset a = make_ws(replayed_pages, 10, ba), b = make_ws(actual_pages, 10, bb);
	REQUIRE(ws_compare(&a, &b, &c, &e) == 0);
	t = printed(&c, 1, false);
	CHECK(!strcmp(t, "10,10,5,5,5,0.3333\n"));
	free(t);
	t = printed(&c, 1, true);
	CHECK(!strcmp(t, "replayed,actual,both,unused,missed,jaccard\n10,10,5,5,5,0.3333\n"));
	free(t);
	t = printed(&c, 0, false);
	CHECK(!strcmp(t, "replayed: 10 pages (prefetched)\n"
			 "actual:   10 pages (touched by the guest)\n"
			 "both:     5 pages: prefetched, then used\n"
			 "unused:   5 pages: prefetched, never used (50.0% of replayed)\n"
			 "missed:   5 pages: touched, not prefetched (demand faults in a replay)\n"
			 "overlap:  50.0% of actual; Jaccard index 0.3333\n"));
	free(t);
	/* 1999 of 2000: 99.95% is not printed as 100% (nor 1 of 2000 as 0%). */
	c = (struct ws_comparison){ .replayed = 2000, .actual = 2000, .both = 1999, .unused = 1,
				    .missed = 1, .coverage = 0.9995, .jaccard = 1999.0 / 2001 };
	t = printed(&c, 0, false);
	CHECK(strstr(t, "(0.1% of replayed)") != NULL);
	CHECK(strstr(t, "overlap:  99.9% of actual; Jaccard index 0.9990\n") != NULL);
	free(t);
	c = (struct ws_comparison){ .replayed = 3, .unused = 3, .coverage = 1 };
	t = printed(&c, 0, false);
	CHECK(strstr(t, "overlap:  none (actual is empty); Jaccard index 0.0000\n") != NULL);
	free(t);
}

/* --- the command -------------------------------------------------------- */

static char dir[] = "/tmp/apfvm-ws-cli-test.XXXXXX";
static char out[8192], err[8192];

/* dir/name, in a static buffer of four (so that a call may hold several). */
static const char *file(const char *name)
{
	static char bufs[4][128];
	static int next;
	char *p = bufs[next++ % 4];

	snprintf(p, sizeof(bufs[0]), "%s/%s", dir, name);
	return p;
}

/* The files the command is run on, written once: replayed.ws and
 * actual.ws (the sets above), other.ws (other memory), damaged.ws (one
 * byte flipped). */
static void write_files(void)
{
	static bool written;
	struct ws_entry ba[10], bb[10];
	struct apf_err e;

	if (written)
		return;
	written = true;
	setup();
	if (!mkdtemp(dir))
		abort();
	struct workset a = make_ws(replayed_pages, 10, ba), b = make_ws(actual_pages, 10, bb);
	if (ws_write(file("replayed.ws"), &a, &e) || ws_write(file("actual.ws"), &b, &e))
		abort();
	b.mem_pages = 40;
	if (ws_write(file("other.ws"), &b, &e) || ws_write(file("damaged.ws"), &a, &e))
		abort();
	int fd = open(file("damaged.ws"), O_RDWR);
	unsigned char byte;
	if (fd < 0 || pread(fd, &byte, 1, 80) != 1)
		abort();
	byte ^= 1;
	if (pwrite(fd, &byte, 1, 80) != 1 || close(fd))
		abort();
}

/* A whole file's text into buf (NUL-ended, cut to its size). */
static void slurp(int fd, char *buf, size_t len)
{
	ssize_t n = pread(fd, buf, len - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
}

/* `apfvm ws ARGS...` (NULL-ended): its exit status; stdout in out, stderr
 * in err. */
static int run_ws(const char *arg, ...)
{
	char *argv[16] = { "ws" };
	int argc = 1, saved[2], fds[2];
	va_list ap;

	va_start(ap, arg);
	for (; arg && argc < 15; arg = va_arg(ap, const char *))
		argv[argc++] = (char *)arg;
	va_end(ap);
	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i < 2; i++) {
		fds[i] = open(file(i ? "err" : "out"), O_RDWR | O_CREAT | O_TRUNC, 0600);
		saved[i] = dup(i + 1);
		if (fds[i] < 0 || saved[i] < 0 || dup2(fds[i], i + 1) < 0)
			abort();
	}
	int status = ws_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i < 2; i++) {
		dup2(saved[i], i + 1);
		close(saved[i]);
		slurp(fds[i], i ? err : out, i ? sizeof(err) : sizeof(out));
		close(fds[i]);
	}
	return status;
}

TEST(ws_show_prints_what_a_file_holds)
{
	write_files();
	CHECK_EQ_U(run_ws("show", file("replayed.ws"), NULL), 0);
	CHECK(strstr(out, "working set: 10 of 20 pages (10 of 12 resident, 0 of 8 lazy)\n") != NULL);
	CHECK(strstr(out, "identity: ") != NULL);
	CHECK(!err[0]);
	CHECK_EQ_U(run_ws("show", file("other.ws"), NULL), 0); /* any memory's file */
	CHECK(strstr(out, "working set: 10 of 40 pages") != NULL);
	CHECK_EQ_U(run_ws("show", file("damaged.ws"), NULL), 1);
	CHECK(strstr(err, "apfvm ws show: working-set file '") != NULL);
	CHECK(strstr(err, "damaged.ws' is damaged: its checksum does not match") != NULL);
	CHECK(!out[0]);
	CHECK_EQ_U(run_ws("show", file("none.ws"), NULL), 1);
	CHECK(strstr(err, "cannot open working-set file") != NULL);
}

TEST(ws_compare_reports_or_prints_one_csv_line)
{
	write_files();
	CHECK_EQ_U(run_ws("compare", file("replayed.ws"), file("actual.ws"), NULL), 0);
	CHECK(strstr(out, "both:     5 pages: prefetched, then used\n") != NULL);
	CHECK(strstr(out, "overlap:  50.0% of actual; Jaccard index 0.3333\n") != NULL);
	CHECK_EQ_U(run_ws("compare", "--csv", file("replayed.ws"), file("actual.ws"), NULL), 0);
	CHECK(!strcmp(out, "10,10,5,5,5,0.3333\n"));
	CHECK_EQ_U(run_ws("compare", file("actual.ws"), "--csv-header", file("replayed.ws"), NULL), 0);
	CHECK(!strcmp(out, "replayed,actual,both,unused,missed,jaccard\n10,10,5,5,5,0.3333\n"));
	CHECK(!err[0]);
}

TEST(ws_compare_refuses_files_of_different_memory_or_invalid_ones)
{
	write_files();
	CHECK_EQ_U(run_ws("compare", file("replayed.ws"), file("other.ws"), NULL), 1);
	CHECK(strstr(err, "apfvm ws compare: cannot compare '") != NULL);
	CHECK(strstr(err, "the two working sets are for different memory: a guest of 20 pages "
			  "(12 resident) and one of 40 pages (12 resident)\n") != NULL);
	CHECK(!out[0]);
	CHECK_EQ_U(run_ws("compare", file("damaged.ws"), file("actual.ws"), NULL), 1);
	CHECK(strstr(err, "damaged.ws' is damaged") != NULL);
	CHECK_EQ_U(run_ws("compare", file("actual.ws"), file("damaged.ws"), NULL), 1);
	CHECK(strstr(err, "damaged.ws' is damaged") != NULL);
	CHECK_EQ_U(run_ws("compare", "--csv", file("actual.ws"), dir, NULL), 1);
	CHECK(strstr(err, "is not a regular file") != NULL);
	CHECK(!out[0]);
}

TEST(usage_errors_exit_2_and_help_0)
{
	write_files();
	CHECK_EQ_U(run_ws(NULL), 2);
	CHECK(strstr(err, "Usage: apfvm ws show FILE\n") != NULL);
	CHECK_EQ_U(run_ws("--help", NULL), 0);
	CHECK(strstr(out, "Usage: apfvm ws show FILE\n") != NULL);
	CHECK_EQ_U(run_ws("compare", "-h", NULL), 0);
	CHECK(strstr(out, "Usage: apfvm ws compare [--csv [--csv-header]] REPLAYED ACTUAL\n") != NULL);
	CHECK_EQ_U(run_ws("show", "--help", NULL), 0);
	CHECK(strstr(out, "Usage: apfvm ws show FILE\n") != NULL);
	CHECK_EQ_U(run_ws("frob", NULL), 2);
	CHECK(strstr(err, "apfvm ws: unknown command 'frob' (see 'apfvm ws --help')") != NULL);
	CHECK_EQ_U(run_ws("compare", file("replayed.ws"), NULL), 2);
	CHECK(strstr(err, "expected two files, REPLAYED and ACTUAL, got 1 argument") != NULL);
	CHECK_EQ_U(run_ws("show", NULL), 2);
	CHECK(strstr(err, "apfvm ws show: expected one FILE, got 0 arguments") != NULL);
	CHECK_EQ_U(run_ws("compare", "--json", "a", "b", NULL), 2);
	CHECK(strstr(err, "unknown option '--json' (see 'apfvm ws compare --help')") != NULL);
	CHECK_EQ_U(run_ws("show", "--csv", file("replayed.ws"), NULL), 2);
	CHECK(strstr(err, "unknown option '--csv' (see 'apfvm ws show --help')") != NULL);
	CHECK(!out[0]);
}

TEST(cleanup)
{
	write_files();
	static const char *names[] = { "replayed.ws", "actual.ws", "other.ws", "damaged.ws", "out",
				       "err" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(file(names[i]));
	CHECK(rmdir(dir) == 0);
}

TEST_MAIN(T(a_comparison_counts_pages_in_both_and_in_each_alone),
	  T(identical_disjoint_and_empty_working_sets), T(working_sets_of_different_memory_are_refused),
	  T(the_csv_line_and_the_report_say_what_the_docs_say), T(ws_show_prints_what_a_file_holds),
	  T(ws_compare_reports_or_prints_one_csv_line),
	  T(ws_compare_refuses_files_of_different_memory_or_invalid_ones),
	  T(usage_errors_exit_2_and_help_0), T(cleanup))
