#include "tasks.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *kind_name(uint32_t kind)
{
	return kind == APF_TASK_COMPUTE ? "compute" : "scan";
}

static void fill_args(struct task_table *t, const struct apf_boot_info *bi, const void *lazy)
{
	t->shared.tsc_khz = bi->tsc_khz;
	t->ntasks = bi->ntasks;
	for (uint32_t i = 0; i < bi->ntasks; i++) {
		struct task_args *a = &t->slot[i].args;
		const struct apf_task_spec *ts = &bi->tasks[i];
		a->kind = ts->kind;
		a->id = i + 1; /* as the reference guest numbers them */
		a->index = ts->index;
		a->count = ts->count;
		a->lazy_base = (uint64_t)(uintptr_t)lazy;
		a->lazy_size = lazy ? bi->lazy_size : 0;
		a->pattern = bi->pattern;
		a->scan_order = bi->scan_order;
		a->seed = bi->seed;
		a->order_seed = bi->order_seed;
		a->scan_fraction_ppm = bi->scan_fraction_ppm;
		a->scan_drift_ppm = bi->scan_drift_ppm;
		a->duration_tsc = bi->duration_us * bi->tsc_khz / 1000;
		a->shared = &t->shared;
		a->trace = NULL;
		a->progress = NULL;
		if (ts->kind != APF_TASK_COMPUTE)
			t->shared.noncompute_total++;
	}
	t->shared.noncompute_live = t->shared.noncompute_total;
}

static void task_process(struct task_slot *s)
{
	prctl(PR_SET_NAME, kind_name(s->args.kind));
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (s->args.kind == APF_TASK_COMPUTE)
		compute_main(&s->args);
	scan_main(&s->args);
}

struct task_table *tasks_run(const struct apf_boot_info *bi, const void *lazy)
{
	struct task_table *t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	unsigned left = 0;

	if (t == MAP_FAILED) {
		perror("apfvm-init: task table");
		return NULL;
	}
	if (bi->ntasks > APF_MAX_TASKS) {
		fprintf(stderr, "apfvm-init: %u tasks, at most %d\n", bi->ntasks, APF_MAX_TASKS);
		return NULL;
	}
	if (!apf_scan_params_ok(bi->scan_fraction_ppm, bi->scan_drift_ppm)) {
		fprintf(stderr, "apfvm-init: scan fraction %u and drift %u (millionths) name no "
			"working set\n", bi->scan_fraction_ppm, bi->scan_drift_ppm);
		return NULL;
	}
	fill_args(t, bi, lazy);
	for (unsigned i = 0; i < t->ntasks; i++) {
		struct task_slot *s = &t->slot[i];
		pid_t pid = fork(); /* the child must not write its slot's pid */
		if (pid == 0)
			task_process(s); /* never returns */
		if (pid < 0) { /* reported as ended without a result */
			perror("apfvm-init: fork");
			if (s->args.kind != APF_TASK_COMPUTE)
				__atomic_fetch_sub(&t->shared.noncompute_live, 1, __ATOMIC_RELEASE);
			continue;
		}
		s->pid = pid;
		left++;
	}
	while (left) {
		struct rusage ru;
		int status;
		pid_t pid = wait4(-1, &status, 0, &ru);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			perror("apfvm-init: wait4");
			break;
		}
		for (unsigned i = 0; i < t->ntasks; i++)
			if (t->slot[i].pid == pid) {
				t->slot[i].wait_status = status;
				t->slot[i].voluntary_switches = ru.ru_nvcsw;
				left--;
				/* A task that died unreported must not keep
				 * compute tasks waiting for it. */
				if (!t->slot[i].reported && t->slot[i].args.kind != APF_TASK_COMPUTE)
					__atomic_fetch_sub(&t->shared.noncompute_live, 1,
							   __ATOMIC_RELEASE);
			}
	}
	return t;
}
