#include "perm.h"
#include "workloads.h"

#include "apfvm/abi.h"

#define WORDS_PER_PAGE (APF_PAGE_SIZE / 8)

void scan_main(const struct task_args *a)
{
	uint64_t npages = a->lazy_size / APF_PAGE_SIZE, first, mine, pages = 0;
	uint64_t start = task_cycles(), mismatches = 0, first_bad = ~0ull, stall = 0;
	struct apf_trace *trace = a->trace;
	struct apf_scan_set set = apf_scan_set(a->order_seed, a->scan_fraction_ppm,
					       a->scan_drift_ppm);
	struct perm perm;

	/* This task's share: pages [first, first + mine), of which it reads
	 * the working set's (all of them at fraction 1). */
	apf_scan_share(npages, a->index, a->count, &first, &mine);
	perm_init(&perm, mine, a->order_seed * 0x100000001b3ull + a->index);
	for (uint64_t i = 0; i < mine; i++) {
		uint64_t page = first + (a->scan_order == APF_SCAN_RANDOM ? perm_at(&perm, i) : i);
		if (!apf_scan_select(&set, page))
			continue;
		pages++;
		const volatile uint64_t *w =
			(const volatile uint64_t *)(a->lazy_base + page * APF_PAGE_SIZE);
		uint64_t base = page * WORDS_PER_PAGE;

		/* The first touch takes the fault, if any: time it. */
		uint64_t t0 = task_cycles();
		if (trace)
			trace->access_tsc = t0;
		(void)w[0];
		uint64_t t1 = task_cycles();
		stall += t1 - t0;
		if (trace && trace->rdy_switch_tsc > t0) { /* woken by page-ready */
			trace->resume += t1 - trace->rdy_switch_tsc;
			trace->resume_count++;
		}

		for (uint64_t j = 0; j < WORDS_PER_PAGE; j++) {
			if (w[j] != apf_expected_word(a->pattern, a->seed, base + j)) {
				if (!mismatches)
					first_bad = base + j;
				mismatches++;
			}
		}
	}
	struct apf_task_result r = {
		.kind = APF_TASK_SCAN, .id = a->id, .runtime_tsc = task_cycles() - start,
		.pages = pages, .mismatches = mismatches, .first_bad = first_bad, .stall_tsc = stall,
	};
	task_finish(a, &r);
}
