#!/bin/bash
# End-to-end tests of working sets (docs/working-set.md) with the
# reference guest: a run and a restore record the pages their guest
# faults on; replayed with --prefetch, the same work takes at most 3% of
# the demand faults, with every word still verified, in each async mode;
# a working set that no longer matches the workload still runs right, its
# misses demand faults; files for other memory, damaged ones and ones
# that do not fit are refused before any guest runs.
# Prints "ok NAME" / "FAIL NAME: why" lines.
set -u
APFVM=${APFVM:-build/apfvm}
tmp=$(mktemp -d /tmp/apfvm-ws.XXXXXX)
serve_pid= run_pid=
trap '[ -n "$serve_pid" ] && kill $serve_pid 2>/dev/null; [ -n "$run_pid" ] && kill $run_pid 2>/dev/null; wait; rm -rf "$tmp"' EXIT

ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; }
json_num() { grep -o "\"$2\": *[0-9.]*" "$1" | head -1 | sed 's/.*: *//'; }
scan_field() { grep '"name": "scan"' "$1" | grep -o "\"$2\": *[0-9.]*" | sed 's/.*: *//'; }
demand() { grep -o '"demand": {"faults": *[0-9]*' "$1" | sed 's/.*: *//'; }
ahead() { grep -o "\"ahead\": {.*" "$1" | grep -o "\"$2\": *[0-9]*" | sed 's/.*: *//'; }

expect_refused() { # NAME PATTERN ARGS...: exit 1 or 2, PATTERN on stderr, no guest ran
	local name=$1 pattern=$2
	shift 2
	timeout 60 $APFVM "$@" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	if [ $rc -ne 1 ] && [ $rc -ne 2 ]; then
		fail "$name" "exit status $rc: $(head -c 300 "$tmp/err")"
	elif ! grep -qE -- "$pattern" "$tmp/err"; then
		fail "$name" "message '$(head -c 300 "$tmp/err")' does not match /$pattern/"
	elif grep -q "task " "$tmp/out"; then
		fail "$name" "a guest ran: $(head -c 300 "$tmp/out")"
	else
		ok "$name"
	fi
}

# replayed NAME RECORDED_JSON JSON PAGES: the scan read PAGES pages with no
# mismatch; at most 3% of the recording's demand faults; pages came ahead.
replayed() {
	local name=$1 rec=$2 j=$3 pages=$4 d r
	d=$(demand "$j")
	r=$(demand "$rec")
	if [ "$(scan_field "$j" pages)" = "$pages" ] && [ "$(scan_field "$j" mismatches)" = 0 ] &&
		[ -n "$d" ] && [ "${r:-0}" -gt 0 ] && [ $((d * 100)) -le $((r * 3)) ] &&
		[ "$(ahead "$j" fetched)" -gt 0 ]; then
		ok "$name"
	else
		fail "$name" "demand faults $d of the recording's $r: $(tr '\n' ' ' <"$j" | head -c 700)"
	fi
}

$APFVM mkimage --size 4M --seed 9 "$tmp/img" >/dev/null || { fail ws_setup mkimage; exit 0; }
RUN="run --workload compute,scan --lazy 4M --source file:$tmp/img --latency 1ms --scan-order random"

# A boot: the lazy region's first touches, recorded, then replayed.
if $APFVM $RUN --record-ws "$tmp/run.ws" --stats-json "$tmp/rec.json" >/dev/null 2>"$tmp/err" &&
	[ -s "$tmp/run.ws" ] && [ "$(demand "$tmp/rec.json")" = 1024 ] &&
	[ "$(json_num "$tmp/rec.json" ws_recorded_pages)" = 1024 ]; then
	ok run_records_every_page_its_guest_faulted_on
else
	fail run_records_every_page_its_guest_faulted_on "$(head -c 300 "$tmp/err"; tr '\n' ' ' <"$tmp/rec.json" | head -c 400)"
fi
for mode in off user; do
	if $APFVM $RUN --apf $mode --prefetch "$tmp/run.ws" --stats-json "$tmp/rep-$mode.json" \
		>/dev/null 2>"$tmp/err"; then
		replayed "run_replay_in_${mode}_mode_takes_few_faults_every_word_verified" \
			"$tmp/rec.json" "$tmp/rep-$mode.json" 1024
	else
		fail "run_replay_in_${mode}_mode_takes_few_faults_every_word_verified" "$(head -c 400 "$tmp/err")"
	fi
done

# A stale working set: recorded for one half of the region, replayed for
# a scan whose half moved by 30%.  It still reads every word right; its
# new pages are demand faults (about 30% of them), and every recorded
# page was fetched all the same: the waste shows.
if $APFVM $RUN --scan-fraction 0.5 --record-ws "$tmp/half.ws" --stats-json "$tmp/h.json" \
	>/dev/null 2>"$tmp/err" &&
	$APFVM $RUN --scan-fraction 0.5 --scan-drift 0.3 --prefetch "$tmp/half.ws" \
		--stats-json "$tmp/s.json" >/dev/null 2>>"$tmp/err"; then
	set_pages=$(scan_field "$tmp/s.json" pages) rec=$(demand "$tmp/h.json") d=$(demand "$tmp/s.json")
	if [ "$(scan_field "$tmp/s.json" mismatches)" = 0 ] && [ "${set_pages:-0}" -gt 400 ] &&
		[ $((d * 100)) -ge $((set_pages * 20)) ] && [ $((d * 100)) -le $((set_pages * 40)) ] &&
		[ "$(ahead "$tmp/s.json" loaded)" = "$rec" ]; then
		ok stale_working_set_runs_right_its_misses_demand_faults
	else
		fail stale_working_set_runs_right_its_misses_demand_faults "scan read $set_pages pages, $d demand faults, $rec recorded: $(tr '\n' ' ' <"$tmp/s.json" | head -c 600)"
	fi
else
	fail stale_working_set_runs_right_its_misses_demand_faults "$(head -c 400 "$tmp/err")"
fi

# What the stale replay wasted: the drifted workload's own recording
# against the replayed one (apfvm ws compare): about 70% of its pages
# were prefetched and used, about 30% of the replayed ones never used.
if $APFVM $RUN --scan-fraction 0.5 --scan-drift 0.3 --record-ws "$tmp/drift.ws" >/dev/null 2>"$tmp/err" &&
	$APFVM ws compare --csv "$tmp/half.ws" "$tmp/drift.ws" >"$tmp/cmp.csv" 2>>"$tmp/err" &&
	IFS=, read -r rep act both unused missed jac <"$tmp/cmp.csv" &&
	[ "$rep" = "$(demand "$tmp/h.json")" ] && [ $((both * 100)) -ge $((act * 60)) ] &&
	[ $((both * 100)) -le $((act * 80)) ] && [ $((unused + both)) = "$rep" ] &&
	[ $((missed + both)) = "$act" ]; then
	ok stale_replay_waste_shows_when_the_working_sets_are_compared
else
	fail stale_replay_waste_shows_when_the_working_sets_are_compared "$(head -c 300 "$tmp/err"; cat "$tmp/cmp.csv" 2>/dev/null)"
fi

# A restore: both regions' first touches (resident memory's too).
if $APFVM $RUN --snapshot-after-pages 256 --snapshot "$tmp/snap" >/dev/null 2>"$tmp/err" &&
	$APFVM restore --record-ws "$tmp/snap.ws" --stats-json "$tmp/rrec.json" "$tmp/snap" \
		>/dev/null 2>>"$tmp/err" &&
	[ "$(scan_field "$tmp/rrec.json" mismatches)" = 0 ] &&
	[ "$(demand "$tmp/rrec.json")" -gt "$(json_num "$tmp/rrec.json" resident_faults)" ] &&
	[ "$(json_num "$tmp/rrec.json" resident_faults)" -gt 0 ]; then
	ok restore_records_resident_and_lazy_first_touches
else
	fail restore_records_resident_and_lazy_first_touches "$(head -c 300 "$tmp/err"; tr '\n' ' ' <"$tmp/rrec.json" | head -c 500)"
fi
if $APFVM restore --prefetch "$tmp/snap.ws" --stats-json "$tmp/rrep.json" "$tmp/snap" \
	>/dev/null 2>"$tmp/err"; then
	replayed restore_replay_takes_few_faults_every_word_verified "$tmp/rrec.json" "$tmp/rrep.json" 1024
else
	fail restore_replay_takes_few_faults_every_word_verified "$(head -c 400 "$tmp/err")"
fi

# Refused before any guest runs, with the reason.
expect_refused working_set_of_a_snapshot_is_refused_for_a_boot "another snapshot or another memory" \
	$RUN --prefetch "$tmp/snap.ws"
expect_refused working_set_of_a_boot_is_refused_for_a_restore "another snapshot or another memory" \
	restore --prefetch "$tmp/run.ws" "$tmp/snap"
cp "$tmp/run.ws" "$tmp/bad.ws" && printf '\377' | dd of="$tmp/bad.ws" bs=1 seek=100 conv=notrunc status=none
expect_refused damaged_working_set_is_refused "damaged" $RUN --prefetch "$tmp/bad.ws"
head -c 1000 "$tmp/run.ws" >"$tmp/short.ws"
expect_refused truncated_working_set_is_refused "truncated" $RUN --prefetch "$tmp/short.ws"
expect_refused working_set_for_other_sizes_is_refused "more than the guest's 512" \
	run --workload scan --lazy 2M --source file:"$tmp/img" --prefetch "$tmp/run.ws"
expect_refused not_a_working_set_is_refused "not a working-set file" $RUN --prefetch "$tmp/img"
expect_refused missing_working_set_is_refused "no such file|No such file" $RUN --prefetch "$tmp/none.ws"
expect_refused recording_while_prefetching_is_refused "would miss them" \
	$RUN --prefetch "$tmp/run.ws" --record-ws "$tmp/x.ws"
expect_refused working_set_needs_a_lazy_region "needs --lazy" run --prefetch "$tmp/run.ws"

# Background population over a page server: while the guest computes,
# every page of its lazy region arrives at the lowest priority; then both
# of the tcp: source's connections close while the guest runs on (the
# server sees none left before the run ends), and the run ends well with
# each page sent once.
"$APFVM" serve --image "$tmp/img" --listen 127.0.0.1:0 >"$tmp/serve.out" 2>"$tmp/serve.err" &
serve_pid=$!
port=
for _ in $(seq 100); do
	port=$(sed -n 's/.* on port \([0-9]*\)$/\1/p' "$tmp/serve.out")
	[ -n "$port" ] && break
	sleep 0.1
done
connections() { ss -Htn state established "( sport = :$port )" | wc -l; }
$APFVM run --workload compute --duration 4s --lazy 4M --source tcp:127.0.0.1:$port \
	--populate background --stats-json "$tmp/bg.json" >/dev/null 2>"$tmp/err" &
run_pid=$!
seen= closed_while_running=
for _ in $(seq 1200); do # polled: the connections come, then go before the 4 s end
	n=$(connections)
	[ "$n" -gt 0 ] && seen=1
	if [ -n "$seen" ] && [ "$n" = 0 ]; then
		kill -0 $run_pid 2>/dev/null && closed_while_running=1
		break
	fi
	kill -0 $run_pid 2>/dev/null || break
	sleep 0.05
done
wait $run_pid
rc=$? run_pid=
kill $serve_pid && wait $serve_pid
serve_pid=
sent=$(sed -n 's/.* \([0-9]*\) pages sent.*/\1/p' "$tmp/serve.out")
populated=$(grep -o '"populated": *[0-9.]*' "$tmp/bg.json" | sed 's/.*: *//')
if [ $rc = 0 ] && [ -n "$closed_while_running" ] && [ "$sent" = 1024 ] &&
	[ "$(ahead "$tmp/bg.json" background)" = 1024 ] && [ "$(demand "$tmp/bg.json")" = 0 ] &&
	awk -v p="${populated:-0}" 'BEGIN { exit !(p > 0) }'; then
	ok background_population_fills_memory_then_closes_the_source_while_the_guest_runs
else
	fail background_population_fills_memory_then_closes_the_source_while_the_guest_runs \
		"status $rc, closed while running: ${closed_while_running:-no}, pages sent $sent, populated at ${populated}ms: $(head -c 200 "$tmp/err"; tr '\n' ' ' <"$tmp/bg.json" | head -c 500)"
fi
