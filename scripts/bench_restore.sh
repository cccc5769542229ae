#!/bin/bash
# make bench-restore: lazy restore from a snapshot (docs/snapshot.md).
#  1. Time from `apfvm restore` to the guest's first instruction, by
#     resident memory size (a compute guest snapshotted after 1 s), lazy
#     against eager (--populate: every page installed and checked first).
#  2. Per mode, a compute task next to a scan of an 8 MiB lazy region
#     snapshotted at 1 s and restored with 1 ms and 10 ms per page: the time until
#     the restored workload completes and the compute task's rate during
#     the restore (its work since the snapshot, which the snapshot records,
#     over the time the restored guest ran), lazy against resident (the
#     same workload with all of its memory installed before it goes on).
# Medians of RUNS (default 3); CSV in build/bench/restore-*.csv, tables on
# stdout, a plot in build/bench/restore.png.  Runs on /dev/kvm where it
# works, otherwise inside the emulated KVM host (scripts/kvm_where.sh).
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
echo "1. Restore to first instruction (ms, median of $RUNS), by resident memory; the lazy"
echo "   restore's phases end at: snapshot read and checked, VM and pagers ready, state"
echo "   back in KVM (the rest: the guest's registration, the vCPU thread's start)"
printf "%-8s %10s %10s %10s %10s %12s\n" memory read vm+pagers state lazy eager
csv1=build/bench/restore-first-instruction.csv
echo "mem_mib,lazy_ms,eager_ms,lazy_read_ms,lazy_vm_ready_ms,lazy_state_ms,platform" >"$csv1"
for mem in 64M 256M 1G; do
	$APFVM run --mem $mem --workload compute --duration 3s --snapshot-at 1s \
		--snapshot "$tmp/s" -q
	for r in $(seq "$RUNS"); do
		$APFVM restore --stats-json "$tmp/j" -q "$tmp/s"
		echo "$(num "$tmp/j" first_run_ms) $(num "$tmp/j" opened_ms) $(num "$tmp/j" vm_ready_ms) $(num "$tmp/j" state_ms)"
	done >"$tmp/lazy"
	for r in $(seq "$RUNS"); do
		$APFVM restore --populate --stats-json "$tmp/j" -q "$tmp/s"
		num "$tmp/j" first_run_ms
	done | median >"$tmp/eager"
	col() { awk -v c="$1" '{ print $c }' "$tmp/lazy" | median; }
	lazy=$(col 1) read=$(col 2) vm=$(col 3) state=$(col 4)
	printf "%-8s %10s %10s %10s %10s %12s\n" $mem "$read" "$vm" "$state" "$lazy" "$(cat "$tmp/eager")"
	echo "$(( $(echo $mem | sed 's/M$//; s/G$/*1024/') )),$lazy,$(cat "$tmp/eager"),$read,$vm,$state,\"$platform\"" >>"$csv1"
done

echo
echo "2. Restored workload, per mode: compute next to a scan of an 8 MiB lazy region,"
echo "   snapshotted at 1 s, restored lazily with 1 ms and with 10 ms per page, and with"
echo "   all of its memory installed first (resident, --populate); medians of $RUNS"
printf "%-7s %-9s %8s %18s %22s %10s\n" mode memory latency "restore to end (s)" "compute during (u/s)" "first (ms)"
csv2=build/bench/restore-modes.csv
echo "mode,memory,latency_ms,restore_to_end_s,compute_rate_during,first_run_ms,platform" >"$csv2"
$APFVM mkimage --size 8M --seed 3 "$tmp/img" >/dev/null
for mode in off kernel user; do
	$APFVM run --workload compute,scan --lazy 8M --source file:"$tmp/img" --latency 1ms \
		--apf $mode --snapshot-at 1s --snapshot "$tmp/m-$mode" -q
	for case in lazy:1 lazy:10 resident:0; do
		kind=${case%:*} lat=${case#*:}
		for r in $(seq "$RUNS"); do
			$APFVM restore --apf $mode $([ $kind = resident ] && echo --populate || echo --latency ${lat}ms) \
				--stats-json "$tmp/j" -q "$tmp/m-$mode"
			[ "$(task_num "$tmp/j" scan mismatches)" = 0 ] || { echo "bench_restore.sh: mismatches" >&2; exit 1; }
			# From `apfvm restore` to the guest's report; the compute
			# task's work since the snapshot over the time the guest ran.
			echo "$(num "$tmp/j" first_run_ms) $(num "$tmp/j" wall_s) $(task_num "$tmp/j" compute work) $(num "$tmp/j" compute_work_at_snapshot)"
		done >"$tmp/rows"
		end=$(awk '{ printf "%.3f\n", $1 / 1000 + $2 }' "$tmp/rows" | median)
		rate=$(awk '{ printf "%.0f\n", ($3 - $4) / $2 }' "$tmp/rows" | median)
		first=$(awk '{ print $1 }' "$tmp/rows" | median)
		printf "%-7s %-9s %8s %18s %22s %10s\n" $mode $kind "$([ $lat = 0 ] && echo - || echo ${lat}ms)" "$end" "$rate" "$first"
		echo "$mode,$kind,$lat,$end,$rate,$first,\"$platform\"" >>"$csv2"
	done
done
echo
echo "CSV: $csv1 $csv2"
bench/plot_restore.sh "$csv1" "$csv2" build/bench/restore.png
