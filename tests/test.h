/*
 * A minimal test harness.  Each test binary is a list of TEST() functions;
 * main() from TEST_MAIN() runs them in order and prints one line each:
 *   ok NAME | FAIL NAME: file:line: what | SKIP NAME: why
 * tests/run.sh counts those lines.  CHECK() records a failure and goes on;
 * REQUIRE() ends the test at once.
 */
#ifndef APFVM_TEST_H
#define APFVM_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_case {
	const char *name;
	void (*fn)(void);
};

static int test_failed_, test_skipped_;
static char test_why_[1024];

#define TEST_FAIL_(...)                                                               \
	do {                                                                          \
		if (!test_failed_)                                                    \
			snprintf(test_why_, sizeof(test_why_), __VA_ARGS__);          \
		test_failed_ = 1;                                                     \
	} while (0)

#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (!(cond))                                                          \
			TEST_FAIL_("%s:%d: %s", __FILE__, __LINE__, #cond);           \
	} while (0)

#define CHECK_EQ_U(a, b)                                                              \
	do {                                                                          \
		unsigned long long a_ = (unsigned long long)(a);                      \
		unsigned long long b_ = (unsigned long long)(b);                      \
		if (a_ != b_)                                                         \
			TEST_FAIL_("%s:%d: %s == %llu, expected %s == %llu", __FILE__, \
				   __LINE__, #a, a_, #b, b_);                         \
	} while (0)

#define REQUIRE(cond)                                                                 \
	do {                                                                          \
		if (!(cond)) {                                                        \
			TEST_FAIL_("%s:%d: %s", __FILE__, __LINE__, #cond);           \
			return;                                                       \
		}                                                                     \
	} while (0)

#define SKIP(...)                                                                     \
	do {                                                                          \
		snprintf(test_why_, sizeof(test_why_), __VA_ARGS__);                  \
		test_skipped_ = 1;                                                    \
		return;                                                               \
	} while (0)

#define TEST(name) static void name(void)

#define TEST_MAIN(...)                                                                \
	int main(void)                                                                \
	{                                                                             \
		static const struct test_case cases[] = { __VA_ARGS__ };              \
		int bad = 0;                                                          \
		const char *only = getenv("TEST_ONLY");                               \
		setvbuf(stdout, NULL, _IOLBF, 0);                                     \
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {      \
			if (only && !strstr(cases[i].name, only))                     \
				continue;                                             \
			test_failed_ = test_skipped_ = 0;                             \
			test_why_[0] = '\0';                                          \
			cases[i].fn();                                                \
			if (test_failed_) {                                           \
				printf("FAIL %s: %s\n", cases[i].name, test_why_);    \
				bad = 1;                                              \
			} else if (test_skipped_) {                                   \
				printf("SKIP %s: %s\n", cases[i].name, test_why_);    \
			} else {                                                      \
				printf("ok %s\n", cases[i].name);                     \
			}                                                             \
		}                                                                     \
		return bad;                                                           \
	}

#define T(fn) { #fn, fn }

#endif
