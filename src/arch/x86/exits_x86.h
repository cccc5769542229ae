/* x86-64 exits (exits_x86.c) that the x86 guest kinds plug in. */
#ifndef APFVM_EXITS_X86_H
#define APFVM_EXITS_X86_H

struct machine;
struct vcpu;

/* The reference guest's port I/O (machine.port_io): its hypercall port;
 * any other access is a guest bug and ends the run. */
void vcpu_hcall_port_io(struct machine *m, struct vcpu *v);

#endif
