#include "kvm_hint.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define EMUHOST "scripts/emuhost/emuhost"

int kvm_hint_probe(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = ioctl(fd, KVM_GET_API_VERSION, 0) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* dir without its last component; false when nothing is left. */
static bool strip_last(char *dir)
{
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return false;
	*slash = '\0';
	return true;
}

const char *kvm_hint_emuhost(char *buf, size_t len)
{
	char dir[PATH_MAX], cwd[PATH_MAX], path[PATH_MAX + sizeof(EMUHOST)];
	ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);

	if (n <= 0)
		return NULL;
	dir[n] = '\0';
	/* build/apfvm, or a test program of build/tests/: the checkout is
	 * one or two folders above the program's. */
	if (!strip_last(dir))
		return NULL;
	for (int up = 1; up <= 2 && strip_last(dir); up++) {
		snprintf(path, sizeof(path), "%s/" EMUHOST, dir);
		if (access(path, X_OK))
			continue;
		bool here = getcwd(cwd, sizeof(cwd)) && !strcmp(cwd, dir);
		if ((size_t)snprintf(buf, len, "%s", here ? EMUHOST : path) >= len)
			return NULL;
		return buf;
	}
	return NULL;
}

/* arg as one shell word. */
static void print_quoted(FILE *f, const char *arg)
{
	if (*arg && strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			       "_@%+=:,./-") == strlen(arg)) {
		fputs(arg, f);
		return;
	}
	fputc('\'', f);
	for (const char *c = arg; *c; c++)
		if (*c == '\'')
			fputs("'\\''", f);
		else
			fputc(*c, f);
	fputc('\'', f);
}

void kvm_hint_print(FILE *f, int err, const char *emuhost, const char *prog, int argc,
		    char **argv)
{
	fprintf(f, "apfvm %s: hint: ", argv[0]);
	if (err == -ENOENT)
		fputs("this machine has no /dev/kvm", f);
	else
		fprintf(f, "/dev/kvm is not usable here (%s)", strerror(-err));
	fprintf(f, "; apfvm runs without it in an emulated KVM host (slow; docs/emulated-host.md%s): "
		"%s -- ", emuhost ? "" : " of apfvm's source tree", emuhost ? emuhost : EMUHOST);
	print_quoted(f, prog);
	for (int i = 0; i < argc; i++) {
		fputc(' ', f);
		print_quoted(f, argv[i]);
	}
	fputc('\n', f);
}
