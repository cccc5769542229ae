/*
 * lifecycle: a machine (machine.h) from its creation to its end.  A run is
 * a short script of these steps (run.c):
 *
 *   machine_create      the empty machine and its run state
 *   machine_assemble    memory, sources, KVM VM, vCPUs and the async-fault
 *                       core, from a loader (loader.h: the reference guest,
 *                       Linux or a snapshot), the same steps for all three
 *   machine_start       pagers first, then the loader's last step before
 *                       running (boot info, restored CPU state), then vCPUs
 *   machine_wait        until the guest ends, a deadline or a point
 *   machine_halt        join every thread of a stopped run (within bounds)
 *   machine_verdict     whether it succeeded (statistics: run_stats.h)
 *   machine_destroy     one path for every state: what exists is freed
 *
 * Writing a snapshot of a halted machine (snapshot_save.c) reads it; no
 * module calls back into the lifecycle.
 */
#ifndef APFVM_LIFECYCLE_H
#define APFVM_LIFECYCLE_H

#include "machine.h"

struct machine_loader;

/* An empty machine for configuration c (checked by the caller). */
int machine_create(const struct apfvm_config *c, struct machine **out, struct apf_err *e);

/* Memory, page sources, the KVM VM with its vCPU, the async-fault core,
 * as the loader says. */
int machine_assemble(struct machine *m, const struct machine_loader *l, struct apf_err *e);

/* Pagers (made, filled with --populate, started), the loader's
 * before_run, then the vCPU threads. */
int machine_start(struct machine *m, struct apf_err *e);

/* Waits until the run stops, timeout_ns passes (0: no bound) or, with
 * `pages`, the pager's --snapshot-after-pages point.  True if stopped or
 * at the point. */
bool machine_wait(struct machine *m, uint64_t timeout_ns, bool pages);

/* Ends every thread of a stopped run, each wait bounded; `why` names the
 * stop in any failure ("timed out after ...", "--snapshot"), `timed_out`
 * adds where the guest was. */
void machine_halt(struct machine *m, const char *why, bool timed_out);

/* After machine_halt: whether the run succeeded, with the reason if not
 * (its statistics: run_stats.h). */
int machine_verdict(struct machine *m, struct apf_err *e);

/* Frees what exists (never what a thread left behind may touch). */
void machine_destroy(struct machine *m);

#endif
