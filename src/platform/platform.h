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

#endif
