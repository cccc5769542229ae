#!/bin/bash
# Snapshots of the Linux guest end to end (docs/snapshot.md), inside the
# emulated KVM host: Debian's 6.12 bzImage running apfvm's /init (compute
# next to a scan of a 16 MiB lazy region at 2 ms a page) is snapshotted
# mid-scan in each mode and restored in the same mode (linux_snapshot.sh).
# Checked from --stats-json and the consoles:
#   - the restored Linux goes on where it was (no new boot, no panic) and
#     its /init reports the whole run: the scan verified every page of the
#     region, those read before the snapshot and after, 0 mismatches;
#   - all of its memory came lazily from the snapshot: resident pages
#     fetched on fault, far fewer than the guest has;
#   - async page faults work across the restore: kernel mode's faults go
#     async again (KVM's registration travelled in its MSRs), user mode's
#     not-presents are Linux task waits, after the wake-all; the kernel
#     snapshot restored in user mode goes async with apfvm's host side;
#   - the pages the off restore faulted on (resident and lazy), recorded
#     and replayed by one more restore, leave it at most 3% of the demand
#     faults, every page still verified.
# Prints "ok NAME" / "FAIL NAME: why" lines.
set -u
cd "$(dirname "$0")/../.."
EMUHOST=scripts/emuhost/emuhost
out=$(mktemp -d "$PWD/build/linux-snapshot.XXXXXX")
trap 'rm -rf "$out"' EXIT
modes=(off kernel user)
pages=4096
tests=(linux_snapshot_and_restore_in_each_mode linux_restore_goes_on_where_it_was
	linux_restore_verifies_every_page linux_restore_serves_memory_lazily
	linux_kernel_mode_async_after_restore linux_user_mode_async_after_restore
	linux_kernel_snapshot_restored_in_user_mode linux_replayed_working_set_takes_few_faults)

. tests/linux/lib.sh

if ! "$EMUHOST" --setup >"$out/setup" 2>&1; then
	fail_all "emulated host setup: $(tail -n 3 "$out/setup")"
fi
kernel=build/emuhost/kernel/vmlinuz
build/apfvm mkimage --size 16M --seed 7 "$out/image" >/dev/null || fail_all "mkimage failed"
in_emuhost "$out/emuhost" tests/linux/linux_snapshot.sh "$kernel" "$out/image" "$out"

bad=""
for m in "${modes[@]}"; do
	for step in run restore; do
		st=$(cat "$out/$m-$step.status" 2>/dev/null)
		[ "$st" = 0 ] || bad="$bad $m-$step (status ${st:-none}: $(tail -q -n 2 "$out/$m-$step.err" \
			"$out/emuhost" 2>/dev/null | tr '\n' ' '))"
	done
done
if [ -n "$bad" ]; then
	fail_all "failed:$bad"
fi
ok linux_snapshot_and_restore_in_each_mode

bad=""
for m in "${modes[@]}"; do
	con="$out/$m-restore.console"
	# Mid-scan: pages were read before the snapshot (the 1024 it waited
	# for), and after.
	if [ "$(num "$m-run" "" pages_fetched)" -lt 1024 ] || [ "$(num "$m-restore" "" pages_fetched)" -lt 1 ]; then
		bad="$bad $m (not snapshotted mid-scan: $(num "$m-run" "" pages_fetched) pages read before)"
	elif grep -q "Linux version" "$con" || grep -q "Kernel panic" "$con"; then
		bad="$bad $m (it booted again or panicked: $(grep -m1 -E 'Linux version|Kernel panic' "$con"))"
	fi
done
if [ -n "$bad" ]; then
	fail linux_restore_goes_on_where_it_was "$bad"
else
	ok linux_restore_goes_on_where_it_was
fi

bad=""
for m in "${modes[@]}"; do
	[ "$(task "$m-restore" scan pages)" = $pages ] && [ "$(task "$m-restore" scan mismatches)" = 0 ] &&
		[ "$(task "$m-restore" compute work)" -gt 0 ] || bad="$bad $m"
done
if [ -n "$bad" ]; then
	fail linux_restore_verifies_every_page "not all $pages pages verified (0 mismatches) in:$bad"
else
	ok linux_restore_verifies_every_page
fi

# 256 MiB of resident memory is 65536 pages.
bad=""
for m in "${modes[@]}"; do
	res=$(num "$m-restore" restore resident_pages_fetched)
	[ -n "$res" ] && [ "$res" -gt 0 ] && [ "$res" -lt 32768 ] || bad="$bad $m ($res pages)"
done
if [ -n "$bad" ]; then
	fail linux_restore_serves_memory_lazily "resident pages fetched not in 1..32767:$bad"
else
	ok linux_restore_serves_memory_lazily
fi

expect linux_kernel_mode_async_after_restore "KVM's own host side goes async after the restore" \
	"$(num kernel-restore faults async)" -gt 0 \
	"$(num kernel-restore linux task_waits)" -ge "$(num kernel-restore faults async)"

np=$(num user-restore host_apf not_present)
expect linux_user_mode_async_after_restore \
	"the wake-all after the restore, then not-presents Linux waited on, each made ready" \
	"$(num user-restore host_apf wake_all)" -eq 1 \
	"$np" -gt 0 \
	"$(num user-restore linux task_waits)" -ge "$np" \
	"$(num user-restore host_apf ready)" -eq "$np" \
	"$(num user-restore host_apf gp_injected)" -eq 0

c=kernel-as-user-restore
np=$(num $c host_apf not_present)
if [ "$(cat "$out/$c.status" 2>/dev/null)" != 0 ]; then
	fail linux_kernel_snapshot_restored_in_user_mode "status $(cat "$out/$c.status" 2>/dev/null): $(tail -n 2 "$out/$c.err" 2>/dev/null | tr '\n' ' ')"
elif [ "$(task $c scan pages)" != $pages ] || [ "$(task $c scan mismatches)" != 0 ]; then
	fail linux_kernel_snapshot_restored_in_user_mode "scan: $(task $c scan pages) pages, $(task $c scan mismatches) mismatches"
else
	expect linux_kernel_snapshot_restored_in_user_mode \
		"KVM's registration given to apfvm's core: the wake-all, then async faults Linux waited on" \
		"$(num $c host_apf wake_all)" -eq 1 \
		"$np" -gt 0 \
		"$(num $c linux task_waits)" -ge "$np" \
		"$(num $c host_apf ready)" -eq "$np"
fi

c=off-replay
rec=$(grep -o '"demand": {"faults": *[0-9]*' "$out/off-restore.json" 2>/dev/null | sed 's/.*: *//')
rep=$(grep -o '"demand": {"faults": *[0-9]*' "$out/$c.json" 2>/dev/null | sed 's/.*: *//')
if [ "$(cat "$out/$c.status" 2>/dev/null)" != 0 ]; then
	fail linux_replayed_working_set_takes_few_faults "status $(cat "$out/$c.status" 2>/dev/null): $(tail -n 2 "$out/$c.err" 2>/dev/null | tr '\n' ' ')"
elif [ "$(task $c scan pages)" != $pages ] || [ "$(task $c scan mismatches)" != 0 ]; then
	fail linux_replayed_working_set_takes_few_faults "scan: $(task $c scan pages) pages, $(task $c scan mismatches) mismatches"
else
	expect linux_replayed_working_set_takes_few_faults \
		"the recording's demand faults ($rec), at most 3% of them when replayed ($rep)" \
		"${rec:-0}" -gt 1000 \
		"$((${rep:-999999} * 100))" -le "$((${rec:-0} * 3))"
fi
