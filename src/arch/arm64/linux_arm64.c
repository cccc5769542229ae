/* The Linux guest kind on arm64: not offered (the bzImage boot protocol
 * and PC devices are x86's); refused with a clear error. */
#include <errno.h>

#include "vmm/guest_linux.h"

int guest_linux_load(struct machine *m, const struct apfvm_config *c, struct vm_options *opt,
		     struct arch_entry *entry, struct apf_err *e)
{
	(void)m;
	(void)c;
	(void)opt;
	(void)entry;
	return apf_fail(e, -ENOTSUP, "--kernel: apfvm boots Linux guests on x86-64 only; on arm64 "
			"it runs the reference guest");
}
