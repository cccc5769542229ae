/*
 * hcall: the guest -> host hypercalls (see apf_hcall_nr in apfvm/abi.h).
 * Everything in a hypercall block is untrusted: addresses go through
 * gmem_ptr()/gmem_read_str(), numbers are range checked, and a bad block
 * gets a negative `ret` (or, if the block itself is unreadable, a failed
 * run with a clear message), never a host crash.
 */
#ifndef APFVM_HCALL_H
#define APFVM_HCALL_H

#include "machine.h"

/* Handles the hypercall whose block is at `gpa`, issued by vCPU v. */
void hcall_handle(struct machine *m, struct vcpu *v, gpa_t gpa);

#endif
