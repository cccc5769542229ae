/* The delay wrapper: any source made slow on purpose (--latency), to
 * measure how the guest bears remote memory. */
#ifndef APFVM_SOURCE_DELAY_H
#define APFVM_SOURCE_DELAY_H

#include <stdint.h>

#include "source/source.h"
#include "util/err.h"

/* Wraps `inner` so that every fetch completes no earlier than a delay drawn
 * uniformly from [min_ns, max_ns] after its submit (timers, no thread per
 * fetch).  max_ns is at most SOURCE_DELAY_MAX_NS (-EINVAL otherwise).
 * Takes ownership of inner on success. */
#define SOURCE_DELAY_MAX_NS (60ull * 1000000000ull)
int source_delay_wrap(struct page_source *inner, uint64_t min_ns, uint64_t max_ns,
		      uint64_t rng_seed, struct page_source **out, struct apf_err *e);

#endif
