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
#include "arch/x86/exits_x86.h"
#include "vmm/hcall.h"
#include "vmm/machine.h"
#include "vmm/vcpu_loop.h"

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

/* A crash report with the registers KVM holds. */
void arch_fail_with_regs(struct machine *m, struct vcpu *v, const char *what)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	memset(&r, 0, sizeof(r));
	memset(&s, 0, sizeof(s));
	ioctl(v->fd, KVM_GET_REGS, &r);
	ioctl(v->fd, KVM_GET_SREGS, &s);
	machine_fail(m, "vCPU %u: %s: RIP=0x%llx RSP=0x%llx RFLAGS=0x%llx CS=0x%x CR2=0x%llx CR3=0x%llx",
		     v->id, what, (unsigned long long)r.rip, (unsigned long long)r.rsp,
		     (unsigned long long)r.rflags, s.cs.selector, (unsigned long long)s.cr2,
		     (unsigned long long)s.cr3);
}

void vcpu_hcall_port_io(struct machine *m, struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	if (run->io.port == APF_HCALL_PORT && run->io.direction == KVM_EXIT_IO_OUT &&
	    run->io.size == 4 && run->io.count == 1) {
		uint32_t gpa;
		memcpy(&gpa, data, 4);
		hcall_handle(m, v, gpa);
		return;
	}
	char what[96];
	snprintf(what, sizeof(what), "unexpected port I/O (%s port 0x%x, size %u)",
		 run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", run->io.port, run->io.size);
	arch_fail_with_regs(m, v, what);
}

/* --apf user: the guest's async-PF MSR accesses (the filter sends the
 * enable and vector MSRs here, and the ACK with --apf-trap-acks). */
static void apf_msr_exit(struct machine *m, struct vcpu *v)
{
	struct kvm_run *run = v->run;
	int rc;

	if (run->exit_reason == KVM_EXIT_X86_WRMSR) {
		rc = apf_core_wrmsr(m->core, v->id, run->msr.index, run->msr.data);
	} else {
		uint64_t value = 0;
		rc = apf_core_rdmsr(m->core, v->id, run->msr.index, &value);
		run->msr.data = value;
	}
	run->msr.error = rc ? 1 : 0; /* 1: KVM injects #GP */
}

bool arch_handle_exit(struct machine *m, struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char what[160];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		m->port_io(m, v);
		break;
	case KVM_EXIT_X86_RDMSR:
	case KVM_EXIT_X86_WRMSR:
		if (m->core) {
			apf_msr_exit(m, v);
			break;
		}
		snprintf(what, sizeof(what), "unexpected MSR exit (MSR 0x%x)", run->msr.index);
		arch_fail_with_regs(m, v, what);
		break;
	case KVM_EXIT_HLT:
		break; /* the in-kernel LAPIC normally keeps halts inside KVM */
	case KVM_EXIT_SHUTDOWN:
		arch_fail_with_regs(m, v, "triple fault (the guest took an exception it could not handle)");
		break;
	case KVM_EXIT_MMIO:
		vcpu_fail_unbacked_mmio(m, v);
		break;
	default:
		return false;
	}
	return true;
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
