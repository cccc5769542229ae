#include "kvm_stats.h"

#include <errno.h>
#include <stddef.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const struct {
	const char *name;
	size_t offset;
} wanted[] = {
	{ "exits", offsetof(struct kvm_vcpu_counters, exits) },
	{ "pf_taken", offsetof(struct kvm_vcpu_counters, pf_taken) },
	{ "insn_emulation", offsetof(struct kvm_vcpu_counters, insn_emulation) },
	{ "signal_exits", offsetof(struct kvm_vcpu_counters, signal_exits) },
	{ "halt_exits", offsetof(struct kvm_vcpu_counters, halt_exits) },
	{ "irq_injections", offsetof(struct kvm_vcpu_counters, irq_injections) },
};

int kvm_stats_read(int vcpu_fd, struct kvm_vcpu_counters *c)
{
	struct kvm_stats_header h;
	char *descs = NULL;
	int fd, rc = 0;

	memset(c, 0, sizeof(*c));
	fd = ioctl(vcpu_fd, KVM_GET_STATS_FD, NULL);
	if (fd < 0)
		return -errno;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.name_size > 256 ||
	    h.num_desc > 4096) {
		rc = -EIO;
		goto out;
	}
	size_t dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	descs = malloc(dsz * h.num_desc);
	if (!descs || pread(fd, descs, dsz * h.num_desc, h.desc_offset) != (ssize_t)(dsz * h.num_desc)) {
		rc = descs ? -EIO : -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < h.num_desc; i++) {
		const struct kvm_stats_desc *d = (const void *)(descs + i * dsz);
		uint64_t v;
		if (d->size != 1)
			continue;
		for (size_t w = 0; w < sizeof(wanted) / sizeof(wanted[0]); w++) {
			if (strncmp(d->name, wanted[w].name, h.name_size) ||
			    pread(fd, &v, sizeof(v), h.data_offset + d->offset) != sizeof(v))
				continue;
			memcpy((char *)c + wanted[w].offset, &v, sizeof(v));
			if (wanted[w].offset == offsetof(struct kvm_vcpu_counters, insn_emulation))
				c->has_pf_and_emulation = 1;
		}
	}
out:
	free(descs);
	close(fd);
	return rc;
}
