/* Snapshots on arm64: not offered yet (the vCPU's state there is a list
 * of ONE_REG registers and the vGIC's tables); refused with a clear
 * error, never half-written. */
#include <errno.h>

#include "arch/arch.h"

static int not_yet(struct apf_err *e)
{
	return apf_fail(e, -ENOTSUP, "snapshots are taken and restored on x86-64 only so far");
}

int arch_snapshot_save_vcpu(struct vm *vm, struct vcpu *v, struct snap_blob *b, struct apf_err *e)
{
	(void)vm, (void)v, (void)b;
	return not_yet(e);
}

int arch_snapshot_save_vm(struct vm *vm, const struct vm_options *opt, struct snap_blob *b,
			  struct apf_err *e)
{
	(void)vm, (void)opt, (void)b;
	return not_yet(e);
}

int arch_snapshot_options(const void *vm_state, uint64_t len, struct vm_options *opt,
			  struct apf_err *e)
{
	(void)vm_state, (void)len, (void)opt;
	return not_yet(e);
}

int arch_snapshot_mode_options(struct vm_options *opt, enum apfvm_apf_mode mode,
			       struct apf_err *e)
{
	(void)opt, (void)mode;
	return not_yet(e);
}

bool arch_snapshot_kvm_apf(const void *data, uint64_t len, struct snap_apf *out)
{
	(void)data, (void)len, (void)out;
	return false; /* KVM has no async PF of its own on arm64 */
}

int arch_snapshot_restore_vcpu(struct vm *vm, struct vcpu *v, const void *data, uint64_t len,
			       const struct snap_apf *kvm_apf, struct apf_err *e)
{
	(void)vm, (void)v, (void)data, (void)len, (void)kvm_apf;
	return not_yet(e);
}

int arch_snapshot_restore_vm(struct vm *vm, const struct vm_options *opt, const void *data,
			     uint64_t len, struct apf_err *e)
{
	(void)vm, (void)opt, (void)data, (void)len;
	return not_yet(e);
}
