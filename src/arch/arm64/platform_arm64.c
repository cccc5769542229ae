/*
 * platform (arm64): names the KVM host, from what userspace can read: the
 * machine's device tree (QEMU's `virt` board is an emulated or virtual
 * host) and whether this kernel runs at EL2 (VHE) or under a hypervisor.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "arch/platform.h"
#include "util/host_kernel.h"

/* Whether the device tree's root compatible list contains `what`. */
static int dt_compatible(const char *what)
{
	char buf[256];
	FILE *f = fopen("/proc/device-tree/compatible", "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
		buf[n] = '\0';
		if (!strcmp(buf + i, what))
			return 1;
	}
	return 0;
}

char *platform_describe(char *buf, size_t len)
{
	const char *kvm = access("/dev/kvm", F_OK) == 0 ? "KVM" : "no /dev/kvm";
	const char *host = dt_compatible("linux,dummy-virt")
				   ? ", QEMU virt machine (an emulated or virtual host)"
				   : "";
	snprintf(buf, len, "arm64, %s%s", kvm, host);
	return buf;
}

const char *platform_apf_user_caveat(void)
{
	if (!host_kernel_older_than(6, 6))
		return NULL;
	return "this host kernel is older than Linux 6.6: apfvm cannot poison a page to take an "
	       "arm64 vCPU out of KVM's wait for it (UFFDIO_POISON), and cannot receive SMCCC "
	       "calls before 6.4: --apf user cannot go async here";
}
