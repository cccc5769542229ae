/* host_kernel: the running kernel's version, for what it rules out. */
#ifndef APFVM_HOST_KERNEL_H
#define APFVM_HOST_KERNEL_H

#include <stdbool.h>

/* Whether the running kernel is older than major.minor; false when its
 * version cannot be read (nothing is held against an unknown kernel). */
bool host_kernel_older_than(unsigned major, unsigned minor);

#endif
