# Helpers of the Linux guest's tests (sourced): the results of one case
# are $out/CASE.json; `tests` names every test of the script, each failed
# by fail_all when nothing could run.
ok() { echo "ok $1"; }
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
