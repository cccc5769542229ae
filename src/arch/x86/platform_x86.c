/*
 * platform: which KVM implementation serves /dev/kvm (the loaded vendor
 * module), and whether this machine is itself a guest (CPUID hypervisor
 * leaf), in particular QEMU's full-system emulation.
 */
#include <cpuid.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "arch/platform.h"
#include "arch/x86/platform_x86.h"
#include "util/host_kernel.h"

static int module_loaded(const char *name)
{
	char path[96];

	snprintf(path, sizeof(path), "/sys/module/%s", name);
	return access(path, F_OK) == 0;
}

/* CPUID 0x40000000 signature, or "" on bare metal. */
static void hypervisor_signature(char sig[13])
{
	unsigned a, b, c, d;

	sig[0] = '\0';
	__cpuid(1, a, b, c, d);
	if (!(c & (1u << 31)))
		return;
	__cpuid(0x40000000, a, b, c, d);
	memcpy(sig, &b, 4);
	memcpy(sig + 4, &c, 4);
	memcpy(sig + 8, &d, 4);
	sig[12] = '\0';
}

char *platform_describe(char *buf, size_t len)
{
	const char *kvm;
	char sig[13];
	const char *host = "";

	const char *module = module_loaded("kvm_pvm")	  ? "PVM (kvm_pvm, guest ring 0 emulated)"
			     : module_loaded("kvm_amd")	  ? "AMD SVM"
			     : module_loaded("kvm_intel") ? "Intel VMX"
							  : NULL;
	char what[96];
	/* A module without the device (a container, a sandbox) is no KVM to
	 * run on: say so, not what the module would be. */
	if (access("/dev/kvm", F_OK)) {
		snprintf(what, sizeof(what), "no /dev/kvm%s%s%s", module ? " (the module for " : "",
			 module ? module : "", module ? " is loaded)" : "");
		kvm = what;
	} else if (access("/dev/kvm", R_OK | W_OK)) {
		snprintf(what, sizeof(what), "%s, /dev/kvm not accessible to this user",
			 module ? module : "KVM");
		kvm = what;
	} else {
		kvm = module ? module : "KVM (no known vendor module)";
	}
	hypervisor_signature(sig);
	if (!strcmp(sig, "TCGTCGTCGTCG"))
		host = ", emulated host (QEMU TCG)";
	else if (sig[0] && !module_loaded("kvm_pvm"))
		host = ", nested (the host is itself a guest)";
	snprintf(buf, len, "x86-64, %s%s", kvm, host);
	return buf;
}

const char *platform_apf_user_caveat(void)
{
	if (!host_kernel_older_than(6, 2))
		return NULL;
	return "this host kernel is older than Linux 6.2: KVM's wait for a userfaultfd page "
	       "cannot be interrupted, so --apf user will serve every fault synchronously "
	       "(\"raced\")";
}

bool platform_x86_tcg_svm(void)
{
	char sig[13];

	hypervisor_signature(sig);
	return module_loaded("kvm_amd") && !strcmp(sig, "TCGTCGTCGTCG");
}
