#!/bin/bash
# make bench-serve: apfvm serve under attack, on loopback (no KVM, no root).
# A well-behaved apfvm fetch of 16 MiB (64 in flight), alone and while 64
# hostile clients hold connections (build/serve_attack: idle, slowloris
# and deaf, each from its own loopback address), alternating, RUNS times
# each (default 5).  Prints the medians and their ratio; CSV in
# build/bench/serve-attack.csv.
set -eu
cd "$(dirname "$0")/.."
APFVM=${APFVM:-build/apfvm}
ATTACK=${SERVE_ATTACK:-build/serve_attack}
RUNS=${RUNS:-5}
HOSTILE=${HOSTILE:-64}
median() { sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "" }'; }
tmp=$(mktemp -d /tmp/apfvm-bench-serve.XXXXXX)
serve_pid= attack_pid=
trap 'kill $serve_pid $attack_pid 2>/dev/null; wait; rm -rf "$tmp"' EXIT
mkdir -p build/bench
csv=build/bench/serve-attack.csv

"$APFVM" mkimage --size 16M --seed 5 "$tmp/img" >/dev/null
"$APFVM" serve --image "$tmp/img" --listen 127.0.0.1:0 >"$tmp/serve.out" 2>"$tmp/serve.err" &
serve_pid=$!
port=
for _ in $(seq 100); do
	port=$(sed -n 's/.* on port \([0-9]*\)$/\1/p' "$tmp/serve.out")
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "$port" ] || { echo "bench_serve.sh: apfvm serve did not start" >&2; exit 1; }

# fetch_s: seconds of one fetch (its CSV's 4th field).
fetch_s() {
	"$APFVM" fetch --source "tcp:127.0.0.1:$port" --size 16M --csv | cut -d, -f4
}

echo "Platform: $("$APFVM" platform) ($(nproc) CPUs)"
echo "apfvm fetch of 16 MiB from apfvm serve on loopback, 64 in flight; $RUNS runs each"
echo "mode,run,seconds" >"$csv"
for run in $(seq "$RUNS"); do
	echo "alone,$run,$(fetch_s)" >>"$csv"
	"$ATTACK" "$port" "$HOSTILE" 3600 >"$tmp/attack.out" &
	attack_pid=$!
	for _ in $(seq 300); do
		grep -q "all $HOSTILE connections welcomed" "$tmp/attack.out" && break
		sleep 0.1
	done
	grep -q "all $HOSTILE connections welcomed" "$tmp/attack.out" ||
		{ echo "bench_serve.sh: the hostile clients were not all welcomed" >&2; exit 1; }
	echo "attacked,$run,$(fetch_s)" >>"$csv"
	kill "$attack_pid"
	wait "$attack_pid" 2>/dev/null || true
	attack_pid=
done
alone=$(grep '^alone,' "$csv" | cut -d, -f3 | median)
attacked=$(grep '^attacked,' "$csv" | cut -d, -f3 | median)
printf '%-40s %10s\n' "" "median s"
printf '%-40s %10.3f\n' "alone" "$alone" "with $HOSTILE hostile clients" "$attacked"
awk -v a="$alone" -v b="$attacked" 'BEGIN { printf "ratio (attacked / alone): %.2fx\n", b / a }'
echo "CSV: $csv"
