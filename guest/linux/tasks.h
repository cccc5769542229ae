/*
 * tasks: the workloads as Linux processes.  /init forks one process per
 * task; they share one anonymous MAP_SHARED table holding the published
 * state (struct user_shared), each task's args and a slot for its result,
 * which task_finish() (task_env.c) fills before the process exits.
 */
#ifndef GUEST_LINUX_TASKS_H
#define GUEST_LINUX_TASKS_H

#include <stdint.h>
#include <sys/types.h>

#include "../workloads/workloads.h"
#include "apfvm/abi.h"
#include "apfvm_dev.h"

struct task_slot {
	struct task_args args;          /* first: task_finish finds its slot */
	struct apf_task_result result;
	volatile int reported;          /* result is complete */
	pid_t pid;
	int wait_status;                /* from wait4 */
	long voluntary_switches;        /* ru_nvcsw */
};

struct task_table {
	struct user_shared shared;
	unsigned ntasks;
	struct task_slot slot[APF_MAX_TASKS];
};

/* Runs every task the boot info names, as processes, and waits for all.
 * lazy: the lazy region's mapping (NULL if there is none).  Returns the
 * table (shared mapping), or NULL with the reason printed. */
struct task_table *tasks_run(const struct apf_boot_info *bi, const void *lazy);

#endif
