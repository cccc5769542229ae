#!/bin/bash
# make bench-linux: the modes side by side with an unmodified Linux guest
# (apfvm bench --kernel): compute and scan as Linux processes, the compute
# process's rate during the lazy scan against its rate alone, each run a
# Linux boot, plus the boot time.  Table on stdout, CSV and PNG in
# build/bench/.  KERNEL (default: Debian's 6.12, the bzImage the emulated
# host boots) is the guest.  Runs in the emulated KVM host unless KVM=native
# (PVM's /dev/kvm cannot run Linux); arguments go to `apfvm bench`, after
# these defaults: --latencies 1ms,10ms --runs 1 --lazy 4M.
set -eu
cd "$(dirname "$0")/.."
APFVM=${APFVM:-build/apfvm}
EMUHOST=${EMUHOST:-scripts/emuhost/emuhost}
KERNEL=${KERNEL:-build/emuhost/kernel/vmlinuz}
if [ -z "${EMUHOST_INSIDE:-}" ] && [ "${KVM:-emulated}" != native ]; then
	"$EMUHOST" --setup >/dev/null
	echo "bench_linux.sh: running inside the emulated KVM host" >&2
	exec "$EMUHOST" -- env KERNEL="$KERNEL" scripts/bench_linux.sh "$@"
fi
mkdir -p build/bench
$APFVM bench --kernel "$KERNEL" --latencies 1ms,10ms --runs 1 --lazy 4M \
	--csv build/bench/linux.csv "$@"
bench/plot.sh build/bench/linux.csv build/bench/linux.png "Linux 6.12, processes"
