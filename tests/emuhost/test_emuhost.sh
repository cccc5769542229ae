#!/bin/bash
# Tests of scripts/emuhost/emuhost, the emulated KVM host: a command's
# output, exit status, working folder and environment come back; KVM works
# inside; and every bad case ends in a clear message and a failed status
# within its timeout, never a hang or a pass.  Each case boots the emulated
# host (about 15 s) unless it fails before booting.
# Prints "ok NAME" / "FAIL NAME: why" lines.
set -u
cd "$(dirname "$0")/../.."
EMUHOST=scripts/emuhost/emuhost
APFVM=$PWD/build/apfvm
# Files the command inside must see: /tmp is a fresh tmpfs in there, the
# checkout is shared read-write.
tmp=$(mktemp -d "$PWD/build/emuhost-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; }

# expect NAME STATUS PATTERN LIMIT_S EMUHOST_ARGS...: emuhost exits with
# STATUS within LIMIT_S seconds and its output matches PATTERN.
expect() {
	local name=$1 want=$2 pattern=$3 limit=$4
	shift 4
	local start=$SECONDS
	timeout --kill-after=10 "$limit" "$@" >"$tmp/out" 2>&1
	local rc=$?
	if [ $rc -eq 124 ] && [ "$want" -ne 124 ]; then
		fail "$name" "no result within $limit s"
	elif [ $rc -ne "$want" ]; then
		fail "$name" "exit status $rc, expected $want: $(tail -5 "$tmp/out" | tr '\n' ' ' | head -c 400)"
	elif ! grep -qE -- "$pattern" "$tmp/out"; then
		fail "$name" "output does not match /$pattern/: $(tail -5 "$tmp/out" | tr '\n' ' ' | head -c 400)"
	else
		ok "$name ($((SECONDS - start)) s)"
	fi
	# A failed run keeps its logs in the folder it names: remove it.
	local logs
	logs=$(sed -n 's/^emuhost: logs: //p' "$tmp/out")
	case $logs in */build/emuhost/runs/run.* | */build/emuhost-arm64/runs/run.*) rm -rf "$logs" ;; esac
}

# The cases that boot need the emulated host set up (packages, kernel).
# Where that is impossible (no root to install QEMU, no package mirror)
# they are skipped with the reason; the failure cases below still run.
if setup_err=$($EMUHOST --setup 2>&1); then
	can_boot=1
else
	can_boot=0
	why="the emulated host cannot be set up here: $(echo "$setup_err" | tail -1)"
fi
booting() {
	[ $can_boot -eq 1 ] && return 0
	echo "SKIP $1: $why"
	return 1
}

expect help 0 "Usage: scripts/emuhost/emuhost" 10 $EMUHOST --help
expect bad_timeout 2 "--timeout: 'soon' is not a whole number" 10 $EMUHOST --timeout soon true
expect no_command 2 "no command given" 10 $EMUHOST
expect bad_arch 2 "--arch: 'sparc' is not x86_64 or arm64" 10 $EMUHOST --arch sparc true

# Output, status, folder, environment, and a working KVM inside.
cat >"$tmp/inside.sh" <<'IN'
#!/bin/bash
[ "$PWD" = "$WANT_PWD" ] || { echo "cwd $PWD"; exit 90; }
[ "$WANT_VAR" = "two words" ] || { echo "env '$WANT_VAR'"; exit 91; }
[ -c /dev/kvm ] || exit 92
grep -q svm /proc/cpuinfo || exit 93
echo "inside-$((6 * 7)) on $(uname -r)"
echo written >"$WANT_PWD/written"
exit 7
IN
chmod +x "$tmp/inside.sh"
if booting status_output_env; then
	(cd "$tmp" && WANT_PWD=$tmp WANT_VAR="two words" \
		expect status_output_env 7 "^inside-42 on 6\.12" 300 "$OLDPWD/$EMUHOST" ./inside.sh)
	if [ "$(cat "$tmp/written" 2>/dev/null)" = written ]; then
		ok checkout_writable
	else
		fail checkout_writable "a file written inside is not on the outside"
	fi
fi

# The arm64 host: Debian's arm64 6.12 under QEMU's emulation of EL2, its
# KVM in VHE mode with a GICv3; the command runs in the host's busybox,
# with the checkout at its path.
if booting arm64_host_has_kvm_in_vhe_mode; then
	if a64_err=$($EMUHOST --arch arm64 --setup 2>&1); then
		(cd "$tmp" && expect arm64_host_has_kvm_in_vhe_mode 0 "^aarch64 kvm vhe gicv3 in $tmp$" 300 \
			"$OLDPWD/$EMUHOST" --arch arm64 -- sh -c '[ -c /dev/kvm ] &&
				dmesg | grep -q "kvm .*VHE mode initialized" &&
				dmesg | grep -q "kvm .*GIC system register CPU interface enabled" &&
				echo "$(uname -m) kvm vhe gicv3 in $PWD"')
	else
		fail arm64_host_has_kvm_in_vhe_mode "setup: $(echo "$a64_err" | tail -1)"
	fi
fi

# A test that crashes inside: its status comes out, and tests/run.sh
# counts it as a failure rather than a pass.
printf '#!/bin/bash\necho "ok before_crash"\nkill -SEGV $$\n' >"$tmp/crasher"
chmod +x "$tmp/crasher"
booting crash_inside_fails && expect crash_inside_fails 1 "FAIL crasher: exited with status 139" 300 \
	$EMUHOST -- tests/run.sh "$tmp/crasher"

# A command that hangs: powered off at --timeout, status 124.
booting hang_times_out && expect hang_times_out 124 "timed out: the command did not finish within 20 s" 120 \
	$EMUHOST --timeout 20 -- sleep 3600

# The emulated host's kernel dies under the command: status 125 and its
# console, not a hang.
booting kernel_panic_reported && expect kernel_panic_reported 125 "console: .*Kernel panic" 300 \
	$EMUHOST -- bash -c 'echo c >/proc/sysrq-trigger; sleep 600'

# Hangs, each reported within its bound as that step's failure.  The guest
# is the smallest bzImage apfvm boots: its 64-bit entry spins with
# interrupts off (cli; jmp .).
perl -e '
	my $img = "\0" x (2048 + 4096);
	substr($img, 0x1f1, 1) = chr(3);                  # setup_sects
	substr($img, 0x1fe, 2) = pack("v", 0xaa55);
	substr($img, 0x200, 6) = "\xeb\x6aHdrS";           # jump to 0x26c, magic
	substr($img, 0x206, 2) = pack("v", 0x020f);       # boot protocol 2.15
	substr($img, 0x211, 1) = chr(1);                  # LOADED_HIGH
	substr($img, 0x22c, 4) = pack("V", 0x7fffffff);   # initrd_addr_max
	substr($img, 0x236, 2) = pack("v", 3);            # 64-bit entry, above 4G
	substr($img, 0x238, 4) = pack("V", 2047);         # cmdline_size
	substr($img, 0x260, 4) = pack("V", 1 << 20);      # init_size
	substr($img, 2048 + 0x200, 3) = "\xfa\xeb\xfe";   # cli; jmp .
	print $img' >"$tmp/spin.bzImage"
# Inside one emulated host:
#  1. apfvm's --timeout ends the spinning guest, naming where it spins;
#  2. without it, the bounded step (scripts/emuhost/step) kills the run at
#     its bound, with the kernel stacks of apfvm's threads;
#  3. then the emulated host stops running programs (a real-time busy loop
#     on its one CPU, throttling and the fair server off): the tool outside powers it off once
#     the step's bound and EMUHOST_GRACE passed, with the CPU's state.
cat >"$tmp/hangs.sh" <<IN
#!/bin/bash
step=scripts/emuhost/step
$APFVM run --kernel $tmp/spin.bzImage --mem 64M --lazy 2M --timeout 3s -q
echo "apfvm status \$?"
\$step spinning-guest 15 $APFVM run --kernel $tmp/spin.bzImage --mem 64M --lazy 2M -q
echo "step status \$?"
# Nothing else may run: no RT throttling, no fair server (Linux 6.12).
echo -1 >/proc/sys/kernel/sched_rt_runtime_us
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
echo 0 >/sys/kernel/debug/sched/fair_server/cpu0/runtime || echo "cannot stop the fair server"
\$step frozen-host 5 chrt -f 99 sh -c 'while :; do :; done'
echo "not reached"
IN
chmod +x "$tmp/hangs.sh"
if booting hangs_reported_within_their_bounds; then
	EMUHOST_GRACE=45 expect hangs_reported_within_their_bounds 124 \
		"^emuhost: hang: step 'frozen-host' \(bound 5 s\) did not end" 400 $EMUHOST -- "$tmp/hangs.sh"
	o=$tmp/out
	if ! grep -qE "^apfvm run: vCPU 0: timed out after 3\.0 s \(--timeout\): the guest did not finish: RIP=0x[0-9a-f]+ .*RFLAGS=0x2 " "$o"; then
		fail guest_timeout_names_where_it_spins "no timeout with the vCPU's RIP and interrupts off: $(grep -m1 'apfvm run' "$o")"
	elif ! grep -q "^apfvm status 1$" "$o"; then
		fail guest_timeout_names_where_it_spins "apfvm's status: $(grep -m1 'apfvm status' "$o")"
	else
		ok guest_timeout_names_where_it_spins
	fi
	if grep -q "^step status 124$" "$o" && grep -q "^step spinning-guest: did not end within 15 s" "$o" &&
		grep -A3 "(apfvm-vcpu0)" "$o" | grep -q "kvm_arch_vcpu_ioctl_run"; then
		ok hung_step_killed_with_thread_stacks
	else
		fail hung_step_killed_with_thread_stacks "$(grep -m3 -E '^step' "$o" | tr '\n' ' ')"
	fi
	if grep -qE "^  RIP=[0-9a-f]{16} RFL=[0-9a-f]+ .*CPL=3" "$o" && grep -q "^  dumping local APIC state" "$o" &&
		! grep -q "not reached" "$o"; then
		ok frozen_host_reported_with_cpu_state
	else
		fail frozen_host_reported_with_cpu_state "no CPU state of the spinning host: $(grep -m3 -E 'RIP=|hang' "$o" | tr '\n' ' ')"
	fi
fi

# QEMU missing and not installable.
EMUHOST_QEMU=qemu-system-missing expect qemu_missing 125 \
	"missing: qemu-system-x86 \(--no-install given" 30 $EMUHOST --no-install -- true

# The kernel cannot be found or downloaded (a fresh cache each).
# (These need the packages in place, so that the kernel step is reached.)
booting kernel_unknown && EMUHOST_KERNEL_PACKAGE=linux-image-no-such-kernel expect kernel_unknown 125 \
	"cannot find the kernel package: 'linux-image-no-such-kernel'" 120 \
	$EMUHOST --cache "$tmp/cache1" -- true
if [ $can_boot -eq 0 ]; then
	booting kernel_download_fails
elif [ "$(id -u)" -eq 0 ] && unshare -n true 2>/dev/null; then
	expect kernel_download_fails 125 "downloading linux-image-.* failed" 120 \
		unshare -n $EMUHOST --no-install --cache "$tmp/cache2" -- true
else
	echo "SKIP kernel_download_fails: needs root and network namespaces (unshare -n)"
fi
