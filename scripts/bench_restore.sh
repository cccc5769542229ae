#!/bin/bash
# make bench-restore: lazy restore from a snapshot (docs/snapshot.md).
#  1. Time from `apfvm restore` to the guest's first instruction, by
#     resident memory size (a compute guest snapshotted after 1 s), lazy
#     against eager (--populate: every page installed and checked first).
#  2. Per mode, a compute task next to a scan of a 64 MiB lazy region
#     snapshotted at 1.5 s and restored with 1 ms per page: the time until
#     the restored workload completes and the compute task's rate over the
#     whole run, lazy against eager (the same workload with all of its
#     memory resident from the start of the restore).
# Medians of RUNS (default 3); CSV in build/bench/restore-*.csv, tables on
# stdout.  Runs on /dev/kvm where it works, otherwise inside the emulated
# KVM host (scripts/kvm_where.sh).
set -eu
cd "$(dirname "$0")/.."
APFVM=${APFVM:-build/apfvm}
RUNS=${RUNS:-3}
. scripts/kvm_where.sh
kvm_place_self "$APFVM" scripts/bench_restore.sh "$@"
mkdir -p build/bench
tmp=$(mktemp -d /tmp/apfvm-bench-restore.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
num() { grep -o "\"$2\": *[0-9.]*" "$1" | head -1 | sed 's/.*: *//'; }
task_num() { grep "\"name\": \"$2\"" "$1" | grep -o "\"$3\": *[0-9.]*" | sed 's/.*: *//'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "" }'; }
platform=$($APFVM platform)

echo "Platform: $platform"
echo
echo "1. Restore to first instruction (ms, median of $RUNS), by resident memory"
printf "%-8s %12s %12s\n" memory lazy eager
csv1=build/bench/restore-first-instruction.csv
echo "mem_mib,lazy_ms,eager_ms,platform" >"$csv1"
for mem in 64M 256M 1G; do
	$APFVM run --mem $mem --workload compute --duration 3s --snapshot-at 1s \
		--snapshot "$tmp/s" -q
	for kind in lazy eager; do
		for r in $(seq "$RUNS"); do
			$APFVM restore $([ $kind = eager ] && echo --populate) --stats-json "$tmp/j" -q "$tmp/s"
			num "$tmp/j" first_run_ms
		done | median >"$tmp/$kind"
	done
	printf "%-8s %12s %12s\n" $mem "$(cat "$tmp/lazy")" "$(cat "$tmp/eager")"
	echo "$(( $(echo $mem | sed 's/M$//; s/G$/*1024/') )),$(cat "$tmp/lazy"),$(cat "$tmp/eager"),\"$platform\"" >>"$csv1"
done

echo
echo "2. Restored workload (compute:1,scan:1, 64 MiB lazy, 1 ms per page, snapshot at 1.5 s)"
printf "%-7s %-6s %16s %16s %10s\n" mode memory "restore to end s" "compute units/s" "first ms"
csv2=build/bench/restore-modes.csv
echo "mode,memory,restore_to_end_s,compute_rate,first_run_ms,platform" >"$csv2"
$APFVM mkimage --size 64M --seed 3 "$tmp/img" >/dev/null
for mode in off kernel user; do
	$APFVM run --workload compute,scan --lazy 64M --source file:"$tmp/img" --latency 1ms \
		--apf $mode --snapshot-at 1500ms --snapshot "$tmp/m-$mode" -q
	for kind in lazy eager; do
		for r in $(seq "$RUNS"); do
			$APFVM restore --apf $mode $([ $kind = eager ] && echo --populate || echo --latency 1ms) \
				--stats-json "$tmp/j" -q "$tmp/m-$mode"
			[ "$(task_num "$tmp/j" scan mismatches)" = 0 ] || { echo "bench_restore.sh: mismatches" >&2; exit 1; }
			echo "$(num "$tmp/j" wall_s) $(task_num "$tmp/j" compute work) $(task_num "$tmp/j" compute runtime_s) $(num "$tmp/j" first_run_ms)"
		done >"$tmp/rows"
		wall=$(awk '{ print $1 }' "$tmp/rows" | median)
		rate=$(awk '{ printf "%.0f\n", $2 / $3 }' "$tmp/rows" | median)
		first=$(awk '{ print $4 }' "$tmp/rows" | median)
		label=$([ $kind = eager ] && echo resident || echo "lazy")
		printf "%-7s %-8s %14s %16s %10s\n" $mode $label "$wall" "$rate" "$first"
		echo "$mode,$label,$wall,$rate,$first,\"$platform\"" >>"$csv2"
	done
done
echo
echo "CSV: $csv1 $csv2"
