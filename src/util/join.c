#include "util/join.h"

#include <time.h>

int join_within(pthread_t t, uint64_t timeout_ns)
{
	struct timespec ts;

	/* pthread_timedjoin_np takes an absolute CLOCK_REALTIME deadline. */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(timeout_ns / 1000000000ull);
	ts.tv_nsec += (long)(timeout_ns % 1000000000ull);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_timedjoin_np(t, NULL, &ts);
}
