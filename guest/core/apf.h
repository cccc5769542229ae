/*
 * apf: the guest side of asynchronous page faults.  The protocol with the
 * host is the architecture's (guest/arch/<arch>/apf_<arch>.c: how the
 * feature is found and enabled, how a not-present and a page-ready
 * arrive and are acknowledged); what a guest does with them is here:
 *
 * Not present (token): the faulting task is parked under the token and
 * another task runs; if there is none, or the fault came from the kernel,
 * the task waits in place (halted, interrupts enabled) instead.
 * Page ready (token): the task parked under it is woken; the
 * architecture acknowledges, then switches straight to it, so it gets the
 * CPU at once.  A ready that comes before its not-present leaves a dummy
 * (apf_sleepers.h); the wake-all token wakes every parked task.
 */
#ifndef GUEST_APF_H
#define GUEST_APF_H

#include <stdint.h>

#include "apfvm/abi.h"
#include "runqueue.h"

/* The architecture's: detects the feature and enables it, unless the
 * command line says "no-apf".  After the timer and scheduler are set up. */
void apf_init(void);

/* The architecture's: disables the feature, then apf_finish(). */
void apf_shutdown(void);

/* --- shared by the architectures' protocol code ------------------------ */

/* Counters reported at the end, and the --trace page (or 0). */
extern struct apf_guest_stats apf_stats;
extern struct apf_trace *apf_trace;

/* Before the architecture enables the feature. */
void apf_start(void);

/* A not-present for `token` in the current task; from_task: it came from
 * a task (ring 3, EL0), which may be parked.  Returns once the page is
 * ready (the faulting access is then retried).  trace_t0: the handler's
 * entry stamp when tracing. */
void apf_wait_for_page(uint32_t token, int from_task, uint64_t trace_t0);

/* A page-ready for `token` (or the wake-all token): wakes its waiter and
 * returns the task that should run now, or 0.  The architecture
 * acknowledges, then calls apf_run_woken(). */
struct task *apf_page_ready(uint32_t token);
void apf_run_woken(struct task *t);

/* Wakes every parked task and reports the counters to the host. */
void apf_finish(void);

#endif
