#!/bin/bash
# make test: every tier, each where it can run.  Ends with
# "N passed, N failed, N skipped" over all tiers.
#
# Tiers (lists from the Makefile, in the environment):
#   UNIT_TESTS   no KVM: on this machine
#   VM_TESTS, CLI_TESTS
#                need KVM: on /dev/kvm where it works, otherwise inside the
#                emulated KVM host (scripts/emuhost/emuhost, one boot for
#                both); KVM=native or KVM=emulated forces one
#                (scripts/kvm_where.sh)
#   ARM64_TESTS  static arm64 programs: inside the emulated arm64 KVM host
#                (tests/arm64/run_arm64.sh, one boot)
#   FUZZ_TESTS   on this machine: every fuzz target briefly
#   HOST_TESTS   on this machine: the emulated host's own tests, the Linux
#                guest's (each boots its own emulated host)
# A tier is skipped only where it cannot run at all, with the reason.
#
# In the emulated KVM host the KVM tiers take one CPU (QEMU's TCG runs the
# emulated host on one thread) for most of the run: the other tiers run
# beside them, one after another, and the KVM tiers' log follows theirs.
set -u
cd "$(dirname "$0")/.."
. scripts/kvm_where.sh
APFVM=${APFVM:-build/apfvm}
EMUHOST_TIMEOUT=${EMUHOST_TIMEOUT:-3600}
log=$(mktemp /tmp/apfvm-tests.XXXXXX)
kvm_log=$(mktemp /tmp/apfvm-tests-kvm.XXXXXX)
kvm_pid=
trap '[ -z "$kvm_pid" ] || kill $kvm_pid 2>/dev/null; rm -f "$log" "$kvm_log"' EXIT
pass=0 fail=0 skip=0

# add_tiers N: adds the "N passed, N failed, N skipped in TIER" lines of
# $log; fails if there are fewer than N of them (a tier did not finish).
add_tiers() {
	local line n=0 want=$1
	while read -r line; do
		set -- $line
		pass=$((pass + $1)) fail=$((fail + $3)) skip=$((skip + $5)) n=$((n + 1))
	done < <(grep -E '^   [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped in ' "$log")
	[ $n -ge "$want" ]
}

# tier NAME WHERE PROGRAM...: on this machine.
tier() {
	local name=$1 where=$2
	shift 2
	tests/run.sh --tier "$name" --where "$where" "$@" | tee "$log"
	add_tiers 1 || fail=$((fail + 1))
}

# skip_tier NAME WHY PROGRAM...: one SKIP per program.
skip_tier() {
	local name=$1 why=$2
	shift 2
	echo "== $name (not run)"
	for t in "$@"; do
		echo "   SKIP $(basename "$t"): $why"
		skip=$((skip + 1))
	done
}

host="x86-64, this machine"

# The KVM tiers inside the emulated host, in the background: their log in
# $kvm_log, added up by kvm_tiers_done.
start_emulated_kvm_tiers() {
	echo "(the KVM tiers run inside the emulated KVM host, beside the tiers below: $KVM_WHY)"
	export VM_TESTS CLI_TESTS APFVM
	"$EMUHOST" --timeout "$EMUHOST_TIMEOUT" -- bash -c '
		where=$($APFVM platform)
		tests/run.sh --tier "vm tests" --where "$where" $VM_TESTS
		tests/run.sh --tier "cli tests" --where "$where" $CLI_TESTS
		true' >"$kvm_log" 2>&1 &
	kvm_pid=$!
}

kvm_tiers_done() {
	[ -n "$kvm_pid" ] || return 0
	wait $kvm_pid
	kvm_pid=
	cat "$kvm_log"
	cp "$kvm_log" "$log"
	if ! add_tiers 2; then
		echo "   FAIL emulated host: it ended before the KVM tiers finished (see above)"
		fail=$((fail + 1))
	fi
}

kvm_where "$APFVM"
[ "$KVM_WHERE" != emulated ] || kvm_emuhost_setup
case $KVM_WHERE in
native)
	tier "unit tests" "$host" $UNIT_TESTS
	where=$($APFVM platform)
	tier "vm tests" "$where" $VM_TESTS
	tier "cli tests" "$where" $CLI_TESTS
	;;
emulated)
	start_emulated_kvm_tiers
	;;
none)
	if [ "${KVM:-auto}" = auto ]; then
		skip_tier "vm tests" "no KVM here: $KVM_WHY" $VM_TESTS
		skip_tier "cli tests" "no KVM here: $KVM_WHY" $CLI_TESTS
	else
		echo "== vm and cli tests (not run)"
		echo "   FAIL kvm: $KVM_WHY"
		fail=$((fail + 1))
	fi
	;;
esac

[ "$KVM_WHERE" = native ] || tier "unit tests" "$host" $UNIT_TESTS
tier "fuzz tests" "$host" $FUZZ_TESTS
tier "vm tests" "arm64, emulated host" tests/arm64/run_arm64.sh
# Each Linux test boots its own emulated host and runs several Linux
# guests in it (its own limit: 1500 s); the default 900 s per program is
# too short for them on a slow day.
TEST_TIMEOUT=${TEST_TIMEOUT:-1800} tier "host tests" "$host" $HOST_TESTS
kvm_tiers_done
echo "(every tier: $SECONDS s)"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
