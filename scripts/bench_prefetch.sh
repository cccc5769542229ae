#!/bin/bash
# make bench-prefetch: fewer faults, side by side (docs/working-set.md).
# A guest's working set recorded once (--record-ws) and replayed ahead of
# it (--prefetch), against demand paging in each async mode and an eager
# load, with memory served over an emulated link (scripts/netlab.sh:
# apfvm serve and s3rver in another network namespace, netem delay on the
# server's replies; needs root):
#   guests   ref:   the reference guest, `apfvm run` with a LAZY (32M) lazy
#                   region, compute next to a random-order scan of 25% of it;
#            linux: Debian's 6.12 running apfvm's /init (the same tasks over
#                   a 16M lazy region, 256M resident), snapshotted once at
#                   the start, mid-scan, and restored with all of its memory
#                   from the source;
#   sources  tcp: (apfvm serve --image / --snapshot) at 1 ms and 10 ms,
#            s3:// (apfvm pack to s3rver) at 1 ms;
#   cases    1 demand-off   --apf off, recording the working set: the baseline
#                           (what a Firecracker UFFD handler does)
#            2 demand-kern  --apf kernel
#            3 demand-user  --apf user
#            4 replay-off   --prefetch of 1's file, --apf off (what REAP does)
#            5 replay-user  --prefetch of 1's file, --apf user
#            6 eager        --populate: all memory before the guest starts
#            7 drift-user   ref only: 1's file replayed for a scan whose pages
#                           moved by 30% (--scan-drift 0.3), --apf user; a
#                           restore cannot change its workload
# The Linux snapshot is taken in user mode, so that its guest registers for
# async page faults and kernel and user restores can use them.  apfvm
# refuses --apf off for such a guest (a parked task would never wake), so
# Linux's "off" cases run --apf user with a 60 s threshold, above any
# fetch: every fault is served synchronously, the vCPU waiting, as with off
# (checked: no fault goes async).
# Per case: the time from apfvm's start to the workload's end (the first
# instruction's time plus wall_s), the scan's runtime (ref), the compute
# task's rate (work / runtime), demand faults, bytes fetched ((lazy +
# resident pages fetched) x 4096) and the demand faults' median wait.
# The targets are printed as PASS/FAIL lines with their figures.  Medians
# of RUNS (default 1); every scan must verify every word (else it stops).
# Table on stdout, CSV in build/bench/prefetch.csv, plot in
# build/bench/prefetch.png, each run's --stats-json in build/bench/prefetch/.
# Runs on /dev/kvm where it works, otherwise inside the emulated KVM host
# (scripts/kvm_where.sh).  GUESTS and SOURCES pick a part (defaults
# "ref linux" and "tcp:1 tcp:10 s3:1", KIND:DELAY_MS).
set -eu
cd "$(dirname "$0")/.."
APFVM=${APFVM:-build/apfvm}
RUNS=${RUNS:-1}
GUESTS=${GUESTS:-ref linux}
SOURCES=${SOURCES:-tcp:1 tcp:10 s3:1}
LAZY=${LAZY:-32M}
KERNEL=${KERNEL:-build/emuhost/kernel/vmlinuz}
LINUX_MEM=256M LINUX_LAZY=${LINUX_LAZY:-16M}
LINUX_SNAP_PAGES=${LINUX_SNAP_PAGES:-256} # of the 1024 its scan reads
FRACTION=0.25 DRIFT=0.3
CASES="1 2 3 4 5 6 7"
. scripts/netlab.sh
. scripts/kvm_where.sh
[ "$(id -u)" -eq 0 ] || { echo "bench_prefetch.sh: needs root (network namespaces)" >&2; exit 1; }
kvm_place_self "$APFVM" scripts/bench_prefetch.sh "$@"
platform=$($APFVM platform)
tmp=$(mktemp -d /tmp/apfvm-bench-prefetch.XXXXXX)
trap 'netlab_down; rm -rf "$tmp"' EXIT
csv=build/bench/prefetch.csv jsons=build/bench/prefetch
rm -rf "$jsons" && mkdir -p "$jsons"

die() { echo "bench_prefetch.sh: $*" >&2; exit 1; }
# Fields of apfvm's --stats-json (each object on one line at most).
num() { grep -o "\"$2\": *[0-9.]*" "$1" | head -1 | sed 's/.*: *//'; }
sect() { grep -o "\"$2\": {[^}]*}" "$1" | head -1 | grep -o "\"$3\": *[0-9.]*" | head -1 | sed 's/.*: *//'; }
task_num() { grep -o "{\"name\": \"$2\"[^}]*}" "$1" | head -1 | grep -o "\"$3\": *[0-9.]*" | sed 's/.*: *//'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "" }'; }
pages_of() { numfmt --from=iec "$1" | awk '{ print $1 / 4096 }'; }

# The median demand-fault wait (us) from the histogram of both regions
# (bucket i: [2^i, 2^(i+1)) us), interpolated within its bucket on a log
# scale; the same rank as fault_us_p50's, (n - 1) / 2 from 0.  0: none.
hist_p50() {
	grep -o '"latency_us_log2": \[[^]]*\]' "$1" | sed 's/.*\[//; s/\]//; s/,/ /g' | awk '{
		n = 0
		for (i = 1; i <= NF; i++) n += $i
		if (!n) { print 0; exit }
		rank = int((n - 1) / 2); below = 0
		for (i = 1; i <= NF; i++) {
			if (below + $i > rank) { printf "%.0f\n", 2 ^ (i - 1 + (rank - below + 0.5) / $i); exit }
			below += $i
		}
	}'
}

case_name() {
	case $1 in
	1) echo demand-off ;; 2) echo demand-kern ;; 3) echo demand-user ;; 4) echo replay-off ;;
	5) echo replay-user ;; 6) echo eager ;; 7) echo drift-user ;;
	esac
}
# case_args GUEST CASE WS: the options of one case past the guest's own.
case_args() {
	local off="--apf off"
	[ "$1" = ref ] || off="--apf user --apf-threshold 60s" # synchronous (above)
	case $2 in
	1) echo "$off --record-ws $3" ;;
	2) echo --apf kernel ;;
	3) echo --apf user ;;
	4) echo "$off --prefetch $3" ;;
	5) echo --apf user --prefetch "$3" ;;
	6) echo "$off --populate" ;;
	7) echo --apf user --prefetch "$3" --scan-drift $DRIFT ;;
	esac
}

# run_case GUEST SRC CASE WS JSON: one run of one case.
run_case() {
	local err=$tmp/err
	# shellcheck disable=SC2046 # case_args gives words
	if [ "$1" = ref ]; then
		$APFVM run --workload compute,scan --lazy "$LAZY" --source "$2" --scan-order random \
			--scan-fraction $FRACTION $(case_args ref "$3" "$4") --timeout 900s \
			--stats-json "$5" -q 2>"$err" || die "reference guest, $2, $(case_name "$3"): $(tail -3 "$err")"
	else
		$APFVM restore --source "$2" $(case_args linux "$3" "$4") --timeout 900s \
			--console "$tmp/linux.console" --stats-json "$5" -q "$tmp/linux" 2>"$err" ||
			die "Linux restore, $2, $(case_name "$3"): $(tail -3 "$err")"
	fi
}

# measure JSON GUEST CASE: one run's figures, on one line:
#   end_s wall_s scan_s compute_rate demand async ahead late bytes
#   fault_p50_us demand_p50_us p50_us ws_loaded_ms scan_pages
# (late: demand faults on pages a prefetch had in flight, ahead.waited_on)
# p50_us is the one compared: the exact fault_us_p50 of the lazy region
# for ref (all of its demand faults are there), the histogram's for linux
# (most of its demand faults are in resident memory).
measure() {
	local j=$1 res=0 async
	[ "$(task_num "$j" scan mismatches)" = 0 ] && [ "$(task_num "$j" scan pages)" -gt 0 ] ||
		die "$j: the scan did not verify every word: $(grep -o '{"name": "scan"[^}]*}' "$j")"
	async=$(sect "$j" demand async)
	case $2:$3 in linux:1 | linux:4 | linux:6)
		[ "$async" = 0 ] || die "$j: a synchronous case had $async async faults" ;;
	esac
	[ "$2" = ref ] || res=$(pages_of $LINUX_MEM)
	awk -v first="$(sect "$j" times_ms first_instruction)" -v wall="$(num "$j" wall_s)" \
		-v scan="$(task_num "$j" scan runtime_s)" -v work="$(task_num "$j" compute work)" \
		-v rt="$(task_num "$j" compute runtime_s)" -v demand="$(sect "$j" demand faults)" \
		-v async="$async" -v ahead="$(sect "$j" ahead fetched)" \
		-v late="$(sect "$j" ahead waited_on)" -v lazy="$(num "$j" pages_fetched)" \
		-v rfetched="$(sect "$j" restore resident_pages_fetched)" -v lazy_pages="$(num "$j" lazy_pages)" \
		-v populated="$(sect "$j" times_ms populated)" -v res="$res" -v fp50="$(num "$j" fault_us_p50)" \
		-v hp50="$(hist_p50 "$j")" -v loaded="$(sect "$j" times_ms ws_loaded)" \
		-v pages="$(task_num "$j" scan pages)" -v guest="$2" 'BEGIN {
		s = guest == "ref" ? sprintf("%.3f", scan) : "-"
		rate = rt > 0 ? work / rt : 0
		fetched = lazy + rfetched
		# --populate counts none of its pages: it fetched all of them.
		if (populated > 0 && fetched == 0)
			fetched = lazy_pages + res
		p50 = guest == "ref" ? fp50 : hp50
		printf "%.3f %.3f %s %.0f %d %d %d %d %d %d %d %d %.0f %d\n", first / 1000 + wall, wall,
			s, rate, demand, async, ahead, late, fetched * 4096, fp50, hp50, p50, loaded, pages }'
}

make_linux_snapshot() {
	echo "Making the Linux snapshot: a random 25% of its $LINUX_LAZY lazy region read, stopped"
	echo "after $LINUX_SNAP_PAGES of those pages ..."
	$APFVM mkimage --size "$LINUX_LAZY" --seed 7 "$tmp/linux-img" >/dev/null
	$APFVM run --kernel "$KERNEL" --mem $LINUX_MEM --lazy "$LINUX_LAZY" \
		--source "file:$tmp/linux-img" --workload compute:1,scan:1 --scan-order random \
		--scan-fraction $FRACTION --apf user --cmdline quiet --timeout 600s \
		--console "$tmp/linux-run.console" --snapshot-after-pages "$LINUX_SNAP_PAGES" \
		--snapshot "$tmp/linux" -q 2>"$tmp/err" || die "the Linux snapshot failed: $(tail -3 "$tmp/err")"
}

# Each guest's memory in object storage; the tcp: server is started per
# guest (serve_for).
setup_sources() {
	netlab_up
	netlab_s3rver
	$APFVM pack "$tmp/img" s3://apfvm/bench/ref >/dev/null
	[ ! -e "$tmp/linux" ] || $APFVM pack --snapshot "$tmp/linux" s3://apfvm/bench/linux >/dev/null
}
serve_for() {
	netlab_stop_server
	if [ "$1" = ref ]; then netlab_serve --image "$tmp/img"; else netlab_serve --snapshot "$tmp/linux"; fi
}

# run_cell GUEST KIND DELAY: RUNS rounds of every case of that guest over
# that source (each round records its own working set), then one CSV row
# per case with the medians.
run_cell() {
	local guest=$1 kind=$2 delay=$3 src r c j ws rows k
	if [ "$kind" = tcp ]; then
		serve_for "$guest"
		src=tcp:$NETLAB_SERVER_IP:$NETLAB_PORT
	else
		src=s3://apfvm/bench/$guest
	fi
	netlab_link delay "${delay}ms"
	for r in $(seq "$RUNS"); do
		ws=$tmp/$guest-$kind-$delay-$r.ws
		for c in $CASES; do
			[ "$guest" = ref ] || [ "$c" != 7 ] || continue
			j=$jsons/$guest-$kind-$delay-$c-$r.json
			run_case "$guest" "$src" "$c" "$ws" "$j"
			measure "$j" "$guest" "$c" >>"$tmp/rows-$c"
			echo "  $guest, $kind ${delay}ms, round $r: $(case_name "$c") ends at $(awk '{ t = $1 } END { print t }' "$tmp/rows-$c") s" >&2
		done
	done
	for c in $CASES; do
		[ -s "$tmp/rows-$c" ] || continue
		rows=$(for k in $(seq 14); do
			if [ "$(awk -v k=$k 'NR == 1 { print $k }' "$tmp/rows-$c")" = - ]; then echo -
			else awk -v k=$k '{ print $k }' "$tmp/rows-$c" | median; fi
		done | paste -sd,)
		echo "$guest,$kind,$delay,$c,$(case_name "$c"),$rows,\"$platform\"" >>"$csv"
		rm "$tmp/rows-$c"
	done
}

print_table() {
	echo
	echo "Fewer faults, side by side (medians of $RUNS), memory over a veth link with netem delay"
	echo "on the server's replies. ref: the reference guest, compute next to a random-order scan"
	echo "of 25% of a $LAZY lazy region. linux: Debian 6.12 restored from a snapshot taken"
	echo "mid-scan of 25% of a $LINUX_LAZY lazy region ($LINUX_MEM resident), all of its memory"
	echo "from the source; its off cases are user mode with a 60 s threshold (every fault"
	echo "synchronous: --apf off refuses a guest registered for async PF); Linux cannot change"
	echo "its workload on restore (the snapshot fixes it): no drift case."
	echo "end: from apfvm's start to the workload's end; compute: the compute task's work per"
	echo "second of its runtime (linux: since its start, before the snapshot too); MiB: pages"
	echo "fetched x 4 KiB (eager: all memory; a snapshot's zero pages count, though they never"
	echo "cross the link); demand: faults the guest waited on, async of them, late: of them on"
	echo "pages a prefetch had in flight; p50: the demand faults' median wait (ref: exact, lazy"
	echo "region; linux: both regions, from the log2 histogram)."
	printf "%-6s %-8s %-13s %8s %8s %13s %7s %6s %5s %7s %9s\n" guest source case "end (s)" "scan (s)" \
		"compute (u/s)" demand async late MiB "p50 (us)"
	awk -F, 'NR > 1 { printf "%-6s %-8s %-13s %8s %8s %13s %7s %6s %5s %7.1f %9s\n", $1, $2 " " $3 "ms",
		$4 " " $5, $6, $8, $9, $10, $11, $13, $14 / 1048576, $17 }' "$csv"
}

# fig GUEST KIND DELAY CASE COLUMN: one figure of the CSV.
fig() {
	awk -F, -v g="$1" -v k="$2" -v d="$3" -v c="$4" -v col="$5" \
		'$1 == g && $2 == k && $3 == d && $4 == c { print $col }' "$csv"
}
verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo FAIL; fi; }
ratio() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { if (b > 0) printf f, a / b; else printf "-" }'; }

# targets GUEST KIND DELAY: that cell's PASS/FAIL lines.
targets() {
	local g=$1 k=$2 d=$3 at="$1, $2 $3ms" rec rep off user base t c unloaded loaded what
	rec=$(fig $g $k $d 1 10) rep=$(fig $g $k $d 5 10)
	echo "$(verdict "$rep <= 0.03 * $rec") $at: replay-user's demand faults $rep <= 3% of the recording's $rec ($(ratio $((rep * 100)) $rec %.2f%%))"
	off=$(fig $g $k $d 4 6) user=$(fig $g $k $d 5 6)
	echo "$(verdict "$user <= $off") $at: replay-user not slower than replay-off: $user s against $off s (ratio $(ratio $user $off %.3f))"
	if [ "$k" = tcp ] && [ "$d" = 1 ]; then
		base=$(fig $g $k $d 1 6)
		for c in 4 5; do
			t=$(fig $g $k $d $c 6)
			echo "$(verdict "$base >= 3.7 * $t") $at: $(case_name $c) ends at least 3.7x sooner than demand-off: $t s against $base s ($(ratio $base $t %.2fx))"
		done
	fi
	# Demand faults while a prefetch runs: the replays' (all of them come
	# before its end) and the stale set's misses (ref; some come after).
	unloaded=$(fig $g $k $d 1 17) what=
	for c in 4 5 7; do
		[ "$(fig $g $k $d $c 10)" ] && [ "$(fig $g $k $d $c 10)" -gt 0 ] || continue
		loaded=$(fig $g $k $d $c 17)
		what="$(case_name $c)'s $(fig $g $k $d $c 10) demand faults ($(fig $g $k $d $c 13) late; the prefetch done at $(fig $g $k $d $c 18) ms, the end at $(fig $g $k $d $c 6) s)"
		echo "$(verdict "$loaded <= 2 * $unloaded") $at: p50 wait of $what: $loaded us, within 2x of demand-off's $unloaded us ($(ratio $loaded $unloaded %.2fx))"
	done
	[ -n "$what" ] ||
		echo "n/a  $at: no demand fault while prefetching (cases 4, 5, 7) to compare with demand-off's p50 of $unloaded us"
}

# ---- main -------------------------------------------------------------
[ -r "$KERNEL" ] || die "no Linux kernel at '$KERNEL' (scripts/emuhost/emuhost --setup fetches it)"
echo "Platform: $platform"
$APFVM mkimage --size "$LAZY" --seed 3 "$tmp/img" >/dev/null
case " $GUESTS " in *" linux "*) make_linux_snapshot ;; esac
setup_sources
echo "guest,source,delay_ms,case,name,end_s,wall_s,scan_s,compute_rate,demand_faults,demand_async,ahead_fetched,ahead_waited_on,bytes_fetched,fault_p50_us,demand_p50_us,p50_us,ws_loaded_ms,scan_pages,platform" >"$csv"
for guest in $GUESTS; do
	for s in $SOURCES; do
		run_cell "$guest" "${s%:*}" "${s#*:}"
	done
done
print_table
echo
echo "Targets:"
for guest in $GUESTS; do
	for s in $SOURCES; do
		targets "$guest" "${s%:*}" "${s#*:}"
	done
done
echo
echo "Took $((SECONDS / 60)) min $((SECONDS % 60)) s here. CSV: $csv; each run's statistics: $jsons/"
bench/plot_prefetch.sh "$csv" build/bench/prefetch.png
