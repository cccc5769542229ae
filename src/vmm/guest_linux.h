/*
 * guest_linux: the Linux guest kind in the VMM, the architecture's
 * (x86-64: src/arch/x86/linux/guest_linux.c; other architectures refuse
 * it with a clear error).  On x86 it loads an unmodified bzImage
 * (linux_guest.h) and serves its port I/O with the PC devices
 * (pc_devices.h); the guest's reset ends the run.
 * Without --initrd the guest runs apfvm's initramfs, whose /init runs the
 * workloads and reports through the hypercall port like the reference
 * guest (the apfvm pages of include/apfvm/abi.h, docs/linux-guest.md).
 */
#ifndef APFVM_GUEST_LINUX_H
#define APFVM_GUEST_LINUX_H

#include "apfvm/vmm.h"
#include "machine.h"

/* What every Linux command line starts with: the console on COM1, reset
 * through the keyboard controller (the run's end), a panic resets. */
#define GUEST_LINUX_BASE_CMDLINE "console=ttyS0 reboot=k panic=-1 i8042.noaux i8042.nomux i8042.dumbkbd"

/* Loads c->linux_kernel (and initrd) into m's resident memory, sets up
 * m->pc, m->port_io, the boot info page and the results expected, and adds to opt what a PC needs (the PIT, the
 * virtual wire, kvmclock).  Returns the vCPU's entry: RIP, CR3, RSI. */
int guest_linux_load(struct machine *m, const struct apfvm_config *c, struct vm_options *opt,
		     struct arch_entry *entry, struct apf_err *e);

/* Snapshots of a Linux guest (snapshot_vm.c): its devices' state as a
 * section payload, and a restored machine's devices and port I/O.  The
 * architectures without the Linux guest kind refuse both. */
struct snap_blob;
int guest_linux_save_devices(struct machine *m, struct snap_blob *b, struct apf_err *e);
int guest_linux_restore(struct machine *m, const void *devices, uint64_t len, struct apf_err *e);

#endif
