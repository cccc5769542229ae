/*
 * guest_linux: the Linux guest kind, the architecture's (x86-64:
 * src/arch/x86/linux/guest_linux.c, its loader `linux_loader` in
 * loader.h; other architectures refuse it with a clear error).  On x86 it loads an unmodified bzImage
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

/* Snapshots of a Linux guest (snapshot_save.c, snapshot_load.c): its devices' state as a
 * section payload, and a restored machine's devices and port I/O.  The
 * architectures without the Linux guest kind refuse both. */
struct snap_blob;
int guest_linux_save_devices(struct machine *m, struct snap_blob *b, struct apf_err *e);
int guest_linux_restore(struct machine *m, const void *devices, uint64_t len, struct apf_err *e);

#endif
