/*
 * Reference guest kernel: boot.  Checks the boot information, has the
 * architecture set up its vectors and interrupt controller, starts one
 * task per workload entry and hands the CPU to the scheduler.  Entered
 * from the architecture's entry code with the boot info's address.
 */
#include "../user/uapi.h"
#include "../workloads/workloads.h"
#include "apf.h"
#include "kernel.h"
#include "sched.h"

const struct apf_boot_info *boot_info;
/* Whether `word` appears as a whole space-separated word of the command line. */
int cmdline_has(const char *word)
{
	const char *s = boot_info->cmdline;
	while (*s) {
		while (*s == ' ')
			s++;
		const char *w = word;
		while (*w && *s == *w) {
			s++;
			w++;
		}
		if (!*w && (*s == ' ' || !*s))
			return 1;
		while (*s && *s != ' ')
			s++;
	}
	return 0;
}

static uint64_t entry_of(uint32_t kind)
{
	return kind == APF_TASK_COMPUTE ? (uint64_t)compute_main : (uint64_t)scan_main;
}

/* Deliberate failures, so tests can check that every way a guest can die
 * reaches the user as a clear report (command line "crash=KIND"); the
 * architecture adds the ones that need its instructions. */
static void selftest_crash(void)
{
	if (cmdline_has("crash=assert"))
		KASSERT(boot_info == 0);
	if (cmdline_has("crash=hang"))
		arch_stop();
	arch_selftest_crash();
}

void kmain(const struct apf_boot_info *bi);
void kmain(const struct apf_boot_info *bi)
{
	struct task_args *args;

	boot_info = bi;
	if (bi->magic != APF_BOOT_MAGIC)
		kdone(0xbad);
	kalloc_init(bi->kfree_start, bi->kfree_end, bi->ufree_start, bi->ufree_end);
	arch_init();
	sched_init();
	selftest_crash();
	if (!cmdline_has("quiet"))
		kprintf("apfvm guest: %u tasks, lazy region %lu KiB at 0x%lx, tick %u Hz\n",
			bi->ntasks, bi->lazy_size >> 10, bi->lazy_base, bi->timer_hz);

	if (cmdline_has("probe-exits"))
		arch_probe_exits(bi->tsc_khz);

	user_shared = ualloc(sizeof(*user_shared));
	user_shared->tsc_khz = bi->tsc_khz;
	args = ualloc(sizeof(*args) * APF_MAX_TASKS);
	KASSERT(bi->ntasks >= 1 && bi->ntasks <= APF_MAX_TASKS);
	KASSERT(apf_scan_params_ok(bi->scan_fraction_ppm, bi->scan_drift_ppm));
	for (uint32_t i = 0; i < bi->ntasks; i++) {
		struct task_args *a = &args[i];
		const struct apf_task_spec *ts = &bi->tasks[i];
		KASSERT(ts->kind == APF_TASK_COMPUTE || ts->kind == APF_TASK_SCAN);
		a->kind = ts->kind;
		a->index = ts->index;
		a->count = ts->count;
		a->lazy_base = bi->lazy_base;
		a->lazy_size = bi->lazy_size;
		a->pattern = bi->pattern;
		a->scan_order = bi->scan_order;
		a->seed = bi->seed;
		a->order_seed = bi->order_seed;
		a->scan_fraction_ppm = bi->scan_fraction_ppm;
		a->scan_drift_ppm = bi->scan_drift_ppm;
		a->duration_tsc = bi->duration_us * bi->tsc_khz / 1000;
		a->shared = user_shared;
		a->trace = (struct apf_trace *)bi->trace_gpa;
		a->progress = (struct apf_progress *)bi->progress_gpa;
		if (ts->kind != APF_TASK_COMPUTE)
			user_shared->noncompute_total++;
		/* crash=user: the first task jumps into supervisor-only memory. */
		uint64_t entry = i == 0 && cmdline_has("crash=user") ? (uint64_t)kmain
								     : entry_of(ts->kind);
		a->id = sched_create_user(entry, (uint64_t)a, ts->kind)->id;
	}
	user_shared->noncompute_live = user_shared->noncompute_total;
	apf_init();
	/* Half a tick; `no-min-slice`: every tick preempts (for comparison). */
	if (!cmdline_has("no-min-slice"))
		cpu0.min_slice_tsc = bi->tsc_khz * 1000 / bi->timer_hz / 2;
	arch_timer_start(bi->timer_hz);
	sched_start();
}
