#include "apf_msr_x86.h"

#include "apfvm/abi_x86.h"

static int write_en(struct apf_core *c, unsigned v, uint64_t value)
{
	const uint64_t both = KVM_ASYNC_PF_ENABLED | KVM_ASYNC_PF_DELIVERY_AS_INT;
	uint64_t gpa = value & ~0x3full, reg;
	uint8_t vector;

	/* KVM's kvm_pv_enable_async_pf(), rule for rule (docs/async-pf.md,
	 * "Validation of guest MSR writes"). */
	if (value & 0x30)
		return -1; /* reserved bits */
	if (value & KVM_ASYNC_PF_DELIVERY_AS_PF_VMEXIT)
		return -1; /* KVM_FEATURE_ASYNC_PF_VMEXIT is not offered */
	/* KVM maps the first 8 bytes (flags, token): the only ones either
	 * side writes.  Differs from KVM in one way, which protects the host:
	 * the area must be in resident memory (the core checks it). */
	if ((value & both) == both) {
		apf_core_read_reg(c, v, &reg, &vector);
		if (apf_core_enable(c, v, gpa, 8, vector, value & KVM_ASYNC_PF_SEND_ALWAYS))
			return -1;
	} else {
		apf_core_disable(c, v);
	}
	apf_core_set_reg_value(c, v, value);
	return 0;
}

static int write_msr(struct apf_core *c, unsigned v, uint32_t msr, uint64_t value)
{
	switch (msr) {
	case MSR_KVM_ASYNC_PF_EN:
		return write_en(c, v, value);
	case MSR_KVM_ASYNC_PF_INT:
		/* As KVM: bits 8-63 reserved, any vector (one below 16 is an
		 * illegal LAPIC vector: the guest's own mistake, as on KVM). */
		if (value & ~0xffull)
			return -1;
		apf_core_set_vector(c, v, (uint8_t)value);
		return 0;
	case MSR_KVM_ASYNC_PF_ACK:
		/* As KVM: only bit 0 means anything.  apfvm leaves the
		 * guest's ACKs to KVM; an embedder that routes them here
		 * loses nothing. */
		if (value & 1)
			apf_core_ack(c, v);
		return 0;
	default:
		return -1;
	}
}

int apf_x86_wrmsr(struct apf_core *c, unsigned v, uint32_t msr, uint64_t value)
{
	if (v >= c->nvcpus)
		return -1;
	int rc = write_msr(c, v, msr, value);
	if (rc)
		apf_core_count_refused(c);
	return rc;
}

int apf_x86_restore_msrs(struct apf_core *c, unsigned v, uint32_t vector, uint64_t msr_en)
{
	if (apf_x86_wrmsr(c, v, MSR_KVM_ASYNC_PF_INT, vector))
		return -1;
	return apf_x86_wrmsr(c, v, MSR_KVM_ASYNC_PF_EN, msr_en);
}

int apf_x86_rdmsr(struct apf_core *c, unsigned v, uint32_t msr, uint64_t *value)
{
	uint64_t reg;
	uint8_t vector;

	if (v >= c->nvcpus)
		return -1;
	apf_core_read_reg(c, v, &reg, &vector);
	switch (msr) {
	case MSR_KVM_ASYNC_PF_EN:
		*value = reg;
		return 0;
	case MSR_KVM_ASYNC_PF_INT:
		*value = vector;
		return 0;
	case MSR_KVM_ASYNC_PF_ACK:
		*value = 0;
		return 0;
	default:
		return -1;
	}
}
