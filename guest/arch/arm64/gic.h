/*
 * gic: the GICv3 (distributor, this CPU's redistributor, the system
 * register CPU interface) and the EL1 virtual timer.  Two interrupts are
 * used: the timer's PPI and the SPI the async-PF host raises.
 */
#ifndef GUEST_ARM64_GIC_H
#define GUEST_ARM64_GIC_H

#include <stdint.h>

#define GIC_SPURIOUS 1020 /* INTIDs from here on: nothing to handle */

void gic_init(void);
/* Enables PPI intid (16-31) at this CPU. */
void gic_enable_ppi(unsigned intid);
/* Makes SPI intid (32-1019) edge-triggered, group 1, routed to this
 * CPU, and enables it. */
void gic_enable_spi_edge(unsigned intid);
/* Acknowledges the highest-priority pending interrupt: its INTID. */
static inline uint32_t gic_ack(void)
{
	uint64_t v;
	__asm__ volatile("mrs %0, S3_0_C12_C12_0" : "=r"(v)); /* ICC_IAR1_EL1 */
	return (uint32_t)v & 0xffffff;
}
/* Ends it (priority drop and deactivation: EOImode 0). */
static inline void gic_eoi(uint32_t intid)
{
	__asm__ volatile("msr S3_0_C12_C12_1, %0; isb" ::"r"((uint64_t)intid) : "memory");
}

void timer_start(unsigned hz);
/* The tick's handler: sets the next deadline (the timer's level
 * interrupt drops), before the EOI. */
void timer_rearm(void);

#endif
