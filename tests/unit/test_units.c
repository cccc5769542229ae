/*
 * units: the sizes, durations and integers users type on the command line.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "util/units.h"

#define SENTINEL 0x5a5a5a5a5a5a5a5aull

/* Parses s as a size; returns the rc, *v holds the result (or SENTINEL). */
static int size_of(const char *s, uint64_t *v)
{
	*v = SENTINEL;
	return units_parse_size(s, v);
}

static int duration_of(const char *s, uint64_t *v)
{
	*v = SENTINEL;
	return units_parse_duration(s, v);
}

static int u64_of(const char *s, uint64_t *v)
{
	*v = SENTINEL;
	return units_parse_u64(s, v);
}

/* "0." followed by `zeros` zeros, then `tail` (e.g. digits and a unit). */
static void tiny_fraction(char *buf, size_t len, unsigned zeros, const char *tail)
{
	size_t i = 0;
	buf[i++] = '0';
	buf[i++] = '.';
	while (zeros-- && i + 1 < len)
		buf[i++] = '0';
	buf[i] = '\0';
	strncat(buf, tail, len - strlen(buf) - 1);
}

TEST(size_plain_bytes_and_binary_suffixes)
{
	uint64_t v;

	CHECK_EQ_U(size_of("4096", &v), 0);
	CHECK_EQ_U(v, 4096);
	CHECK_EQ_U(size_of("0", &v), 0);
	CHECK_EQ_U(v, 0);
	CHECK_EQ_U(size_of("64K", &v), 0);
	CHECK_EQ_U(v, 64ull << 10);
	CHECK_EQ_U(size_of("64M", &v), 0);
	CHECK_EQ_U(v, 64ull << 20);
	CHECK_EQ_U(size_of("1G", &v), 0);
	CHECK_EQ_U(v, 1ull << 30);
	CHECK_EQ_U(size_of("2T", &v), 0);
	CHECK_EQ_U(v, 2ull << 40);
}

TEST(size_suffixes_are_case_insensitive_with_optional_b_or_ib)
{
	uint64_t v;

	CHECK_EQ_U(size_of("64m", &v), 0);
	CHECK_EQ_U(v, 64ull << 20);
	CHECK_EQ_U(size_of("64k", &v), 0);
	CHECK_EQ_U(v, 64ull << 10);
	CHECK_EQ_U(size_of("1g", &v), 0);
	CHECK_EQ_U(v, 1ull << 30);
	CHECK_EQ_U(size_of("64MiB", &v), 0);
	CHECK_EQ_U(v, 64ull << 20);
	CHECK_EQ_U(size_of("64mib", &v), 0);
	CHECK_EQ_U(v, 64ull << 20);
	CHECK_EQ_U(size_of("64MB", &v), 0);
	CHECK_EQ_U(v, 64ull << 20);
	CHECK_EQ_U(size_of("4096B", &v), 0);
	CHECK_EQ_U(v, 4096);
	CHECK_EQ_U(size_of("1GiB", &v), 0);
	CHECK_EQ_U(v, 1ull << 30);
}

TEST(size_fractions_must_give_whole_bytes)
{
	uint64_t v;

	CHECK_EQ_U(size_of("1.5K", &v), 0);
	CHECK_EQ_U(v, 1536);
	CHECK_EQ_U(size_of("0.5M", &v), 0);
	CHECK_EQ_U(v, 512ull << 10);
	CHECK_EQ_U(size_of("2.25G", &v), 0);
	CHECK_EQ_U(v, (9ull << 30) / 4);
	/* 1.5 bytes is not a whole number of bytes */
	CHECK_EQ_U(size_of("1.5", &v), (uint64_t)-EINVAL);
	CHECK_EQ_U(v, SENTINEL);
	CHECK_EQ_U(size_of("1.1K", &v), (uint64_t)-EINVAL);
	CHECK_EQ_U(v, SENTINEL);
}

TEST(size_rejects_malformed_and_leaves_output_alone)
{
	static const char *const bad[] = {
		"", "abc", "-1", "+1", "64X", "1.", ".", "K", "64 M", " 64M", "64M ",
		"64KK", "64iB", "1e3", "0x10", "1..5K", "1.5.5K", "64MiBB",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = size_of(bad[i], &v);
		if (rc != -EINVAL || v != SENTINEL)
			TEST_FAIL_("units_parse_size(\"%s\") = %d, out %llu; expected -EINVAL, untouched",
				   bad[i], rc, (unsigned long long)v);
	}
	CHECK_EQ_U(units_parse_size(NULL, &v), (uint64_t)-EINVAL);
}

TEST(size_overflow_is_erange)
{
	uint64_t v;

	CHECK_EQ_U(size_of("99999999999999999999", &v), (uint64_t)-ERANGE);
	CHECK_EQ_U(v, SENTINEL);
	CHECK_EQ_U(size_of("20000000000G", &v), (uint64_t)-ERANGE);
	CHECK_EQ_U(v, SENTINEL);
	CHECK_EQ_U(size_of("16777216T", &v), (uint64_t)-ERANGE); /* exactly 2^64 */
	CHECK_EQ_U(v, SENTINEL);
	/* The largest multiple of a suffix still fits. */
	CHECK_EQ_U(size_of("16777215T", &v), 0);
	CHECK_EQ_U(v, 16777215ull << 40);
}

/* The header promises -ERANGE only for values that do not fit 64 bits. */
TEST(size_and_duration_accept_values_up_to_uint64_max)
{
	uint64_t v;

	CHECK_EQ_U(size_of("18446744073709551615", &v), 0);
	CHECK_EQ_U(v, UINT64_MAX);
	CHECK_EQ_U(size_of("18446744073709551610", &v), 0);
	CHECK_EQ_U(v, UINT64_MAX - 5);
	CHECK_EQ_U(duration_of("18446744073709551615ns", &v), 0);
	CHECK_EQ_U(v, UINT64_MAX);
	CHECK_EQ_U(size_of("18446744073709551616", &v), (uint64_t)-ERANGE);
	CHECK_EQ_U(v, SENTINEL);
}

TEST(duration_units)
{
	uint64_t v;

	CHECK_EQ_U(duration_of("0", &v), 0);
	CHECK_EQ_U(v, 0);
	CHECK_EQ_U(duration_of("100ns", &v), 0);
	CHECK_EQ_U(v, 100);
	CHECK_EQ_U(duration_of("250us", &v), 0);
	CHECK_EQ_U(v, 250000);
	CHECK_EQ_U(duration_of("1ms", &v), 0);
	CHECK_EQ_U(v, 1000000);
	CHECK_EQ_U(duration_of("1.5ms", &v), 0);
	CHECK_EQ_U(v, 1500000);
	CHECK_EQ_U(duration_of("2s", &v), 0);
	CHECK_EQ_U(v, 2000000000);
	CHECK_EQ_U(duration_of("0.25s", &v), 0);
	CHECK_EQ_U(v, 250000000);
	CHECK_EQ_U(duration_of("0ms", &v), 0);
	CHECK_EQ_U(v, 0);
	/* nanosecond resolution: exactly representable fractions are fine */
	CHECK_EQ_U(duration_of("1.000000001s", &v), 0);
	CHECK_EQ_U(v, 1000000001);
}

TEST(duration_rejects_missing_or_unknown_units_and_sub_ns_fractions)
{
	static const char *const bad[] = {
		"5", "1m", "ms", "-1ms", "1h", "1 ms", "1ms ", "1MS", "1.ms", "", "s",
		/* not a whole number of nanoseconds: */
		"1.0000000001s", "0.5ns", "1.5",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = duration_of(bad[i], &v);
		if (rc != -EINVAL || v != SENTINEL)
			TEST_FAIL_("units_parse_duration(\"%s\") = %d, out %llu; expected -EINVAL, untouched",
				   bad[i], rc, (unsigned long long)v);
	}
	CHECK_EQ_U(units_parse_duration(NULL, &v), (uint64_t)-EINVAL);
}

TEST(duration_overflow_is_erange)
{
	uint64_t v;

	/* 2^64 ns is about 584 years */
	CHECK_EQ_U(duration_of("20000000000s", &v), (uint64_t)-ERANGE);
	CHECK_EQ_U(v, SENTINEL);
	CHECK_EQ_U(duration_of("99999999999999999999ns", &v), (uint64_t)-ERANGE);
	CHECK_EQ_U(v, SENTINEL);
	CHECK_EQ_U(duration_of("18446744073s", &v), 0);
	CHECK_EQ_U(v, 18446744073000000000ull);
}

TEST(duration_range_fixed_and_uniform)
{
	uint64_t lo = SENTINEL, hi = SENTINEL;

	CHECK_EQ_U(units_parse_duration_range("200us-5ms", &lo, &hi), 0);
	CHECK_EQ_U(lo, 200000);
	CHECK_EQ_U(hi, 5000000);

	lo = hi = SENTINEL;
	CHECK_EQ_U(units_parse_duration_range("1ms", &lo, &hi), 0);
	CHECK_EQ_U(lo, 1000000);
	CHECK_EQ_U(hi, 1000000);

	lo = hi = SENTINEL;
	CHECK_EQ_U(units_parse_duration_range("1ms-1ms", &lo, &hi), 0);
	CHECK_EQ_U(lo, 1000000);
	CHECK_EQ_U(hi, 1000000);

	lo = hi = SENTINEL;
	CHECK_EQ_U(units_parse_duration_range("0-1.5ms", &lo, &hi), 0);
	CHECK_EQ_U(lo, 0);
	CHECK_EQ_U(hi, 1500000);
}

TEST(duration_range_rejects_inverted_and_malformed)
{
	static const char *const bad[] = {
		"5ms-200us", "-5ms", "1ms-", "-", "1ms-2ms-3ms", "5-10ms", "1ms--2ms", "", "x-y",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t lo = SENTINEL, hi = SENTINEL;
		int rc = units_parse_duration_range(bad[i], &lo, &hi);
		if (rc == 0 || lo != SENTINEL || hi != SENTINEL)
			TEST_FAIL_("units_parse_duration_range(\"%s\") = %d (%llu, %llu); "
				   "expected an error, outputs untouched",
				   bad[i], rc, (unsigned long long)lo, (unsigned long long)hi);
	}
}

TEST(u64_decimal_and_hex)
{
	uint64_t v;

	CHECK_EQ_U(u64_of("0", &v), 0);
	CHECK_EQ_U(v, 0);
	CHECK_EQ_U(u64_of("42", &v), 0);
	CHECK_EQ_U(v, 42);
	CHECK_EQ_U(u64_of("0x10", &v), 0);
	CHECK_EQ_U(v, 16);
	CHECK_EQ_U(u64_of("0XfF", &v), 0);
	CHECK_EQ_U(v, 255);
	CHECK_EQ_U(u64_of("0xdeadBEEF", &v), 0);
	CHECK_EQ_U(v, 0xdeadbeef);
	CHECK_EQ_U(u64_of("18446744073709551615", &v), 0);
	CHECK_EQ_U(v, UINT64_MAX);
	CHECK_EQ_U(u64_of("0xffffffffffffffff", &v), 0);
	CHECK_EQ_U(v, UINT64_MAX);
	/* leading zeros are plain decimal, not octal */
	CHECK_EQ_U(u64_of("010", &v), 0);
	CHECK_EQ_U(v, 10);
}

TEST(u64_rejects_garbage_and_overflow)
{
	static const char *const bad[] = { "", "0x", "12a", "a", "-1", "+1", " 1", "1 ", "0xg", "1.0", "1K" };
	uint64_t v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = u64_of(bad[i], &v);
		if (rc != -EINVAL || v != SENTINEL)
			TEST_FAIL_("units_parse_u64(\"%s\") = %d, out %llu; expected -EINVAL, untouched",
				   bad[i], rc, (unsigned long long)v);
	}
	CHECK_EQ_U(u64_of("18446744073709551616", &v), (uint64_t)-ERANGE);
	CHECK_EQ_U(v, SENTINEL);
	CHECK_EQ_U(u64_of("0x10000000000000000", &v), (uint64_t)-ERANGE);
	CHECK_EQ_U(v, SENTINEL);
	CHECK_EQ_U(units_parse_u64(NULL, &v), (uint64_t)-EINVAL);
}

TEST(format_size_picks_the_largest_exact_suffix)
{
	static const struct {
		uint64_t n;
		const char *want;
	} cases[] = {
		{ 0, "0" },
		{ 123, "123" },
		{ 1536, "1536" },
		{ 4096, "4K" },
		{ 64ull << 20, "64M" },
		{ 3ull << 30, "3G" },
		{ 1ull << 40, "1T" },
		{ 1ull << 50, "1024T" },
		{ (1ull << 20) + 1024, "1025K" },
		{ UINT64_MAX, "18446744073709551615" },
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(buf, 'x', sizeof(buf));
		units_format_size(cases[i].n, buf, sizeof(buf));
		if (strcmp(buf, cases[i].want))
			TEST_FAIL_("units_format_size(%llu) = \"%.32s\", expected \"%s\"",
				   (unsigned long long)cases[i].n, buf, cases[i].want);
	}
}

TEST(format_size_roundtrips_through_parse)
{
	static const uint64_t ns[] = { 1, 4095, 4096, 1536, 64ull << 20, 5ull << 30, 7ull << 40 };
	char buf[32];
	uint64_t v;

	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		units_format_size(ns[i], buf, sizeof(buf));
		CHECK_EQ_U(size_of(buf, &v), 0);
		CHECK_EQ_U(v, ns[i]);
	}
}

TEST(format_size_truncates_to_small_buffer)
{
	char buf[4] = "xyz";

	units_format_size(123456, buf, sizeof(buf));
	CHECK(!strcmp(buf, "123"));
}

/*
 * Many fraction digits: the value must still be exact, or rejected.  The
 * parse runs in a child so that a crash fails this test instead of the
 * whole binary.
 */
static int parse_in_child(int (*parse)(const char *, uint64_t *), const char *s, int *rc,
			  uint64_t *v)
{
	int fds[2], status;
	struct {
		int rc;
		uint64_t v;
	} r = { 0, SENTINEL };

	if (pipe(fds) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(fds[0]);
		r.rc = parse(s, &r.v);
		if (write(fds[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(3);
		_exit(0);
	}
	close(fds[1]);
	ssize_t n = read(fds[0], &r, sizeof(r));
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) ||
	    n != (ssize_t)sizeof(r))
		return -1;
	*rc = r.rc;
	*v = r.v;
	return 0;
}

TEST(many_zero_fraction_digits_do_not_crash)
{
	char s[128];
	uint64_t v;
	int rc;

	/* "0.000...0s" with 64 zeros is exactly 0 ns */
	tiny_fraction(s, sizeof(s), 64, "s");
	if (parse_in_child(units_parse_duration, s, &rc, &v)) {
		TEST_FAIL_("units_parse_duration(\"%s\") crashed", s);
		return;
	}
	CHECK(rc == 0 || rc == -EINVAL || rc == -ERANGE);
	if (rc == 0)
		CHECK_EQ_U(v, 0);

	tiny_fraction(s, sizeof(s), 64, "K");
	if (parse_in_child(units_parse_size, s, &rc, &v)) {
		TEST_FAIL_("units_parse_size(\"%s\") crashed", s);
		return;
	}
	CHECK(rc == 0 || rc == -EINVAL || rc == -ERANGE);
	if (rc == 0)
		CHECK_EQ_U(v, 0);
}

TEST(tiny_fractions_are_not_whole_bytes)
{
	char s[128];
	uint64_t v;
	int rc;

	/* 9223372036854775808 * 10^-63 bytes: far below one byte */
	tiny_fraction(s, sizeof(s), 44, "9223372036854775808");
	REQUIRE(parse_in_child(units_parse_size, s, &rc, &v) == 0);
	if (rc != -EINVAL && rc != -ERANGE)
		TEST_FAIL_("units_parse_size(\"%s\") = %d, out %llu; expected an error", s, rc,
			   (unsigned long long)v);

	/* 8388608 * 10^-63 TiB: far below one byte */
	tiny_fraction(s, sizeof(s), 56, "8388608T");
	REQUIRE(parse_in_child(units_parse_size, s, &rc, &v) == 0);
	if (rc != -EINVAL && rc != -ERANGE)
		TEST_FAIL_("units_parse_size(\"%s\") = %d, out %llu; expected an error", s, rc,
			   (unsigned long long)v);
}

TEST_MAIN(T(size_plain_bytes_and_binary_suffixes),
	  T(size_suffixes_are_case_insensitive_with_optional_b_or_ib),
	  T(size_fractions_must_give_whole_bytes), T(size_rejects_malformed_and_leaves_output_alone),
	  T(size_overflow_is_erange), T(size_and_duration_accept_values_up_to_uint64_max),
	  T(duration_units),
	  T(duration_rejects_missing_or_unknown_units_and_sub_ns_fractions),
	  T(duration_overflow_is_erange), T(duration_range_fixed_and_uniform),
	  T(duration_range_rejects_inverted_and_malformed), T(u64_decimal_and_hex),
	  T(u64_rejects_garbage_and_overflow), T(format_size_picks_the_largest_exact_suffix),
	  T(format_size_roundtrips_through_parse), T(format_size_truncates_to_small_buffer),
	  T(many_zero_fraction_digits_do_not_crash), T(tiny_fractions_are_not_whole_bytes))
