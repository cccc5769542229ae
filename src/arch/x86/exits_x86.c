/*
 * x86-64 exits: the reference guest's hypercall port, the --apf user MSRs,
 * and the ways a guest dies (triple fault, stray MMIO), each reported with
 * the registers KVM holds.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/arch.h"
#include "arch/x86/apf_msr_x86.h"
#include "vmm/kvm_vm.h"

static const char *exception_name(uint64_t v)
{
	static const char *const names[32] = {
		"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
		"#BR bound range", "#UD invalid opcode", "#NM device not available",
		"#DF double fault", "coprocessor overrun", "#TS invalid TSS",
		"#NP segment not present", "#SS stack fault", "#GP general protection",
		"#PF page fault", "reserved", "#MF x87 error", "#AC alignment check",
		"#MC machine check", "#XM SIMD error", "#VE virtualization", "#CP control protection",
	};
	return v < 32 && names[v] ? names[v] : "interrupt";
}

void arch_describe_regs(struct vcpu *v, char *buf, size_t len)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	memset(&r, 0, sizeof(r));
	memset(&s, 0, sizeof(s));
	ioctl(v->fd, KVM_GET_REGS, &r);
	ioctl(v->fd, KVM_GET_SREGS, &s);
	snprintf(buf, len, "RIP=0x%llx RSP=0x%llx RFLAGS=0x%llx CS=0x%x CR2=0x%llx CR3=0x%llx",
		 (unsigned long long)r.rip, (unsigned long long)r.rsp, (unsigned long long)r.rflags,
		 s.cs.selector, (unsigned long long)s.cr2, (unsigned long long)s.cr3);
}

/* Port I/O: apfvm's hypercall port (a 4-byte OUT of the block's address),
 * or the guest kind's devices; a malformed access to the hypercall port
 * is a guest bug. */
static void decode_io(struct kvm_run *run, struct vcpu_exit *x)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	if (run->io.port != APF_HCALL_PORT) {
		x->kind = VCPU_EXIT_PORT_IO; /* described by the loop if no device takes it */
		return;
	}
	if (run->io.direction == KVM_EXIT_IO_OUT && run->io.size == 4 && run->io.count == 1) {
		uint32_t gpa;
		memcpy(&gpa, data, 4);
		x->kind = VCPU_EXIT_HYPERCALL;
		x->gpa = gpa;
		return;
	}
	x->kind = VCPU_EXIT_FAIL;
	arch_describe_port_io(run, x->what, sizeof(x->what));
}

/* --apf user: the guest's async-PF MSR accesses (the filter sends the
 * enable and vector MSRs here, and the ACK with --apf-trap-acks),
 * decoded for the core (apf_msr_x86.c). */
static void decode_msr(struct kvm_run *run, struct apf_core *core, unsigned v,
		       struct vcpu_exit *x)
{
	int rc;

	if (!core) {
		x->kind = VCPU_EXIT_FAIL;
		snprintf(x->what, sizeof(x->what), "unexpected MSR exit (MSR 0x%x)", run->msr.index);
		return;
	}
	if (run->exit_reason == KVM_EXIT_X86_WRMSR) {
		rc = apf_x86_wrmsr(core, v, run->msr.index, run->msr.data);
	} else {
		uint64_t value = 0;
		rc = apf_x86_rdmsr(core, v, run->msr.index, &value);
		run->msr.data = value;
	}
	run->msr.error = rc ? 1 : 0; /* 1: KVM injects #GP */
	x->kind = VCPU_EXIT_HANDLED;
}

void arch_describe_port_io(const struct kvm_run *run, char *buf, size_t len)
{
	snprintf(buf, len, "unexpected port I/O (%s port 0x%x, size %u)",
		 run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", run->io.port, run->io.size);
}

void arch_decode_exit(struct vcpu *v, struct apf_core *core, struct vcpu_exit *x)
{
	struct kvm_run *run = v->run;

	/* Every exit passes here: only what the kind needs is written. */
	x->kind = VCPU_EXIT_HANDLED;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		decode_io(run, x);
		break;
	case KVM_EXIT_X86_RDMSR:
	case KVM_EXIT_X86_WRMSR:
		decode_msr(run, core, v->id, x);
		break;
	case KVM_EXIT_HLT:
		break; /* the in-kernel LAPIC normally keeps halts inside KVM */
	case KVM_EXIT_SHUTDOWN:
		x->kind = VCPU_EXIT_FAIL;
		snprintf(x->what, sizeof(x->what),
			 "triple fault (the guest took an exception it could not handle)");
		break;
	case KVM_EXIT_MMIO:
		x->kind = VCPU_EXIT_MMIO_UNBACKED; /* no device is mapped */
		break;
	default:
		x->kind = VCPU_EXIT_UNKNOWN;
		break;
	}
}

void arch_describe_fatal(const struct apf_fatal *f, char *buf, size_t len)
{
	snprintf(buf, len,
		 "%s (vector %llu) in %s: RIP=0x%llx CS=0x%llx error code=0x%llx CR2=0x%llx "
		 "RSP=0x%llx RFLAGS=0x%llx",
		 exception_name(f->vector), (unsigned long long)f->vector,
		 (f->mode & 3) ? "ring 3" : "ring 0", (unsigned long long)f->pc,
		 (unsigned long long)f->mode, (unsigned long long)f->error_code,
		 (unsigned long long)f->fault_addr, (unsigned long long)f->sp,
		 (unsigned long long)f->flags);
}
