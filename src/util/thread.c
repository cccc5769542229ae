#include "util/thread.h"

#include <sched.h>

int thread_start_pinned(pthread_t *t, int cpu, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	int rc = pthread_attr_init(&attr);

	if (rc)
		return rc;
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		rc = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	}
	if (!rc)
		rc = pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return rc;
}

struct timespec deadline_after(clockid_t clock, uint64_t ns)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	ts.tv_sec += (time_t)(ns / 1000000000ull);
	ts.tv_nsec += (long)(ns % 1000000000ull);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

int join_within(pthread_t t, uint64_t timeout_ns)
{
	/* pthread_timedjoin_np takes an absolute CLOCK_REALTIME deadline.
	 * (Not pthread_clockjoin_np on the monotonic clock: ThreadSanitizer
	 * of GCC 12 does not see that join, and reports every thread joined
	 * so as leaked, its accesses as races.) */
	struct timespec ts = deadline_after(CLOCK_REALTIME, timeout_ns);
	return pthread_timedjoin_np(t, NULL, &ts);
}

uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
