/*
 * thread: starting threads pinned from their first instruction, and
 * bounded waits, for teardown that must not hang.
 */
#ifndef APFVM_THREAD_H
#define APFVM_THREAD_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* pthread_create(t, fn, arg), pinned to `cpu` from the start when cpu >= 0.
 * 0, or the error: EINVAL if cpu is not in this process's CPU set (the
 * thread is then not started rather than left unpinned). */
int thread_start_pinned(pthread_t *t, int cpu, void *(*fn)(void *), void *arg);

/* The absolute time `ns` from now on `clock`, for timed waits. */
struct timespec deadline_after(clockid_t clock, uint64_t ns);

/* pthread_join(t) waiting at most timeout_ns.  0 once joined, or the
 * error of pthread_timedjoin_np (ETIMEDOUT: still running, not joined). */
int join_within(pthread_t t, uint64_t timeout_ns);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t monotonic_ns(void);

#endif
