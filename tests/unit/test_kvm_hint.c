/*
 * kvm_hint: the line `apfvm run` adds where /dev/kvm is missing or not
 * usable: the user's own command line again, inside the emulated KVM host,
 * quoted so that a shell reads back the same arguments.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "cli/kvm_hint.h"
#include "test.h"

/* kvm_hint_print's line for err and argv, in buf. */
static void hint(char *buf, size_t len, int err, const char *emuhost, int argc, char **argv)
{
	FILE *f = fmemopen(buf, len, "w");
	if (!f) {
		buf[0] = '\0';
		return;
	}
	kvm_hint_print(f, err, emuhost, "build/apfvm", argc, argv);
	fclose(f);
}

TEST(no_kvm_names_the_emulated_host_with_the_same_arguments)
{
	char *argv[] = { "run", "--lazy", "2M", "--workload", "scan:1" };
	char buf[512];

	hint(buf, sizeof(buf), -ENOENT, "scripts/emuhost/emuhost", 5, argv);
	CHECK(!strcmp(buf, "apfvm run: hint: this machine has no /dev/kvm; apfvm runs without it in "
		      "an emulated KVM host (slow; docs/emulated-host.md): scripts/emuhost/emuhost -- "
		      "build/apfvm run --lazy 2M --workload scan:1\n"));
}

TEST(unusable_kvm_says_why)
{
	char *argv[] = { "restore", "snap" };
	char buf[512];

	hint(buf, sizeof(buf), -EACCES, "/src/apfvm/scripts/emuhost/emuhost", 2, argv);
	CHECK(strstr(buf, "apfvm restore: hint: /dev/kvm is not usable here (Permission denied); "));
	CHECK(strstr(buf, ": /src/apfvm/scripts/emuhost/emuhost -- build/apfvm restore snap\n"));
}

TEST(arguments_are_quoted_for_the_shell)
{
	char *argv[] = { "run", "--cmdline", "apfvm.sh=\"ls /\"", "--console", "it's", "" };
	char buf[512];

	hint(buf, sizeof(buf), -ENOENT, "scripts/emuhost/emuhost", 6, argv);
	CHECK(strstr(buf, "-- build/apfvm run --cmdline 'apfvm.sh=\"ls /\"' --console 'it'\\''s' ''\n"));
}

TEST(emuhost_not_found_is_named_as_the_source_tree_s)
{
	char *argv[] = { "run" };
	char buf[512];

	hint(buf, sizeof(buf), -ENOENT, NULL, 1, argv);
	CHECK(strstr(buf, "(slow; docs/emulated-host.md of apfvm's source tree): "
			  "scripts/emuhost/emuhost -- build/apfvm run\n"));
}

/* This test program is build/tests/test_kvm_hint of the checkout. */
TEST(emuhost_is_found_next_to_the_program)
{
	char buf[4200], cwd[4096];

	REQUIRE(getcwd(cwd, sizeof(cwd)));
	if (access("scripts/emuhost/emuhost", X_OK))
		SKIP("not run from the checkout");
	REQUIRE(kvm_hint_emuhost(buf, sizeof(buf)));
	CHECK(!strcmp(buf, "scripts/emuhost/emuhost"));
	REQUIRE(chdir("/") == 0);
	const char *abs = kvm_hint_emuhost(buf, sizeof(buf));
	REQUIRE(chdir(cwd) == 0);
	REQUIRE(abs);
	CHECK(abs[0] == '/' && strstr(abs, "/scripts/emuhost/emuhost"));
	CHECK(!kvm_hint_emuhost(buf, 8)); /* too long for buf */
}

TEST(probe_agrees_with_dev_kvm)
{
	int err = kvm_hint_probe();

	CHECK(err <= 0);
	if (access("/dev/kvm", F_OK))
		CHECK(err == -ENOENT);
}

TEST_MAIN(T(no_kvm_names_the_emulated_host_with_the_same_arguments), T(unusable_kvm_says_why),
	  T(arguments_are_quoted_for_the_shell), T(emuhost_not_found_is_named_as_the_source_tree_s),
	  T(emuhost_is_found_next_to_the_program), T(probe_agrees_with_dev_kvm))
