#!/bin/bash
# End-to-end tests of snapshots (docs/snapshot.md): a running reference
# guest snapshotted halfway through its scan and restored lazily finishes
# with every word verified and results covering the whole run; every
# damaged snapshot is refused with a clear message before any guest runs;
# a page whose checksum does not match is never mapped into the guest;
# a snapshot taken in one async mode restores in the other.
# Prints "ok NAME" / "FAIL NAME: why" lines.
set -u
APFVM=${APFVM:-build/apfvm}
tmp=$(mktemp -d /tmp/apfvm-snap.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; }
json_num() { grep -o "\"$2\": *[0-9.]*" "$1" | head -1 | sed 's/.*: *//'; }
scan_field() { grep '"name": "scan"' "$1" | grep -o "\"$2\": *[0-9.]*" | sed 's/.*: *//'; }

# expect_refused NAME PATTERN ARGS...: apfvm exits 1 or 2 with PATTERN on
# stderr, and no guest ran (no summary, no results); expect_failed: the
# same, but a guest may have run.
expect_failed() { may_run=1 expect_refused "$@"; }
expect_refused() {
	local name=$1 pattern=$2
	shift 2
	timeout 60 $APFVM "$@" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	if [ $rc -ne 1 ] && [ $rc -ne 2 ]; then
		fail "$name" "exit status $rc: $(head -c 300 "$tmp/err")"
	elif ! grep -qE -- "$pattern" "$tmp/err"; then
		fail "$name" "message '$(head -c 300 "$tmp/err")' does not match /$pattern/"
	elif [ -z "${may_run:-}" ] && grep -q "task " "$tmp/out"; then
		fail "$name" "a guest ran: $(head -c 300 "$tmp/out")"
	else
		ok "$name"
	fi
}

$APFVM mkimage --size 8M --seed 5 "$tmp/img" >/dev/null || { fail snapshot_setup "mkimage"; exit 0; }
snap_run() { # PATH: compute and a scan of 8 MiB at 1 ms per page, snapshotted at 1.5 s
	$APFVM run --workload compute,scan --lazy 8M --source file:"$tmp/img" --latency 1ms \
		--snapshot-at 1500ms --snapshot "$1" >"$tmp/out" 2>"$tmp/err"
}

# (The time it reports is when it stopped the guest: at 1.5 s or just after.)
if snap_run "$tmp/snap" && [ -s "$tmp/snap" ] && [ -s "$tmp/snap.mem" ] &&
	at=$(grep -oE "snapshot of the guest at [0-9.]+ s written" "$tmp/out" | awk '{ print $6 }') &&
	awk -v t="$at" 'BEGIN { exit !(t >= 1.5 && t < 3) }'; then
	ok snapshot_is_written
else
	fail snapshot_is_written "$(cat "$tmp/err" "$tmp/out" | head -c 400)"
fi

# Restored: the scan goes on where it stopped and verifies every word; the
# results cover the whole run (the scan's runtime includes the 1.5 s
# before the snapshot); only the pages it had not read yet are fetched.
restore_check() { # NAME ARGS...
	local name=$1
	shift
	if $APFVM restore "$@" --stats-json "$tmp/r.json" "$tmp/snap" >"$tmp/out" 2>"$tmp/err"; then
		local pages mism rt fetched
		pages=$(scan_field "$tmp/r.json" pages)
		mism=$(scan_field "$tmp/r.json" mismatches)
		rt=$(scan_field "$tmp/r.json" runtime_s)
		fetched=$(json_num "$tmp/r.json" pages_fetched)
		if [ "$pages" = 2048 ] && [ "$mism" = 0 ] && grep -q '"name": "compute"' "$tmp/r.json" &&
			awk -v r="$rt" 'BEGIN { exit !(r >= 1.5) }' &&
			[ "${fetched:-0}" -gt 0 ] && [ "${fetched:-0}" -lt 2048 ]; then
			ok "$name"
		else
			fail "$name" "$(tr '\n' ' ' <"$tmp/r.json" | head -c 600)"
		fi
	else
		fail "$name" "$(head -c 400 "$tmp/err")"
	fi
}
restore_check restore_finishes_the_scan_with_every_word_verified
restore_check restore_with_fetch_latency_finishes_too --latency 500us
# Eager (--populate): every page installed and checked before the guest
# goes on; then it needs no fault at all.
if $APFVM restore --populate --stats-json "$tmp/e.json" "$tmp/snap" >/dev/null 2>"$tmp/err" &&
	[ "$(scan_field "$tmp/e.json" mismatches)" = 0 ] && [ "$(scan_field "$tmp/e.json" pages)" = 2048 ] &&
	[ "$(json_num "$tmp/e.json" resident_faults)" = 0 ] && [ "$(json_num "$tmp/e.json" pages_fetched)" = 0 ]; then
	ok eager_restore_installs_everything_first
else
	fail eager_restore_installs_everything_first "$(cat "$tmp/err"; tr '\n' ' ' <"$tmp/e.json" | head -c 500)"
fi

# In each async mode: the guest's registration travels, the restore sends
# a wake-all (the guest counts its second), nothing parked before the
# snapshot hangs, and the rest of the scan goes async.
for mode in kernel user; do
	name=restore_in_${mode}_mode_wakes_every_parked_task_and_goes_async
	if $APFVM run --workload compute,scan --lazy 8M --source file:"$tmp/img" --latency 5ms \
		--apf $mode --snapshot-at 1500ms --snapshot "$tmp/snap-$mode" >/dev/null 2>"$tmp/err" &&
		timeout 300 $APFVM restore --apf $mode --latency 5ms --stats-json "$tmp/m.json" \
			"$tmp/snap-$mode" >/dev/null 2>>"$tmp/err"; then
		g=$(grep '"apf": {' "$tmp/m.json")
		wake=$(echo "$g" | grep -o '"wake_all": *[0-9]*' | sed 's/.*: *//')
		async=$(grep -o '"async": *[0-9]*' "$tmp/m.json" | head -1 | sed 's/.*: *//')
		if [ "$(scan_field "$tmp/m.json" pages)" = 2048 ] &&
			[ "$(scan_field "$tmp/m.json" mismatches)" = 0 ] && [ "$wake" = 2 ] &&
			[ "${async:-0}" -gt 0 ]; then
			ok "$name"
		else
			fail "$name" "$(tr '\n' ' ' <"$tmp/m.json" | head -c 700)"
		fi
	else
		fail "$name" "$(head -c 400 "$tmp/err")"
	fi
done

# In the other async mode: the registration moves between KVM's MSRs and
# apfvm's core, and the same holds (kernel snapshot restored with the host
# side in apfvm, user snapshot with KVM's).
for pair in kernel:user user:kernel; do
	from=${pair%:*} to=${pair#*:}
	name=${from}_snapshot_restored_in_${to}_mode_goes_async
	if timeout 300 $APFVM restore --apf $to --latency 5ms --stats-json "$tmp/x.json" \
		"$tmp/snap-$from" >/dev/null 2>"$tmp/err"; then
		wake=$(grep '"apf": {' "$tmp/x.json" | grep -o '"wake_all": *[0-9]*' | sed 's/.*: *//')
		async=$(grep -o '"async": *[0-9]*' "$tmp/x.json" | head -1 | sed 's/.*: *//')
		if [ "$(scan_field "$tmp/x.json" pages)" = 2048 ] &&
			[ "$(scan_field "$tmp/x.json" mismatches)" = 0 ] && [ "$wake" = 2 ] &&
			[ "${async:-0}" -gt 0 ] && grep -q "\"mode\": \"$to\"" "$tmp/x.json"; then
			ok "$name"
		else
			fail "$name" "$(tr '\n' ' ' <"$tmp/x.json" | head -c 700)"
		fi
	else
		fail "$name" "$(head -c 400 "$tmp/err")"
	fi
done
# Off cannot take over a guest that had registered (a parked task would
# never wake); an off snapshot restores in any mode (its guest, never
# offered async PF, stays synchronous).
expect_refused registered_guest_is_not_restored_with_apf_off "would never be woken" \
	restore --apf off "$tmp/snap-user"
if $APFVM restore --apf user --stats-json "$tmp/o.json" "$tmp/snap" >/dev/null 2>"$tmp/err" &&
	[ "$(scan_field "$tmp/o.json" mismatches)" = 0 ] && [ "$(scan_field "$tmp/o.json" pages)" = 2048 ] &&
	[ "$(grep -o '"async": *[0-9]*' "$tmp/o.json" | head -1 | sed 's/.*: *//')" = 0 ]; then
	ok off_snapshot_restored_in_user_mode_stays_synchronous
else
	fail off_snapshot_restored_in_user_mode_stays_synchronous "$(cat "$tmp/err"; tr '\n' ' ' <"$tmp/o.json" | head -c 500)"
fi

# At a point in the guest's progress: once 512 of the scan's 2048 pages
# were fetched, whatever the host's speed.  The run stops there (a few
# more pages may arrive before the vCPU stops, never the whole region),
# and the restore fetches the rest and verifies every word: at most the
# 1537 pages from the one the scan waited for (511, or a later one) on.
if $APFVM run --workload compute,scan --lazy 8M --source file:"$tmp/img" --latency 1ms \
	--snapshot-after-pages 512 --snapshot "$tmp/snap-pages" --stats-json "$tmp/p.json" \
	>"$tmp/out" 2>"$tmp/err" &&
	$APFVM restore --stats-json "$tmp/pr.json" "$tmp/snap-pages" >/dev/null 2>>"$tmp/err"; then
	before=$(json_num "$tmp/p.json" pages_fetched)
	after=$(json_num "$tmp/pr.json" pages_fetched)
	if [ "${before:-0}" -ge 512 ] && [ "$before" -lt 1024 ] && [ "${after:-0}" -gt 0 ] &&
		[ "$after" -le 1537 ] && grep -q '"snapshot_at_s"' "$tmp/p.json" &&
		[ "$(scan_field "$tmp/pr.json" pages)" = 2048 ] && [ "$(scan_field "$tmp/pr.json" mismatches)" = 0 ]; then
		ok snapshot_after_pages_is_taken_at_that_point
	else
		fail snapshot_after_pages_is_taken_at_that_point "$before pages before, $after after: $(tr '\n' ' ' <"$tmp/pr.json" | head -c 500)"
	fi
else
	fail snapshot_after_pages_is_taken_at_that_point "$(head -c 400 "$tmp/err")"
fi

# When the snapshot comes too late, or cannot apply.
expect_failed snapshot_after_the_guest_ended "finished before" \
	run --workload compute --duration 200ms --snapshot-at 30s --snapshot "$tmp/late"
expect_failed snapshot_after_pages_the_guest_never_fetches "finished before, after 0 pages" \
	run --workload compute --duration 200ms --lazy 8M --snapshot-after-pages 1 --snapshot "$tmp/late"
# --timeout counts from the guest's start, the wait for the point included.
expect_failed snapshot_point_never_reached_times_out "timed out after 2.0 s" \
	run --workload compute --duration 60s --lazy 8M --snapshot-after-pages 1 --timeout 2s \
	--snapshot "$tmp/late"
expect_failed snapshot_time_beyond_the_timeout_times_out "timed out after 2.0 s" \
	run --workload compute --duration 60s --snapshot-at 50s --timeout 2s --snapshot "$tmp/late"
expect_refused snapshot_after_more_pages_than_the_region_has "the lazy region has 2048 pages" \
	run --workload scan --lazy 8M --snapshot-after-pages 2049 --snapshot "$tmp/x"
expect_refused snapshot_needs_its_point "where, and when" run --snapshot "$tmp/x"
expect_refused snapshot_has_one_point "exclude each other" \
	run --workload scan --lazy 8M --snapshot-after-pages 1 --snapshot-at 1s --snapshot "$tmp/x"
expect_refused restore_refuses_what_the_snapshot_fixes "--workload does not apply to restore" \
	restore --workload scan "$tmp/snap"
expect_refused restore_needs_a_path "needs one snapshot path" restore

# Damaged snapshots: each refused with what is wrong, no guest started.
damaged() { # NAME PATTERN EDIT: a fresh copy edited by EDIT (a shell command on $d)
	local name=$1 pattern=$2 edit=$3 d="$tmp/bad"
	cp "$tmp/snap" "$d" && cp "$tmp/snap.mem" "$d.mem" && eval "$edit"
	expect_refused "$name" "$pattern" restore "$d"
}
damaged truncated_snapshot_is_refused "is truncated" 'truncate -s -100 "$d"'
damaged other_version_is_refused "format version 1, whose pages are vouched for by crc32c only; this apfvm reads versions 3 to 4" \
	'printf "\001" | dd of="$d" bs=1 seek=8 conv=notrunc status=none'
damaged section_checksum_mismatch_is_refused "checksum mismatch in section" \
	'printf "\377" | dd of="$d" bs=1 seek=200 conv=notrunc status=none'
damaged short_memory_file_is_refused "its state says" 'truncate -s -4096 "$d.mem"'
damaged missing_memory_file_is_refused "cannot open the snapshot's memory" 'rm "$d.mem"'
expect_refused not_a_snapshot_is_refused "is not an apfvm snapshot" restore "$tmp/img"

# A memory page that does not match its SHA-256 is never mapped: the
# guest's access to it fails, naming the page, instead of reading it.
last=$(( $(stat -c %s "$tmp/snap.mem") / 4096 - 1 )) # the lazy region's last page
cp "$tmp/snap" "$tmp/bad" && cp "$tmp/snap.mem" "$tmp/bad.mem" &&
	printf '\377' | dd of="$tmp/bad.mem" bs=1 seek=$((last * 4096 + 17)) conv=notrunc status=none
timeout 120 $APFVM restore "$tmp/bad" >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc -eq 1 ] && grep -q "page 2047 of the lazy region, which could not be fetched" "$tmp/err" &&
	grep -q "does not match the snapshot's SHA-256" "$tmp/err"; then
	ok damaged_memory_page_is_never_mapped
else
	fail damaged_memory_page_is_never_mapped "status $rc: $(head -c 400 "$tmp/err")"
fi

# Damaged resident memory (its first MiB: the guest's tables, code and
# stack) is never mapped either: the restore fails naming the resident
# memory, not the lazy region.
cp "$tmp/snap" "$tmp/badres" && cp "$tmp/snap.mem" "$tmp/badres.mem" &&
	dd if=/dev/urandom of="$tmp/badres.mem" bs=4096 count=256 conv=notrunc status=none
timeout 120 $APFVM restore "$tmp/badres" >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc -eq 1 ] && grep -q "resident" "$tmp/err" &&
	grep -q "does not match the snapshot's SHA-256" "$tmp/err" &&
	! grep -q "lazy region" "$tmp/err"; then
	ok damaged_resident_page_is_never_mapped_and_named
else
	fail damaged_resident_page_is_never_mapped_and_named "status $rc: $(head -c 400 "$tmp/err")"
fi

# apfvm fetch of a snapshot's memory checks each page against the
# snapshot's SHA-256, and needs the snapshot to do so.
may_run=1 expect_refused fetch_of_a_snapshots_memory_finds_a_damaged_page \
	"page [0-9]+: .*does not match the snapshot's SHA-256" \
	fetch --snapshot "$tmp/bad" --size "$(stat -c %s "$tmp/bad.mem")"
$APFVM serve --snapshot "$tmp/snap" --listen 127.0.0.1:0 >"$tmp/serve.out" 2>/dev/null &
serve_pid=$! port=
for _ in $(seq 100); do
	port=$(sed -n 's/.* on port \([0-9]*\)$/\1/p' "$tmp/serve.out")
	[ -n "$port" ] && break
	sleep 0.1
done
expect_refused fetch_of_a_snapshots_memory_needs_the_snapshot "pass --snapshot PATH" \
	fetch --source "tcp:127.0.0.1:$port" --size 64K
if [ -n "$port" ] && $APFVM fetch --source "tcp:127.0.0.1:$port" --snapshot "$tmp/snap" \
	--size 1M >"$tmp/out" 2>"$tmp/err" && grep -q "0 failed, 0 did not match" "$tmp/out"; then
	ok fetch_of_a_served_snapshot_checks_every_page
else
	fail fetch_of_a_served_snapshot_checks_every_page "$(head -c 300 "$tmp/err")"
fi
kill "$serve_pid" 2>/dev/null
wait "$serve_pid" 2>/dev/null
