/*
 * log_histo: a histogram of durations in microseconds with power-of-two
 * buckets, as QEMU's post-copy latency distribution reports them: bucket
 * i counts values in [2^i, 2^(i+1)) us, bucket 0 also those below 1 us,
 * the last bucket everything from 2^(LOG_HISTO_BUCKETS-1) us (about 36
 * minutes) up.  Fixed size, no allocation: it travels inside stats.
 */
#ifndef APFVM_LOG_HISTO_H
#define APFVM_LOG_HISTO_H

#include <stdint.h>

#define LOG_HISTO_BUCKETS 32

struct log_histo {
	uint64_t count[LOG_HISTO_BUCKETS];
};

static inline unsigned log_histo_bucket(uint64_t us)
{
	unsigned b = us ? 63u - (unsigned)__builtin_clzll(us) : 0;
	return b < LOG_HISTO_BUCKETS ? b : LOG_HISTO_BUCKETS - 1;
}

static inline void log_histo_add(struct log_histo *h, uint64_t us)
{
	h->count[log_histo_bucket(us)]++;
}

/* Buckets [0, n) hold every value counted (0 when empty). */
static inline unsigned log_histo_used(const struct log_histo *h)
{
	unsigned n = LOG_HISTO_BUCKETS;
	while (n && !h->count[n - 1])
		n--;
	return n;
}

#endif
