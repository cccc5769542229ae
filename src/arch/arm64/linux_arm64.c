/* The Linux guest kind on arm64: not offered (the bzImage boot protocol
 * and PC devices are x86's); refused with a clear error. */
#include <errno.h>

#include "vmm/guest_linux.h"
#include "vmm/loader.h"

static int refuse(struct machine *m, uint64_t *mem_size, uint64_t *lazy_size, struct apf_err *e)
{
	(void)m;
	(void)mem_size;
	(void)lazy_size;
	return apf_fail(e, -ENOTSUP, "--kernel: apfvm boots Linux guests on x86-64 only; on arm64 "
			"it runs the reference guest");
}

const struct machine_loader linux_loader = {
	.name = "Linux guest",
	.open = refuse,
};

int guest_linux_save_devices(struct machine *m, struct snap_blob *b, struct apf_err *e)
{
	(void)m;
	(void)b;
	return apf_fail(e, -ENOTSUP, "no Linux guests on arm64");
}

int guest_linux_restore(struct machine *m, const void *devices, uint64_t len, struct apf_err *e)
{
	(void)m;
	(void)devices;
	(void)len;
	return apf_fail(e, -ENOTSUP, "this snapshot holds a Linux guest: apfvm runs those on x86-64 only");
}
