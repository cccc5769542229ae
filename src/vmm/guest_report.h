/*
 * guest_report: the run state every thread of a machine shares: what the
 * guest reported (results, counters, its end), the first failure, and the
 * stop.  Every change goes through these functions, under report_lock.
 */
#ifndef APFVM_GUEST_REPORT_H
#define APFVM_GUEST_REPORT_H

#include "machine.h"

/* Records the first failure (later ones are dropped) and stops the run. */
void machine_fail(struct machine *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same, with the registers vCPU v holds appended ("vCPU N: what: ..."). */
void machine_fail_vcpu(struct machine *m, struct vcpu *v, const char *what);

/* Asks every vCPU to leave KVM_RUN and ends the run. */
void machine_stop(struct machine *m);

/* Whether the run has failed (so far). */
bool machine_failed(struct machine *m);

/* A task's result.  -EEXIST: that task reported already; -ENOSPC: full;
 * -EINVAL: a scan that read another number of pages than its share of the
 * working set holds (the run fails). */
int report_result(struct machine *m, const struct apf_task_result *r);

/* A counters block (struct apf_guest_stats or apf_linux_stats), copied
 * into the report at dst, which is then marked reported. */
void report_counters(struct machine *m, void *dst, const void *src, size_t len, bool *reported);

/* The guest's end, with its status (0: every task completed); stops the run. */
void report_done(struct machine *m, uint64_t status);

/* --snapshot-after-pages: the pager installed that many (pager thread). */
void report_pages_point(void *machine);

#endif
