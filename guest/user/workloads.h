/* workloads: the ring-3 tasks `--workload` selects.  Each receives its
 * struct task_args in RDI, reports one struct apf_task_result and exits. */
#ifndef GUEST_WORKLOADS_H
#define GUEST_WORKLOADS_H

#include "uapi.h"

/* CPU-bound: counts work units until every non-compute task has exited
 * (or, alone, for the configured duration). */
void compute_main(const struct task_args *a) __attribute__((noreturn));

/* Touches every page of its share of the lazy region (sequential or
 * random order) and verifies every word against the expected pattern. */
void scan_main(const struct task_args *a) __attribute__((noreturn));

#endif
