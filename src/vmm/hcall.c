#include "hcall.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "arch/arch.h"
#include "guest_report.h"

/* Appends guest console bytes to the host console with every byte that
 * is not printable ASCII, newline or tab escaped as \xNN: guest text must
 * not drive the user's terminal (escape sequences, bells, ...). */
static void console_echo(FILE *out, const unsigned char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = text[i];
		if ((c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t')
			fputc(c, out);
		else
			fprintf(out, "\\x%02x", c);
	}
	fflush(out);
}

static int console_write(struct machine *m, const struct apf_hcall *h)
{
	unsigned char text[4096];

	if (h->a1 > sizeof(text))
		return -E2BIG;
	if (gmem_read(&m->gm, h->a0, text, h->a1))
		return -EFAULT;
	if (m->console)
		console_echo(m->console, text, h->a1);
	return 0;
}

static int task_result(struct machine *m, const struct apf_hcall *h)
{
	struct apf_task_result r;

	if (gmem_read(&m->gm, h->a0, &r, sizeof(r)))
		return -EFAULT;
	if ((r.kind != APF_TASK_COMPUTE && r.kind != APF_TASK_SCAN) || r.id == 0 ||
	    r.id > APF_MAX_TASKS)
		return -EINVAL;
	return report_result(m, &r);
}

/* Copies a guest's counters block (len bytes at a0) into the report at
 * dst and marks it reported; read into host memory first, so a guest
 * rewriting its block meanwhile cannot tear what the report holds. */
_Static_assert(sizeof(struct apf_guest_stats) <= 128 && sizeof(struct apf_linux_stats) <= 128,
	       "guest_counters' copy holds every counters block");

static int guest_counters(struct machine *m, const struct apf_hcall *h, void *dst, size_t len,
			  bool *reported)
{
	unsigned char copy[128];

	if (len > sizeof(copy) || gmem_read(&m->gm, h->a0, copy, len))
		return -EFAULT;
	report_counters(m, dst, copy, len, reported);
	return 0;
}

static int guest_assert(struct machine *m, const struct apf_hcall *h)
{
	char file[128], expr[256];

	if (gmem_read_str(&m->gm, h->a0, file, sizeof(file)) < 0)
		strcpy(file, "?");
	if (gmem_read_str(&m->gm, h->a2, expr, sizeof(expr)) < 0)
		strcpy(expr, "?");
	machine_fail(m, "guest assertion failed at %s:%llu: %s", file, (unsigned long long)h->a1,
		     expr);
	return 0;
}

static int guest_fatal(struct machine *m, const struct apf_hcall *h)
{
	struct apf_fatal f;

	if (gmem_read(&m->gm, h->a0, &f, sizeof(f))) {
		machine_fail(m, "guest reported a fatal exception with an unreadable report");
		return -EFAULT;
	}
	char what[512];
	arch_describe_fatal(&f, what, sizeof(what));
	machine_fail(m, "guest exception %s task=%llu", what, (unsigned long long)f.task_id);
	return 0;
}

void hcall_handle(struct machine *m, struct vcpu *v, gpa_t gpa)
{
	struct apf_hcall copy, *h = &copy;
	volatile uint32_t *guest_ret;
	int rc;

	(void)v;
	/* The block is read once into host memory; only the copy is checked
	 * and used (another vCPU may rewrite the guest's block meanwhile). */
	if (gpa % 8 || gmem_read(&m->gm, gpa, &copy, sizeof(copy))) {
		machine_fail(m, "guest issued a hypercall with an invalid block address 0x%llx",
			     (unsigned long long)gpa);
		return;
	}
	guest_ret = (volatile uint32_t *)((char *)gmem_ptr(&m->gm, gpa, sizeof(copy)) +
					  offsetof(struct apf_hcall, ret));
	switch (h->nr) {
	case APF_HC_CONSOLE:
		rc = console_write(m, h);
		break;
	case APF_HC_RESULT:
		rc = task_result(m, h);
		break;
	case APF_HC_APF_STATS:
		rc = guest_counters(m, h, &m->report.apf, sizeof(m->report.apf),
				     &m->report.apf_reported);
		break;
	case APF_HC_LINUX_STATS:
		rc = guest_counters(m, h, &m->report.linux_stats, sizeof(m->report.linux_stats),
				     &m->report.linux_reported);
		break;
	case APF_HC_ASSERT:
		rc = guest_assert(m, h);
		break;
	case APF_HC_FATAL:
		rc = guest_fatal(m, h);
		break;
	case APF_HC_DONE:
		report_done(m, h->a0);
		rc = 0;
		break;
	default:
		rc = -ENOSYS;
		break;
	}
	*guest_ret = (uint32_t)rc;
}
