#!/bin/bash
# apfvm demo: what a lazily served VM costs when every fault is synchronous.
# Runs the built-in guest twice, then prints what happened.  Under a minute.
set -eu
APFVM=${APFVM:-build/apfvm}
out=${DEMO_DIR:-build/demo}
mkdir -p "$out"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
num() { grep -o "\"$2\": *[0-9.]*" "$1" | head -1 | sed 's/.*: *//'; }
# task_field FILE NAME FIELD: FIELD of the first task named NAME
task_field() { grep "\"name\": \"$2\"" "$1" | head -1 | grep -o "\"$3\": *[0-9.]*" | sed 's/.*: *//'; }

say "1. A 16 MiB memory image (every word verifiable by the guest)"
$APFVM mkimage --size 16M --seed 42 "$out/demo.img"

say "2. Baseline: the compute task alone, all memory resident (2 s)"
$APFVM run --workload compute:1 --duration 2s --stats-json "$out/alone.json"

say "3. Lazy restore: compute plus a scan of 16 MiB served from the image with 1 ms per fetch,"
echo "   synchronous faults (--apf off): the vCPU stalls for every missing page"
$APFVM run --lazy 16M --source file:"$out/demo.img" --latency 1ms \
	--workload compute:1,scan:1 --apf off --stats-json "$out/off.json"

alone_rate=$(awk -v w="$(task_field "$out/alone.json" compute work)" \
	-v t="$(task_field "$out/alone.json" compute runtime_s)" 'BEGIN { print w / t }')
off_rate=$(awk -v w="$(task_field "$out/off.json" compute work)" \
	-v t="$(task_field "$out/off.json" compute runtime_s)" 'BEGIN { print w / t }')
faults=$(num "$out/off.json" total)
service=$(num "$out/off.json" fault_us_mean)
wall=$(num "$out/off.json" wall_s)

say "What this shows"
awk -v a="$alone_rate" -v o="$off_rate" -v f="$faults" -v w="$wall" -v s="$service" 'BEGIN {
	printf "  - %d page faults, each served synchronously in %.0f us on average: the vCPU\n", f, s
	printf "    sat blocked for about %.1f s of the %.1f s run, running nothing.\n", f * s / 1e6, w
	printf "  - The compute task ran at %.0f units/s instead of %.0f alone: %.0f%% of its rate,\n", o, a, 100 * o / a
	printf "    although the guest had runnable work the whole time.\n"
	printf "  - Asynchronous page faults exist to win this back: the guest runs compute\n"
	printf "    while the scan waits for its page (see README, Status).\n"
}'
echo
echo "Statistics: $out/alone.json, $out/off.json"
