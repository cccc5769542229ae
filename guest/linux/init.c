/*
 * The built-in initramfs's /init: the first process of an unmodified Linux
 * guest booted by `apfvm run --kernel` without `--initrd`.  It says which
 * kernel it runs on, on the console, and restarts the machine: Linux's
 * `reboot=k` then resets through the keyboard controller, which ends the
 * run.  A static program: the initramfs holds nothing else.
 */
#include <stdio.h>
#include <sys/reboot.h>
#include <sys/utsname.h>
#include <termios.h>
#include <unistd.h>

int main(void)
{
	struct utsname u;

	if (uname(&u) == 0)
		printf("apfvm-init: pid %d on Linux %s\n", (int)getpid(), u.release);
	else
		printf("apfvm-init: pid %d\n", (int)getpid());
	fflush(stdout);
	/* The UART raises no interrupt (src/linux/pc_devices.h): Linux's
	 * driver sends by a timer then, so wait until all of it left. */
	tcdrain(STDOUT_FILENO);
	sync();
	reboot(RB_AUTOBOOT);
	perror("apfvm-init: reboot");
	return 1; /* the kernel panics when init exits; panic=-1 resets */
}
