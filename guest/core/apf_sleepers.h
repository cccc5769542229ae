/*
 * apf_sleepers: the guest's table of tasks waiting for a page, keyed by the
 * async-PF token (the "sleeper hash" of the Linux guest).  Plain C with no
 * hardware access: compiled into the guest and into the host unit tests.
 *
 * Contract (one CPU, called with interrupts off):
 *  - not-present(token): apfs_wait() records the waiter under the token,
 *    unless a page-ready for that token already came (a dummy entry), in
 *    which case the dummy is consumed and the caller must not wait.
 *  - page-ready(token): apfs_wake() removes and returns the waiter; if
 *    nobody waits on the token yet it leaves a dummy entry instead.
 *  - wake-all: apfs_wake_all() hands every waiter to a callback and drops
 *    every dummy (tokens from before mean nothing any more).
 * Node storage is a fixed pool: APFS_NODES covers the host's limit of 64
 * outstanding faults per vCPU (waiters + dummies) with room to spare.
 */
#ifndef GUEST_APF_SLEEPERS_H
#define GUEST_APF_SLEEPERS_H

#include <stdint.h>

#define APFS_BUCKETS 64
#define APFS_NODES   160

struct apfs_node {
	uint32_t token;
	int dummy;           /* ready arrived first; no waiter */
	void *waiter;
	struct apfs_node *next;
};

struct apf_sleepers {
	struct apfs_node *buckets[APFS_BUCKETS];
	struct apfs_node pool[APFS_NODES];
	struct apfs_node *free;
	unsigned waiters;    /* waiters currently recorded */
	unsigned dummies;    /* dummy entries currently recorded */
};

enum apfs_wait_result {
	APFS_WAIT = 0,          /* recorded: the caller waits for the wake */
	APFS_ALREADY_READY = 1, /* a dummy was consumed: do not wait */
	APFS_FULL = -1,         /* no free node (cannot happen within the ABI) */
};

void apfs_init(struct apf_sleepers *s);
enum apfs_wait_result apfs_wait(struct apf_sleepers *s, uint32_t token, void *waiter);

/* Returns the waiter woken, or 0 if a dummy was left (or the pool is full). */
void *apfs_wake(struct apf_sleepers *s, uint32_t token);

/* Calls fn(waiter, ctx) for every waiter, removes every entry; returns the
 * number of waiters woken. */
unsigned apfs_wake_all(struct apf_sleepers *s, void (*fn)(void *waiter, void *ctx), void *ctx);

#endif
