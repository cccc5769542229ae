#!/bin/bash
# make bench-arm64: the modes side by side on arm64 KVM (apfvm bench, the
# reference guest): the compute task's rate during the lazy scan against
# its rate alone, each pair measured in one run, `off` against `user`
# (`kernel` does not exist on arm64).  Runs build/arm64/apfvm inside the
# emulated arm64 KVM host (scripts/emuhost/emuhost --arch arm64), or on
# this machine's /dev/kvm if it is an arm64 one.  Table on stdout, CSV and
# PNG in build/bench/.  Arguments go to `apfvm bench`, after these
# defaults: --modes off,user --latencies 1ms,10ms --runs 3 --lazy 8M.
set -eu
cd "$(dirname "$0")/.."
APFVM=${ARM64_APFVM:-build/arm64/apfvm}
EMUHOST=${EMUHOST:-scripts/emuhost/emuhost}
mkdir -p build/bench
args=(bench --modes off,user --latencies 1ms,10ms --runs 3 --lazy 8M --csv build/bench/arm64.csv "$@")
if [ "$(uname -m)" = aarch64 ] && [ -c /dev/kvm ]; then
	"$APFVM" "${args[@]}"
else
	"$EMUHOST" --arch arm64 --setup >/dev/null
	echo "bench_arm64.sh: running inside the emulated arm64 KVM host" >&2
	"$EMUHOST" --arch arm64 -- "$APFVM" "${args[@]}"
fi
bench/plot.sh build/bench/arm64.csv build/bench/arm64.png "arm64, reference guest"
