/* bench_pager's bulk section (bench_bulk.c): how fast the pager brings a
 * whole region in ahead of any fault, and what one install costs. */
#ifndef APFVM_BENCH_BULK_H
#define APFVM_BENCH_BULK_H

#include <stdint.h>
#include <stdio.h>

void bench_bulk(const char *spec, uint64_t size, unsigned reps, FILE *csv);

#endif
