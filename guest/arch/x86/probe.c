/* probe: `probe-exits` on the command line measures, before the tasks
 * start, what one VM exit of each kind an async page fault is made of
 * costs on this host: the guest's stamps around a loop of each, so the
 * figure is the whole round trip as the guest sees it (exit, the host's
 * handling, entry).  It is the unit of the per-fault floor in
 * docs/async-pf.md ("The platform's minimum"). */
#include "kernel.h"
#include "lapic.h"
#include "probe.h"

#define PROBE_ROUNDS 256
#define PROBE_WARMUP 64 /* untimed: the first exits of a kind are slower
			 * (on an emulated host, code is translated then) */

static uint64_t ns_each(uint64_t tsc, uint64_t tsc_khz)
{
	return tsc * 1000000 / tsc_khz / PROBE_ROUNDS;
}

void probe_exits(uint64_t tsc_khz)
{
	uint32_t r[4];
	uint64_t t0, t_cpuid, t_eoi, t_hcall;

	if (!tsc_khz)
		return;
	for (int i = 0; i < PROBE_WARMUP; i++) {
		cpuid(0, r);
		lapic_eoi();
		hcall(APF_HC_CONSOLE, 0, 0, 0);
	}
	/* CPUID: always intercepted, answered inside KVM. */
	t0 = arch_cycles();
	for (int i = 0; i < PROBE_ROUNDS; i++)
		cpuid(0, r);
	t_cpuid = arch_cycles() - t0;
	/* An x2APIC EOI with nothing in service (ignored by the APIC): the
	 * exit each page-ready interrupt's EOI takes, answered inside KVM. */
	t0 = arch_cycles();
	for (int i = 0; i < PROBE_ROUNDS; i++)
		lapic_eoi();
	t_eoi = arch_cycles() - t0;
	/* An empty console write: an exit all the way out to the VMM and
	 * back, as the not-present injection and the ACK take in user mode. */
	t0 = arch_cycles();
	for (int i = 0; i < PROBE_ROUNDS; i++)
		hcall(APF_HC_CONSOLE, 0, 0, 0);
	t_hcall = arch_cycles() - t0;
	kprintf("apfvm guest: exit round trips (mean of %u): CPUID %lu ns, EOI %lu ns, "
		"to the VMM %lu ns\n",
		PROBE_ROUNDS, ns_each(t_cpuid, tsc_khz), ns_each(t_eoi, tsc_khz),
		ns_each(t_hcall, tsc_khz));
}
