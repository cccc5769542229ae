#ifndef GUEST_PROBE_H
#define GUEST_PROBE_H

#include <stdint.h>

/* Measures and prints the round trip of the VM exits an async fault is
 * made of (CPUID, x2APIC EOI, hypercall to the VMM). */
void probe_exits(uint64_t tsc_khz);

#endif
