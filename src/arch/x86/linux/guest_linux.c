/*
 * The Linux guest kind on x86-64: a loader (vmm/loader.h) for an
 * unmodified bzImage with apfvm's initramfs or the user's, its PC devices'
 * port I/O, and their state in snapshots.
 */
#include "vmm/guest_linux.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "image/initramfs.h"
#include "arch/x86/linux/linux_guest.h"
#include "arch/x86/linux/pc_devices.h"
#include "snapshot/snapshot.h"
#include "vmm/guest_report.h"
#include "vmm/loader.h"

/* The built-in /init (guest/linux/init.c), embedded by guest_blob.S. */
extern const unsigned char apfvm_linux_init[];
extern const uint64_t apfvm_linux_init_len;

static void set_irq_line(void *ctx, unsigned line, bool level)
{
	struct machine *m = ctx;
	struct kvm_irq_level l = { .irq = line, .level = level };
	if (ioctl(m->vm.vm_fd, KVM_IRQ_LINE, &l) < 0)
		machine_fail(m, "KVM_IRQ_LINE %u: %s", line, strerror(errno));
}

/* The PC devices (apfvm's hypercall port, for apfvm's /init, is decoded
 * before: exits_x86.c).  A reset ends the run: the guest's normal end when
 * it owes no results, else a failure (a panic or an /init that could not
 * report resets too). */
static void linux_port_io(struct machine *m, struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size)
		pc_devices_io(m->guest.pc, run->io.port, out, run->io.size, data);
	if (!m->guest.pc->reset)
		return;
	if (m->guest.expected_results) {
		machine_fail(m, "the Linux guest restarted before its /init reported (a panic, or "
				"/init could not run the workloads: see the console)");
		return;
	}
	report_done(m, 0);
}

/* The kernel, its command line and initramfs into guest memory. */
static int load_kernel(struct machine *m, struct linux_entry *entry, struct apf_err *e)
{
	const struct apfvm_config *c = m->cfg;
	char cmdline[sizeof(GUEST_LINUX_BASE_CMDLINE) + sizeof(" " APF_LINUX_INFO_ARG APF_LINUX_INFO_GPA_STR) +
		     APF_CMDLINE_MAX + 1];

	/* apfvm's /init finds its boot info by the command line. */
	snprintf(cmdline, sizeof(cmdline), "%s%s%s%s", GUEST_LINUX_BASE_CMDLINE,
		 c->linux_initrd ? "" : " " APF_LINUX_INFO_ARG APF_LINUX_INFO_GPA_STR,
		 c->cmdline[0] ? " " : "", c->cmdline);
	struct linux_boot b = { .kernel = c->linux_kernel, .kernel_len = c->linux_kernel_len,
				.initrd = c->linux_initrd, .initrd_len = c->linux_initrd_len,
				.cmdline = cmdline };
	uint8_t *builtin = NULL; /* no --initrd: apfvm's own */
	size_t builtin_len = 0;
	if (!b.initrd) {
		if (c->linux_busybox && !initramfs_static_elf(c->linux_busybox, c->linux_busybox_len))
			return apf_fail(e, -ENOEXEC, "the busybox for the initramfs is not a static "
					"x86-64 program");
		int rc = initramfs_build(apfvm_linux_init, apfvm_linux_init_len, c->linux_busybox,
					 c->linux_busybox_len, &builtin,
					 &builtin_len, e);
		if (rc)
			return rc;
		b.initrd = builtin;
		b.initrd_len = builtin_len;
	}
	int rc = linux_guest_load(&m->gm, &b, entry, e); /* copies the initrd in */
	free(builtin);
	return rc;
}

static int load_linux(struct machine *m, struct vm_options *opt, struct arch_entry *vcpu_entry,
		      struct apf_err *e)
{
	const struct apfvm_config *c = m->cfg;
	struct linux_entry entry;

	int rc = arch_mode_options(opt, c->apf, e);
	if (!rc)
		rc = load_kernel(m, &entry, e);
	if (rc)
		return rc;
	m->guest.pc = calloc(1, sizeof(*m->guest.pc));
	if (!m->guest.pc)
		return apf_fail(e, -ENOMEM, "out of memory");
	m->guest.pc->console = m->console;
	m->guest.pc->irq = set_irq_line;
	m->guest.pc->irq_ctx = m;
	m->guest.port_io = linux_port_io;
	/* apfvm's /init runs the workloads; a user's initramfs owes nothing. */
	if (!c->linux_initrd) {
		m->guest.boot_info_gpa = APF_LINUX_INFO_GPA;
		m->guest.expected_results = c->ntasks;
	}
	boot_map_trace(m);
	/* A PC's timer and interrupt wiring, and the TSC rate and a clock
	 * from KVM's kvmclock (emulated hosts are too slow for Linux's PIT
	 * calibration). */
	opt->pc_legacy = true;
	opt->kvm_features |= 1u << KVM_FEATURE_CLOCKSOURCE2 | 1u << KVM_FEATURE_CLOCKSOURCE_STABLE_BIT;
	vcpu_entry->pc = entry.rip;
	vcpu_entry->page_table = entry.pml4;
	vcpu_entry->arg = entry.zero_page;
	return 0;
}

const struct machine_loader linux_loader = {
	.name = "Linux guest",
	.open = boot_open,
	.load = load_linux,
	.before_run = boot_write_info,
};

/* The devices' state in a snapshot: section DEVICES, record 1
 * (docs/snapshot.md). */
struct pc_devices_snap {
	uint8_t ier, lcr, mcr, scr, dll, dlm;
	uint8_t fifo, thre_pending, irq_level, reset;
	uint8_t pad[6];
	uint64_t console_bytes;
};

int guest_linux_save_devices(struct machine *m, struct snap_blob *b, struct apf_err *e)
{
	const struct pc_devices *d = m->guest.pc;
	struct pc_devices_snap s = {
		.ier = d->ier, .lcr = d->lcr, .mcr = d->mcr, .scr = d->scr, .dll = d->dll,
		.dlm = d->dlm, .fifo = d->fifo, .thre_pending = d->thre_pending,
		.irq_level = d->irq_level, .reset = d->reset, .console_bytes = d->console_bytes,
	};
	if (snap_blob_put(b, 1, &s, sizeof(s)))
		return apf_fail(e, -ENOMEM, "out of memory");
	return 0;
}

int guest_linux_restore(struct machine *m, const void *devices, uint64_t len, struct apf_err *e)
{
	uint32_t got = 0;
	const void *p = snap_blob_get(devices, len, 1, &got);
	struct pc_devices_snap s;

	if (!p || got != sizeof(s))
		return apf_fail(e, -EINVAL, "snapshot: the Linux guest's device state is %s",
				p ? "of the wrong size" : "missing");
	memcpy(&s, p, sizeof(s));
	m->guest.pc = calloc(1, sizeof(*m->guest.pc));
	if (!m->guest.pc)
		return apf_fail(e, -ENOMEM, "out of memory");
	/* Every value is one the guest could have written (bytes, flags). */
	*m->guest.pc = (struct pc_devices){
		.console = m->console, .irq = set_irq_line, .irq_ctx = m,
		.ier = s.ier, .lcr = s.lcr, .mcr = s.mcr, .scr = s.scr, .dll = s.dll, .dlm = s.dlm,
		.fifo = s.fifo != 0, .thre_pending = s.thre_pending != 0, .irq_level = s.irq_level != 0,
		.reset = s.reset != 0, .console_bytes = s.console_bytes,
	};
	m->guest.port_io = linux_port_io;
	return 0;
}
