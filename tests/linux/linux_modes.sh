#!/bin/bash
# Runs inside the emulated KVM host for test_linux_guest.sh: boots the Linux
# guest under apfvm once per case, each writing OUT/CASE.console,
# OUT/CASE.json and OUT/CASE.status; each run is a step bounded at 420 s
# (its --timeout is 300 s), which the emulated host's tool watches.
# Usage: linux_modes.sh KERNEL IMAGE OUT
set -u
kernel=$1 image=$2 out=$3
common=(--kernel "$kernel" --mem 512M --lazy 2M --source "file:$image" --latency 2ms
	--workload compute:1,scan:1 --timeout 300s -q)
run() {
	local name=$1
	shift
	scripts/emuhost/step "$name" 420 build/apfvm run "${common[@]}" --console "$out/$name.console" \
		--stats-json "$out/$name.json" "$@" >"$out/$name.err" 2>&1
	echo $? >"$out/$name.status"
}
# The full console once; "quiet" keeps the others short (the UART is slow).
run user --apf user --cmdline 'apfvm.kernel-reads=16 apfvm.sh="grep HYP /proc/interrupts"'
run user-acks --apf user --apf-trap-acks --cmdline "quiet"
run kernel --apf kernel --cmdline "quiet apfvm.kernel-reads=16"
run off --apf off --cmdline "quiet"
