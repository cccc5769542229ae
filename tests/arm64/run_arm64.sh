#!/bin/bash
# The arm64 tier of `make test`: runs the cross-built arm64 test programs
# and scripts (ARM64_TESTS: static programs, and shell tests of the
# cross-built build/arm64/apfvm; built by the Makefile) inside the emulated arm64
# KVM host (scripts/emuhost/emuhost --arch arm64), in one boot, and passes
# their "ok" / "FAIL" / "SKIP" lines on.  A program that prints none or
# exits non-zero is one failure.
set -u
cd "$(dirname "$0")/../.."
EMUHOST=scripts/emuhost/emuhost
tests=${ARM64_TESTS:-$(ls build/arm64-tests/test_* 2>/dev/null)}
if [ -z "$tests" ]; then
	echo "FAIL arm64_tests: none built (make test builds them with gcc-aarch64-linux-gnu)"
	exit 0
fi
if ! err=$("$EMUHOST" --arch arm64 --setup 2>&1); then
	echo "FAIL arm64_emulated_host: cannot be set up: $(echo "$err" | tail -1)"
	exit 0
fi
# Inside: busybox sh.  Each program's status follows its lines; a .sh
# test runs in that shell (it drives build/arm64/apfvm).  Each is a step
# bounded at 600 s (scripts/emuhost/step), watched from outside.
script='for t in "$@"; do n=$(basename "$t"); case $t in *.sh) scripts/emuhost/step "$n" 600 sh "$t";;
	*) scripts/emuhost/step "$n" 600 "$t";; esac; echo "status $n $?"; done'
out=$(timeout --kill-after=10 1800 "$EMUHOST" --arch arm64 --timeout 1700 -- sh -c "$script" sh $tests 2>&1)
rc=$?
echo "$out" | grep -E '^(ok|FAIL|SKIP) '
# A hang's report (the emulated CPU's state), or a killed step's stacks.
echo "$out" | sed -n '/^emuhost: hang: /,$p; /^step .*: did not end within/,/^status /p' | head -120
for t in $tests; do
	name=$(basename "$t")
	st=$(echo "$out" | sed -n "s/^status $name //p")
	if [ -z "$st" ]; then
		echo "FAIL $name: did not finish in the emulated arm64 host (emuhost status $rc): $(echo "$out" | tail -3 | tr '\n' ' ')"
	elif [ "$st" != 0 ]; then
		echo "FAIL $name: exited with status $st"
	fi
done
