/*
 * vcpu_loop: the thread that runs one vCPU: KVM_RUN, then dispatch of each
 * exit as the architecture decoded it (arch_decode_exit: hypercalls, a
 * guest kind's port I/O, crashes) and of kicks (apf_user.h).  The loop
 * ends when the guest reports completion, fails, or machine_stop() is
 * called.
 *
 * Kicks (vcpu_kick, kvm_vm.h): a vCPU is brought out of KVM_RUN by setting run->immediate_exit
 * and sending the VM's kick signal (struct vm.kick_signal, SIGUSR1 unless
 * the embedder chose another) to its thread.
 * In KVM_RUN the signal makes it return -EINTR; before it, immediate_exit
 * does, so a kick cannot be lost between checks.  The signal is blocked
 * in the vCPU thread outside KVM_RUN (KVM_SET_SIGNAL_MASK unblocks it
 * inside) and taken with sigtimedwait(): no handler runs per kick.
 */
#ifndef APFVM_VCPU_LOOP_H
#define APFVM_VCPU_LOOP_H

#include <signal.h>

#include "machine.h"

#define VCPU_KICK_SIGNAL_DEFAULT SIGUSR1

/* Makes `sig` usable as the kick signal, before the first vCPU thread
 * starts.  The disposition is process-wide, so it is left alone if the
 * process already handles the signal (any handler makes KVM_RUN return
 * -EINTR); if it is at SIG_DFL an empty handler (SA_RESTART) is installed.
 * -EINVAL for a signal the process ignores or that cannot be caught. */
int vcpu_loop_setup_signal(int sig);

/* Installs, once per process, the SIGBUS handler that turns KVM's report
 * of a guest access to a poisoned lazy page (a page that could not be
 * fetched) into a run failure naming the page.  Every other SIGBUS goes to
 * the handler that was installed before, or gets the default action.
 * 0 or -errno. */
int vcpu_loop_setup_sigbus(void);

/* Starts the thread of v, pinned to v->cpu if >= 0.  Returns 0 or -errno
 * (-EINVAL: v->cpu is not in this process's CPU set). */
int vcpu_start(struct vcpu *v);

#endif
