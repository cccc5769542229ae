/*
 * arch: what an architecture gives the VMM.  The generic VMM (src/vmm)
 * calls these at fixed points of a run; exactly one implementation is
 * linked, src/arch/x86 or src/arch/arm64 (the Makefile's ARCH), and its
 * arch_vm.h (on the include path) supplies the types and inlines below.
 *
 * Following one lazy fault through a run:
 *   guest access -> stage-2/EPT fault -> userfaultfd (src/pager)
 *   -> apf_core_on_fault (src/apf) decides sync or async, kicks the vCPU
 *   -> vcpu_loop: KVM_RUN returns -> apf_user_after_kick (src/vmm)
 *   -> arch_apf_guest_state / arch_apf_inject_not_present (here)
 *   ... the page arrives -> apf_core_on_installed -> arch_apf_raise (here).
 */
#ifndef APFVM_ARCH_H
#define APFVM_ARCH_H

#include <stdbool.h>
#include <stdint.h>

#include "apfvm/vmm.h"
#include "arch_vm.h"
#include "util/err.h"

struct vm;
struct vcpu;
struct machine;
struct apf_guest_state;

/* Where a vCPU starts: the reference guest's entry, its initial page
 * tables (arch-defined: CR3 on x86, TTBR0_EL1 on arm64) and the argument
 * register's value (the boot info's GPA). */
struct arch_entry {
	uint64_t pc;
	uint64_t page_table;
	uint64_t arg;
};

/* The VM options `mode` needs (opt was zeroed).  -ENOTSUP with a clear
 * message for a mode this architecture does not have. */
int arch_mode_options(struct vm_options *opt, enum apfvm_apf_mode mode, struct apf_err *e);

/* After KVM_CREATE_VM, before memory slots and vCPUs: the interrupt
 * controller and VM-wide capabilities. */
int arch_vm_init(struct vm *vm, const struct vm_options *opt, struct apf_err *e);

/* After every vCPU exists (e.g. the arm64 vGIC is finalized here). */
int arch_vm_finalize(struct vm *vm, const struct vm_options *opt, struct apf_err *e);

/* Before the VM fd is closed: what arch_vm_init opened. */
void arch_vm_destroy(struct vm *vm);

/* vCPU v exists (fd and kvm_run mapped): its features, registers at
 * `entry`, and vm->tsc_khz / v->tsc_offset. */
int arch_vcpu_init(struct vm *vm, struct vcpu *v, const struct vm_options *opt,
		   const struct arch_entry *entry, struct apf_err *e);

/* The reference guest, its ELF loaded: its page tables and layout
 * (m->layout), where it starts, and how its hypercalls reach the VMM. */
struct elf_image;
int arch_load_reference(struct machine *m, const struct elf_image *img,
			struct arch_entry *entry, struct apf_err *e);

/* A restored reference guest: what arch_load_reference would have set
 * up besides memory (its hypercall path). */
int arch_restore_prepare(struct machine *m, struct apf_err *e);

/* An exit the generic loop does not handle (port I/O, MSRs, MMIO,
 * hypercalls, shutdown...).  False for an exit reason the architecture
 * does not know: the loop ends the run with it. */
bool arch_handle_exit(struct machine *m, struct vcpu *v);

/* Ends the run with `what` and the registers KVM holds. */
void arch_fail_with_regs(struct machine *m, struct vcpu *v, const char *what);

/* Describes a guest's struct apf_fatal report in this architecture's
 * terms into buf. */
struct apf_fatal;
void arch_describe_fatal(const struct apf_fatal *f, char *buf, size_t len);

/* --- snapshots (snapshot_<arch>.c; format: docs/snapshot.md) --------- */

struct snap_blob;
/* Appends vCPU v's state (stopped: outside KVM_RUN) as records. */
int arch_snapshot_save_vcpu(struct vm *vm, struct vcpu *v, struct snap_blob *b, struct apf_err *e);
/* The VM's state and the options it was created with. */
int arch_snapshot_save_vm(struct vm *vm, const struct vm_options *opt, struct snap_blob *b,
			  struct apf_err *e);
/* The options a restored VM must be created with (before it exists). */
int arch_snapshot_options(const void *vm_state, uint64_t len, struct vm_options *opt,
			  struct apf_err *e);
/* Gives options read from a snapshot the host side of `mode` (the mode
 * the restore runs in, which may differ from the snapshot's), keeping
 * what the guest has already seen (its CPUID) as it was. */
int arch_snapshot_mode_options(struct vm_options *opt, enum apfvm_apf_mode mode,
			       struct apf_err *e);
struct snap_apf;
/* The async-PF registration KVM held for the vCPU whose records these
 * are (--apf kernel: in KVM's MSRs); false if the guest had none enabled. */
bool arch_snapshot_kvm_apf(const void *data, uint64_t len, struct snap_apf *out);
/* Restores a vCPU created by vm_add_vcpu, then the VM (after every vCPU).
 * The records are validated (sizes) before KVM sees them.  KVM's own
 * async-PF registration is never taken from the records: KVM gets
 * `kvm_apf` (--apf kernel; its enable written last, which makes KVM send
 * a wake-all), or none (NULL). */
int arch_snapshot_restore_vcpu(struct vm *vm, struct vcpu *v, const void *data, uint64_t len,
			       const struct snap_apf *kvm_apf, struct apf_err *e);
int arch_snapshot_restore_vm(struct vm *vm, const struct vm_options *opt, const void *data,
			     uint64_t len, struct apf_err *e);

/* --- --apf user: how this architecture delivers (apf_<arch>.c) --------- */

/* VM capabilities and registration traps; before vCPUs are created. */
int arch_apf_setup_vm(struct vm *vm, bool trap_acks, struct apf_err *e);
/* Brings vCPU v out of its blocked fault on lazy page `page` and out of
 * KVM_RUN (pager thread).  x86: a signal (KVM waits interruptibly);
 * arm64: the page is poisoned (KVM's wait there is only killable). */
void arch_apf_kick(struct machine *m, unsigned v, uint64_t page);
/* Once per vCPU thread, before its first KVM_RUN. */
void arch_apf_vcpu_init(struct vcpu *v);
/* After a kick: whether the guest can take a not-present now. */
void arch_apf_guest_state(struct machine *m, struct vcpu *v, struct apf_guest_state *gs);
/* Delivers a not-present for `token` (the area's flags are already set);
 * only right after arch_apf_guest_state for the same kick, whose reading
 * of the guest's state it may reuse. */
void arch_apf_inject_not_present(struct machine *m, struct vcpu *v, uint32_t token);
/* Raises the page-ready `vector` on vCPU v.  -EAGAIN: the guest does not
 * accept it yet (the core retries); other -errno: it cannot be raised. */
int arch_apf_raise(struct machine *m, unsigned v, uint8_t vector);

#endif
