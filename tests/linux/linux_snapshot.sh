#!/bin/bash
# Runs inside the emulated KVM host for test_linux_snapshot.sh: in each
# mode, a Linux guest running apfvm's /init (compute next to a scan of a
# lazy region) is snapshotted mid-scan (once 1024 of its 4096 pages were
# fetched: a point in the guest's progress, not a time, which moves with
# the boot's speed), then restored in the same mode (and the kernel-mode
# snapshot in user mode too).
# The off restore records the pages Linux faulted on (--record-ws), and
# one more restore replays them (--prefetch).
# Writes OUT/MODE-{run,restore}.{console,json,status,err},
# OUT/kernel-as-user-restore.* and OUT/off-replay.*.
# Each run is a step bounded at 420 s (its --timeout is 300 s), which the
# emulated host's tool watches (scripts/emuhost/step).
# Usage: linux_snapshot.sh KERNEL IMAGE OUT
set -u
kernel=$1 image=$2 out=$3
step=scripts/emuhost/step
snaps=$(mktemp -d /tmp/apfvm-linux-snap.XXXXXX) # tmpfs: faster than the 9p share
trap 'rm -rf "$snaps"' EXIT
for mode in off kernel user; do
	$step "$mode-run" 420 build/apfvm run --kernel "$kernel" --mem 256M --lazy 16M --source "file:$image" \
		--latency 2ms --workload compute:1,scan:1 --apf $mode --cmdline quiet \
		--timeout 300s --console "$out/$mode-run.console" --stats-json "$out/$mode-run.json" \
		--snapshot-after-pages 1024 --snapshot "$snaps/$mode" -q >"$out/$mode-run.err" 2>&1
	echo $? >"$out/$mode-run.status"
	record=()
	[ $mode != off ] || record=(--record-ws "$snaps/off.ws")
	$step "$mode-restore" 420 build/apfvm restore --apf $mode --latency 2ms --timeout 300s \
		--console "$out/$mode-restore.console" --stats-json "$out/$mode-restore.json" \
		"${record[@]}" -q "$snaps/$mode" >"$out/$mode-restore.err" 2>&1
	echo $? >"$out/$mode-restore.status"
	if [ $mode = off ]; then
		$step off-replay 420 build/apfvm restore --latency 2ms --timeout 300s \
			--prefetch "$snaps/off.ws" --console "$out/off-replay.console" \
			--stats-json "$out/off-replay.json" -q "$snaps/$mode" >"$out/off-replay.err" 2>&1
		echo $? >"$out/off-replay.status"
	fi
	# The kernel snapshot once more, with the host side in apfvm.
	if [ $mode = kernel ]; then
		$step kernel-as-user-restore 420 build/apfvm restore --apf user --latency 2ms --timeout 300s \
			--console "$out/kernel-as-user-restore.console" \
			--stats-json "$out/kernel-as-user-restore.json" \
			-q "$snaps/$mode" >"$out/kernel-as-user-restore.err" 2>&1
		echo $? >"$out/kernel-as-user-restore.status"
	fi
	rm -f "$snaps/$mode" "$snaps/$mode.mem"
done
