#include "counters.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#define TRACEFS "/sys/kernel/tracing"

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, text, strlen(text));
	int err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

void counters_start(struct apf_linux_stats *s)
{
	/* One write defines both probes: a plain open of kprobe_events
	 * clears the ones defined before. */
	static const char *const steps[][2] = {
		{ TRACEFS "/tracing_on", "0" }, /* count hits, record nothing */
		{ TRACEFS "/kprobe_events", "p:apfvm/wait kvm_async_pf_task_wait_schedule\n"
					    "p:apfvm/wake kvm_async_pf_task_wake\n" },
		{ TRACEFS "/events/apfvm/enable", "1" },
	};

	s->probed = 0;
	if (mount("tracefs", TRACEFS, "tracefs", 0, NULL) && errno != EBUSY) {
		fprintf(stderr, "apfvm-init: no kprobe counts: mounting tracefs: %s\n", strerror(errno));
		return;
	}
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		int rc = write_file(steps[i][0], steps[i][1]);
		if (rc) {
			fprintf(stderr, "apfvm-init: no kprobe counts: %s: %s\n", steps[i][0],
				strerror(-rc));
			return;
		}
	}
	s->probed = 1;
}

/* The count after `name` (first field) in a whitespace-separated file
 * line, summing the numeric fields up to max_fields.  0 if absent. */
static uint64_t sum_row(const char *path, const char *name, int max_fields)
{
	char line[1024];
	uint64_t sum = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *save, *tok = strtok_r(line, " \t\n", &save);
		if (!tok || strcmp(tok, name))
			continue;
		for (int i = 0; i < max_fields && (tok = strtok_r(NULL, " \t\n", &save)); i++) {
			char *end;
			unsigned long long v = strtoull(tok, &end, 10);
			if (*end)
				break; /* the row's description */
			sum += v;
		}
		break;
	}
	fclose(f);
	return sum;
}

void counters_read(struct apf_linux_stats *s)
{
	/* /proc/interrupts: "HYP:  <per-CPU counts>  Hypervisor callback interrupts" */
	s->hyp_interrupts = sum_row("/proc/interrupts", "HYP:", 4096);
	if (s->probed) {
		/* kprobe_profile: "  <event>  <hits>  <misses>" */
		s->task_waits = sum_row(TRACEFS "/kprobe_profile", "wait", 1);
		s->task_wakes = sum_row(TRACEFS "/kprobe_profile", "wake", 1);
	}
}
