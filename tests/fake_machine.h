/*
 * A machine without KVM for the hypercall handlers: guest memory is a
 * caller's buffer, no vCPU runs.  Shared by tests/unit/test_hcall.c and
 * the guest-input fuzz target.
 */
#ifndef APFVM_TEST_FAKE_MACHINE_H
#define APFVM_TEST_FAKE_MACHINE_H

#include <string.h>

#include "vmm/machine.h"

/* Zeroes m, v and mem, and makes mem the guest's resident memory. */
static inline void fake_machine_init(struct machine *m, struct vcpu *v, uint8_t *mem,
				     uint64_t size)
{
	memset(m, 0, sizeof(*m));
	memset(v, 0, sizeof(*v));
	memset(mem, 0, size);
	m->gm.resident = mem;
	m->gm.resident_size = size;
	pthread_mutex_init(&m->report_lock, NULL);
	v->vm = &m->vm;
}

#endif
