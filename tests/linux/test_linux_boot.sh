#!/bin/bash
# The Linux guest kind end to end: Debian's 6.12 bzImage (the kernel the
# emulated host boots) booted by `apfvm run --kernel` inside the emulated
# KVM host, where KVM is an SVM host's (on PVM, Linux itself cannot run:
# docs/emulated-host.md).  Without an initrd the kernel boots through to
# its root mount, panics, and resets (panic=-1, reboot=k): the run must show
# its console and end with status 0, by the reset, within its timeout.  It
# runs with `--apf user`: Linux's own async-PF code must enable the feature
# against apfvm's host side (its MSR writes accepted, the wake-all sent).
# Prints "ok NAME" / "FAIL NAME: why" lines.
set -u
cd "$(dirname "$0")/../.."
EMUHOST=scripts/emuhost/emuhost
out=$(mktemp "$PWD/build/linux-boot.XXXXXX")
json=$(mktemp "$PWD/build/linux-boot.XXXXXX")
trap 'rm -f "$out" "$json"' EXIT

ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; }

if ! "$EMUHOST" --setup >"$out" 2>&1; then
	fail linux_boots_to_its_root_mount_and_resets "emulated host setup: $(tail -n 3 "$out")"
	exit 0
fi
kernel=$(ls build/emuhost/kernel/vmlinuz 2>/dev/null)
timeout --kill-after=10 400 "$EMUHOST" --timeout 360 -- \
	build/apfvm run -q --apf user --kernel "$kernel" --mem 512M --timeout 300s \
	--stats-json "$json" >"$out" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
	fail linux_boots_to_its_root_mount_and_resets "exit status $rc: $(tail -n 3 "$out" | tr '\n' ' ')"
elif ! grep -q "Linux version 6\.12" "$out"; then
	fail linux_boots_to_its_root_mount_and_resets "no 'Linux version' on its console"
elif ! grep -q "Hypervisor detected: KVM" "$out" || ! grep -q "kvm-clock: Using msrs" "$out"; then
	fail linux_boots_to_its_root_mount_and_resets "Linux did not find KVM and kvmclock"
elif ! grep -q "VFS: Unable to mount root fs" "$out"; then
	fail linux_boots_to_its_root_mount_and_resets "it did not reach its root mount: $(tail -n 2 "$out")"
else
	ok linux_boots_to_its_root_mount_and_resets
fi
host=$(grep -o '"host_apf": {[^}]*}' "$json" 2>/dev/null)
if echo "$host" | grep -q '"wake_all": 1,' && echo "$host" | grep -q '"gp_injected": 0,'; then
	ok linux_enables_async_pf_against_apfvm
else
	fail linux_enables_async_pf_against_apfvm "host side saw: ${host:-no statistics}"
fi
