/*
 * platform: names the KVM host apfvm runs on, so that every figure it
 * prints can say where it was measured.  Ratios measured on one platform
 * are not comparable with another's (docs/emulated-host.md).
 */
#ifndef APFVM_PLATFORM_H
#define APFVM_PLATFORM_H

#include <stddef.h>

/*
 * Writes a one-line description of this machine's KVM into buf (always
 * NUL-terminated), e.g. "x86-64, AMD SVM, emulated host (QEMU TCG)",
 * "x86-64, PVM (kvm_pvm, guest ring 0 emulated)", "x86-64, Intel VMX".
 * Reads /sys/module and CPUID only; never fails (unknown parts are named
 * as such).  Returns buf.
 */
char *platform_describe(char *buf, size_t len);

/*
 * Why --apf user cannot go async on this host kernel, or NULL if nothing
 * is known against it.  x86 KVM waits for a userfaultfd page
 * interruptibly (so a kick can pull the vCPU out) only since Linux 6.2;
 * before, every fault is served synchronously (docs/emulated-host.md).
 */
const char *platform_apf_user_caveat(void);

#endif
