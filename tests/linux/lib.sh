# Helpers of the Linux guest's tests (sourced): the results of one case
# are $out/CASE.json; `tests` names every test of the script, each failed
# by fail_all when nothing could run.
ok() { echo "ok $1"; }
# in_emuhost LOG SCRIPT ARG...: runs SCRIPT inside the emulated KVM host,
# its output in LOG.  SCRIPT runs each guest as a bounded step
# (scripts/emuhost/step), which the tool watches from outside: a hung
# guest run is killed at its bound with its threads' stacks, and a host
# that stops running programs is revived or, failing that, powered off
# with its CPU state.  The report (stacks, CPU state) goes to this test's
# output.
in_emuhost() {
	local log=$1
	shift
	timeout --kill-after=10 1500 scripts/emuhost/emuhost --timeout 1440 -- "$@" >"$log" 2>&1
	local rc=$? f
	if [ $rc -ne 0 ]; then
		echo "emulated host: status $rc"
		sed -n '/^emuhost: hang: /,$p' "$log" | head -150
	fi
	for f in "$(dirname "$log")"/*.err; do
		grep -q '^step .*: did not end within' "$f" 2>/dev/null || continue
		sed -n '/^step .*: did not end within/,$p' "$f" | head -80
	done
	return $rc
}
fail() { echo "FAIL $1: $2"; }
fail_all() {
	for t in "${tests[@]}"; do fail "$t" "$1"; done
	exit 0
}
# num CASE SECTION KEY: the number KEY holds in SECTION ("" = top level).
num() {
	local j="$out/$1.json" s
	if [ -n "$2" ]; then
		s=$(grep -o "\"$2\": {[^}]*}" "$j" 2>/dev/null)
	else
		s=$(cat "$j" 2>/dev/null)
	fi
	echo "$s" | grep -o "\"$3\": [0-9.]*" | head -n 1 | sed 's/.*: //'
}
# task CASE NAME KEY: KEY of the first task called NAME.
task() {
	grep -o "{\"name\": \"$2\"[^}]*}" "$out/$1.json" 2>/dev/null | head -n 1 |
		grep -o "\"$3\": [0-9.]*" | sed 's/.*: //'
}
# expect NAME "what must hold" A OP B [A OP B ...]: integer comparisons.
expect() {
	local name=$1 why=$2
	shift 2
	while [ $# -ge 3 ]; do
		if [ -z "$1" ] || [ -z "$3" ] || ! [ "$1" "$2" "$3" ] 2>/dev/null; then
			fail "$name" "$why (got '$1' $2 '$3')"
			return
		fi
		shift 3
	done
	ok "$name"
}
