/*
 * platform_x86: what the x86 layer must know of the host it runs on,
 * beyond the description every figure carries (arch/platform.h).
 */
#ifndef APFVM_PLATFORM_X86_H
#define APFVM_PLATFORM_X86_H

#include <stdbool.h>

/*
 * True when KVM is an SVM host emulated by QEMU TCG (the emulated KVM
 * host, docs/emulated-host.md).  Its CPU refuses a ring-3 port access
 * (#GP) unless the cached TR says "available TSS" (type 9), where real
 * CPUs do not look at the type; KVM reports an SVM guest's TR busy
 * (type 11) whatever its VMCB holds, so a TR restored as read made every
 * port access of a restored Linux guest's /init fault there.
 */
bool platform_x86_tcg_svm(void);

#endif
