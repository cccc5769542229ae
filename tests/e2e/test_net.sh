#!/bin/bash
# End-to-end tests of the tcp: page source against apfvm serve running in
# another network namespace, over a veth link whose latency and loss come
# from tc netem (scripts/netlab.sh): the reference guest's scan verifies
# every word in each async mode; lost packets cost time, never wrong data;
# a server that dies or stalls mid-run ends the run within the fetch
# timeouts with an error naming the page and the cause; a snapshot whose
# memory is served (apfvm serve --snapshot) restores and finishes its scan;
# a server of the wrong content and an unreachable one are refused before
# any guest runs.
# (Corrupt pages cannot come over this link: TCP's checksum drops netem's
# corrupted packets.  A server that sends them is tests/unit/
# test_tcp_source.c's.)  Needs root (network namespaces).  Prints
# "ok NAME" / "FAIL NAME: why".
set -u
APFVM=${APFVM:-build/apfvm}
tmp=$(mktemp -d /tmp/apfvm-net.XXXXXX)
. scripts/netlab.sh
trap 'netlab_down; rm -rf "$tmp"' EXIT

. tests/e2e/lib_net.sh

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP net_tests: network namespaces need root"
	exit 0
fi
$APFVM mkimage --size 8M --seed 5 "$tmp/img" >/dev/null || { fail net_setup "mkimage"; exit 0; }
netlab_up || { fail net_setup "cannot make the namespace and veth pair"; exit 0; }
netlab_serve --image "$tmp/img" || { fail net_setup "apfvm serve did not start"; exit 0; }
SRC=tcp:$NETLAB_SERVER_IP:$NETLAB_PORT

netlab_link delay 1ms
for mode in off kernel user; do
	scan_ok "tcp_scan_at_1ms_apf_${mode}_sees_every_word" "$SRC" --apf $mode &&
		ok "tcp_scan_at_1ms_apf_${mode}_sees_every_word"
done

snapshot_ok tcp_run_snapshotted_midway_restores_and_finishes_the_scan "$SRC"

# Lost packets: TCP resends them; the scan is slower, never wrong.
netlab_link delay 1ms loss 2%
scan_ok tcp_scan_over_a_lossy_link_sees_every_word "$SRC" --apf user &&
	ok tcp_scan_over_a_lossy_link_sees_every_word

netlab_link none

PS="page server $NETLAB_SERVER_IP:$NETLAB_PORT"
run_mid tcp_server_dying_mid_run_fails_with_the_page_and_cause "$SRC" \
	"$PS: (connection refused|the server closed the connection|connection lost)" \
	netlab_stop_server --fetch-timeout 1s --fetch-tries 3

stall() { netlab_link delay 5s; }
netlab_serve --image "$tmp/img" || fail net_setup "apfvm serve did not start again"
run_mid tcp_server_stalling_mid_run_times_out_with_the_page_and_cause "$SRC" \
	"$PS: no (reply|connection) within the timeout \(2 tries\)" stall --fetch-timeout 500ms --fetch-tries 2
netlab_link none
netlab_stop_server

# A snapshot taken halfway through the scan (1024 of its 2048 pages, from
# the local image), its memory served by apfvm serve --snapshot: the
# restore reads it over the link, checks every page against the snapshot's
# checksums, and the scan ends with every word verified.
if $APFVM run --workload compute,scan --lazy 8M --source file:"$tmp/img" --latency 1ms \
	--snapshot-after-pages 1024 --snapshot "$tmp/snap" -q 2>"$tmp/err"; then
	netlab_serve --snapshot "$tmp/snap" || fail net_setup "apfvm serve --snapshot did not start"
	netlab_link delay 1ms
	if $APFVM restore --source "$SRC" --stats-json "$tmp/r.json" "$tmp/snap" >"$tmp/out" 2>"$tmp/err" &&
		[ "$(scan_field "$tmp/r.json" pages)" = 2048 ] &&
		[ "$(scan_field "$tmp/r.json" mismatches)" = 0 ] &&
		[ "$(json_num "$tmp/r.json" pages_fetched)" -gt 0 ]; then
		ok tcp_restore_from_a_served_snapshot_finishes_the_scan
	else
		fail tcp_restore_from_a_served_snapshot_finishes_the_scan \
			"$(cat "$tmp/err" "$tmp/r.json" 2>/dev/null | tr '\n' ' ' | head -c 400)"
	fi
	if timeout 60 $APFVM run --workload scan --lazy 8M --source "$SRC" >"$tmp/out" 2>"$tmp/err"; then
		fail tcp_snapshot_memory_is_refused_to_a_booting_guest "the run succeeded"
	elif grep -q "serves a snapshot's memory: restore that snapshot" "$tmp/err"; then
		ok tcp_snapshot_memory_is_refused_to_a_booting_guest
	else
		fail tcp_snapshot_memory_is_refused_to_a_booting_guest "$(head -c 300 "$tmp/err")"
	fi
	netlab_stop_server
	netlab_serve --image "$tmp/img" || fail net_setup "apfvm serve did not start again"
	if timeout 60 $APFVM restore --source "$SRC" "$tmp/snap" >"$tmp/out" 2>"$tmp/err"; then
		fail tcp_restore_from_a_server_of_other_content_is_refused "the restore succeeded"
	elif grep -q "does not serve the memory of snapshot '$tmp/snap' (it serves an image)" "$tmp/err"; then
		ok tcp_restore_from_a_server_of_other_content_is_refused
	else
		fail tcp_restore_from_a_server_of_other_content_is_refused "$(head -c 300 "$tmp/err")"
	fi
	netlab_link none
	netlab_stop_server
else
	fail tcp_restore_from_a_served_snapshot_finishes_the_scan "snapshot: $(head -c 300 "$tmp/err")"
fi

# Nobody listening: refused at the start, before any guest runs.
if timeout 60 $APFVM run --workload scan --lazy 8M --source "$SRC" >"$tmp/out" 2>"$tmp/err"; then
	fail tcp_unreachable_server_is_refused_at_start "the run succeeded"
elif grep -q "page server $NETLAB_SERVER_IP:$NETLAB_PORT: cannot connect" "$tmp/err" &&
	! grep -q "task " "$tmp/out"; then
	ok tcp_unreachable_server_is_refused_at_start
else
	fail tcp_unreachable_server_is_refused_at_start "$(head -c 300 "$tmp/err")"
fi
