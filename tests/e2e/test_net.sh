#!/bin/bash
# End-to-end tests of the tcp: page source against apfvm serve running in
# another network namespace, over a veth link whose latency, loss and
# loss come from tc netem (scripts/netlab.sh): the reference guest's
# scan verifies every word in each async mode; lost packets cost time,
# never wrong data; a server that dies or stalls mid-run
# ends the run within the fetch timeouts with an error naming the page and
# the cause; an unreachable server is refused before any guest runs.
# (Corrupt pages cannot come over this link: TCP's checksum drops netem's
# corrupted packets.  A server that sends them is tests/unit/
# test_tcp_source.c's.)  Needs root (network namespaces).  Prints
# "ok NAME" / "FAIL NAME: why".
set -u
APFVM=${APFVM:-build/apfvm}
tmp=$(mktemp -d /tmp/apfvm-net.XXXXXX)
. scripts/netlab.sh
trap 'netlab_down; rm -rf "$tmp"' EXIT

ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; }
json_num() { grep -o "\"$2\": *[0-9.]*" "$1" | head -1 | sed 's/.*: *//'; }
scan_field() { grep '"name": "scan"' "$1" | grep -o "\"$2\": *[0-9.]*" | sed 's/.*: *//'; }

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP net_tests: network namespaces need root"
	exit 0
fi
$APFVM mkimage --size 8M --seed 5 "$tmp/img" >/dev/null || { fail net_setup "mkimage"; exit 0; }
netlab_up || { fail net_setup "cannot make the namespace and veth pair"; exit 0; }
netlab_serve "$tmp/img" || { fail net_setup "apfvm serve did not start"; exit 0; }
SRC=tcp:$NETLAB_SERVER_IP:$NETLAB_PORT

# scan_ok NAME ARGS...: the scan of 8 MiB from the page server sees every
# word right; extra checks on $tmp/s.json may follow (returns 1 if not).
scan_ok() {
	local name=$1
	shift
	if ! timeout 600 $APFVM run --workload compute,scan --lazy 8M --source "$SRC" \
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

netlab_link delay 1ms
for mode in off kernel user; do
	scan_ok "tcp_scan_at_1ms_apf_${mode}_sees_every_word" --apf $mode &&
		ok "tcp_scan_at_1ms_apf_${mode}_sees_every_word"
done

# Lost packets: TCP resends them; the scan is slower, never wrong.
netlab_link delay 1ms loss 2%
scan_ok tcp_scan_over_a_lossy_link_sees_every_word --apf user &&
	ok tcp_scan_over_a_lossy_link_sees_every_word

netlab_link none

# run_mid NAME PATTERN TRIGGER ARGS...: starts the scan (10 ms per reply),
# runs TRIGGER once the server has sent 1 MiB, and expects the run to fail
# with PATTERN on stderr, naming a page of the lazy region, within 120 s.
run_mid() {
	local name=$1 pattern=$2 trigger=$3
	shift 3
	netlab_link delay 10ms
	timeout 120 $APFVM run --workload compute,scan --lazy 8M --source "$SRC" --apf user "$@" \
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
	local rc=$?
	if [ $rc -eq 124 ]; then
		fail "$name" "the run hung (killed after 120 s)"
	elif [ $rc -ne 1 ]; then
		fail "$name" "exit status $rc: $(head -c 300 "$tmp/err")"
	elif ! grep -qE "page [0-9]+ of the lazy region: page server $NETLAB_SERVER_IP:$NETLAB_PORT: ($pattern)" "$tmp/err"; then
		fail "$name" "message '$(head -c 300 "$tmp/err")' does not match /$pattern/"
	else
		ok "$name"
	fi
}

run_mid tcp_server_dying_mid_run_fails_with_the_page_and_cause \
	"connection refused|the server closed the connection|connection lost" \
	netlab_stop_server --fetch-timeout 1s --fetch-tries 3

stall() { netlab_link delay 5s; }
netlab_serve "$tmp/img" || fail net_setup "apfvm serve did not start again"
run_mid tcp_server_stalling_mid_run_times_out_with_the_page_and_cause \
	"no (reply|connection) within the timeout \(2 tries\)" stall --fetch-timeout 500ms --fetch-tries 2
netlab_link none
netlab_stop_server

# Nobody listening: refused at the start, before any guest runs.
if timeout 60 $APFVM run --workload scan --lazy 8M --source "$SRC" >"$tmp/out" 2>"$tmp/err"; then
	fail tcp_unreachable_server_is_refused_at_start "the run succeeded"
elif grep -q "page server $NETLAB_SERVER_IP:$NETLAB_PORT: cannot connect" "$tmp/err" &&
	! grep -q "task " "$tmp/out"; then
	ok tcp_unreachable_server_is_refused_at_start
else
	fail tcp_unreachable_server_is_refused_at_start "$(head -c 300 "$tmp/err")"
fi
