#!/bin/bash
# scripts/snapshot_loop.sh [-n ITERATIONS] [-b BURNERS]
#
# Runs the Linux snapshot sequence of tests/linux/test_linux_snapshot.sh
# (a kernel-mode snapshot of Linux mid-scan, restored in kernel mode, then
# in user mode) ITERATIONS times (default 20) in one emulated KVM host,
# with BURNERS busy loops (default 0) on this machine meanwhile: the
# stress check of docs/emulated-host.md ("Hangs").  Each guest run is a
# bounded step (scripts/emuhost/step), watched from outside: a hang is
# reported with the emulated CPU's state.  Prints one line per iteration
# with its time, and exits 0 only if every run succeeded.
set -u
cd "$(dirname "$0")/.."
n=20 burners=0
while getopts n:b: o; do
	case $o in
	n) n=$OPTARG ;;
	b) burners=$OPTARG ;;
	*) echo "usage: scripts/snapshot_loop.sh [-n ITERATIONS] [-b BURNERS]" >&2 && exit 2 ;;
	esac
done
if [ -z "${EMUHOST_INSIDE:-}" ]; then
	make -s build/apfvm || exit 1
	scripts/emuhost/emuhost --setup >/dev/null || exit 1
	pids=()
	for ((i = 0; i < burners; i++)); do
		sh -c 'while :; do :; done' &
		pids+=($!)
	done
	trap '[ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null' EXIT
	echo "snapshot loop: $n iterations, $burners CPU burners on this machine, $(date -u +%FT%TZ)"
	scripts/emuhost/emuhost --timeout $((n * 1500)) -- scripts/snapshot_loop.sh -n "$n"
	exit
fi
kernel=build/emuhost/kernel/vmlinuz
dir=$(mktemp -d /tmp/snapshot-loop.XXXXXX)
# A copy of apfvm: the checkout's may be rebuilt meanwhile.
cp build/apfvm "$dir/apfvm" || exit 1
apfvm=$dir/apfvm
$apfvm mkimage --size 16M --seed 7 "$dir/image" >/dev/null || exit 1
step=scripts/emuhost/step
bad=0
for ((i = 1; i <= n; i++)); do
	t0=$(date +%s.%N)
	line="iteration $i:"
	rm -f "$dir/s" "$dir/s.mem"
	$step "run-$i" 420 $apfvm run --kernel "$kernel" --mem 256M --lazy 16M --source "file:$dir/image" \
		--latency 2ms --workload compute:1,scan:1 --apf kernel --cmdline quiet --timeout 300s \
		--console "$dir/console" --snapshot-after-pages 1024 --snapshot "$dir/s" -q
	rc=$?
	line="$line run $rc"
	for mode in kernel user; do
		[ $rc -eq 0 ] || break
		$step "restore-$mode-$i" 420 $apfvm restore --apf $mode --latency 2ms --timeout 300s \
			--console "$dir/console" -q "$dir/s"
		rc=$?
		line="$line, restore as $mode $rc"
	done
	[ $rc -eq 0 ] || bad=$((bad + 1))
	echo "$line; $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
done
echo "$bad of $n iterations failed"
[ $bad -eq 0 ]
