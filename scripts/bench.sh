#!/bin/bash
# make bench: the side-by-side comparison of the modes (table, CSV, PNG),
# then the pager's service rate.  Runs on /dev/kvm where it works,
# otherwise inside the emulated KVM host (scripts/kvm_where.sh); arguments
# go to `apfvm bench` (see its --help).
set -eu
cd "$(dirname "$0")/.."
APFVM=${APFVM:-build/apfvm}
BENCH_PAGER=${BENCH_PAGER:-build/bench_pager}
. scripts/kvm_where.sh
kvm_place_self "$APFVM" scripts/bench.sh "$@"
mkdir -p build/bench
# The unit of the per-fault floor (docs/async-pf.md, "The platform's
# minimum"): what one VM exit of each kind costs here.
$APFVM run --cmdline probe-exits --workload compute:1 --duration 100ms --verbose 2>&1 |
	sed -n 's/^apfvm guest: exit round trips/Exit round trips on this platform/p'
$APFVM bench --csv build/bench/modes.csv "$@"
bench/plot.sh build/bench/modes.csv build/bench/modes.png
echo
$BENCH_PAGER --csv build/bench/pager.csv
