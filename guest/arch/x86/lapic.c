#include "lapic.h"

#include "kernel.h"

#define MSR_APIC_BASE  0x1b
#define X2APIC_SVR     0x80f
#define X2APIC_LVT_TMR 0x832
#define X2APIC_TMR_ICR 0x838
#define X2APIC_TMR_DCR 0x83e

void lapic_init(void)
{
	/* EN (bit 11) and EXTD (bit 10): x2APIC mode, registers as MSRs. */
	wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | (1u << 11) | (1u << 10));
	wrmsr(X2APIC_SVR, 0x100 | VEC_SPURIOUS);
}

void lapic_timer_start(unsigned hz)
{
	/* The timer counts at the APIC bus rate the VMM reports in CPUID
	 * 0x40000010.EBX (kHz); KVM's is 1 GHz. */
	uint32_t r[4];
	cpuid(0x40000010u, r);
	uint64_t bus_khz = r[1] ? r[1] : 1000000;

	wrmsr(X2APIC_TMR_DCR, 0xb); /* divide by 1 */
	wrmsr(X2APIC_LVT_TMR, (1u << 17) | VEC_TIMER); /* periodic */
	wrmsr(X2APIC_TMR_ICR, bus_khz * 1000 / hz);
}
