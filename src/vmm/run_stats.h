/*
 * run_stats: gathers struct apfvm_stats at the end of a run from where the
 * events were counted: the pager, the async-fault core, the guest's
 * reports, the trace page and KVM's own counters.
 */
#ifndef APFVM_RUN_STATS_H
#define APFVM_RUN_STATS_H

#include "apfvm/vmm.h"
#include "machine.h"

/* Fills st (already holding wall_s and the KVM counters) after every
 * thread of the run has stopped. */
void run_collect_stats(struct machine *m, const struct apfvm_config *c, struct apfvm_stats *st);

#endif
