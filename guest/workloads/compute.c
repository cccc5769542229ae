#include "workloads.h"

#include "apfvm/abi.h"

/* One work unit: a fixed amount of integer work (~1-2 us natively). */
static uint64_t work_unit(uint64_t x)
{
	for (int i = 0; i < 1024; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	return x;
}

void compute_main(const struct task_args *a)
{
	const struct user_shared *sh = a->shared;
	int alone = sh->noncompute_total == 0;
	uint64_t start = task_cycles(), deadline = start + a->duration_tsc;
	uint64_t x = 0x1234567 + a->id, work = 0, seen = 0;
	struct apf_trace *trace = a->trace;
	volatile uint64_t *slot = a->progress && a->id >= 1 && a->id <= APF_MAX_TASKS
					  ? &a->progress->work[a->id - 1] : 0;

	for (;;) {
		x = work_unit(x);
		work++;
		if (slot)
			*slot = work;
		if (trace && trace->np_switch_tsc != seen) {
			/* A task just parked on a fault and we got the CPU back. */
			seen = trace->np_switch_tsc;
			trace->np_resume += task_cycles() - seen;
			trace->np_resume_count++;
		}
		if (alone ? task_cycles() >= deadline : sh->noncompute_live == 0)
			break;
	}
	__asm__ volatile("" ::"r"(x)); /* keep the work */
	struct apf_task_result r = {
		.kind = APF_TASK_COMPUTE, .id = a->id, .runtime_tsc = task_cycles() - start,
		.work = work, .first_bad = ~0ull,
	};
	task_finish(a, &r);
}
