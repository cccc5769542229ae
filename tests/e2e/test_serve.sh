#!/bin/bash
# End-to-end tests of apfvm serve under attack, on loopback (no KVM, no
# root): 64 hostile clients (idle, slowloris, deaf: build/serve_attack),
# each from its own loopback address, hold connections while a
# well-behaved apfvm fetch reads 16 MiB; the fetch completes with every
# page checked.  How long it takes against an undisturbed fetch is
# measured by make bench-serve, not here.  Also: serve's limits are
# options with clear errors.
# Prints "ok NAME" / "FAIL NAME: why" lines.
set -u
APFVM=${APFVM:-build/apfvm}
ATTACK=${SERVE_ATTACK:-build/serve_attack}
tmp=$(mktemp -d /tmp/apfvm-serve.XXXXXX)
serve_pid=
trap '[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; wait; rm -rf "$tmp"' EXIT

ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; }

# serve_start ARGS...: apfvm serve on 127.0.0.1, a free port; sets $port.
serve_start() {
	"$APFVM" serve --listen 127.0.0.1:0 "$@" >"$tmp/serve.out" 2>"$tmp/serve.err" &
	serve_pid=$!
	port=
	for _ in $(seq 100); do
		port=$(sed -n 's/.* on port \([0-9]*\)$/\1/p' "$tmp/serve.out")
		[ -n "$port" ] && return 0
		kill -0 "$serve_pid" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}

# attack N SECS: N hostile clients (build/serve_attack) for SECS, started
# in the background ($attack_pid); returns once all were welcomed, or 1
# if that did not happen within 20 s.
attack() {
	"$ATTACK" "$port" "$1" "$2" >"$tmp/attack.out" &
	attack_pid=$!
	for _ in $(seq 200); do
		grep -q "all $1 connections welcomed" "$tmp/attack.out" && return 0
		sleep 0.1
	done
	return 1
}

serve_stop() {
	kill "$serve_pid" 2>/dev/null
	wait "$serve_pid" 2>/dev/null
	serve_pid=
}

"$APFVM" mkimage --size 16M --seed 5 "$tmp/img" >/dev/null

name=a_fetch_completes_while_64_hostile_clients_hold_connections
if ! serve_start --image "$tmp/img"; then
	fail $name "apfvm serve did not start: $(head -c 300 "$tmp/serve.err")"
else
	# The hostile connections first: the fetch comes once all are in.
	attack 64 30 || fail ${name}_setup "the hostile clients were not all welcomed within 20 s"
	if timeout 60 "$APFVM" fetch --source "tcp:127.0.0.1:$port" --size 16M --fetch-timeout 5s \
		>"$tmp/fetch.out" 2>"$tmp/fetch.err"; then
		ok $name
	else
		fail $name "fetch failed ($?): $(head -c 300 "$tmp/fetch.err")"
	fi
	kill "$attack_pid" 2>/dev/null
	wait "$attack_pid" 2>/dev/null
	serve_stop
fi

name=a_client_beyond_the_limit_is_told_the_server_is_full
if ! serve_start --image "$tmp/img" --max-clients 1; then
	fail $name "apfvm serve did not start: $(head -c 300 "$tmp/serve.err")"
else
	attack 1 30 || fail ${name}_setup "the hostile client was not welcomed within 20 s"
	timeout 60 "$APFVM" fetch --source "tcp:127.0.0.1:$port" --size 1M --fetch-tries 2 \
		>"$tmp/fetch.out" 2>"$tmp/fetch.err"
	rc=$?
	if [ $rc -eq 2 ] && grep -q "the server is full (1 clients) (2 tries)" "$tmp/fetch.err"; then
		ok $name
	else
		fail $name "status $rc: $(head -c 300 "$tmp/fetch.err")"
	fi
	kill "$attack_pid" 2>/dev/null
	wait "$attack_pid" 2>/dev/null
	serve_stop
fi

name=serve_limits_are_options_with_clear_errors
out=$("$APFVM" serve --image "$tmp/img" --listen 127.0.0.1:0 --max-per-peer 300 2>&1)
rc=$?
if [ $rc -eq 2 ] && [[ $out == *"--max-per-peer 300: 1..--max-clients (256)"* ]] &&
	"$APFVM" serve --help | grep -q -- "--idle-timeout"; then
	ok $name
else
	fail $name "status $rc: $out"
fi
