/*
 * libFuzzer target: everything a guest can hand the VMM, in arbitrary
 * sequences.  The first byte picks the surface:
 *  - even: the async-PF MSR handlers and the async-fault core, driven with
 *    MSR writes/reads, faults, injections, completions, ACKs, retries,
 *    resets and scribbles over the guest's area, on a fake VM
 *    (tests/apf_fake.h);
 *  - odd: the hypercall handler, with an arbitrary block at an arbitrary
 *    guest address in a small resident memory.
 * Invariants are checked after every step; a violation aborts.
 */
#include <stdio.h>
#include <stdlib.h>

#include "apfvm/abi_x86.h"
#include "arch/x86/apf_msr_x86.h"
#include "fake_machine.h"
#include "fuzz.h"
#include "apf_fake.h"
#include "vmm/hcall.h"

struct input {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct input *in, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes && in->n; i++, in->n--)
		v |= (uint64_t)*in->p++ << (8 * i);
	return v;
}

static struct fake_vm fvm;

/* The host writes a not-present (flags) or a page-ready (token) into the
 * guest's area only where the guest left 0: one of each in flight. */
static int checked_write(void *ctx, uint64_t gpa, uint32_t value)
{
	uint32_t old = 0;
	if (value != 0 && !fake_read_u32(ctx, gpa, &old))
		CHECK_OR_DIE(old == 0);
	return fake_write_u32(ctx, gpa, value);
}

static void check_core(struct apf_core *c, unsigned faults)
{
	uint64_t sum = 0;
	unsigned kicked = 0;

	CHECK_OR_DIE(!fvm.bad_access);
	for (int d = 0; d < APF_DECISIONS; d++)
		sum += c->stats.decisions[d];
	for (unsigned v = 0; v < c->nvcpus; v++) {
		struct apf_core_vcpu *cv = &c->vcpus[v];
		unsigned live = 0;
		CHECK_OR_DIE(cv->outstanding <= APF_CORE_MAX_OUTSTANDING);
		for (unsigned i = 0; i < APF_CORE_MAX_OUTSTANDING; i++) {
			const struct apf_fault *f = &cv->faults[i];
			if (f->state == AF_FREE)
				continue;
			live++;
			CHECK_OR_DIE(f->token != 0 && f->token != KVM_APF_WAKE_ALL_TOKEN);
			for (unsigned j = 0; j < i; j++)
				CHECK_OR_DIE(cv->faults[j].state == AF_FREE || cv->faults[j].token != f->token);
		}
		CHECK_OR_DIE(live == cv->outstanding);
		kicked += cv->kicked >= 0;
	}
	CHECK_OR_DIE(sum + kicked == faults); /* every fault decided once */
}

static void fuzz_core(struct input *in)
{
	static const uint32_t msrs[4] = { MSR_KVM_ASYNC_PF_EN, MSR_KVM_ASYNC_PF_INT,
					  MSR_KVM_ASYNC_PF_ACK, 0x4b564d01 };
	struct apf_core_ops ops = fake_ops;
	struct apf_core c;
	unsigned faults = 0;

	ops.write_u32 = checked_write;
	memset(&fvm, 0, sizeof(fvm));
	apf_core_init(&c, 2, 300000, &ops, &fvm);
	while (in->n) {
		unsigned op = (unsigned)take(in, 1);
		unsigned v = op >> 7;
		uint64_t page = take(in, 1) % 64, x;
		switch (op % 8) {
		case 0: {
			uint32_t msr = msrs[take(in, 1) % 4];
			x = take(in, 8);
			if (take(in, 1) & 1) /* often a plausible area address */
				x = (x & 0x3f) | (0x1000 + (x >> 6) % 0x10000);
			apf_x86_wrmsr(&c, v, msr, x);
			break;
		}
		case 1:
			apf_x86_rdmsr(&c, v, msrs[take(in, 1) % 4], &x);
			break;
		case 2:
			x = take(in, 1);
			faults++;
			apf_core_on_fault(&c, (x & 0x80) ? -1 : (int)v, page, (x & 0x3f) * 20000,
					  (x & 0x40) != 0);
			break;
		case 3: {
			x = take(in, 1);
			struct apf_guest_state gs = { .irqs_enabled = x & 1, .user_mode = ((x >> 1) & 3) == 3,
						      .event_pending = (x >> 3) & 1 };
			apf_core_take_injection(&c, v, &gs, fake_page_present, &fvm);
			break;
		}
		case 4:
			fvm.present[page] = 1;
			apf_core_on_installed(&c, page);
			break;
		case 5: /* the guest consumes its area */
			x = c.vcpus[v].area_gpa;
			if (x >= FAKE_MEM_BASE && x + 8 <= FAKE_MEM_END)
				fake_set_u32(&fvm, x + (take(in, 1) & 4), 0);
			if (take(in, 1) & 1) /* the VMM's retry of queued page-readies */
				apf_core_retry(&c);
			break;
		case 6:
			apf_core_reset_vcpu(&c, v);
			break;
		case 7: /* the guest scribbles anywhere in its memory */
			x = FAKE_MEM_BASE + take(in, 2) % (FAKE_MEM_END - FAKE_MEM_BASE - 4);
			fake_set_u32(&fvm, x, (uint32_t)take(in, 4));
			break;
		}
		check_core(&c, faults);
	}
	apf_core_destroy(&c);
}

static void fuzz_hcall(struct input *in)
{
	enum { MEM = 64 << 10 };
	static struct machine m;
	static uint8_t mem[MEM];
	struct vcpu v;

	fake_machine_init(&m, &v, mem, MEM);
	while (in->n >= 2) {
		uint64_t gpa = take(in, 3) % (MEM + 64); /* sometimes past the end */
		uint64_t len = take(in, 1) % 64;
		if (gpa < MEM) /* place arbitrary bytes there: the block and what it points to */
			for (uint64_t i = 0; i < len && gpa + i < MEM && in->n; i++)
				mem[gpa + i] = (uint8_t)take(in, 1);
		hcall_handle(&m, &v, take(in, 3) % (MEM + 64));
		CHECK_OR_DIE(m.report.nresults <= APF_MAX_TASKS);
	}
	pthread_mutex_destroy(&m.report_lock);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	if (!size)
		return 0;
	if (take(&in, 1) & 1)
		fuzz_hcall(&in);
	else
		fuzz_core(&in);
	return 0;
}
