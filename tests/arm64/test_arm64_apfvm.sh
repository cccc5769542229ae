#!/bin/sh
# apfvm on arm64 KVM, inside the emulated arm64 host (busybox sh): the
# reference guest's workloads in both modes, every word of a seeded image
# verified, the counters of both sides agreeing, and the clear refusals.
# Prints "ok NAME" / "FAIL NAME: why" lines (tests/arm64/run_arm64.sh).
APFVM=${ARM64_APFVM:-build/arm64/apfvm}
T=$(mktemp -d /tmp/apfvm-arm64.XXXXXX)
trap 'rm -rf "$T"' EXIT

ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; }
# json FILE KEY: the first integer value of "KEY" in the stats JSON (the
# objects below are written on one line each, so the section is named).
json() { sed -n "s/.*\"$2\": *\([0-9][0-9]*\).*/\1/p" "$1" | head -1; }
section() { grep "\"$2\"" "$1" | head -1; }
field() { echo "$1" | sed -n "s/.*\"$2\": *\([0-9][0-9]*\).*/\1/p"; }

if ! "$APFVM" mkimage --size 8M --seed 7 "$T/img" >/dev/null 2>"$T/err"; then
	fail arm64_mkimage "$(cat "$T/err")"
	exit 0
fi

# Off: the baseline.  Every fault is synchronous; every word is verified.
if "$APFVM" run --workload compute,scan --lazy 8M --source file:"$T/img" --latency 1ms \
	--apf off --stats-json "$T/off.json" -q 2>"$T/err"; then
	f=$(section "$T/off.json" faults)
	scan=$(grep '"name": "scan"' "$T/off.json")
	if [ "$(field "$f" sync)" = 2048 ] && [ "$(field "$f" async)" = 0 ] &&
	   [ "$(field "$scan" pages)" = 2048 ] && [ "$(field "$scan" mismatches)" = 0 ] &&
	   grep -q '"name": "compute"' "$T/off.json"; then
		ok arm64_off_serves_every_fault_synchronously_and_every_word_verifies
	else
		fail arm64_off_serves_every_fault_synchronously_and_every_word_verifies \
			"$(tr '\n' ' ' <"$T/off.json")"
	fi
else
	fail arm64_off_serves_every_fault_synchronously_and_every_word_verifies "$(cat "$T/err")"
fi

# User: apfvm is the host side.  With 2 ms fetches nearly every fault goes
# async; the guest counts exactly the events the host sent.
if "$APFVM" run --workload compute,scan --lazy 8M --source file:"$T/img" --latency 2ms \
	--apf user --stats-json "$T/user.json" -q 2>"$T/err"; then
	f=$(section "$T/user.json" faults)
	h=$(section "$T/user.json" host_apf)
	g=$(grep '"apf": {' "$T/user.json")
	scan=$(grep '"name": "scan"' "$T/user.json")
	async=$(field "$f" async)
	if [ "${async:-0}" -gt 1024 ] && [ "$(field "$h" not_present)" = "$async" ] &&
	   [ "$(field "$g" not_present)" = "$async" ] && [ "$(field "$g" ready)" = "$async" ] &&
	   [ "$(field "$h" ready)" = "$async" ] && [ "$(field "$g" wake_all)" = 1 ] &&
	   [ "$(field "$scan" pages)" = 2048 ] && [ "$(field "$scan" mismatches)" = 0 ]; then
		ok arm64_user_goes_async_with_both_sides_counting_the_same_events
	else
		fail arm64_user_goes_async_with_both_sides_counting_the_same_events \
			"$(tr '\n' ' ' <"$T/user.json")"
	fi
else
	fail arm64_user_goes_async_with_both_sides_counting_the_same_events "$(cat "$T/err")"
fi

# A guest that does not register (no-apf) gets no event: every fault is
# served synchronously, as "disabled".
if "$APFVM" run --workload scan --lazy 2M --latency 1ms --apf user --cmdline no-apf \
	--stats-json "$T/noapf.json" -q 2>"$T/err"; then
	f=$(section "$T/noapf.json" faults)
	if [ "$(field "$f" async)" = 0 ] && [ "$(field "$f" sync_disabled)" = 512 ]; then
		ok arm64_user_sends_nothing_to_a_guest_that_did_not_register
	else
		fail arm64_user_sends_nothing_to_a_guest_that_did_not_register "$f"
	fi
else
	fail arm64_user_sends_nothing_to_a_guest_that_did_not_register "$(cat "$T/err")"
fi

# Registration is a trust boundary: the guest tries every malformed form
# (asserting the host refuses each), then registers and goes async.
if "$APFVM" run --workload compute,scan --lazy 2M --latency 2ms --apf user \
	--cmdline apf-register-checks --verbose --stats-json "$T/reg.json" >"$T/out" 2>&1; then
	f=$(section "$T/reg.json" faults)
	if grep -q "refused every malformed registration" "$T/out" && [ "$(field "$f" async)" -gt 0 ]; then
		ok arm64_malformed_registrations_are_refused
	else
		fail arm64_malformed_registrations_are_refused "$(tr '\n' ' ' <"$T/out")"
	fi
else
	fail arm64_malformed_registrations_are_refused "$(tr '\n' ' ' <"$T/out")"
fi

# The refusals say what exists instead.
expect_error() { # NAME PATTERN ARGS...
	name=$1 pattern=$2
	shift 2
	if "$APFVM" run "$@" >"$T/out" 2>&1; then
		fail "$name" "exited 0"
	elif grep -q "$pattern" "$T/out"; then
		ok "$name"
	else
		fail "$name" "$(cat "$T/out")"
	fi
}
expect_error arm64_kernel_mode_is_refused_as_not_existing "does not exist on arm64" \
	--workload compute --duration 10ms --apf kernel
expect_error arm64_linux_guest_is_refused_clearly "Linux guests on x86-64 only" \
	--kernel "$T/img" --workload compute --duration 10ms
# Guest crashes reach the user with the arm64 registers.
expect_error arm64_undefined_instruction_is_reported "unknown instruction (sync (EL1)" \
	--workload compute --duration 10ms --cmdline crash=ud2
expect_error arm64_null_access_is_reported_with_its_address "data abort (sync (EL1).*FAR_EL1=0x8 " \
	--workload compute --duration 10ms --cmdline crash=pf
expect_error arm64_task_executing_kernel_memory_is_reported "instruction abort from EL0" \
	--workload compute --duration 10ms --cmdline crash=user
expect_error arm64_guest_assertion_is_reported "guest assertion failed at guest/core/main.c" \
	--workload compute --duration 10ms --cmdline crash=assert
expect_error arm64_hung_guest_times_out "did not finish" \
	--workload compute --duration 10ms --cmdline crash=hang --timeout 2s
