#include "kvm_vm.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "arch/arch.h"

int vm_create(struct vm *vm, struct guest_mem *gm, const struct vm_options *opt,
	      struct apf_err *e)
{
	struct kvm_userspace_memory_region slot;
	int v;

	memset(vm, 0, sizeof(*vm));
	vm->vm_fd = -1;
	vm->gm = gm;
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return apf_fail(e, -errno,
				"cannot open /dev/kvm: %s (is KVM enabled and do you have access to /dev/kvm?)",
				strerror(errno));
	v = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (v < 0)
		return apf_fail(e, -errno, "/dev/kvm does not answer KVM_GET_API_VERSION: %s (not a KVM device?)",
				strerror(errno));
	if (v != KVM_API_VERSION)
		return apf_fail(e, -EINVAL, "unsupported KVM API version %d", v);
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return apf_fail(e, -errno, "KVM_CREATE_VM: %s", strerror(errno));
	int rc = arch_vm_init(vm, opt, e);
	if (rc)
		return rc;

	memset(&slot, 0, sizeof(slot));
	slot.slot = 0;
	slot.guest_phys_addr = 0;
	slot.memory_size = gm->resident_size;
	slot.userspace_addr = (uintptr_t)gm->resident;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return apf_fail(e, -errno, "KVM_SET_USER_MEMORY_REGION (resident): %s", strerror(errno));
	if (gm->lazy_size) {
		slot.slot = 1;
		slot.guest_phys_addr = APF_LAZY_GPA;
		slot.memory_size = gm->lazy_size;
		slot.userspace_addr = (uintptr_t)gm->lazy;
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return apf_fail(e, -errno, "KVM_SET_USER_MEMORY_REGION (lazy): %s",
					strerror(errno));
	}
	return 0;
}

int vm_add_vcpu(struct vm *vm, const struct vm_options *opt, const struct arch_entry *entry,
		struct apf_err *e)
{
	struct vcpu *v;
	int sz;

	if (vm->nvcpus == VM_MAX_VCPUS)
		return apf_fail(e, -EINVAL, "too many vCPUs");
	v = &vm->vcpus[vm->nvcpus];
	memset(v, 0, sizeof(*v));
	pthread_mutex_init(&v->kick_lock, NULL);
	v->vm = vm;
	v->id = vm->nvcpus;
	v->cpu = -1;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)v->id);
	if (v->fd < 0)
		return apf_fail(e, -errno, "KVM_CREATE_VCPU: %s", strerror(errno));
	vm->nvcpus++;
	sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0)
		return apf_fail(e, -errno, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	v->run_size = (size_t)sz;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return apf_fail(e, -errno, "mmap kvm_run: %s", strerror(errno));
	}
	return arch_vcpu_init(vm, v, opt, entry, e);
}

void vm_destroy(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (vm->vcpus[i].run)
			munmap(vm->vcpus[i].run, vm->vcpus[i].run_size);
		close(vm->vcpus[i].fd);
		pthread_mutex_destroy(&vm->vcpus[i].kick_lock);
	}
	if (vm->vm_fd >= 0) {
		arch_vm_destroy(vm);
		close(vm->vm_fd);
	}
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->nvcpus = 0;
	vm->vm_fd = vm->kvm_fd = -1;
}

int vm_finalize(struct vm *vm, const struct vm_options *opt, struct apf_err *e)
{
	return arch_vm_finalize(vm, opt, e);
}

void vcpu_kick(struct vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&v->kick_lock);
	/* tgkill itself: pthread_kill() brackets it with two sigprocmask
	 * calls and a getpid (four system calls per kick).  The thread id is
	 * valid while `kickable`. */
	if (v->kickable)
		syscall(SYS_tgkill, v->pid, v->tid, v->vm->kick_signal);
	pthread_mutex_unlock(&v->kick_lock);
}

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

int vcpu_read_counters(struct vcpu *v, struct kvm_vcpu_counters *c)
{
	struct kvm_stats_header h;
	char *descs = NULL;
	int fd, rc = 0;

	memset(c, 0, sizeof(*c));
	fd = ioctl(v->fd, KVM_GET_STATS_FD, NULL);
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
		uint64_t value;
		if (d->size != 1)
			continue;
		for (size_t w = 0; w < sizeof(wanted) / sizeof(wanted[0]); w++) {
			if (strncmp(d->name, wanted[w].name, h.name_size) ||
			    pread(fd, &value, sizeof(value), h.data_offset + d->offset) != sizeof(value))
				continue;
			memcpy((char *)c + wanted[w].offset, &value, sizeof(value));
			if (wanted[w].offset == offsetof(struct kvm_vcpu_counters, insn_emulation))
				c->has_pf_and_emulation = 1;
		}
	}
out:
	free(descs);
	close(fd);
	return rc;
}
