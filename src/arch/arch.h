/*
 * arch: what an architecture gives the VMM.  The generic VMM (src/vmm)
 * calls these at fixed points of a run; exactly one implementation is
 * linked, src/arch/x86 or src/arch/arm64 (the Makefile's ARCH), and its
 * arch_vm.h (on the include path) supplies the types and inlines below.
 *
 * The hooks take what they need (the VM, a vCPU, guest memory, the
 * async-fault core), never the whole machine: exits come back decoded
 * (struct vcpu_exit) and the generic loop (src/vmm/vcpu_loop.c) acts on
 * them.  The guest's async-PF registration (x86: MSRs; arm64: SMCCC
 * calls) is decoded here and handed to the core in neutral terms.
 *
 * One user-mode async fault (docs/architecture.md draws it):
 *   guest access -> EPT/stage-2 fault -> userfaultfd (src/pager)
 *   -> pager hook (src/vmm/apf_user.c) -> apf_core_on_fault decides, kicks
 *   -> KVM_RUN returns (src/vmm/vcpu_loop.c) -> apf_user_after_kick
 *   -> arch_apf_guest_state, arch_apf_inject_not_present (here)
 *   ... the page installed -> apf_core_on_installed -> arch_apf_raise (here).
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
struct apf_core;
struct apf_core_vcpu;
struct apf_guest_state;
struct guest_mem;
struct guest_layout;

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

/* The reference guest, its ELF in gm: its page tables and layout, and
 * where it starts. */
struct elf_image;
int arch_load_reference(struct guest_mem *gm, const struct elf_image *img,
			struct guest_layout *layout, struct arch_entry *entry, struct apf_err *e);

/* A vCPU exit, as the architecture decoded it for the generic loop. */
enum vcpu_exit_kind {
	VCPU_EXIT_HANDLED,   /* nothing left to do (a halt, an async-PF call) */
	VCPU_EXIT_HYPERCALL, /* the guest's hypercall block at `gpa` */
	VCPU_EXIT_PORT_IO,   /* port I/O for the guest kind's devices (x86) */
	VCPU_EXIT_MMIO_UNBACKED, /* an access with neither memory nor a device */
	VCPU_EXIT_FAIL,      /* the guest cannot go on: `what` */
	VCPU_EXIT_UNKNOWN,   /* an exit reason the architecture does not know */
};

struct vcpu_exit {
	enum vcpu_exit_kind kind;
	uint64_t gpa;
	char what[160];      /* FAIL: why */
};

/* Decodes vCPU v's exit (its kvm_run).  The async-PF registration calls
 * go to `core` (NULL: not --apf user; they are then refused as KVM would).
 * Exits every architecture shares (KVM_EXIT_INTR, internal errors) are
 * the generic loop's. */
void arch_decode_exit(struct vcpu *v, struct apf_core *core, struct vcpu_exit *x);

/* A port I/O exit no device takes, for the failure ("unexpected port
 * I/O (out port 0x80, size 1)"); formatted only then. */
struct kvm_run;
void arch_describe_port_io(const struct kvm_run *run, char *buf, size_t len);

/* The registers KVM holds for v, for a crash report ("RIP=0x... ..."). */
void arch_describe_regs(struct vcpu *v, char *buf, size_t len);

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
/* How a vCPU blocked on a lazy page is freed for a not-present: by the
 * kick's signal (false: x86, KVM waits interruptibly) or by poisoning the
 * page (true: arm64, where KVM's wait is only killable).  ARCH_APF_KICK_POISONS
 * in arch_vm.h. */
/* Once per vCPU thread, before its first KVM_RUN. */
void arch_apf_vcpu_init(struct vcpu *v);
/* After a kick: whether the guest can take a not-present now. */
void arch_apf_guest_state(struct vcpu *v, struct apf_guest_state *gs);
/* Delivers a not-present for `token` (the area's flags are already set;
 * cv: v's registration in the core); only right after
 * arch_apf_guest_state for the same kick, whose reading of the guest's
 * state it may reuse.  0 or -errno (the run cannot go on). */
int arch_apf_inject_not_present(struct vcpu *v, const struct apf_core_vcpu *cv, uint32_t token);
/* A restore: gives the core the registration the guest had made (x86:
 * its MSR values, written again and checked as a guest's writes), which
 * sends the wake-all.  0, or -1 for one a guest could not have made. */
struct snap_apf;
int arch_apf_restore(struct apf_core *core, unsigned v, const struct snap_apf *a);
/* Raises the page-ready `vector` on vCPU v.  -EAGAIN: the guest does not
 * accept it yet (the core retries); other -errno: it cannot be raised. */
int arch_apf_raise(struct vm *vm, unsigned v, uint8_t vector);

#endif
