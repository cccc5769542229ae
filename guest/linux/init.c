/*
 * The built-in initramfs's /init: the first process of an unmodified Linux
 * guest booted by `apfvm run --kernel` without `--initrd`.  It finds
 * apfvm's boot info (APF_LINUX_INFO_ARG on the command line), runs the
 * workloads as processes (tasks.c), and reports their results and what
 * Linux counted of async PF through apfvm's hypercalls, then reports done,
 * which ends the run.  Without apfvm's boot info it says so and restarts
 * the machine (Linux's `reboot=k` resets through the keyboard controller).
 * A static program: the initramfs needs no libraries.
 *
 * Command line options it reads (Linux passes them over):
 *   apfvm.info=GPA        where apfvm's boot info is (apfvm adds it)
 *   apfvm.kernel-reads=N  the kernel first reads N lazy pages (kernel_reads)
 *   apfvm.sh="COMMAND"    run by busybox's sh after the tasks (e.g. "grep HYP
 *                         /proc/interrupts"), when apfvm added busybox
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "apfvm_dev.h"
#include "counters.h"
#include "tasks.h"

/* The kernel command line, read once from /proc/cmdline. */
static char cmdline[4096];

static void cmdline_load(void)
{
	FILE *f = fopen("/proc/cmdline", "re");

	if (f) {
		if (!fgets(cmdline, sizeof(cmdline), f))
			cmdline[0] = '\0';
		fclose(f);
	}
}

/* The value of the last option `name` ("apfvm.sh=") copied into out
 * (double quotes allow spaces, as in Linux's own parser); false if it is
 * absent or empty. */
static bool cmdline_value(const char *name, char *out, size_t size)
{
	const char *v = NULL;

	for (const char *p = cmdline; (p = strstr(p, name)); p++)
		if (p == cmdline || p[-1] == ' ')
			v = p + strlen(name);
	if (!v)
		return false;
	size_t n = *v == '"' ? strcspn(++v, "\"") : strcspn(v, " \n");
	snprintf(out, size, "%.*s", (int)n, v);
	return n > 0;
}

static uint64_t cmdline_number(const char *name)
{
	char v[32];
	return cmdline_value(name, v, sizeof(v)) ? strtoull(v, NULL, 0) : 0;
}

/* apfvm.sh="COMMAND": runs it with the initramfs's shell (busybox), after
 * the tasks, its output on the console. */
static void run_shell(void)
{
	char cmd[1024];

	if (!cmdline_value("apfvm.sh=", cmd, sizeof(cmd)))
		return;
	if (access("/bin/sh", X_OK)) {
		printf("apfvm-init: apfvm.sh: no shell in this initramfs (apfvm found no static "
		       "busybox to add)\n");
		return;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		perror("apfvm-init: apfvm.sh");
}

/* apfvm.kernel-reads=N (struct apf_linux_stats): the kernel copies each
 * page out of the lazy region into a pipe; /init checks what it reads. */
static void kernel_reads(const struct apf_boot_info *bi, const void *lazy, uint64_t n,
			 struct apf_linux_stats *ls)
{
	static uint64_t page[APF_PAGE_SIZE / 8];
	int fds[2];

	if (n > bi->lazy_size / APF_PAGE_SIZE)
		n = bi->lazy_size / APF_PAGE_SIZE;
	if (!n || pipe(fds)) {
		if (n)
			perror("apfvm-init: pipe");
		return;
	}
	for (uint64_t i = 0; i < n; i++) {
		const char *src = (const char *)lazy + i * APF_PAGE_SIZE;
		if (write(fds[1], src, APF_PAGE_SIZE) != APF_PAGE_SIZE ||
		    read(fds[0], page, APF_PAGE_SIZE) != APF_PAGE_SIZE) {
			perror("apfvm-init: kernel reads through a pipe");
			break;
		}
		for (uint64_t j = 0; j < APF_PAGE_SIZE / 8; j++) {
			uint64_t word = i * (APF_PAGE_SIZE / 8) + j;
			ls->kernel_read_mismatches +=
				page[j] != apf_expected_word(bi->pattern, bi->seed, word);
		}
		ls->kernel_reads++;
	}
	close(fds[0]);
	close(fds[1]);
}

/* Everything printed has left through the UART: the run may end now. */
static void drain_console(void)
{
	fflush(stdout);
	fflush(stderr);
	tcdrain(STDOUT_FILENO);
}

static void restart(void)
{
	drain_console();
	sync();
	reboot(RB_AUTOBOOT);
	perror("apfvm-init: reboot");
	exit(1); /* the kernel panics when init exits; panic=-1 resets */
}

/* Reports each task's result; returns how many tasks did not report. */
static unsigned report_tasks(struct apfvm_dev *d, const struct task_table *t,
			     struct apf_linux_stats *ls)
{
	unsigned failed = 0;

	for (unsigned i = 0; i < t->ntasks; i++) {
		const struct task_slot *s = &t->slot[i];
		const char *kind = s->args.kind == APF_TASK_COMPUTE ? "compute" : "scan";
		if (s->args.kind != APF_TASK_COMPUTE)
			ls->task_switches += (uint64_t)s->voluntary_switches;
		if (!s->reported) {
			if (WIFSIGNALED(s->wait_status))
				printf("apfvm-init: task %u (%s) killed by signal %d (%s)\n",
				       s->args.id, kind, WTERMSIG(s->wait_status),
				       strsignal(WTERMSIG(s->wait_status)));
			else
				printf("apfvm-init: task %u (%s) ended without a result\n", s->args.id,
				       kind);
			failed++;
			continue;
		}
		int rc = apfvm_hcall_with(d, APF_HC_RESULT, &s->result, sizeof(s->result));
		if (rc) {
			printf("apfvm-init: reporting task %u: %s\n", s->args.id, strerror(-rc));
			failed++;
		}
	}
	return failed;
}

int main(void)
{
	struct apf_linux_stats ls = { 0 };
	struct timespec ts;
	struct utsname u;
	struct apfvm_dev dev;
	const void *lazy = NULL;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	ls.boot_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (mount("proc", "/proc", "proc", 0, NULL) || mount("sysfs", "/sys", "sysfs", 0, NULL))
		perror("apfvm-init: mounting /proc and /sys");
	printf("apfvm-init: pid %d on Linux %s, %.2f s after boot\n", (int)getpid(),
	       uname(&u) == 0 ? u.release : "?", (double)ls.boot_ns / 1e9);

	cmdline_load();
	uint64_t info_gpa = cmdline_number(APF_LINUX_INFO_ARG);
	if (!info_gpa) {
		printf("apfvm-init: no %s on the command line: nothing to run\n", APF_LINUX_INFO_ARG);
		restart();
	}
	if (apfvm_dev_open(&dev, info_gpa))
		restart(); /* apfvm reports that the guest restarted unfinished */
	const struct apf_boot_info *bi = dev.info;
	if (bi->lazy_size && !(lazy = apfvm_map_lazy(&dev)))
		restart();
	printf("apfvm-init: %u tasks, lazy region %" PRIu64 " KiB at 0x%" PRIx64 " mapped at %p\n",
	       bi->ntasks, bi->lazy_size >> 10, bi->lazy_base, lazy);
	drain_console();

	counters_start(&ls);
	if (lazy)
		kernel_reads(bi, lazy, cmdline_number("apfvm.kernel-reads="), &ls);
	struct task_table *t = tasks_run(bi, lazy);
	if (!t)
		restart();
	counters_read(&ls);
	run_shell();
	unsigned failed = report_tasks(&dev, t, &ls);
	apfvm_hcall_with(&dev, APF_HC_LINUX_STATS, &ls, sizeof(ls));
	drain_console();
	apfvm_hcall(&dev, APF_HC_DONE, failed, 0); /* ends the run */
	restart();
}
