/*
 * The guest's hardware-free pieces, compiled on the host: the random scan
 * permutation (guest/workloads/perm.h) and the run queue (guest/core/runqueue.h).
 */
#include <stdint.h>
#include <stdlib.h>

#include "perm.h"
#include "runqueue.h"
#include "test.h"

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
	  T(perm_is_deterministic), T(perm_huge_n_stays_in_range), T(runqueue_fifo_order),
	  T(runqueue_single_task_roundtrip), T(runqueue_interleaved_push_pop),
	  T(runqueue_round_robin_many_rounds))
