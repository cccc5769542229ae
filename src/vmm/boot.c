/*
 * boot: the loaders that boot a guest (loader.h): the reference guest's,
 * and the parts the Linux loader shares with it: the lazy region's source
 * and the boot info.
 */
#include <errno.h>
#include <string.h>

#include "config.h"
#include "elf_loader.h"
#include "loader.h"
#include "source/delay.h"
#include "source/open.h"

int boot_open(struct machine *m, uint64_t *mem_size, uint64_t *lazy_size, struct apf_err *e)
{
	const struct apfvm_config *c = m->cfg;
	struct machine_region *r = &m->region[MACHINE_LAZY];
	struct source_net_options net;
	struct page_source *wrapped;

	*mem_size = c->mem_size;
	*lazy_size = c->lazy_size;
	if (!c->lazy_size)
		return 0;
	r->name = "lazy region";
	if (c->page_source) {
		if (c->latency_max_ns)
			return apf_fail(e, -EINVAL, "latency is added to the built-in sources only");
		if (c->page_source->npages < c->lazy_size / APF_PAGE_SIZE)
			return apf_fail(e, -EINVAL, "page source is smaller than the lazy region");
		r->source = r->raw = c->page_source;
		r->borrowed = true;
		r->pattern = r->source->pattern;
		r->seed = r->source->seed;
		return 0;
	}
	apfvm_net_options(c, &net);
	int rc = source_open(c->source, c->lazy_size, &net, &r->source, e);
	r->raw = r->source;
	if (!rc && r->source->pattern == APF_PATTERN_SNAPSHOT)
		return apf_fail(e, -EINVAL, "%s serves a snapshot's memory: restore that snapshot "
				"(apfvm restore PATH --source %s)", r->source->desc, c->source);
	if (rc)
		return rc;
	r->pattern = r->source->pattern;
	r->seed = r->source->seed;
	if (!c->latency_max_ns)
		return 0;
	rc = source_delay_wrap(r->source, c->latency_min_ns, c->latency_max_ns, c->latency_seed,
			       &wrapped, e);
	if (rc)
		return rc;
	r->source = wrapped;
	return 0;
}

void boot_map_trace(struct machine *m)
{
	if (m->cfg->trace && m->guest.boot_info_gpa)
		m->trace.page = gmem_ptr(&m->gm, m->guest.layout.trace_gpa, sizeof(*m->trace.page));
}

int boot_write_info(struct machine *m, struct apf_err *e)
{
	const struct apfvm_config *c = m->cfg;
	const struct guest_layout *l = &m->guest.layout; /* zero but for the reference guest */
	const struct machine_region *lazy = &m->region[MACHINE_LAZY];
	struct apf_boot_info *bi;

	if (!m->guest.boot_info_gpa)
		return 0;
	bi = gmem_ptr(&m->gm, m->guest.boot_info_gpa, sizeof(*bi));
	if (!bi)
		return apf_fail(e, -EINVAL, "the boot info does not fit in guest memory");
	if (c->trace)
		bi->trace_gpa = l->trace_gpa;
	bi->progress_gpa = l->progress_gpa;
	bi->magic = APF_BOOT_MAGIC;
	bi->mem_size = m->gm.resident_size;
	bi->kfree_start = l->kfree_start;
	bi->kfree_end = l->kfree_end;
	bi->ufree_start = l->ufree_start;
	bi->ufree_end = l->ufree_end;
	bi->lazy_base = APF_LAZY_GPA;
	bi->lazy_size = c->lazy_size;
	bi->tsc_khz = m->vm.tsc_khz;
	bi->pattern = lazy->size ? lazy->pattern : APF_PATTERN_ZERO;
	bi->seed = lazy->size ? lazy->seed : 0;
	bi->order_seed = c->order_seed;
	bi->duration_us = c->duration_ns / 1000;
	bi->scan_order = c->scan_order;
	bi->scan_fraction_ppm = c->scan_fraction_ppm;
	bi->scan_drift_ppm = c->scan_drift_ppm;
	bi->timer_hz = c->timer_hz;
	bi->ntasks = c->ntasks;
	memcpy(bi->tasks, c->tasks, sizeof(bi->tasks));
	memcpy(bi->cmdline, c->cmdline, sizeof(bi->cmdline));
	bi->cmdline[APF_CMDLINE_MAX - 1] = '\0';
	return 0;
}

/* The reference guest: its ELF, then the architecture's page tables and
 * entry state; its hypercalls come through the architecture's exits. */
static int load_reference(struct machine *m, struct vm_options *opt, struct arch_entry *entry,
			  struct apf_err *e)
{
	const struct apfvm_config *c = m->cfg;
	struct elf_image img;

	int rc = arch_mode_options(opt, c->apf, e);
	if (!rc)
		rc = elf_load(&m->gm, c->guest_elf, c->guest_elf_len, c->guest_name, c->mem_size / 2,
			      &img, e);
	if (!rc)
		rc = arch_load_reference(&m->gm, &img, &m->guest.layout, entry, e);
	if (rc)
		return rc;
	m->guest.boot_info_gpa = APF_BOOT_INFO_GPA;
	m->guest.expected_results = c->ntasks;
	boot_map_trace(m);
	return 0;
}

const struct machine_loader reference_loader = {
	.name = "reference guest",
	.open = boot_open,
	.load = load_reference,
	.before_run = boot_write_info,
};
