#include "guest_report.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

void machine_fail(struct machine *m, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&m->report_lock);
	if (!m->report.failed) {
		m->report.failed = true;
		va_start(ap, fmt);
		vsnprintf(m->report.failure, sizeof(m->report.failure), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&m->report_lock);
	machine_stop(m);
}

void machine_fail_vcpu(struct machine *m, struct vcpu *v, const char *what)
{
	char regs[256];

	arch_describe_regs(v, regs, sizeof(regs));
	machine_fail(m, "vCPU %u: %s: %s", v->id, what, regs);
}

void machine_stop(struct machine *m)
{
	atomic_store(&m->stop, true);
	for (unsigned i = 0; i < m->vm.nvcpus; i++)
		vcpu_kick(&m->vm.vcpus[i]);
	pthread_mutex_lock(&m->report_lock);
	pthread_cond_broadcast(&m->stopped);
	pthread_cond_broadcast(&m->page_arrived);
	pthread_mutex_unlock(&m->report_lock);
}

bool machine_failed(struct machine *m)
{
	pthread_mutex_lock(&m->report_lock);
	bool failed = m->report.failed;
	pthread_mutex_unlock(&m->report_lock);
	return failed;
}

/* A scan reads its share's pages of the working set (apf_scan_select):
 * their number is known here, by the same function.  Only for a booted
 * guest whose workload this configuration describes (a restored one's
 * comes from its snapshot). */
static int check_scan_pages(struct machine *m, const struct apf_task_result *r)
{
	const struct apfvm_config *c = m->cfg;
	uint64_t first, n;

	if (!c || c->restore_path || !m->guest.boot_info_gpa || r->kind != APF_TASK_SCAN ||
	    r->id == 0 || r->id > c->ntasks || c->tasks[r->id - 1].kind != APF_TASK_SCAN)
		return 0;
	const struct apf_task_spec *ts = &c->tasks[r->id - 1];
	struct apf_scan_set set = apf_scan_set(c->order_seed, c->scan_fraction_ppm,
					       c->scan_drift_ppm);
	apf_scan_share(c->lazy_size / APF_PAGE_SIZE, ts->index, ts->count, &first, &n);
	uint64_t want = apf_scan_count(&set, first, n);
	if (r->pages == want)
		return 0;
	machine_fail(m, "scan task %u read %llu pages; its share (pages %llu..%llu of the lazy "
		     "region) has %llu in the working set", r->id, (unsigned long long)r->pages,
		     (unsigned long long)first, (unsigned long long)(first + n - 1),
		     (unsigned long long)want);
	return -EINVAL;
}

int report_result(struct machine *m, const struct apf_task_result *r)
{
	struct guest_report *rep = &m->report;
	int rc = check_scan_pages(m, r);

	if (rc)
		return rc;
	pthread_mutex_lock(&m->report_lock);
	for (unsigned i = 0; i < rep->nresults; i++)
		if (rep->results[i].id == r->id)
			rc = -EEXIST; /* one result per task */
	if (!rc && rep->nresults == APF_MAX_TASKS)
		rc = -ENOSPC;
	if (!rc)
		rep->results[rep->nresults++] = *r;
	pthread_mutex_unlock(&m->report_lock);
	return rc;
}

void report_counters(struct machine *m, void *dst, const void *src, size_t len, bool *reported)
{
	pthread_mutex_lock(&m->report_lock);
	memcpy(dst, src, len);
	*reported = true;
	pthread_mutex_unlock(&m->report_lock);
}

void report_done(struct machine *m, uint64_t status)
{
	pthread_mutex_lock(&m->report_lock);
	m->report.done = true;
	m->report.status = status;
	pthread_mutex_unlock(&m->report_lock);
	machine_stop(m);
}

void report_pages_point(void *machine)
{
	struct machine *m = machine;

	pthread_mutex_lock(&m->report_lock);
	m->pages_point = true;
	pthread_cond_broadcast(&m->stopped);
	pthread_mutex_unlock(&m->report_lock);
}
