/*
 * run_stats: the one collector of struct apfvm_stats, at the end of a run,
 * from where the events were counted: the pagers, the async-fault core,
 * the guest's reports, the trace page and KVM's own counters (stats.c is
 * the one formatter).
 */
#ifndef APFVM_RUN_STATS_H
#define APFVM_RUN_STATS_H

#include "apfvm/vmm.h"
#include "machine.h"

/* Fills st after every thread of the run has stopped (machine_halt);
 * wall_s counts from the vCPU's start to now. */
void run_collect_stats(struct machine *m, struct apfvm_stats *st);

#endif
