#!/bin/bash
# make bench-net: memory over a real (emulated) network link: apfvm serve
# and s3rver (an S3-compatible server) in another network namespace, the
# tcp: and s3:// sources here, tc netem on the link (scripts/netlab.sh;
# needs root).
#  1. Each source's throughput without a VM (apfvm fetch): pages per second
#     and fetch latency with 1, 16 and 64 requests in flight, for no added
#     delay, 1 ms and 10 ms on the link.
#  2. Per source and async mode, a compute task next to a scan of an 8 MiB
#     lazy region served over the link with 1 ms and 10 ms of delay: the
#     compute task's rate while the scan waits for the network, against
#     its rate alone, and the scan's time.
# Both run where part 2 can: on /dev/kvm where it works, otherwise inside
# the emulated KVM host (scripts/kvm_where.sh), whose kernel has netem.
# Medians of RUNS (default 3); CSV in build/bench/net-*.csv, tables on
# stdout, a plot in build/bench/net.png.
set -eu
cd "$(dirname "$0")/.."
APFVM=${APFVM:-build/apfvm}
RUNS=${RUNS:-3}
. scripts/netlab.sh
. scripts/kvm_where.sh
num() { grep -o "\"$2\": *[0-9.]*" "$1" | head -1 | sed 's/.*: *//'; }
task_num() { grep "\"name\": \"$2\"" "$1" | grep -o "\"$3\": *[0-9.]*" | sed 's/.*: *//'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "" }'; }
[ "$(id -u)" -eq 0 ] || { echo "bench_net.sh: needs root (network namespaces)" >&2; exit 1; }
kvm_place_self "$APFVM" scripts/bench_net.sh "$@"
platform=$($APFVM platform)
mkdir -p build/bench
tmp=$(mktemp -d /tmp/apfvm-bench-net.XXXXXX)
trap 'netlab_down; rm -rf "$tmp"' EXIT
csv1=build/bench/net-fetch.csv csv2=build/bench/net-modes.csv

$APFVM mkimage --size 8M --seed 3 "$tmp/img" >/dev/null
netlab_up
netlab_serve --image "$tmp/img"
netlab_s3rver
$APFVM pack "$tmp/img" s3://apfvm/bench/mem >/dev/null
SOURCES="tcp:$NETLAB_SERVER_IP:$NETLAB_PORT s3://apfvm/bench/mem"
kind() { echo "${1%%:*}"; }
link() { if [ "$1" = 0 ]; then netlab_link none; else netlab_link delay "${1}ms"; fi; }

echo "Platform: $platform"
echo
echo "1. The sources without a VM (apfvm fetch of 8 MiB, every page checked): pages"
echo "   per second and fetch latency, medians of $RUNS (s3: 256 KiB chunks, one Range"
echo "   request serves the 64 pages of a chunk)"
printf "%-6s %-11s %9s %12s %14s %14s\n" source "link delay" inflight pages/s "p50 lat (us)" "p99 lat (us)"
echo "source,delay_ms,inflight,pages_per_s,lat_p50_us,lat_p99_us,platform" >"$csv1"
for src in $SOURCES; do
	for delay in 0 1 10; do
		link $delay
		for inflight in 1 16 64; do
			for r in $(seq "$RUNS"); do
				$APFVM fetch --source "$src" --size 8M --inflight $inflight --csv
			done >"$tmp/rows"
			col() { awk -F, -v c="$1" '{ print $c }' "$tmp/rows" | median; }
			pps=$(col 5) p50=$(col 8) p99=$(col 9)
			printf "%-6s %-11s %9s %12s %14s %14s\n" "$(kind $src)" \
				"$([ $delay = 0 ] && echo none || echo ${delay}ms)" $inflight "$pps" "$p50" "$p99"
			echo "$(kind $src),$delay,$inflight,$pps,$p50,$p99,\"$platform\"" >>"$csv1"
		done
	done
done
echo
echo "2. Per source and mode: compute next to a scan of 8 MiB served over the link,"
echo "   medians of $RUNS"
for r in $(seq "$RUNS"); do
	$APFVM run --workload compute --duration 2s --stats-json "$tmp/j" -q
	echo "$(task_num "$tmp/j" compute work) $(task_num "$tmp/j" compute runtime_s)"
done | awk '{ printf "%.0f\n", $1 / $2 }' | median >"$tmp/alone"
alone=$(cat "$tmp/alone")
echo "   compute alone: $alone units/s"
printf "%-6s %-11s %-7s %16s %12s %10s %12s\n" source "link delay" mode "compute (u/s)" "of alone" "scan (s)" "async faults"
echo "source,delay_ms,mode,compute_rate,compute_of_alone,scan_s,faults_async,platform" >"$csv2"
for src in $SOURCES; do
for delay in 1 10; do
	link $delay
	for mode in off kernel user; do
		for r in $(seq "$RUNS"); do
			$APFVM run --workload compute,scan --lazy 8M --source "$src" --apf $mode \
				--stats-json "$tmp/j" -q
			[ "$(task_num "$tmp/j" scan mismatches)" = 0 ] || { echo "bench_net.sh: mismatches" >&2; exit 1; }
			echo "$(task_num "$tmp/j" compute work) $(task_num "$tmp/j" compute runtime_s) $(task_num "$tmp/j" scan runtime_s) $(grep '"faults": {' "$tmp/j" | grep -o '"async": *[0-9]*' | sed 's/.*: *//')"
		done >"$tmp/rows"
		rate=$(awk '{ printf "%.0f\n", $1 / $2 }' "$tmp/rows" | median)
		scan=$(awk '{ print $3 }' "$tmp/rows" | median)
		async=$(awk '{ print $4 }' "$tmp/rows" | median)
		frac=$(awk -v r="$rate" -v a="$alone" 'BEGIN { printf "%.3f", a ? r / a : 0 }')
		printf "%-6s %-11s %-7s %16s %12s %10s %12s\n" "$(kind $src)" ${delay}ms $mode "$rate" "$frac" "$scan" "$async"
		echo "$(kind $src),$delay,$mode,$rate,$frac,$scan,$async,\"$platform\"" >>"$csv2"
	done
done
done
echo
echo "CSV: $csv1 $csv2"
bench/plot_net.sh "$csv1" "$csv2" build/bench/net.png
