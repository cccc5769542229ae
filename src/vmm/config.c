#include "config.h"

#include <errno.h>
#include <string.h>

#include "arch/arch.h"
#include "pager/pager.h"
#include "source/delay.h"

void apfvm_config_defaults(struct apfvm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->guest_elf = apfvm_builtin_guest;
	c->guest_elf_len = apfvm_builtin_guest_len;
	c->guest_name = "built-in guest";
	c->mem_size = 64ull << 20;
	c->source = "zero";
	c->apf = APFVM_APF_OFF;
	c->ntasks = 1;
	c->tasks[0] = (struct apf_task_spec){ .kind = APF_TASK_COMPUTE, .index = 0, .count = 1 };
	c->duration_ns = 2000000000ull;
	c->scan_fraction_ppm = APF_SCAN_PPM;
	c->timer_hz = 100;
	c->max_inflight = 64;
	c->vcpu_cpu = c->pager_cpu = -1;
}

const char *apfvm_mode_name(enum apfvm_apf_mode m)
{
	switch (m) {
	case APFVM_APF_OFF: return "off";
	case APFVM_APF_KERNEL: return "kernel";
	case APFVM_APF_USER: return "user";
	}
	return "?";
}

bool apfvm_mode_exists(enum apfvm_apf_mode m)
{
	struct vm_options opt;
	struct apf_err e;

	memset(&opt, 0, sizeof(opt));
	return arch_mode_options(&opt, m, &e) == 0;
}

/* The command line's bound is the delay source's: one number, checked
 * here before anything is built. */
_Static_assert(APFVM_MAX_LATENCY_NS == SOURCE_DELAY_MAX_NS, "latency bounds differ");

static int check_snapshot_config(const struct apfvm_config *c, struct apf_err *e)
{
	if (!c->snapshot_path) {
		if (c->snapshot_at_ns || c->snapshot_after_pages)
			return apf_fail(e, -EINVAL, "a snapshot's time or page count needs its path (--snapshot)");
		return 0;
	}
	if (c->restore_path)
		return apf_fail(e, -EINVAL, "--snapshot with restore: not yet (a restored run cannot "
				"be snapshotted again)");
	if (!c->snapshot_at_ns == !c->snapshot_after_pages)
		return apf_fail(e, -EINVAL, "--snapshot needs one of --snapshot-at and --snapshot-after-pages");
	if (c->snapshot_at_ns > APFVM_MAX_DURATION_NS)
		return apf_fail(e, -EINVAL, "--snapshot-at must be at most 7 days");
	if (!c->snapshot_after_pages)
		return 0;
	if (!c->lazy_size)
		return apf_fail(e, -EINVAL, "--snapshot-after-pages counts pages of the lazy region: "
				"it needs --lazy");
	if (c->snapshot_after_pages > c->lazy_size / APF_PAGE_SIZE)
		return apf_fail(e, -EINVAL, "--snapshot-after-pages %llu: the lazy region has %llu pages "
				"(--lazy)", (unsigned long long)c->snapshot_after_pages,
				(unsigned long long)(c->lazy_size / APF_PAGE_SIZE));
	if (c->populate)
		return apf_fail(e, -EINVAL, "--snapshot-after-pages counts pages fetched on fault: "
				"--populate fetches none");
	return 0;
}

/* Working sets and bulk fetches: what can go with what. */
static int check_fewer_faults_config(const struct apfvm_config *c, struct apf_err *e)
{
	bool ws = c->record_ws_path || c->prefetch_ws_path;

	if (ws && !c->restore_path && !c->lazy_size)
		return apf_fail(e, -EINVAL, "a working set (--record-ws, --prefetch) is a lazy region's "
				"pages: it needs --lazy, or a restore");
	if (c->record_ws_path && (c->prefetch_ws_path || c->populate || c->populate_background))
		return apf_fail(e, -EINVAL, "--record-ws records the pages the guest faults on: with %s "
				"they are fetched before it touches them, and the recording would "
				"miss them", c->prefetch_ws_path ? "--prefetch" : "--populate");
	if (c->populate && (c->prefetch_ws_path || c->populate_background))
		return apf_fail(e, -EINVAL, "--populate installs all memory before the guest starts: "
				"nothing is left to %s", c->prefetch_ws_path ? "prefetch" : "populate in the background");
	unsigned bulk = c->bulk_inflight ? c->bulk_inflight : PAGER_BULK_INFLIGHT_DEFAULT;
	if ((c->prefetch_ws_path || c->populate_background || c->bulk_inflight) &&
	    c->max_inflight + bulk > SOURCE_QUEUE_MAX)
		return apf_fail(e, -EINVAL, "--inflight %u with %u bulk fetches (--bulk-inflight, "
				"default %d): at most %d fetches in flight in all", c->max_inflight,
				bulk, PAGER_BULK_INFLIGHT_DEFAULT, SOURCE_QUEUE_MAX);
	return 0;
}

/* The scan's working set (apf_scan_params_ok). */
static int check_scan_config(const struct apfvm_config *c, struct apf_err *e)
{
	if (!c->scan_fraction_ppm || c->scan_fraction_ppm > APF_SCAN_PPM ||
	    c->scan_drift_ppm > APF_SCAN_PPM)
		return apf_fail(e, -EINVAL, "the scan fraction must be in (0, 1] and its drift in "
				"[0, 1] (here %u and %u millionths)", c->scan_fraction_ppm,
				c->scan_drift_ppm);
	if (!apf_scan_params_ok(c->scan_fraction_ppm, c->scan_drift_ppm))
		return apf_fail(e, -EINVAL, "scan fraction %u with drift %u (millionths): the "
				"replaced pages must come from outside the undrifted set, so fraction "
				"x (1 + drift) must be at most 1", c->scan_fraction_ppm,
				c->scan_drift_ppm);
	return 0;
}

int config_check(const struct apfvm_config *c, struct apf_err *e)
{
	int rc;

	if (c->mem_size < (16ull << 20) || c->mem_size > (2ull << 30) || c->mem_size % APF_PAGE_SIZE)
		return apf_fail(e, -EINVAL, "--mem must be a multiple of 4K between 16M and 2G");
	if (c->lazy_size % APF_LAZY_ALIGN || c->lazy_size > (64ull << 30))
		return apf_fail(e, -EINVAL, "--lazy must be a multiple of 2M, at most 64G");
	if (c->ntasks == 0 || c->ntasks > APF_MAX_TASKS)
		return apf_fail(e, -EINVAL, "between 1 and %d tasks", APF_MAX_TASKS);
	if (c->timer_hz < 10 || c->timer_hz > 1000)
		return apf_fail(e, -EINVAL, "timer frequency must be 10..1000 Hz");
	if (c->max_inflight < 1 || c->max_inflight > SOURCE_QUEUE_MAX)
		return apf_fail(e, -EINVAL, "in-flight limit must be 1..%d", SOURCE_QUEUE_MAX);
	if (c->latency_min_ns > c->latency_max_ns)
		return apf_fail(e, -EINVAL, "latency range is inverted");
	if (c->latency_max_ns > APFVM_MAX_LATENCY_NS)
		return apf_fail(e, -EINVAL, "latency must be at most 60s");
	if (c->apf_threshold_ns > APFVM_MAX_THRESHOLD_NS)
		return apf_fail(e, -EINVAL, "async threshold must be at most 60s");
	if (c->duration_ns > APFVM_MAX_DURATION_NS || c->timeout_ns > APFVM_MAX_DURATION_NS)
		return apf_fail(e, -EINVAL, "duration and timeout must be at most 7 days");
	for (unsigned i = 0; i < c->ntasks; i++)
		if (c->tasks[i].kind == APF_TASK_SCAN && !c->lazy_size)
			return apf_fail(e, -EINVAL, "a scan task needs a lazy region (--lazy)");
	if ((rc = check_fewer_faults_config(c, e)) || (rc = check_scan_config(c, e)))
		return rc;
	return check_snapshot_config(c, e);
}

void apfvm_net_options(const struct apfvm_config *c, struct source_net_options *net)
{
	*net = (struct source_net_options){
		.timeout_ns = c->fetch_timeout_ns ? c->fetch_timeout_ns : SOURCE_NET_TIMEOUT_DEFAULT_NS,
		.tries = c->fetch_tries ? c->fetch_tries : SOURCE_NET_TRIES_DEFAULT,
		.store = { .s3_endpoint = c->s3_endpoint, .s3_region = c->s3_region,
			   .cache_bytes = c->object_cache_bytes, .cache_dir = c->object_cache_dir,
			   .cache_dir_bytes = c->object_cache_dir_bytes },
	};
}

