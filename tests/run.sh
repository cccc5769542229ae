#!/bin/bash
# Runs every test program given as an argument and counts the lines they
# print: "ok NAME", "FAIL NAME: why", "SKIP NAME: why".  A program that
# crashes, hangs (past TEST_TIMEOUT seconds) or exits non-zero without a
# FAIL line counts as one failure.  Ends with "N passed, N failed, N skipped".
set -u
pass=0 fail=0 skip=0
timeout_s=${TEST_TIMEOUT:-900}
for t in "$@"; do
	name=$(basename "$t")
	echo "== $name"
	out=$(timeout --kill-after=10 "$timeout_s" "$t" 2>&1)
	rc=$?
	echo "$out" | grep -E '^(ok|FAIL|SKIP) ' | sed 's/^/   /'
	p=$(echo "$out" | grep -c '^ok ')
	f=$(echo "$out" | grep -c '^FAIL ')
	s=$(echo "$out" | grep -c '^SKIP ')
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "   FAIL $name: exited with status $rc"
		echo "$out" | grep -vE '^(ok|FAIL|SKIP) ' | tail -20 | sed 's/^/     | /'
		f=1
	elif [ "$f" -ne 0 ]; then
		echo "$out" | grep -vE '^(ok|FAIL|SKIP) ' | tail -20 | sed 's/^/     | /'
	fi
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
