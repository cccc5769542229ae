/*
 * bench: `apfvm bench`, the side-by-side comparison of the async page fault
 * modes.  For each fetch latency and each mode it runs the same workload
 * several times and reports medians with min/max: the compute task's rate
 * as a fraction of its rate alone, the scan's completion time, fault
 * counts, the guest's cost of one async round trip and the pager's service
 * rate.  A table on stdout, a CSV file for plots.
 */
#ifndef APFVM_BENCH_H
#define APFVM_BENCH_H

int bench_main(int argc, char **argv);

extern const char bench_usage[];

#endif
