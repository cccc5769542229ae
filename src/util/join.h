/*
 * join: joining a thread with a bound, for teardown that must not hang.
 */
#ifndef APFVM_JOIN_H
#define APFVM_JOIN_H

#include <pthread.h>
#include <stdint.h>

/* pthread_join(t) waiting at most timeout_ns.  0 once joined, or the
 * error of pthread_timedjoin_np (ETIMEDOUT: still running, not joined). */
int join_within(pthread_t t, uint64_t timeout_ns);

#endif
