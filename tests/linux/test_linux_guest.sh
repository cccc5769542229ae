#!/bin/bash
# The Linux guest end to end: Debian's 6.12 bzImage (the kernel the
# emulated host boots) under `apfvm run --kernel`, inside the emulated KVM
# host, where KVM is an SVM host's (on PVM, Linux itself cannot run).
# apfvm's initramfs runs compute and scan as Linux processes over a 2 MiB
# lazy region served at 2 ms a page, in each mode (linux_modes.sh), and
# reports through apfvm's hypercalls.  Checked from --stats-json:
#   - every page verified, in every mode;
#   - Linux enables async PF by itself: its per-CPU area (wherever it put
#     it) accepted, the wake-all received once its LAPIC is on (the HYP row
#     of /proc/interrupts, printed by the initramfs's busybox);
#   - user mode: each of apfvm's not-presents is a task wait Linux counted
#     (kprobe), each page-ready a HYP interrupt; with --apf-trap-acks every
#     page-ready ACKed, always after the token was cleared;
#   - kernel mode: KVM's own host side, the faults async;
#   - faults in Linux's kernel mode (copy_from_user out of the lazy region)
#     served synchronously, never a not-present (Linux would panic);
#   - off: no async PF at all.
# Prints "ok NAME" / "FAIL NAME: why" lines.
set -u
cd "$(dirname "$0")/../.."
EMUHOST=scripts/emuhost/emuhost
out=$(mktemp -d "$PWD/build/linux-guest.XXXXXX")
trap 'rm -rf "$out"' EXIT
cases=(user user-acks kernel off)
tests=(linux_boots_and_runs_apfvms_init linux_verifies_every_page_in_each_mode
	linux_enables_async_pf_against_apfvm linux_user_mode_counts_match
	linux_acks_follow_the_token linux_kernel_mode_goes_async
	linux_kernel_mode_faults_stay_synchronous linux_off_mode_stays_synchronous)

. tests/linux/lib.sh

if ! "$EMUHOST" --setup >"$out/setup" 2>&1; then
	fail_all "emulated host setup: $(tail -n 3 "$out/setup")"
fi
kernel=build/emuhost/kernel/vmlinuz
build/apfvm mkimage --size 2M --seed 7 "$out/image" >/dev/null || fail_all "mkimage failed"
in_emuhost "$out/emuhost" tests/linux/linux_modes.sh "$kernel" "$out/image" "$out"
for c in "${cases[@]}"; do
	st=$(cat "$out/$c.status" 2>/dev/null)
	if [ "$st" != 0 ]; then
		fail_all "case $c: status ${st:-none}: $(tail -q -n 3 "$out/$c.err" "$out/emuhost" \
			2>/dev/null | tr '\n' ' ')"
	fi
done

con="$out/user.console"
if ! grep -q "Linux version 6\.12" "$con"; then
	fail linux_boots_and_runs_apfvms_init "no 'Linux version' on its console"
elif ! grep -q "Hypervisor detected: KVM" "$con" || ! grep -q "kvm-clock: Using msrs" "$con"; then
	fail linux_boots_and_runs_apfvms_init "Linux did not find KVM and kvmclock"
elif ! grep -q "^apfvm-init: pid 1 on Linux 6\.12" "$con"; then
	fail linux_boots_and_runs_apfvms_init "its /init did not start: $(tail -n 2 "$con")"
elif grep -q "Kernel panic" "$out"/*.console; then
	fail linux_boots_and_runs_apfvms_init "a kernel panicked"
else
	expect linux_boots_and_runs_apfvms_init "boot time reported" \
		"$(num user linux boot_s | tr -d .)" -gt 0
fi

bad=""
for c in "${cases[@]}"; do
	[ "$(task "$c" scan pages)" = 512 ] && [ "$(task "$c" scan mismatches)" = 0 ] &&
		[ "$(num "$c" "" pages_fetched)" = 512 ] && [ "$(task "$c" compute work)" -gt 0 ] ||
		bad="$bad $c"
done
if [ -n "$bad" ]; then
	fail linux_verifies_every_page_in_each_mode "not every page verified in:$bad"
else
	ok linux_verifies_every_page_in_each_mode
fi

# busybox's grep, run by /init after the tasks (apfvm.sh), shows the row.
hyp_row=$(grep -o "^ *HYP: *[0-9]*" "$out/user.console" | grep -o "[0-9]*$")
expect linux_enables_async_pf_against_apfvm "area accepted, wake-all delivered, HYP row shown" \
	"$hyp_row" -eq "$(num user linux hyp_interrupts)" \
	"$(num user host_apf gp_injected)" -eq 0 \
	"$(num user host_apf wake_all)" -eq 1 \
	"$(num user host_apf area_gpa)" -ge 1048576 \
	"$(num user linux hyp_interrupts)" -ge 1

np=$(num user host_apf not_present)
expect linux_user_mode_counts_match \
	"not-present = Linux's task waits, ready = not-present, HYP = ready + wake-all" \
	"$np" -gt 0 \
	"$np" -eq "$(num user linux task_waits)" \
	"$(num user host_apf ready)" -eq "$np" \
	"$(num user linux hyp_interrupts)" -eq "$((np + 1))"

ready=$(num user-acks host_apf ready)
expect linux_acks_follow_the_token "every page-ready ACKed, none before its token was cleared" \
	"$ready" -gt 0 \
	"$(num user-acks host_apf acks)" -eq "$((ready + 1))" \
	"$(num user-acks host_apf acks_early)" -eq 0 \
	"$(num user-acks linux hyp_interrupts)" -eq "$((ready + 1))"

waits=$(num kernel linux task_waits)
expect linux_kernel_mode_goes_async "KVM's async faults are Linux's task waits" \
	"$waits" -gt 0 \
	"$(num kernel faults async)" -eq "$waits" \
	"$(num kernel linux hyp_interrupts)" -gt "$waits"

# Each kernel-mode fault was decided async (2 ms is above the threshold)
# and then found the guest unable to take it (or its page already there:
# "raced"); no not-present reached Linux's kernel (it would have panicked,
# and apfvm's not-presents equal the waits of Linux's tasks, above).
expect linux_kernel_mode_faults_stay_synchronous "16 kernel reads, verified, served synchronously" \
	"$(num user linux kernel_reads)" -eq 16 \
	"$(num user linux kernel_read_mismatches)" -eq 0 \
	"$(num user faults sync_cannot_deliver)" -ge 1 \
	"$(num user faults sync_cannot_deliver)" -le 16 \
	"$(num kernel linux kernel_reads)" -eq 16 \
	"$(num kernel linux kernel_read_mismatches)" -eq 0

expect linux_off_mode_stays_synchronous "no async PF" \
	"$(num off faults async)" -eq 0 \
	"$(num off faults sync)" -eq 512 \
	"$(num off linux hyp_interrupts)" -eq 0
