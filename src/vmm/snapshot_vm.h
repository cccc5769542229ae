/*
 * snapshot_vm: a machine to a snapshot (snapshot_save.c) and back
 * (snapshot_load.c, the snapshot loader of loader.h); docs/snapshot.md.
 * Neither calls into the lifecycle (lifecycle.c): saving reads a halted
 * machine, loading fills in the loader's steps.
 *
 * Taking one: the vCPUs are stopped (out of KVM_RUN, their threads
 * joined) and the pager thread too; then the memory file is written
 * (resident memory as it is; each lazy page as the guest would see it:
 * from the host mapping if present, else from the page source), the
 * architecture's vCPU and VM state, the machine's own (guest layout,
 * results reported so far) and the per-page checksums.
 *
 * Restoring: a machine is built from the snapshot instead of booting a
 * guest: the VM with the options it had, its vCPU and VM state, the
 * results reported before, and two pagers serving all of its memory from
 * PATH.mem (resident memory, kernel pages included, and the lazy region),
 * each page checked against its checksum.
 */
#ifndef APFVM_SNAPSHOT_VM_H
#define APFVM_SNAPSHOT_VM_H

#include "apfvm/vmm.h"
#include "machine.h"

/* SNAP_SEC_MACHINE's payload. */
struct snap_machine {
	uint32_t guest_kind;        /* SNAP_GUEST_REFERENCE or SNAP_GUEST_LINUX */
	uint32_t apf_mode;          /* enum apfvm_apf_mode when it was taken */
	uint64_t mem_size, lazy_size;
	uint64_t tsc_khz;
	uint32_t expected_results;  /* task results the whole run reports */
	uint32_t nresults;          /* of which SNAP_SEC_REPORT holds these */
	struct guest_layout layout;
	uint32_t pattern;           /* the lazy region's content, for the stats */
	uint32_t has_progress;      /* 1: compute_work is known (the reference guest) */
	uint64_t seed;
	uint64_t taken_after_ns;    /* the run's time when it was taken */
	uint64_t compute_work;      /* work units the compute tasks had done by then */
	char source_desc[128];
};

#define SNAP_GUEST_REFERENCE 1
#define SNAP_GUEST_LINUX     2


/* Writes m's snapshot to path and path.mem; m must be halted
 * (machine_halt).  run_ns: the run's time when it was taken. */
int snapshot_save(struct machine *m, const char *path, uint64_t run_ns, struct apf_err *e);

#endif
