/* lapic: the local APIC in x2APIC mode (MSR access) and its timer. */
#ifndef GUEST_LAPIC_H
#define GUEST_LAPIC_H

#include <stdint.h>

#define VEC_TIMER    32
#define VEC_SPURIOUS 0xff

void lapic_init(void);
void lapic_timer_start(unsigned hz);

static inline void lapic_eoi(void)
{
	__asm__ volatile("wrmsr" ::"c"(0x80bu), "a"(0u), "d"(0u) : "memory");
}

#endif
