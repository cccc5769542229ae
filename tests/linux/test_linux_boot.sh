#!/bin/bash
# The Linux guest kind end to end: Debian's 6.12 bzImage (the kernel the
# emulated host boots) booted by `apfvm run --kernel` inside the emulated
# KVM host, where KVM is an SVM host's (on PVM, Linux itself cannot run).
# Without --initrd apfvm supplies its own initramfs: its /init (pid 1)
# reports on the console through the UART's interrupt-driven output and
# restarts the machine, which resets (reboot=k) and ends the run with
# status 0, within its timeout, without a panic.  It
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
	fail linux_boots_and_runs_apfvms_init "emulated host setup: $(tail -n 3 "$out")"
	exit 0
fi
kernel=$(ls build/emuhost/kernel/vmlinuz 2>/dev/null)
timeout --kill-after=10 400 "$EMUHOST" --timeout 360 -- \
	build/apfvm run -q --apf user --kernel "$kernel" --mem 512M --timeout 300s \
	--stats-json "$json" >"$out" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
	fail linux_boots_and_runs_apfvms_init "exit status $rc: $(tail -n 3 "$out" | tr '\n' ' ')"
elif ! grep -q "Linux version 6\.12" "$out"; then
	fail linux_boots_and_runs_apfvms_init "no 'Linux version' on its console"
elif ! grep -q "Hypervisor detected: KVM" "$out" || ! grep -q "kvm-clock: Using msrs" "$out"; then
	fail linux_boots_and_runs_apfvms_init "Linux did not find KVM and kvmclock"
elif ! grep -q "^apfvm-init: pid 1 on Linux 6\.12" "$out"; then
	fail linux_boots_and_runs_apfvms_init "its /init did not report: $(tail -n 2 "$out")"
elif grep -q "Kernel panic" "$out" || ! grep -q "reboot: Restarting system" "$out"; then
	fail linux_boots_and_runs_apfvms_init "it did not restart cleanly: $(tail -n 2 "$out")"
else
	ok linux_boots_and_runs_apfvms_init
fi
host=$(grep -o '"host_apf": {[^}]*}' "$json" 2>/dev/null)
if echo "$host" | grep -q '"wake_all": 1,' && echo "$host" | grep -q '"gp_injected": 0,'; then
	ok linux_enables_async_pf_against_apfvm
else
	fail linux_enables_async_pf_against_apfvm "host side saw: ${host:-no statistics}"
fi
