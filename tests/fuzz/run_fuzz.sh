#!/bin/bash
# Runs a libFuzzer target for SECONDS and prints one result line for
# tests/run.sh.  Usage: run_fuzz.sh TARGET SECONDS
set -u
target=$1 seconds=$2
name=$(basename "$target")
corpus=$(mktemp -d /tmp/apfvm-fuzz.XXXXXX)
trap 'rm -rf "$corpus"' EXIT
if [ ! -x "$target" ]; then
	echo "FAIL $name: not built (clang with libFuzzer is needed: make deps)"
	exit 1
fi
out=$("$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 "$corpus" 2>&1)
rc=$?
runs=$(echo "$out" | grep -o 'Done [0-9]* runs' | tail -1)
if [ $rc -eq 0 ]; then
	echo "ok $name ($runs in ${seconds}s)"
else
	echo "FAIL $name: exit $rc"
	echo "$out" | grep -E 'invariant|ERROR|SUMMARY|runtime error' | head -10
	exit 1
fi
