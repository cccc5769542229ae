# Shared by the command-line end-to-end tests: result lines, and a command
# that must fail with a clear message.  Sourced with tmp (a scratch folder)
# set; EXPECT_TIMEOUT (default 60) bounds each expected failure.

ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; }

# expect_error NAME PATTERN CMD...: exit 1/2 within EXPECT_TIMEOUT s, stderr
# matches PATTERN (case-insensitive ERE): never success, a crash (>= 128)
# or a hang.
expect_error() {
	local name=$1 pattern=$2 limit=${EXPECT_TIMEOUT:-60}
	shift 2
	timeout "$limit" "$@" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	if [ $rc -eq 0 ]; then
		fail "$name" "succeeded, expected an error"
	elif [ $rc -eq 124 ]; then
		fail "$name" "hung (killed after $limit s)"
	elif [ $rc -ge 128 ]; then
		fail "$name" "crashed with status $rc: $(head -c 300 "$tmp/err")"
	elif ! grep -qiE -- "$pattern" "$tmp/err"; then
		fail "$name" "message '$(head -c 300 "$tmp/err")' does not match /$pattern/"
	else
		ok "$name"
	fi
}
