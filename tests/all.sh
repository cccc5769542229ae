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
#   HOST_TESTS   on this machine: the emulated host's own tests, fuzzing
# A tier is skipped only where it cannot run at all, with the reason.
set -u
cd "$(dirname "$0")/.."
. scripts/kvm_where.sh
APFVM=${APFVM:-build/apfvm}
EMUHOST_TIMEOUT=${EMUHOST_TIMEOUT:-3600}
log=$(mktemp /tmp/apfvm-tests.XXXXXX)
trap 'rm -f "$log"' EXIT
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
tier "unit tests" "$host" $UNIT_TESTS

kvm_where "$APFVM"
[ "$KVM_WHERE" != emulated ] || kvm_emuhost_setup
case $KVM_WHERE in
native)
	where=$($APFVM platform)
	tier "vm tests" "$where" $VM_TESTS
	tier "cli tests" "$where" $CLI_TESTS
	;;
emulated)
	echo "(the KVM tiers run inside the emulated KVM host: $KVM_WHY)"
	export VM_TESTS CLI_TESTS APFVM
	"$EMUHOST" --timeout "$EMUHOST_TIMEOUT" -- bash -c '
		where=$($APFVM platform)
		tests/run.sh --tier "vm tests" --where "$where" $VM_TESTS
		tests/run.sh --tier "cli tests" --where "$where" $CLI_TESTS
		true' 2>&1 | tee "$log"
	if ! add_tiers 2; then
		echo "   FAIL emulated host: it ended before the KVM tiers finished (see above)"
		fail=$((fail + 1))
	fi
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

tier "vm tests" "arm64, emulated host" tests/arm64/run_arm64.sh
# Each Linux test boots its own emulated host and runs several Linux
# guests in it (its own limit: 1500 s); the default 900 s per program is
# too short for them on a slow day.
TEST_TIMEOUT=${TEST_TIMEOUT:-1800} tier "host tests" "$host" $HOST_TESTS
echo "(every tier: $SECONDS s)"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
