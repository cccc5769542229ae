/*
 * loader: where a machine's guest comes from.  machine_assemble() runs the
 * same steps for every loader, and each loader fills in its part, as
 * Firecracker's boot and restore builders share one create_vmm_and_vcpus:
 *
 *   open        the page sources of the regions served lazily, and the
 *               sizes of guest memory (nothing of the VM exists yet)
 *   load        guest memory's content, the guest kind (struct
 *               guest_kind), the VM's options and the vCPU's entry
 *   ... machine_assemble creates the VM, its vCPU and the core ...
 *   before_run  machine_start, once the pagers serve memory and before any
 *               vCPU runs: boot info, or a snapshot's CPU and VM state and
 *               the guest's async-PF registration
 *
 * A loader never starts or stops anything: the lifecycle (lifecycle.c) does.
 */
#ifndef APFVM_LOADER_H
#define APFVM_LOADER_H

#include "machine.h"

struct machine_loader {
	const char *name;
	int (*open)(struct machine *m, uint64_t *mem_size, uint64_t *lazy_size, struct apf_err *e);
	int (*load)(struct machine *m, struct vm_options *opt, struct arch_entry *entry,
		    struct apf_err *e);
	int (*before_run)(struct machine *m, struct apf_err *e);
};

/* The built-in reference guest (boot.c). */
extern const struct machine_loader reference_loader;
/* An unmodified Linux (x86-64: src/arch/x86/linux/guest_linux.c; other
 * architectures refuse it at open). */
extern const struct machine_loader linux_loader;
/* A snapshot (snapshot_load.c). */
extern const struct machine_loader snapshot_loader;

/* --- what the two boot loaders share (boot.c) --------------------------- */

/* A boot's lazy region and its source (config: --lazy, --source or the
 * embedder's page source, --latency); the sizes from the config. */
int boot_open(struct machine *m, uint64_t *mem_size, uint64_t *lazy_size, struct apf_err *e);

/* --trace: the trace page (the layout's, for a guest with boot info),
 * mapped at load, before any thread that stamps it starts. */
void boot_map_trace(struct machine *m);

/* Writes struct apf_boot_info at m->guest.boot_info_gpa (if any).  Needs
 * the vCPU's TSC rate. */
int boot_write_info(struct machine *m, struct apf_err *e);

#endif
