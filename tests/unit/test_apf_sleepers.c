/*
 * The guest's async-PF sleeper table (guest/core/apf_sleepers.c),
 * compiled for the host: every interleaving of not-present, page-ready and
 * wake-all the protocol allows.
 */
#include <stdlib.h>

#include "apf_sleepers.h"
#include "test.h"

static struct apf_sleepers s;
static int waiters[APFS_NODES + 1]; /* distinct addresses to use as waiters */

TEST(not_present_then_ready_wakes_the_waiter)
{
	apfs_init(&s);
	CHECK(apfs_wait(&s, 0x1001, &waiters[0]) == APFS_WAIT);
	CHECK_EQ_U(s.waiters, 1);
	CHECK(apfs_wake(&s, 0x1001) == &waiters[0]);
	CHECK_EQ_U(s.waiters, 0);
	CHECK_EQ_U(s.dummies, 0);
}

TEST(ready_before_not_present_leaves_a_dummy_that_is_consumed)
{
	apfs_init(&s);
	CHECK(apfs_wake(&s, 0x2001) == NULL);
	CHECK_EQ_U(s.dummies, 1);
	CHECK(apfs_wait(&s, 0x2001, &waiters[0]) == APFS_ALREADY_READY);
	CHECK_EQ_U(s.dummies, 0);
	CHECK_EQ_U(s.waiters, 0);
	/* The token is free again: a later fault with it waits normally. */
	CHECK(apfs_wait(&s, 0x2001, &waiters[1]) == APFS_WAIT);
	CHECK(apfs_wake(&s, 0x2001) == &waiters[1]);
}

TEST(two_tokens_in_one_bucket_wake_their_own_waiters)
{
	/* Below 4096 the bucket is token % APFS_BUCKETS. */
	uint32_t a = 5, b = 5 + APFS_BUCKETS, c = 5 + 2 * APFS_BUCKETS;

	apfs_init(&s);
	CHECK(apfs_wait(&s, a, &waiters[0]) == APFS_WAIT);
	CHECK(apfs_wait(&s, b, &waiters[1]) == APFS_WAIT);
	CHECK(apfs_wait(&s, c, &waiters[2]) == APFS_WAIT);
	CHECK(apfs_wake(&s, b) == &waiters[1]); /* middle of the chain */
	CHECK(apfs_wake(&s, c) == &waiters[2]);
	CHECK(apfs_wake(&s, a) == &waiters[0]);
	CHECK_EQ_U(s.waiters, 0);
}

static int woken_count[8];
static void count_wake(void *waiter, void *ctx)
{
	(void)ctx;
	woken_count[(int *)waiter - waiters]++;
}

TEST(wake_all_wakes_every_parked_task_once_and_drops_dummies)
{
	apfs_init(&s);
	memset(woken_count, 0, sizeof(woken_count));
	for (int i = 0; i < 5; i++)
		CHECK(apfs_wait(&s, (uint32_t)(0x1000 * (i + 1)), &waiters[i]) == APFS_WAIT);
	CHECK(apfs_wake(&s, 0x9999) == NULL); /* two dummies */
	CHECK(apfs_wake(&s, 0x8888) == NULL);
	CHECK_EQ_U(apfs_wake_all(&s, count_wake, NULL), 5);
	for (int i = 0; i < 5; i++)
		CHECK_EQ_U(woken_count[i], 1);
	CHECK_EQ_U(s.waiters, 0);
	CHECK_EQ_U(s.dummies, 0);
	/* Tokens from before the wake-all mean nothing now. */
	CHECK(apfs_wait(&s, 0x9999, &waiters[6]) == APFS_WAIT);
	CHECK(apfs_wake(&s, 0x1000) == NULL); /* nobody waits on it any more */
}

TEST(wake_for_a_token_nobody_waits_on_keeps_one_dummy)
{
	apfs_init(&s);
	CHECK(apfs_wake(&s, 0x4242) == NULL);
	CHECK(apfs_wake(&s, 0x4242) == NULL);
	CHECK_EQ_U(s.dummies, 1);
	CHECK_EQ_U(s.waiters, 0);
}

TEST(full_pool_is_reported_not_overrun)
{
	apfs_init(&s);
	for (uint32_t i = 0; i < APFS_NODES; i++)
		REQUIRE(apfs_wait(&s, i + 1, &waiters[i]) == APFS_WAIT);
	CHECK(apfs_wait(&s, 0xabcdef, &waiters[APFS_NODES]) == APFS_FULL);
	CHECK(apfs_wake(&s, 0xabcdef) == NULL); /* no room for a dummy either */
	CHECK_EQ_U(s.waiters, APFS_NODES);
	for (uint32_t i = 0; i < APFS_NODES; i++)
		CHECK(apfs_wake(&s, i + 1) == &waiters[i]);
}

/* Random interleavings of up to 64 outstanding tokens (the host's cap),
 * each token's ready arriving before or after its not-present: every
 * waiter is woken exactly once and nothing is left over. */
TEST(random_interleavings_wake_each_waiter_exactly_once)
{
	enum { N = 64 };
	unsigned seed = 12345;

	for (int round = 0; round < 200; round++) {
		int np_done[N] = { 0 }, ready_done[N] = { 0 }, woken[N] = { 0 }, waited[N] = { 0 };
		int steps = 0;
		apfs_init(&s);
		while (steps < 2 * N) {
			int t = (int)(rand_r(&seed) % N);
			uint32_t token = (uint32_t)((t + round * N + 1) << 12);
			if (!np_done[t] && (ready_done[t] || rand_r(&seed) % 2)) {
				np_done[t] = 1;
				enum apfs_wait_result r = apfs_wait(&s, token, &waiters[t]);
				CHECK(r == (ready_done[t] ? APFS_ALREADY_READY : APFS_WAIT));
				waited[t] = r == APFS_WAIT;
				steps++;
			} else if (!ready_done[t]) {
				ready_done[t] = 1;
				void *w = apfs_wake(&s, token);
				if (np_done[t]) {
					CHECK(w == &waiters[t]);
					woken[t]++;
				} else {
					CHECK(w == NULL);
				}
				steps++;
			}
		}
		for (int t = 0; t < N; t++)
			CHECK_EQ_U(woken[t], waited[t]);
		CHECK_EQ_U(s.waiters, 0);
		CHECK_EQ_U(s.dummies, 0);
	}
}

TEST_MAIN(T(not_present_then_ready_wakes_the_waiter),
	  T(ready_before_not_present_leaves_a_dummy_that_is_consumed),
	  T(two_tokens_in_one_bucket_wake_their_own_waiters),
	  T(wake_all_wakes_every_parked_task_once_and_drops_dummies),
	  T(wake_for_a_token_nobody_waits_on_keeps_one_dummy), T(full_pool_is_reported_not_overrun),
	  T(random_interleavings_wake_each_waiter_exactly_once))
