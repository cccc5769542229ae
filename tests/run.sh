#!/bin/bash
# tests/run.sh [--tier NAME --where PLATFORM] PROGRAM...
#
# Runs every test program given and counts the lines they print:
# "ok NAME", "FAIL NAME: why", "SKIP NAME: why".  A program that crashes,
# hangs (past TEST_TIMEOUT seconds, default 900) or exits non-zero without a
# FAIL line counts as one failure.  Each program is a bounded step
# (scripts/emuhost/step): one that hangs is killed at its bound with the
# kernel stacks of its threads in the log, and inside the emulated KVM host
# the step is also watched from outside, so that a host that stops running
# programs fails the tier at once with its CPU state.
#
# Alone it ends with "N passed, N failed, N skipped".  With --tier it is one
# tier of tests/all.sh: it starts with "== NAME (PLATFORM)" and ends with
# "   N passed, N failed, N skipped in NAME", the line tests/all.sh adds up
# (also when this runs inside the emulated host).
set -u
tier= where=
while [ $# -gt 0 ]; do
	case $1 in
	--tier) tier=$2 && shift 2 ;;
	--where) where=$2 && shift 2 ;;
	*) break ;;
	esac
done
[ -z "$tier" ] || echo "== $tier ($where)"
pass=0 fail=0 skip=0
timeout_s=${TEST_TIMEOUT:-900}
step=$(dirname "$0")/../scripts/emuhost/step
for t in "$@"; do
	name=$(basename "$t")
	case $t in */tsan-tests/*) name="tsan/$name" ;; esac
	echo "-- $name"
	started=$SECONDS
	out=$("$step" "$name" "$timeout_s" "$t" 2>&1)
	rc=$?
	took=$((SECONDS - started))
	echo "$out" | grep -E '^(ok|FAIL|SKIP) ' | sed 's/^/   /'
	p=$(echo "$out" | grep -c '^ok ')
	f=$(echo "$out" | grep -c '^FAIL ')
	s=$(echo "$out" | grep -c '^SKIP ')
	if [ "$rc" -eq 124 ]; then
		echo "   FAIL $name: did not finish within $timeout_s s (TEST_TIMEOUT); killed"
		f=$((f + 1))
		# Where each of its threads waited.
		echo "$out" | sed -n '/^step .*: did not end within/,$p' | head -200 | sed 's/^/     | /'
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "   FAIL $name: exited with status $rc"
		f=1
	fi
	if [ "$rc" -ne 124 ] && { [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; }; then
		echo "$out" | grep -vE '^(ok|FAIL|SKIP) ' | tail -20 | sed 's/^/     | /'
	fi
	echo "   ($took s)"
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
done
if [ -n "$tier" ]; then
	echo "   $pass passed, $fail failed, $skip skipped in $tier ($SECONDS s)"
else
	echo "$pass passed, $fail failed, $skip skipped"
fi
[ "$fail" -eq 0 ]
