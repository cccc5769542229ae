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
