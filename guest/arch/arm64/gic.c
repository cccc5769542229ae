#include "gic.h"

#include "kernel.h"

#define GICD_CTLR        0x0000
#define GICD_CTLR_ARE    (1u << 4)
#define GICD_CTLR_GRP1   (1u << 1)
#define GICD_IGROUPR(n)  (0x0080 + 4 * ((n) / 32))
#define GICD_ISENABLER(n) (0x0100 + 4 * ((n) / 32))
#define GICD_ICFGR(n)    (0x0c00 + 4 * ((n) / 16))
#define GICD_IROUTER(n)  (0x6000 + 8 * (n))
#define GICR_WAKER       0x0014
#define GICR_SGI_FRAME   0x10000
#define GICR_IGROUPR0    (GICR_SGI_FRAME + 0x0080)
#define GICR_ISENABLER0  (GICR_SGI_FRAME + 0x0100)

static inline void mmio_write32(uint64_t gpa, uint32_t v)
{
	*(volatile uint32_t *)gpa = v;
}

static inline uint32_t mmio_read32(uint64_t gpa)
{
	return *(volatile uint32_t *)gpa;
}

void gic_init(void)
{
	mmio_write32(APF_ARM64_GICD_GPA + GICD_CTLR, GICD_CTLR_ARE | GICD_CTLR_GRP1);
	/* This CPU's redistributor awake (ProcessorSleep clear), then
	 * wait for ChildrenAsleep to clear. */
	mmio_write32(APF_ARM64_GICR_GPA + GICR_WAKER, 0);
	while (mmio_read32(APF_ARM64_GICR_GPA + GICR_WAKER) & (1u << 2))
		;
	mmio_write32(APF_ARM64_GICR_GPA + GICR_IGROUPR0, ~0u); /* all group 1 */
	SYSREG_WRITE(S3_0_C12_C12_5, 1); /* ICC_SRE_EL1.SRE: system registers */
	isb();
	SYSREG_WRITE(S3_0_C4_C6_0, 0xff); /* ICC_PMR_EL1: every priority */
	SYSREG_WRITE(S3_0_C12_C12_7, 1);  /* ICC_IGRPEN1_EL1 */
	isb();
}

void gic_enable_ppi(unsigned intid)
{
	KASSERT(intid >= 16 && intid < 32);
	mmio_write32(APF_ARM64_GICR_GPA + GICR_ISENABLER0, 1u << intid);
}

void gic_enable_spi_edge(unsigned intid)
{
	uint64_t d = APF_ARM64_GICD_GPA;

	KASSERT(intid >= 32 && intid < 1020);
	mmio_write32(d + GICD_IGROUPR(intid), mmio_read32(d + GICD_IGROUPR(intid)) | 1u << intid % 32);
	mmio_write32(d + GICD_ICFGR(intid),
		     mmio_read32(d + GICD_ICFGR(intid)) | 2u << (intid % 16 * 2)); /* edge */
	/* To this CPU: its affinity (MPIDR_EL1's Aff fields). */
	uint64_t mpidr = SYSREG_READ(mpidr_el1);
	*(volatile uint64_t *)(d + GICD_IROUTER(intid)) = (mpidr & 0xffffffull) | (mpidr >> 32 & 0xff) << 32;
	mmio_write32(d + GICD_ISENABLER(intid), 1u << intid % 32);
}

static uint64_t period; /* counter ticks per scheduler tick */

void timer_start(unsigned hz)
{
	period = SYSREG_READ(cntfrq_el0) / hz;
	SYSREG_WRITE(cntv_cval_el0, arch_cycles() + period);
	SYSREG_WRITE(cntv_ctl_el0, 1); /* ENABLE, interrupt not masked */
	isb();
	gic_enable_ppi(APF_ARM64_PPI_VTIMER);
}

void timer_rearm(void)
{
	uint64_t next = SYSREG_READ(cntv_cval_el0) + period, now = arch_cycles();
	if (next <= now) /* ticks missed while the vCPU was out: no burst */
		next = now + period;
	SYSREG_WRITE(cntv_cval_el0, next);
	isb();
}
