/* The workloads' environment in the Linux guest: a task is a process
 * forked by /init; it leaves its result in its slot of the shared task
 * table, counts itself out of noncompute_live, and exits. */
#include <stddef.h>
#include <unistd.h>

#include "tasks.h"

void task_finish(const struct task_args *a, const struct apf_task_result *r)
{
	struct task_slot *slot = (struct task_slot *)((char *)a - offsetof(struct task_slot, args));

	slot->result = *r;
	__atomic_store_n(&slot->reported, 1, __ATOMIC_RELEASE);
	if (a->kind != APF_TASK_COMPUTE)
		__atomic_fetch_sub(&((struct user_shared *)a->shared)->noncompute_live, 1,
				   __ATOMIC_RELEASE);
	_exit(0);
}
