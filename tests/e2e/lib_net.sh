# Shared by the network and object storage end-to-end tests: result lines,
# JSON fields, and runs that must succeed or fail in a given way.  Sourced
# after scripts/netlab.sh, with APFVM and tmp (a scratch folder) set.

ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; }
json_num() { grep -o "\"$2\": *[0-9.]*" "$1" | head -1 | sed 's/.*: *//'; }
scan_field() { grep '"name": "scan"' "$1" | grep -o "\"$2\": *[0-9.]*" | sed 's/.*: *//'; }

# scan_ok NAME SOURCE ARGS...: compute next to a scan of 8 MiB from SOURCE
# sees every word right (results in $tmp/s.json); else prints FAIL and
# returns 1.  Prints nothing on success: callers may check more.
scan_ok() {
	local name=$1 src=$2
	shift 2
	if ! timeout 600 $APFVM run --workload compute,scan --lazy 8M --source "$src" \
		--stats-json "$tmp/s.json" "$@" >"$tmp/out" 2>"$tmp/err"; then
		fail "$name" "$(head -c 400 "$tmp/err")"
		return 1
	fi
	local pages mism
	pages=$(scan_field "$tmp/s.json" pages)
	mism=$(scan_field "$tmp/s.json" mismatches)
	if [ "$pages" != 2048 ] || [ "$mism" != 0 ]; then
		fail "$name" "pages=$pages mismatches=$mism"
		return 1
	fi
	return 0
}

# snapshot_ok NAME SOURCE: a run whose 4 MiB lazy region comes from SOURCE,
# snapshotted halfway through its scan (512 of 1024 pages fetched: the
# snapshot fetches the rest through SOURCE), then restored from the local
# snapshot: the scan ends with every word verified.  Prints ok or FAIL.
snapshot_ok() {
	local name=$1 src=$2
	rm -f "$tmp/rsnap" "$tmp/rsnap.mem"
	if ! timeout 600 $APFVM run --workload compute,scan --lazy 4M --source "$src" \
		--snapshot-after-pages 512 --snapshot "$tmp/rsnap" -q 2>"$tmp/err"; then
		fail "$name" "snapshot: $(head -c 400 "$tmp/err")"
	elif ! timeout 600 $APFVM restore --stats-json "$tmp/rs.json" "$tmp/rsnap" \
		>"$tmp/out" 2>"$tmp/err"; then
		fail "$name" "restore: $(head -c 400 "$tmp/err")"
	elif [ "$(scan_field "$tmp/rs.json" pages)" != 1024 ] ||
		[ "$(scan_field "$tmp/rs.json" mismatches)" != 0 ]; then
		fail "$name" "$(tr '\n' ' ' <"$tmp/rs.json" | head -c 400)"
	else
		ok "$name"
	fi
}

# check_failed NAME RC REGEX: a run that exited RC must have failed (1, not
# hung: 124 is timeout's) with "page N of the lazy region: REGEX" on
# $tmp/err.
check_failed() {
	local name=$1 rc=$2 regex=$3
	if [ "$rc" -eq 124 ]; then
		fail "$name" "the run hung (killed after 120 s)"
	elif [ "$rc" -ne 1 ]; then
		fail "$name" "exit status $rc: $(head -c 300 "$tmp/err")"
	elif ! grep -qE "page [0-9]+ of the lazy region: $regex" "$tmp/err"; then
		fail "$name" "message '$(head -c 400 "$tmp/err")' does not match /$regex/"
	else
		ok "$name"
	fi
}

# run_mid NAME SOURCE REGEX TRIGGER ARGS...: starts the scan from SOURCE
# with 10 ms on the link, runs TRIGGER once the server has sent 1 MiB, and
# expects the run to fail as check_failed says, within 120 s.
run_mid() {
	local name=$1 src=$2 regex=$3 trigger=$4
	shift 4
	netlab_link delay 10ms
	timeout 120 $APFVM run --workload compute,scan --lazy 8M --source "$src" --apf user "$@" \
		>"$tmp/out" 2>"$tmp/err" &
	local pid=$!
	if ! netlab_wait_bytes $((1 << 20)); then
		kill $pid 2>/dev/null
		wait $pid
		fail "$name" "the server never sent 1 MiB: $(head -c 300 "$tmp/err")"
		return
	fi
	$trigger
	wait $pid
	check_failed "$name" $? "$regex"
}
