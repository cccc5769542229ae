/*
 * The guest's hardware-free pieces, compiled on the host: the random scan
 * permutation (guest/workloads/perm.h), the scan's working set
 * (apf_scan_select, include/apfvm/abi.h), the scan task itself
 * (guest/workloads/scan.c, over a buffer) and the run queue
 * (guest/core/runqueue.h).
 */
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>

#include "apfvm/abi.h"
#include "perm.h"
#include "runqueue.h"
#include "test.h"

/* The scan task as the guests run it (it calls task_finish, below). */
#include "scan.c"

/* ------------------------------------------------------------------ */
/* perm                                                                */

/* Checks that perm_at(0..n-1) hits every value of [0, n) exactly once;
 * returns the number of fixed points (perm_at(i) == i), or -1. */
static long check_permutation(uint64_t n, uint64_t seed)
{
	struct perm p;
	unsigned char *seen = calloc((size_t)(n + 7) / 8, 1);
	long fixed = 0;

	if (!seen)
		return -1;
	perm_init(&p, n, seed);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t x = perm_at(&p, i);
		if (x >= n || (seen[x / 8] & (1u << (x % 8)))) {
			TEST_FAIL_("n=%llu seed=%llu: perm_at(%llu) = %llu is %s", (unsigned long long)n,
				   (unsigned long long)seed, (unsigned long long)i,
				   (unsigned long long)x, x >= n ? "out of range" : "a repeat");
			free(seen);
			return -1;
		}
		seen[x / 8] |= (unsigned char)(1u << (x % 8));
		if (x == i)
			fixed++;
	}
	free(seen);
	return fixed;
}

TEST(perm_is_a_permutation)
{
	static const uint64_t sizes[] = { 1, 2, 3, 7, 64, 1000, 16384, 16385 };
	static const uint64_t seeds[] = { 0, 1, 42, 0xdeadbeefcafef00dull };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		for (size_t j = 0; j < sizeof(seeds) / sizeof(seeds[0]); j++)
			if (check_permutation(sizes[i], seeds[j]) < 0)
				return;
}

TEST(perm_shuffles)
{
	/* a uniformly random permutation has about one fixed point; the
	 * identity would have them all */
	static const uint64_t sizes[] = { 64, 1000, 16385 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		long fixed = check_permutation(sizes[i], 7);
		REQUIRE(fixed >= 0);
		if ((uint64_t)fixed > sizes[i] / 10)
			TEST_FAIL_("n=%llu: %ld fixed points; the order is barely shuffled",
				   (unsigned long long)sizes[i], fixed);
	}
}

TEST(perm_seeds_give_different_orders)
{
	struct perm a, b;
	unsigned same = 0;

	perm_init(&a, 1000, 1);
	perm_init(&b, 1000, 2);
	for (uint64_t i = 0; i < 1000; i++)
		if (perm_at(&a, i) == perm_at(&b, i))
			same++;
	CHECK(same < 100);
}

TEST(perm_is_deterministic)
{
	struct perm a, b;

	perm_init(&a, 16385, 99);
	perm_init(&b, 16385, 99);
	for (uint64_t i = 0; i < 16385; i += 7)
		CHECK_EQ_U(perm_at(&a, i), perm_at(&b, i));
	/* and stable across calls on the same state */
	CHECK_EQ_U(perm_at(&a, 123), perm_at(&a, 123));
}

TEST(perm_huge_n_stays_in_range)
{
	struct perm p;
	const uint64_t n = (1ull << 40) + 3;
	uint64_t prev = UINT64_MAX;
	unsigned repeats = 0;

	perm_init(&p, n, 5);
	for (uint64_t i = 0; i < 4096; i++) {
		uint64_t x = perm_at(&p, i * 268435399ull % n);
		CHECK(x < n);
		if (x == prev)
			repeats++;
		prev = x;
	}
	CHECK_EQ_U(repeats, 0);
}

/* ------------------------------------------------------------------ */
/* the scan's working set                                              */

enum { SET_PAGES = 1 << 20 };

/* |got - want| <= tol * want */
static int near(double got, double want, double tol)
{
	return got >= want * (1 - tol) && got <= want * (1 + tol);
}

/* The hash is part of the contract between host and guest (and between
 * a recording and its replay): these values must never change. */
TEST(scan_hash_is_fixed)
{
	CHECK_EQ_U(apf_scan_hash(1, 0), 447084);
	CHECK_EQ_U(apf_scan_hash(1, 1), 525367);
	CHECK_EQ_U(apf_scan_hash(1, 12345), 992566);
	CHECK_EQ_U(apf_scan_hash(42, 7), 511512);
	struct apf_scan_set s = apf_scan_set(1, 250000, 0);
	CHECK_EQ_U(apf_scan_count(&s, 0, 16384), 4026);
	s = apf_scan_set(1, 250000, 300000);
	CHECK_EQ_U(s.keep, 175000);
	CHECK_EQ_U(s.from, 925000);
	CHECK_EQ_U(apf_scan_count(&s, 0, 16384), 4006);
}

TEST(scan_set_is_a_pure_function_of_seed_and_page)
{
	struct apf_scan_set a = apf_scan_set(7, 300000, 200000), b = apf_scan_set(7, 300000, 200000);
	struct apf_scan_set other = apf_scan_set(8, 300000, 200000);
	uint64_t both = 0, in_a = 0;

	for (uint64_t p = 0; p < SET_PAGES; p += 3) {
		int x = apf_scan_select(&a, p);
		CHECK_EQ_U(x, apf_scan_select(&b, p));
		CHECK_EQ_U(x, apf_scan_select(&a, p)); /* no state */
		CHECK(apf_scan_hash(7, p) < APF_SCAN_PPM);
		in_a += (uint64_t)x;
		both += (uint64_t)(x && apf_scan_select(&other, p));
	}
	/* Another seed: an independent set (overlap about F, not 1). */
	CHECK(near((double)both / (double)in_a, 0.3, 0.05));
}

TEST(scan_fraction_selects_about_f_of_the_pages)
{
	static const uint32_t fractions[] = { 10000, 100000, 250000, 500000, 900000, 999999 };

	for (size_t i = 0; i < sizeof(fractions) / sizeof(fractions[0]); i++) {
		struct apf_scan_set s = apf_scan_set(3, fractions[i], 0);
		double got = (double)apf_scan_count(&s, 0, SET_PAGES) / SET_PAGES;
		if (!near(got, fractions[i] / 1e6, 0.03))
			TEST_FAIL_("fraction %u ppm selected %.4f of the pages", fractions[i], got);
	}
	struct apf_scan_set all = apf_scan_set(3, APF_SCAN_PPM, 0);
	CHECK_EQ_U(apf_scan_count(&all, 5, 1000), 1000);
	CHECK(apf_scan_select(&all, 123456789));
}

/* Overlap of the set at drift d with the drift-0 set, over its size;
 * *size: the drifted set's size over the undrifted one's. */
static double drift_overlap(uint32_t f, uint32_t d, double *size)
{
	struct apf_scan_set s0 = apf_scan_set(11, f, 0), sd = apf_scan_set(11, f, d);
	uint64_t n0 = 0, nd = 0, both = 0, kept = 0;

	for (uint64_t p = 0; p < SET_PAGES; p++) {
		int a = apf_scan_select(&s0, p), b = apf_scan_select(&sd, p);
		n0 += (uint64_t)a;
		nd += (uint64_t)b;
		both += (uint64_t)(a && b);
		kept += (uint64_t)(apf_scan_hash(11, p) < sd.keep);
	}
	/* Exactly: what the two share is what drift kept. */
	CHECK_EQ_U(both, kept);
	*size = (double)nd / (double)n0;
	return (double)both / (double)n0;
}

TEST(scan_drift_keeps_one_minus_d_and_the_size)
{
	static const uint32_t f[] = { 100000, 250000, 500000, 250000, 400000 };
	static const uint32_t d[] = { 300000, 300000, 1000000, 100000, 500000 };

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		double size, overlap = drift_overlap(f[i], d[i], &size);
		double want = 1 - d[i] / 1e6;
		if (overlap < want - 0.02 || overlap > want + 0.02 || !near(size, 1, 0.03))
			TEST_FAIL_("F %u D %u ppm: overlap %.4f (want %.2f), size ratio %.4f", f[i], d[i],
				   overlap, want, size);
	}
}

TEST(scan_drift_zero_is_the_undrifted_set)
{
	struct apf_scan_set s = apf_scan_set(5, 250000, 0);

	CHECK_EQ_U(s.keep, 250000);
	CHECK_EQ_U(s.from, APF_SCAN_PPM); /* nothing from above */
	for (uint64_t p = 0; p < 100000; p++)
		CHECK_EQ_U(apf_scan_select(&s, p), apf_scan_hash(5, p) < 250000);
}

TEST(scan_params_need_room_for_the_drift)
{
	CHECK(apf_scan_params_ok(1, 0));
	CHECK(apf_scan_params_ok(APF_SCAN_PPM, 0));
	CHECK(apf_scan_params_ok(500000, APF_SCAN_PPM));
	CHECK(apf_scan_params_ok(250000, 300000));
	CHECK(!apf_scan_params_ok(0, 0));
	CHECK(!apf_scan_params_ok(APF_SCAN_PPM + 1, 0));
	CHECK(!apf_scan_params_ok(1000, APF_SCAN_PPM + 1));
	CHECK(!apf_scan_params_ok(APF_SCAN_PPM, 1)); /* F = 1: nothing outside to drift to */
	CHECK(!apf_scan_params_ok(500001, APF_SCAN_PPM));
	CHECK(!apf_scan_params_ok(800000, 300000)); /* 0.8 x 1.3 > 1 */
	CHECK(!apf_scan_params_ok(UINT32_MAX, UINT32_MAX));
}

TEST(scan_shares_add_up_to_the_region)
{
	struct apf_scan_set s = apf_scan_set(9, 200000, 250000);
	const uint64_t npages = 16384 * 3 + 7;
	uint64_t total = 0, next = 0;

	for (uint32_t i = 0; i < 5; i++) {
		uint64_t first, n;
		apf_scan_share(npages, i, 5, &first, &n);
		CHECK_EQ_U(first, next);
		next = first + n;
		total += apf_scan_count(&s, first, n);
	}
	CHECK_EQ_U(next, npages);
	CHECK_EQ_U(total, apf_scan_count(&s, 0, npages));
}

/* ------------------------------------------------------------------ */
/* the scan task, over a buffer                                        */

static jmp_buf scan_done;
static struct apf_task_result scan_result;

void task_finish(const struct task_args *a, const struct apf_task_result *r)
{
	(void)a;
	scan_result = *r;
	longjmp(scan_done, 1);
}

enum { SCAN_PAGES = 512, SCAN_SEED = 77 };

/* Pages the working set selects hold the image's words; the others a
 * wrong word, so a scan that reads one of them reports a mismatch. */
static uint64_t *scan_region(const struct apf_scan_set *set)
{
	uint64_t *mem = aligned_alloc(APF_PAGE_SIZE, (size_t)SCAN_PAGES * APF_PAGE_SIZE);

	if (!mem)
		return NULL;
	for (uint64_t w = 0; w < SCAN_PAGES * (APF_PAGE_SIZE / 8); w++) {
		uint64_t page = w / (APF_PAGE_SIZE / 8);
		mem[w] = apf_image_word(SCAN_SEED, w) ^ (apf_scan_select(set, page) ? 0 : 1);
	}
	return mem;
}

static void run_scan(struct task_args *a)
{
	static const struct user_shared shared = { 0 };

	a->kind = APF_TASK_SCAN;
	a->lazy_size = (uint64_t)SCAN_PAGES * APF_PAGE_SIZE;
	a->pattern = APF_PATTERN_SEEDED;
	a->seed = SCAN_SEED;
	a->shared = &shared;
	memset(&scan_result, 0, sizeof(scan_result));
	if (!setjmp(scan_done))
		scan_main(a);
}

TEST(scan_task_reads_exactly_its_share_of_the_set)
{
	static const uint32_t order[] = { APF_SCAN_SEQUENTIAL, APF_SCAN_RANDOM };
	struct apf_scan_set set = apf_scan_set(5, 300000, 400000);
	uint64_t *mem = scan_region(&set);

	REQUIRE(mem != NULL);
	for (size_t o = 0; o < 2; o++)
		for (uint32_t i = 0; i < 3; i++) {
			struct task_args a = { .id = i + 1, .index = i, .count = 3,
					       .lazy_base = (uint64_t)(uintptr_t)mem,
					       .scan_order = order[o], .order_seed = 5,
					       .scan_fraction_ppm = 300000, .scan_drift_ppm = 400000 };
			uint64_t first, n;
			run_scan(&a);
			apf_scan_share(SCAN_PAGES, i, 3, &first, &n);
			CHECK_EQ_U(scan_result.kind, APF_TASK_SCAN);
			CHECK_EQ_U(scan_result.pages, apf_scan_count(&set, first, n));
			CHECK_EQ_U(scan_result.mismatches, 0); /* no page outside the set */
			CHECK(scan_result.pages > 0);
		}
	/* A wrong word in a selected page is found. */
	uint64_t page = 0;
	while (!apf_scan_select(&set, page))
		page++;
	mem[page * (APF_PAGE_SIZE / 8) + 3] ^= 2;
	struct task_args a = { .id = 1, .index = 0, .count = 1,
			       .lazy_base = (uint64_t)(uintptr_t)mem, .order_seed = 5,
			       .scan_fraction_ppm = 300000, .scan_drift_ppm = 400000 };
	run_scan(&a);
	CHECK_EQ_U(scan_result.mismatches, 1);
	CHECK_EQ_U(scan_result.first_bad, page * (APF_PAGE_SIZE / 8) + 3);
	free(mem);
}

TEST(scan_task_at_fraction_one_reads_every_page)
{
	struct apf_scan_set set = apf_scan_set(5, APF_SCAN_PPM, 0);
	uint64_t *mem = scan_region(&set);

	REQUIRE(mem != NULL);
	struct task_args a = { .id = 1, .index = 1, .count = 2,
			       .lazy_base = (uint64_t)(uintptr_t)mem, .scan_order = APF_SCAN_RANDOM,
			       .order_seed = 5, .scan_fraction_ppm = APF_SCAN_PPM };
	run_scan(&a);
	CHECK_EQ_U(scan_result.pages, SCAN_PAGES / 2);
	CHECK_EQ_U(scan_result.mismatches, 0);
	free(mem);
}

/* ------------------------------------------------------------------ */
/* runqueue                                                            */

static void make_tasks(struct task *t, unsigned n)
{
	memset(t, 0, n * sizeof(*t));
	for (unsigned i = 0; i < n; i++) {
		t[i].id = i + 1;
		t[i].state = TASK_BLOCKED;
		t[i].next = (struct task *)&t[n - 1 - i]; /* garbage link */
	}
}

TEST(runqueue_fifo_order)
{
	struct runqueue q = { 0 };
	struct task t[5];

	make_tasks(t, 5);
	CHECK(rq_pop(&q) == NULL);
	CHECK_EQ_U(q.len, 0);
	for (unsigned i = 0; i < 5; i++) {
		rq_push(&q, &t[i]);
		CHECK_EQ_U(q.len, i + 1);
		CHECK_EQ_U(t[i].state, TASK_RUNNABLE);
	}
	for (unsigned i = 0; i < 5; i++) {
		struct task *x = rq_pop(&q);
		REQUIRE(x != NULL);
		CHECK_EQ_U(x->id, i + 1);
		CHECK(x->next == NULL);
		CHECK_EQ_U(q.len, 4 - i);
	}
	CHECK(rq_pop(&q) == NULL);
	CHECK_EQ_U(q.len, 0);
	CHECK(q.head == NULL && q.tail == NULL);
}

TEST(runqueue_single_task_roundtrip)
{
	struct runqueue q = { 0 };
	struct task t[1];

	make_tasks(t, 1);
	t[0].state = TASK_DEAD;
	rq_push(&q, &t[0]);
	CHECK(q.head == &t[0] && q.tail == &t[0]);
	CHECK_EQ_U(t[0].state, TASK_RUNNABLE);
	CHECK(rq_pop(&q) == &t[0]);
	CHECK(rq_pop(&q) == NULL);
	/* the same task can be queued again after it left */
	t[0].state = TASK_RUNNING;
	rq_push(&q, &t[0]);
	CHECK_EQ_U(q.len, 1);
	CHECK(rq_pop(&q) == &t[0]);
	CHECK(q.head == NULL && q.tail == NULL);
}

TEST(runqueue_interleaved_push_pop)
{
	struct runqueue q = { 0 };
	struct task t[4];
	struct task *x;

	make_tasks(t, 4);
	rq_push(&q, &t[0]);
	rq_push(&q, &t[1]);
	x = rq_pop(&q);
	CHECK(x == &t[0]);
	rq_push(&q, &t[2]);
	rq_push(&q, &t[0]); /* a round-robin requeue goes to the back */
	CHECK_EQ_U(q.len, 3);
	x = rq_pop(&q);
	CHECK(x == &t[1]);
	x = rq_pop(&q);
	CHECK(x == &t[2]);
	rq_push(&q, &t[3]);
	x = rq_pop(&q);
	CHECK(x == &t[0]);
	x = rq_pop(&q);
	CHECK(x == &t[3]);
	CHECK(rq_pop(&q) == NULL);
	CHECK_EQ_U(q.len, 0);
	/* usable again after it ran empty */
	rq_push(&q, &t[2]);
	CHECK(q.head == &t[2] && q.tail == &t[2]);
	CHECK(rq_pop(&q) == &t[2]);
}

TEST(runqueue_round_robin_many_rounds)
{
	enum { N = 7, ROUNDS = 50 };
	struct runqueue q = { 0 };
	struct task t[N];

	make_tasks(t, N);
	for (unsigned i = 0; i < N; i++)
		rq_push(&q, &t[i]);
	for (unsigned r = 0; r < ROUNDS * N; r++) {
		struct task *x = rq_pop(&q);
		REQUIRE(x != NULL);
		CHECK_EQ_U(x->id, r % N + 1);
		x->state = TASK_RUNNING;
		rq_push(&q, x);
		CHECK_EQ_U(q.len, N);
	}
}

TEST_MAIN(T(perm_is_a_permutation), T(perm_shuffles), T(perm_seeds_give_different_orders),
	  T(perm_is_deterministic), T(perm_huge_n_stays_in_range), T(scan_hash_is_fixed),
	  T(scan_set_is_a_pure_function_of_seed_and_page),
	  T(scan_fraction_selects_about_f_of_the_pages), T(scan_drift_keeps_one_minus_d_and_the_size),
	  T(scan_drift_zero_is_the_undrifted_set), T(scan_params_need_room_for_the_drift),
	  T(scan_shares_add_up_to_the_region), T(scan_task_reads_exactly_its_share_of_the_set),
	  T(scan_task_at_fraction_one_reads_every_page), T(runqueue_fifo_order),
	  T(runqueue_single_task_roundtrip), T(runqueue_interleaved_push_pop),
	  T(runqueue_round_robin_many_rounds))
