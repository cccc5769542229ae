#include "apf_arm64.h"

#include "apf.h"
#include "gic.h"
#include "kernel.h"
#include "sched.h"

static volatile struct apf_arm64_area *area;
static uint64_t pc_mismatches; /* a not-present for another instruction */

/* An SMCCC fast call through HVC: w0 = function, w1-w4 arguments;
 * returns x0 (x1, x2 in r1, r2 when asked). */
static int64_t smccc(uint32_t fn, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
		     uint64_t *r1, uint64_t *r2)
{
	register uint64_t x0 __asm__("x0") = fn;
	register uint64_t x1 __asm__("x1") = a1;
	register uint64_t x2 __asm__("x2") = a2;
	register uint64_t x3 __asm__("x3") = a3;
	register uint64_t x4 __asm__("x4") = a4;
	__asm__ volatile("hvc #0" : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3), "+r"(x4)::"memory");
	if (r1)
		*r1 = x1;
	if (r2)
		*r2 = x2;
	return (int64_t)x0;
}

/* The smallest alignment that keeps the area out of every cache
 * writeback granule the guest's own data uses: CTR_EL0.CWG (log2 of
 * words; 0 means not reported: the architectural maximum, 2 KiB). */
static uint64_t writeback_granule(void)
{
	uint64_t cwg = SYSREG_READ(ctr_el0) >> 24 & 0xf;
	return cwg ? 4ull << cwg : 2048;
}

/* Command line "apf-register-checks": the host must refuse every
 * malformed registration (a trust boundary) and unknown functions of its
 * range; the guest asserts it, then registers properly. */
static void register_checks(uint64_t good)
{
	static const struct { uint64_t gpa_add, intid, flags; } bad[] = {
		{ 8, APF_INTID, 0 },           /* area not 64-byte aligned */
		{ 0, 27, 0 },                  /* a PPI (the timer's) */
		{ 0, 20, 0 },                  /* any PPI: not an edge SPI */
		{ 0, 1020, 0 },                /* not an SPI the VM has */
		{ 0, APF_INTID, 1u << 5 },     /* unknown flag */
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t gpa = good + bad[i].gpa_add;
		KASSERT(smccc(APF_SMCCC_REGISTER, (uint32_t)gpa, gpa >> 32, bad[i].intid, bad[i].flags,
			      0, 0) == APF_SMCCC_INVALID);
	}
	/* The area in the lazy region (the host would block writing it), and
	 * outside guest memory. */
	KASSERT(smccc(APF_SMCCC_REGISTER, (uint32_t)boot_info->lazy_base, boot_info->lazy_base >> 32,
		      APF_INTID, 0, 0, 0) == APF_SMCCC_INVALID);
	KASSERT(smccc(APF_SMCCC_REGISTER, 0, 0x100, APF_INTID, 0, 0, 0) == APF_SMCCC_INVALID);
	KASSERT(smccc(APF_SMCCC_FN(APF_SMCCC_FN_BASE + APF_SMCCC_NR_FUNCTIONS), 0, 0, 0, 0, 0, 0) ==
		APF_SMCCC_NOT_SUPPORTED);
	kprintf("apf: the host refused every malformed registration\n");
}

void apf_init(void)
{
	uint64_t version = 0;

	apf_start();
	if (cmdline_has("no-apf"))
		return;
	/* A hypervisor without the service answers NOT_SUPPORTED (-1). */
	if ((uint32_t)smccc(APF_SMCCC_INFO, 0, 0, 0, 0, &version, 0) != APF_ARM64_MAGIC ||
	    (uint32_t)version != APF_ARM64_VERSION)
		return;
	uint64_t granule = writeback_granule();
	uint64_t size = granule > sizeof(*area) ? granule : sizeof(*area);
	area = kalloc(size); /* page aligned, so aligned to any granule */
	KASSERT((uint64_t)area % granule == 0 && (uint64_t)area % APF_ARM64_AREA_ALIGN == 0);
	gic_enable_spi_edge(APF_INTID);
	uint64_t gpa = (uint64_t)area;
	if (cmdline_has("apf-register-checks"))
		register_checks(gpa);
	int64_t rc = smccc(APF_SMCCC_REGISTER, (uint32_t)gpa, gpa >> 32, APF_INTID, 0, 0, 0);
	if (rc != APF_SMCCC_SUCCESS) {
		kprintf("apf: the host refused registration (%ld)\n", (long)rc);
		return;
	}
	apf_stats.enabled = 1;
}

int apf_interrupt(uint64_t elr, int from_el0)
{
	if (!area)
		return 0;
	uint32_t ready = area->ready_token;
	uint32_t reason = area->reason;
	if (!ready && !reason)
		return 0;
	uint64_t t0 = apf_trace ? arch_cycles() : 0;
	uint32_t token = 0;
	struct task *woken = 0;

	if (ready)
		area->ready_token = 0; /* the host may send the next one */
	if (reason) {
		/* A not-present is for the instruction this IRQ interrupted,
		 * which the host recorded: anything else is not ours to park
		 * on (the task then simply refaults, synchronously). */
		token = area->token;
		uint64_t pc = area->pc;
		area->reason = 0;
		if (reason != APF_REASON_PAGE_NOT_PRESENT || pc != elr) {
			pc_mismatches++;
			token = 0;
		}
	}
	if (ready)
		woken = apf_page_ready(ready);
	if (token) {
		if (woken)
			rq_push(&cpu0.rq, woken); /* it runs after the parked task's turn */
		apf_wait_for_page(token, from_el0, t0);
		return 1;
	}
	if (ready)
		apf_run_woken(woken);
	return 1;
}

void apf_shutdown(void)
{
	if (apf_stats.enabled)
		smccc(APF_SMCCC_UNREGISTER, 0, 0, 0, 0, 0, 0);
	if (pc_mismatches)
		kprintf("apf: %lu not-present events named another instruction\n",
			(unsigned long)pc_mismatches);
	apf_finish();
}
