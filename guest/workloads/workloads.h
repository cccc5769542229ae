/*
 * workloads: the tasks `--workload` selects, written once for every guest
 * apfvm runs them in (ring-3 tasks of the reference guest kernel, processes
 * of an unmodified Linux guest).  Each receives its struct task_args,
 * measures with the cycle counter (task_cycles: the TSC on x86, CNTVCT_EL0
 * on arm64), reports one struct apf_task_result through
 * task_finish() and ends there.
 *
 * A guest provides task_finish() (guest/user/task_env.c for the reference
 * guest, guest/linux/task_env.c for Linux) and the args: lazy_base is the
 * address at which the task sees the lazy region.
 */
#ifndef GUEST_WORKLOADS_H
#define GUEST_WORKLOADS_H

#include <stdint.h>

#include "apfvm/abi.h"
#include "arch_user.h" /* task_cycles(): the architecture's cycle counter */

/* Read-only for tasks: state the guest publishes to all of them. */
struct user_shared {
	volatile uint64_t noncompute_live; /* non-compute tasks not yet finished */
	uint64_t noncompute_total;
	uint64_t tsc_khz;
};

/* What a task starts with. */
struct task_args {
	uint32_t kind, id, index, count;
	uint64_t lazy_base, lazy_size;  /* where the task sees the lazy region */
	uint32_t pattern, scan_order;
	uint64_t seed, order_seed;
	uint32_t scan_fraction_ppm, scan_drift_ppm; /* checked: apf_scan_params_ok() */
	uint64_t duration_tsc;
	const struct user_shared *shared;
	struct apf_trace *trace;        /* fault-path stamps, or 0 */
	struct apf_progress *progress;  /* compute: where to keep its work count, or 0 */
};

/* CPU-bound: counts work units until every non-compute task has finished
 * (or, alone, for the configured duration). */
void compute_main(const struct task_args *a) __attribute__((noreturn));

/* Touches the pages of its share of the lazy region that the working set
 * selects (apf_scan_select: all of them at fraction 1), in ascending or
 * random order, and verifies every word against the expected pattern;
 * reports how many pages it read. */
void scan_main(const struct task_args *a) __attribute__((noreturn));

/* Provided by the guest: hands the task's result to the host and ends the
 * task.  For a non-compute task it also counts the task out of
 * shared->noncompute_live (the reference kernel does that at exit). */
void task_finish(const struct task_args *a, const struct apf_task_result *r)
	__attribute__((noreturn));

#endif
