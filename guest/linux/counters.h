/*
 * counters: what Linux itself shows of async PF, for the Linux guest's
 * /init: the HYP row of /proc/interrupts (page-ready interrupts) and two
 * kprobes counting kvm_async_pf_task_wait_schedule (a task sleeps on a
 * not-present fault) and kvm_async_pf_task_wake (a page-ready wakes it).
 * Linux has no other counter of them.
 */
#ifndef GUEST_LINUX_COUNTERS_H
#define GUEST_LINUX_COUNTERS_H

#include "apfvm/abi.h"

/* Arms the kprobes (tracefs; tracing itself stays off, only the hit
 * counts are kept).  Sets s->probed; prints why not when it cannot. */
void counters_start(struct apf_linux_stats *s);

/* Fills hyp_interrupts and, if probed, task_waits and task_wakes. */
void counters_read(struct apf_linux_stats *s);

#endif
